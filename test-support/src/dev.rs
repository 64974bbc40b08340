//! The development broker for tests: in-process on a thread (and runtime) of its own, or as a
//! `mephisto dev-broker` process.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use mephisto_dev_broker::{DevBroker, DevBrokerConfig};

use crate::broker::Broker;
use crate::process::watchdog;

/// The dev broker's thread: told to stop and joined when dropped.
struct DevThread {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DevThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a [`DevBroker`] with `config` on a thread with a runtime of its own, so that it
/// outlives any one test's runtime.
pub fn dev_broker_thread(config: DevBrokerConfig) -> Broker {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("dev broker runtime");
        runtime.block_on(async move {
            let broker = DevBroker::start(config)
                .await
                .expect("start the development broker");
            let _ = addr_tx.send(broker.local_addr());
            let _ = tokio::task::spawn_blocking(move || stop_rx.recv()).await;
            broker.shutdown().await;
        });
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the development broker did not start");
    let keep = DevThread {
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    Broker::with_keep(addr.to_string(), Box::new(keep))
}

/// Starts `BIN dev-broker --listen 127.0.0.1:0 ARGS...` (the `mephisto` CLI at `bin`) and reads
/// its address from the first line it prints.
pub fn dev_broker_cli(bin: &Path, args: &[&str]) -> Broker {
    let mut child = Command::new(bin)
        .args(["dev-broker", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("MEPHISTO_BROKER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {} dev-broker: {e}", bin.display()));
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .expect("the dev broker's address");
    let addr = first
        .trim()
        .strip_prefix("MEPHISTO_BROKER=kafka://")
        .unwrap_or_else(|| panic!("unexpected dev-broker output: {first:?}"))
        .to_owned();
    let pid = child.id();
    let mut processes = vec![child];
    processes.extend(watchdog(pid));
    Broker::with_processes(addr, processes)
}
