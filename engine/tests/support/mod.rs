//! Test support for the engine's integration tests, on `mephisto-test-support`: one broker per
//! test binary ([`broker`]: `MEPHISTO_BROKER`, else the development broker on a thread of its
//! own with `MEPHISTO_TEST_BROKER=dev`, else a private tansu; see that crate's docs), and
//! clients configured for tests.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::Duration;

use mephisto_engine::{ClientConfig, Cluster};
pub use mephisto_test_support::{fake, free_port, is_dev_broker, unique as unique_topic, Broker};

/// The broker for this test binary, started on first use, stopped when the last test holding
/// it is done.
pub fn broker() -> Arc<Broker> {
    mephisto_test_support::shared_broker(|| {
        mephisto_test_support::dev_broker_thread(mephisto_dev_broker::DevBrokerConfig::default())
    })
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
