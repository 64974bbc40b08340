//! A private tansu broker for a bench run (`mephisto_test_support::try_tansu`: `$TANSU_BIN` or
//! `.tools/bin/tansu` from `scripts/install-peers.sh`, the command line of `scripts/tansu.sh`),
//! killed on drop (and by a watchdog shell if the bench dies without unwinding).

use std::time::Duration;

use mephisto_engine::{ClientConfig, Cluster};
use mephisto_test_support::Broker;

/// A boxed error for the bench binaries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A tansu broker started for this run; killed on drop.
pub struct Tansu {
    /// `kafka://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT` (for rdkafka's `bootstrap.servers`).
    pub bootstrap: String,
    broker: Broker,
}

impl Tansu {
    /// Starts tansu (in-memory storage) and checks that Mephisto can connect to it. Its log
    /// goes to `$TMPDIR/<log_prefix>-tansu-PORT.log`.
    pub fn start(rt: &tokio::runtime::Runtime, log_prefix: &str) -> Result<Self, BoxError> {
        let broker = mephisto_test_support::try_tansu(log_prefix)?;
        let config = ClientConfig::from_url(&broker.url)?
            .with_connect_timeout(Duration::from_secs(5))
            .with_request_timeout(Duration::from_secs(5));
        rt.block_on(Cluster::connect(config))?;
        Ok(Tansu {
            url: broker.url.clone(),
            bootstrap: broker.addr.clone(),
            broker,
        })
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.broker.pid().unwrap_or_default()
    }
}
