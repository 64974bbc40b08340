//! A private tansu broker (in-memory storage) on a free loopback port, with the command line of
//! `scripts/tansu.sh`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::broker::Broker;
use crate::probe::answers_api_versions;
use crate::process::{free_port, repo_root, watchdog};

/// How long tansu may take to answer ApiVersions after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts a private tansu; panics (with what to do) if it cannot.
pub fn tansu() -> Broker {
    try_tansu("mephisto-tests").unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a private tansu and waits until it answers ApiVersions (at most [`START_TIMEOUT`]).
/// Its log goes to `$TMPDIR/<log_prefix>-tansu-PORT.log`.
pub fn try_tansu(log_prefix: &str) -> Result<Broker, String> {
    let bin = tansu_bin()?;
    let port = free_port();
    let listen = format!("tcp://127.0.0.1:{port}");
    let log_path = std::env::temp_dir().join(format!("{log_prefix}-tansu-{port}.log"));
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let stdout = log.try_clone().map_err(|e| format!("tansu log: {e}"))?;
    let child = Command::new(&bin)
        .args(["broker", "--listener-url", &listen])
        .args(["--advertised-listener-url", &listen])
        .args([
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            "mephisto",
        ])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let pid = child.id();
    let mut processes = vec![child];
    processes.extend(watchdog(pid));
    let mut broker = Broker::with_processes(format!("127.0.0.1:{port}"), processes);
    let deadline = Instant::now() + START_TIMEOUT;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    while !answers_api_versions(&broker.addr) {
        if let Some(Ok(Some(status))) = broker.process().map(|c| c.try_wait()) {
            return Err(format!(
                "tansu exited during start-up ({status}); log:\n{}",
                log()
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "tansu did not answer ApiVersions on {} within {START_TIMEOUT:?}; log:\n{}",
                broker.addr,
                log()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(broker)
}

/// `$TANSU_BIN`, else `.tools/bin/tansu` (from `scripts/install-peers.sh`).
pub fn tansu_bin() -> Result<PathBuf, String> {
    let bin = match std::env::var_os("TANSU_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => repo_root().join(".tools/bin/tansu"),
    };
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "no tansu broker binary at {}: run scripts/install-peers.sh (installs \
             .tools/bin/tansu), or set TANSU_BIN, or point MEPHISTO_BROKER at a running broker",
            bin.display()
        ))
    }
}
