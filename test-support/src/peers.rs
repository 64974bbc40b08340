//! The `mephisto` CLI and the Python peers (`.venv`, from `scripts/install-peers.sh`) as child
//! processes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::process::repo_root;

/// Runs `BIN --broker URL ARGS...` (the `mephisto` CLI at `bin`) with `stdin`.
pub fn cli(bin: &Path, broker: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(bin)
        .arg("--broker")
        .arg(broker)
        .args(args)
        .env_remove("MEPHISTO_BROKER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).expect("write stdin");
    }
    child.wait_with_output().expect("mephisto output")
}

/// Like [`cli`], panicking unless it succeeds; returns stdout.
pub fn cli_ok(bin: &Path, broker: &str, args: &[&str], stdin: &[u8]) -> String {
    let out = cli(bin, broker, args, stdin);
    assert!(
        out.status.success(),
        "mephisto {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `script` with `.venv/bin/python`; returns stdout, panicking unless it succeeds.
pub fn python(script: &str, args: &[&str]) -> String {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/install-peers.sh",
        python.display()
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A Python Faust worker (or any peer process) killed when the test ends, however it ends.
#[derive(Debug)]
pub struct PeerProcess(pub std::process::Child);

impl PeerProcess {
    /// Asks it to stop as a container runtime does (SIGTERM) and waits up to `within` for it
    /// to exit; `true` if it did.
    pub fn terminate(&mut self, within: std::time::Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `.venv/bin/python SCRIPT ARGS...` (a path under the repository) on broker `url`
/// (`MEPHISTO_BROKER`) as Faust app `app_id` (`FAUST_APP_ID`, with a data directory of its
/// own in `FAUST_DATADIR`); stdout piped when `capture`, else dropped; stderr goes to
/// [`faust_log`]`(app_id)`.
pub fn faust_worker(
    script: &str,
    args: &[&str],
    url: &str,
    app_id: &str,
    capture: bool,
) -> PeerProcess {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run scripts/install-peers.sh",
        python.display()
    );
    let datadir = std::env::temp_dir().join(format!("mephisto-faust-{app_id}"));
    let stderr = std::fs::File::create(faust_log(app_id))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null());
    let child = Command::new(python)
        .arg(repo_root().join(script))
        .args(args)
        .env("MEPHISTO_BROKER", url)
        .env("FAUST_APP_ID", app_id)
        .env("FAUST_DATADIR", datadir)
        .stdin(Stdio::null())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(stderr)
        .spawn()
        .expect("start the Faust worker");
    let pid = child.id();
    let _ = crate::process::watchdog(pid);
    PeerProcess(child)
}

/// Where [`faust_worker`] writes app `app_id`'s stderr (to show when a test fails).
pub fn faust_log(app_id: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("mephisto-faust-{app_id}.log"))
}
