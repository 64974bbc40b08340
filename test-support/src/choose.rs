//! Which broker a test runs against: `MEPHISTO_BROKER` if set, else the development broker with
//! `MEPHISTO_TEST_BROKER=dev`, else a private tansu.

use std::sync::{Arc, Mutex, Weak};

use crate::broker::Broker;
use crate::tansu::tansu;

/// Whether the tests run against the development broker (`MEPHISTO_TEST_BROKER=dev`) rather
/// than tansu (the default).
pub fn is_dev_broker() -> bool {
    std::env::var("MEPHISTO_TEST_BROKER").is_ok_and(|b| b == "dev")
}

/// The broker for a test: the one `MEPHISTO_BROKER` names, else `dev()` when
/// [`is_dev_broker`], else a private tansu.
pub fn test_broker(dev: impl FnOnce() -> Broker) -> Broker {
    if let Ok(url) = std::env::var("MEPHISTO_BROKER") {
        return Broker::external(&url);
    }
    if is_dev_broker() {
        return dev();
    }
    tansu()
}

static SHARED: Mutex<Weak<Broker>> = Mutex::new(Weak::new());

/// One [`test_broker`] for the whole test binary, started on first use: each test holds the
/// `Arc`, and the broker stops when the last holder drops it (a panicking test drops it while
/// unwinding).
pub fn shared_broker(dev: impl FnOnce() -> Broker) -> Arc<Broker> {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(broker) = shared.upgrade() {
        return broker;
    }
    let broker = Arc::new(test_broker(dev));
    *shared = Arc::downgrade(&broker);
    broker
}
