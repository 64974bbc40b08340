//! Test support for the engine's integration tests: a real broker (tansu) per test binary, and
//! a scriptable fake broker for fault injection (`fake`).
//!
//! # The broker
//! [`broker`] returns a shared handle to a tansu broker on a free loopback port, started from
//! `$TANSU_BIN` or `.tools/bin/tansu` with the command line of `scripts/tansu.sh`. Each test
//! holds the returned `Arc`; when the last holder drops it, tansu is killed (a panicking test
//! drops it while unwinding). A watchdog shell kills tansu too if the test process dies without
//! unwinding. If `MEPHISTO_BROKER` is set, that broker is used instead and nothing is started.
//! With `MEPHISTO_TEST_BROKER=dev`, the broker is Mephisto's in-memory development broker
//! ([`mephisto_dev_broker::DevBroker`]), run on a thread of its own for the test binary.
//!
//! Without a tansu binary the tests fail (never skip) and say to run
//! `scripts/install-peers.sh`.
#![allow(dead_code)]

pub mod fake;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use mephisto_engine::{ClientConfig, Cluster};

/// How long tansu may take to answer ApiVersions after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running broker: its bootstrap URL, and the process if we started it.
pub struct Broker {
    /// `kafka://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    child: Option<Child>,
    watchdog: Option<Child>,
    dev: Option<DevThread>,
}

/// The development broker on a thread (and runtime) of its own; stopped when dropped.
struct DevThread {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for DevThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Which broker the tests run against: `tansu` (default) or `dev` (`MEPHISTO_TEST_BROKER`).
pub fn is_dev_broker() -> bool {
    std::env::var("MEPHISTO_TEST_BROKER").is_ok_and(|b| b == "dev")
}

fn start_dev() -> Broker {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("dev broker runtime");
        runtime.block_on(async move {
            let broker = mephisto_dev_broker::DevBroker::start(
                mephisto_dev_broker::DevBrokerConfig::default(),
            )
            .await
            .expect("start the development broker");
            let _ = addr_tx.send(broker.local_addr());
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            broker.shutdown().await;
        });
    });
    let addr = addr_rx
        .recv_timeout(START_TIMEOUT)
        .expect("the development broker did not start");
    Broker {
        url: format!("kafka://{addr}"),
        addr: addr.to_string(),
        child: None,
        watchdog: None,
        dev: Some(DevThread {
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        for child in [self.child.as_mut(), self.watchdog.as_mut()]
            .into_iter()
            .flatten()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

static SHARED: Mutex<Weak<Broker>> = Mutex::new(Weak::new());

/// The broker for this test binary, started on first use.
pub fn broker() -> Arc<Broker> {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(broker) = shared.upgrade() {
        return broker;
    }
    let broker = Arc::new(start());
    *shared = Arc::downgrade(&broker);
    broker
}

/// A client config for `broker` with test-sized timeouts.
pub fn config(broker: &Broker) -> ClientConfig {
    ClientConfig::from_url(&broker.url)
        .expect("broker URL")
        .with_client_id("mephisto-engine-tests")
        .with_request_timeout(Duration::from_secs(10))
        .with_connect_timeout(Duration::from_secs(5))
        .with_api_timeout(Duration::from_secs(20))
}

/// A cluster connected to `broker`.
pub async fn cluster(broker: &Broker) -> Cluster {
    Cluster::connect(config(broker))
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", broker.url))
}

/// A topic name unique to this process and call.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

fn start() -> Broker {
    if let Ok(url) = std::env::var("MEPHISTO_BROKER") {
        let addr = url.trim_start_matches("kafka://").to_owned();
        return Broker {
            url,
            addr,
            child: None,
            watchdog: None,
            dev: None,
        };
    }
    if is_dev_broker() {
        return start_dev();
    }
    let bin = tansu_bin();
    let port = free_port();
    let listen = format!("tcp://127.0.0.1:{port}");
    let log_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tansu-{port}.log"));
    let log = std::fs::File::create(&log_path).expect("create tansu log file");
    let child = Command::new(&bin)
        .args([
            "broker",
            "--listener-url",
            &listen,
            "--advertised-listener-url",
            &listen,
        ])
        .args([
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            "mephisto",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let watchdog = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill {child} 2>/dev/null",
            parent = std::process::id(),
            child = child.id()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok();
    let mut broker = Broker {
        url: format!("kafka://127.0.0.1:{port}"),
        addr: format!("127.0.0.1:{port}"),
        child: Some(child),
        watchdog,
        dev: None,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    loop {
        if probe(addr) {
            return broker;
        }
        if let Some(child) = broker.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("tansu exited during start-up ({status}); log:\n{log}");
            }
        }
        if Instant::now() >= deadline {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            panic!(
                "tansu did not answer ApiVersions on {addr} within {START_TIMEOUT:?}; log:\n{log}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tansu_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("TANSU_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "TANSU_BIN={} is not a file: run scripts/install-peers.sh or fix TANSU_BIN",
            bin.display()
        );
        return bin;
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/tansu");
    if local.is_file() {
        return local;
    }
    panic!(
        "no tansu broker binary: run scripts/install-peers.sh (installs .tools/bin/tansu), or set \
         TANSU_BIN, or point MEPHISTO_BROKER at a running broker"
    );
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// Whether a Kafka broker at `addr` answers ApiVersions v0 without error (as scripts/tansu.sh
/// checks), using plain std I/O so that the engine under test is not involved.
fn probe(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        let client = b"mephisto-probe";
        let mut body = Vec::new();
        body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
        body.extend_from_slice(&0i16.to_be_bytes()); // v0
        body.extend_from_slice(&0x4d45_5048i32.to_be_bytes()); // correlation id
        body.extend_from_slice(&(client.len() as i16).to_be_bytes());
        body.extend_from_slice(client);
        s.write_all(&(body.len() as i32).to_be_bytes())?;
        s.write_all(&body)?;
        let mut size = [0u8; 4];
        s.read_exact(&mut size)?;
        let mut head = [0u8; 6];
        s.read_exact(&mut head)?;
        let corr = i32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let err = i16::from_be_bytes([head[4], head[5]]);
        Ok(corr == 0x4d45_5048 && err == 0)
    };
    attempt().unwrap_or(false)
}
