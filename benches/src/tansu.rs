//! A private tansu broker for a bench run: started from `$TANSU_BIN` or `.tools/bin/tansu`
//! (installed by `scripts/install-peers.sh`) with the command line of `scripts/tansu.sh`, killed
//! on drop (and by a watchdog shell if the bench dies without unwinding).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mephisto_engine::{ClientConfig, Cluster};

/// A boxed error for the bench binaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tansu broker started for this run; killed on drop.
pub struct Tansu {
    /// `kafka://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    watchdog: Option<Child>,
}

impl Drop for Tansu {
    fn drop(&mut self) {
        for child in [Some(&mut self.child), self.watchdog.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The workspace root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

impl Tansu {
    /// Starts tansu (in-memory storage) and waits until Mephisto can connect to it (at most
    /// 20 s). Its log goes to `$TMPDIR/<log_prefix>-tansu-PORT.log`.
    pub fn start(rt: &tokio::runtime::Runtime, log_prefix: &str) -> Result<Self, BoxError> {
        let bin = std::env::var_os("TANSU_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join(".tools/bin/tansu"));
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("tcp://127.0.0.1:{port}");
        let log = std::env::temp_dir().join(format!("{log_prefix}-tansu-{port}.log"));
        let log = std::fs::File::create(log)?;
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
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot start {} ({e}): run scripts/install-peers.sh",
                    bin.display()
                )
            })?;
        // Kills tansu if this process dies without unwinding.
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
            .ok();
        let tansu = Tansu {
            url: format!("kafka://127.0.0.1:{port}"),
            child,
            watchdog,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let config = ClientConfig::from_url(&tansu.url)?
                .with_connect_timeout(Duration::from_secs(1))
                .with_request_timeout(Duration::from_secs(2));
            if rt.block_on(Cluster::connect(config)).is_ok() {
                return Ok(tansu);
            }
            if Instant::now() >= deadline {
                return Err("tansu did not come up within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}
