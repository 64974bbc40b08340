//! [`Broker`]: a broker to test against, and what keeps it running.

use std::any::Any;
use std::process::Child;

/// A broker: its address, and the processes or thread that run it if a helper started it.
/// Dropping it stops them.
pub struct Broker {
    /// `kafka://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The broker process first (if any), then its watchdog.
    processes: Vec<Child>,
    /// Whatever else keeps the broker alive (an in-process broker's thread), dropped last.
    keep: Option<Box<dyn Any + Send + Sync>>,
}

impl Broker {
    /// A broker somebody else runs, at `url` (`kafka://host:port` or `host:port`).
    pub fn external(url: &str) -> Broker {
        let addr = url.trim_start_matches("kafka://").to_owned();
        Broker {
            url: format!("kafka://{addr}"),
            addr,
            processes: Vec::new(),
            keep: None,
        }
    }

    /// A broker run by `processes` (the broker first), killed on drop.
    pub(crate) fn with_processes(addr: String, processes: Vec<Child>) -> Broker {
        Broker {
            url: format!("kafka://{addr}"),
            addr,
            processes,
            keep: None,
        }
    }

    /// A broker kept alive by `keep` (dropped on drop).
    pub(crate) fn with_keep(addr: String, keep: Box<dyn Any + Send + Sync>) -> Broker {
        Broker {
            url: format!("kafka://{addr}"),
            addr,
            processes: Vec::new(),
            keep: Some(keep),
        }
    }

    /// The broker process's id, if it is a process we started.
    pub fn pid(&self) -> Option<u32> {
        self.processes.first().map(Child::id)
    }

    /// The broker process, if it is one we started (e.g. to see whether it exited).
    pub fn process(&mut self) -> Option<&mut Child> {
        self.processes.first_mut()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        for p in &mut self.processes {
            let _ = p.kill();
            let _ = p.wait();
        }
        drop(self.keep.take());
    }
}
