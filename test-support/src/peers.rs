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
