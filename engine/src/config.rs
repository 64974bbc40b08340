//! [`ClientConfig`]: where the cluster is and how patient to be with it.
//!
//! Defaults follow the Java client where it has the same setting; each field names the Java
//! property it corresponds to.

use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use mephisto_wire::frame::DEFAULT_MAX_FRAME_SIZE;

use crate::broker_url::{parse_bootstrap, BrokerAddr};
use crate::error::EngineError;

/// Settings shared by every connection and request of a [`Cluster`](crate::cluster::Cluster).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Brokers to ask for the cluster's metadata at start (`bootstrap.servers`). They need not
    /// be all the brokers, and are used again only when no known broker is reachable.
    pub bootstrap: Vec<BrokerAddr>,
    /// Sent in every request header (`client.id`); brokers use it in logs and quotas.
    /// Default `mephisto`.
    pub client_id: String,
    /// How long a request may wait for its response (`request.timeout.ms`). Default 30 s. When
    /// it expires the request fails with [`EngineError::RequestTimeout`] and its connection is
    /// closed.
    pub request_timeout: Duration,
    /// How long opening a connection may take: TCP connect plus the ApiVersions handshake
    /// (`socket.connection.setup.timeout.ms`). Default 10 s.
    pub connect_timeout: Duration,
    /// First delay before reconnecting to a broker that failed (`reconnect.backoff.ms`).
    /// Default 50 ms.
    pub reconnect_backoff: Duration,
    /// Largest delay between reconnects (`reconnect.backoff.max.ms`). Default 1 s.
    pub reconnect_backoff_max: Duration,
    /// First delay before retrying a failed retriable operation (`retry.backoff.ms`).
    /// Default 100 ms.
    pub retry_backoff: Duration,
    /// Largest delay between retries (`retry.backoff.max.ms`). Default 1 s.
    pub retry_backoff_max: Duration,
    /// Total time an operation the engine retries by itself may take (`default.api.timeout.ms`).
    /// Default 60 s.
    pub api_timeout: Duration,
    /// Age after which cached metadata is refreshed even without an error
    /// (`metadata.max.age.ms`). Default 5 min.
    pub metadata_max_age: Duration,
    /// Largest frame accepted from or sent to a broker, in bytes. Default 100 MiB.
    pub max_frame_size: usize,
    /// Requests that may be waiting for a response on one connection before new requests wait
    /// for a slot. Default 32. (The producer's per-partition limit for idempotence is separate.)
    pub max_in_flight: usize,
    /// Highest version to use per API, below what Mephisto and the broker both speak; for
    /// brokers with a broken encoding of newer versions. Empty by default. An API capped below
    /// Mephisto's minimum is unavailable (a connection fails if it is a required one).
    pub max_versions: Vec<(ApiKey, i16)>,
}

impl ClientConfig {
    /// Defaults with the given bootstrap brokers.
    pub fn new(bootstrap: Vec<BrokerAddr>) -> Self {
        Self {
            bootstrap,
            client_id: "mephisto".to_owned(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            api_timeout: Duration::from_secs(60),
            metadata_max_age: Duration::from_secs(300),
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_in_flight: 32,
            max_versions: Vec::new(),
        }
    }

    /// Defaults with the brokers of a bootstrap URL (`kafka://h:p,h:p` or `h:p,h:p`).
    pub fn from_url(url: &str) -> Result<Self, EngineError> {
        Ok(Self::new(parse_bootstrap(url)?))
    }

    /// Sets [`client_id`](Self::client_id).
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets [`request_timeout`](Self::request_timeout).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`reconnect_backoff`](Self::reconnect_backoff) and its maximum.
    pub fn with_reconnect_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.reconnect_backoff = base;
        self.reconnect_backoff_max = max;
        self
    }

    /// Sets [`retry_backoff`](Self::retry_backoff) and its maximum.
    pub fn with_retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.retry_backoff = base;
        self.retry_backoff_max = max;
        self
    }

    /// Sets [`api_timeout`](Self::api_timeout).
    pub fn with_api_timeout(mut self, timeout: Duration) -> Self {
        self.api_timeout = timeout;
        self
    }

    /// Sets [`metadata_max_age`](Self::metadata_max_age).
    pub fn with_metadata_max_age(mut self, age: Duration) -> Self {
        self.metadata_max_age = age;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size).
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`max_in_flight`](Self::max_in_flight).
    pub fn with_max_in_flight(mut self, requests: usize) -> Self {
        self.max_in_flight = requests;
        self
    }

    /// Caps the version used for `api` at `version` (see [`max_versions`](Self::max_versions)).
    pub fn with_max_version(mut self, api: ApiKey, version: i16) -> Self {
        self.max_versions.retain(|(a, _)| *a != api);
        self.max_versions.push((api, version));
        self
    }

    /// Checks the settings that would make the engine misbehave.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: &str| Err(EngineError::Config(what.to_owned()));
        if self.bootstrap.is_empty() {
            return bad("no bootstrap broker");
        }
        if self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return bad("request and connect timeouts must be positive");
        }
        if self.api_timeout.is_zero() || self.metadata_max_age.is_zero() {
            return bad("api timeout and metadata max age must be positive");
        }
        if self.max_frame_size < 1024 {
            return bad("max frame size below 1 KiB");
        }
        if self.max_in_flight == 0 {
            return bad("max in flight must be at least 1");
        }
        if self.client_id.len() > i16::MAX as usize {
            return bad("client id longer than 32767 bytes");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = ClientConfig::from_url("kafka://127.0.0.1:9092").unwrap();
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        assert_eq!(c.metadata_max_age, Duration::from_secs(300));
        assert!(c.validate().is_ok());
        assert!(ClientConfig::new(vec![]).validate().is_err());
        assert!(c.clone().with_max_in_flight(0).validate().is_err());
        assert!(c.with_request_timeout(Duration::ZERO).validate().is_err());
        assert!(ClientConfig::from_url("http://x:1").is_err());
    }
}
