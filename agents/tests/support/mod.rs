//! A tansu broker for the CLI tests, and helpers to run the `mephisto` binary and the peer
//! (confluent-kafka) scripts.
//!
//! # Which broker
//! If `MEPHISTO_BROKER` is set (e.g. by `scripts/tansu.sh run -- cargo test -p
//! mephisto-agents`), the tests use that broker. Otherwise each test starts a private tansu
//! (`$TANSU_BIN`, else `.tools/bin/tansu` from `scripts/install-peers.sh`) on a free loopback
//! port with the command line of `scripts/tansu.sh`, and kills it when the [`Tansu`] handle
//! drops; a watchdog shell also kills it if the test process dies first. Without a tansu
//! binary the tests fail, they never skip.
#![allow(dead_code)]

pub mod app;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A broker for one test.
pub struct Tansu {
    /// `kafka://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    processes: Vec<Child>,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Which broker the tests run against: `tansu` (default) or `dev` (`MEPHISTO_TEST_BROKER`).
pub fn is_dev_broker() -> bool {
    std::env::var("MEPHISTO_TEST_BROKER").is_ok_and(|b| b == "dev")
}

/// The broker for a test: `MEPHISTO_BROKER`, else a private `mephisto dev-broker` with
/// `MEPHISTO_TEST_BROKER=dev`, else a private tansu.
pub fn tansu() -> Tansu {
    if let Ok(url) = std::env::var("MEPHISTO_BROKER") {
        let addr = url.trim_start_matches("kafka://").to_owned();
        return Tansu {
            url,
            addr,
            processes: Vec::new(),
        };
    }
    if is_dev_broker() {
        return dev_broker();
    }
    let bin = match std::env::var_os("TANSU_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => repo().join(".tools/bin/tansu"),
    };
    assert!(
        bin.is_file(),
        "no tansu at {}: run scripts/install-peers.sh, set TANSU_BIN, or set MEPHISTO_BROKER",
        bin.display()
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listener = format!("tcp://127.0.0.1:{port}");
    let log = std::env::temp_dir().join(format!("mephisto-cli-tansu-{port}.log"));
    let log_file = std::fs::File::create(&log).expect("tansu log file");
    let broker = Command::new(&bin)
        .args(["broker", "--listener-url", &listener])
        .args(["--advertised-listener-url", &listener])
        .args([
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            "mephisto",
        ])
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log handle"))
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill {} 2>/dev/null",
            std::process::id(),
            broker.id()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog shell");
    let mut tansu = Tansu {
        url: format!("kafka://127.0.0.1:{port}"),
        addr: format!("127.0.0.1:{port}"),
        processes: vec![broker, watchdog],
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answers_api_versions(&tansu.addr) {
        if let Some(Ok(Some(status))) = tansu.processes.first_mut().map(Child::try_wait) {
            panic!(
                "tansu exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "tansu did not answer on {} within 20 s: {}",
            tansu.addr,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    tansu
}

/// A private `mephisto dev-broker` on a free loopback port.
fn dev_broker() -> Tansu {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mephisto"))
        .args(["dev-broker", "--listen", "127.0.0.1:0"])
        .env_remove("MEPHISTO_BROKER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start mephisto dev-broker");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)
        .expect("the dev broker's address");
    let url = first
        .trim()
        .strip_prefix("MEPHISTO_BROKER=")
        .unwrap_or_else(|| panic!("unexpected dev-broker output: {first:?}"))
        .to_owned();
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {} 2>/dev/null; do sleep 1; done; kill {} 2>/dev/null",
            std::process::id(),
            child.id()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog shell");
    Tansu {
        addr: url.trim_start_matches("kafka://").to_owned(),
        url,
        processes: vec![child, watchdog],
    }
}

/// Whether a broker at `addr` answers an ApiVersions v0 request with error code 0.
fn answers_api_versions(addr: &str) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(1)))?;
        // api key 18, version 0, correlation id 7, client id "probe".
        let mut request = vec![0, 18, 0, 0, 0, 0, 0, 7, 0, 5];
        request.extend_from_slice(b"probe");
        let mut frame = (request.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&request);
        stream.write_all(&frame)?;
        let mut head = [0u8; 10];
        stream.read_exact(&mut head)?;
        Ok(head[4..8] == [0, 0, 0, 7] && head[8..10] == [0, 0])
    };
    probe().unwrap_or(false)
}

/// A topic name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Runs `mephisto --broker URL ARGS...` with `stdin`.
pub fn mephisto(broker: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mephisto"))
        .arg("--broker")
        .arg(broker)
        .args(args)
        .env_remove("MEPHISTO_BROKER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mephisto");
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).expect("write stdin");
    }
    child.wait_with_output().expect("mephisto output")
}

/// Like [`mephisto`], panicking unless it succeeds; returns stdout.
pub fn mephisto_ok(broker: &str, args: &[&str], stdin: &[u8]) -> String {
    let out = mephisto(broker, args, stdin);
    assert!(
        out.status.success(),
        "mephisto {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs `script` with `.venv/bin/python` (from `scripts/install-peers.sh`); returns stdout.
pub fn python(script: &str, args: &[&str]) -> String {
    let python = repo().join(".venv/bin/python");
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
