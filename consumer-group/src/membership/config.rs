//! Settings of a group member, named after the Java consumer properties they mirror.

use std::time::Duration;

/// Settings of one group member. Build with [`MemberConfig::new`] and adjust the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberConfig {
    /// The consumer group (`group.id`).
    pub group_id: String,
    /// Static membership id (`group.instance.id`, KIP-345). `None` makes a dynamic member.
    pub group_instance_id: Option<String>,
    /// How long the coordinator waits for a heartbeat before evicting us
    /// (`session.timeout.ms`, default 45 s). Also our own bound: if no heartbeat sent within
    /// this long has succeeded, our partitions are reported lost.
    pub session_timeout: Duration,
    /// Time between heartbeats (`heartbeat.interval.ms`, default 3 s). Must be below
    /// `session_timeout`.
    pub heartbeat_interval: Duration,
    /// Longest the application may go without [`record_poll`](super::Member::record_poll)
    /// before we leave the group (`max.poll.interval.ms`, default 300 s). Also sent as the
    /// JoinGroup rebalance timeout, as the Java client does.
    pub max_poll_interval: Duration,
    /// First delay before retrying a failed request (`retry.backoff.ms`, default 100 ms).
    pub retry_backoff: Duration,
    /// Cap of the doubling retry delay (`retry.backoff.max.ms`, default 1 s).
    pub retry_backoff_max: Duration,
    /// Rack of this member, advertised in the subscription (`client.rack`).
    pub rack_id: Option<String>,
}

impl MemberConfig {
    /// Settings with the Java client's defaults for `group_id`.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            group_instance_id: None,
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            max_poll_interval: Duration::from_secs(300),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_secs(1),
            rack_id: None,
        }
    }

    /// Checks the settings for values the protocol or the state machine cannot work with.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.group_id.is_empty() {
            return Err(ConfigError::EmptyGroupId);
        }
        if self.group_instance_id.as_deref() == Some("") {
            return Err(ConfigError::EmptyInstanceId);
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.session_timeout {
            return Err(ConfigError::HeartbeatInterval {
                heartbeat: self.heartbeat_interval,
                session: self.session_timeout,
            });
        }
        for (name, value) in [
            ("session_timeout", self.session_timeout),
            ("max_poll_interval", self.max_poll_interval),
        ] {
            if value.is_zero() || value.as_millis() > i32::MAX as u128 {
                return Err(ConfigError::OutOfRange { name, value });
            }
        }
        if self.retry_backoff.is_zero()
            || self.retry_backoff_max < self.retry_backoff
            || self.retry_backoff_max.as_millis() > i32::MAX as u128
        {
            return Err(ConfigError::Backoff {
                backoff: self.retry_backoff,
                max: self.retry_backoff_max,
            });
        }
        Ok(())
    }

    /// `session_timeout` in milliseconds, as JoinGroup carries it.
    pub(crate) fn session_timeout_ms(&self) -> i32 {
        millis_i32(self.session_timeout)
    }

    /// `max_poll_interval` in milliseconds, as JoinGroup's rebalance timeout.
    pub(crate) fn rebalance_timeout_ms(&self) -> i32 {
        millis_i32(self.max_poll_interval)
    }
}

fn millis_i32(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Settings (or assignor lists) the member refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `group_id` is empty.
    #[error("group id is empty")]
    EmptyGroupId,
    /// `group_instance_id` is `Some("")`.
    #[error("group instance id is empty (use None for a dynamic member)")]
    EmptyInstanceId,
    /// The heartbeat interval is zero or not below the session timeout.
    #[error("heartbeat interval {heartbeat:?} must be non-zero and below the session timeout {session:?}")]
    HeartbeatInterval {
        /// The heartbeat interval.
        heartbeat: Duration,
        /// The session timeout.
        session: Duration,
    },
    /// A timeout is zero or does not fit the protocol's `int32` milliseconds.
    #[error("{name} = {value:?} is zero or above i32::MAX milliseconds")]
    OutOfRange {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: Duration,
    },
    /// The retry backoff is zero or above its cap, or the cap is above `i32::MAX` ms.
    #[error("retry backoff {backoff:?} must be non-zero and at most its cap {max:?} (at most i32::MAX ms)")]
    Backoff {
        /// The first delay.
        backoff: Duration,
        /// The cap.
        max: Duration,
    },
    /// No assignor was given.
    #[error("at least one assignor is needed")]
    NoAssignor,
    /// Two assignors advertise the same protocol name.
    #[error("assignor `{0}` is listed twice")]
    DuplicateAssignor(&'static str),
}
