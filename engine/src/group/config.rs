//! [`GroupConfig`]: the settings of a [`GroupConsumer`](super::GroupConsumer).

use std::time::Duration;

use mephisto_consumer_group::assignor::{
    Assignor, CooperativeStickyAssignor, RangeAssignor, RoundRobinAssignor, StandbyAssignor,
    StandbyConfig,
};
use mephisto_consumer_group::membership::MemberConfig;
use mephisto_consumer_group::offsets::CommitConfig;

use crate::fetcher::FetcherConfig;

/// The partition assignors a [`GroupConsumer`](super::GroupConsumer) can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssignorKind {
    /// `range` (eager): per topic, consecutive partition ranges. The Java default.
    #[default]
    Range,
    /// `roundrobin` (eager): all partitions dealt over the members in turn.
    RoundRobin,
    /// `cooperative-sticky` (KIP-429): only moved partitions are revoked.
    CooperativeSticky,
    /// `mephisto-standby` (cooperative): places state where it already is, weighing each
    /// member's changelog lag (its settings: [`GroupConfig::standby`]; the member's state:
    /// [`GroupConsumer::set_user_data`](super::GroupConsumer::set_user_data)). As leader, the
    /// consumer looks up the end offsets of the changelog partitions the members name.
    Standby,
}

impl AssignorKind {
    /// The protocol name advertised in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            AssignorKind::Range => RangeAssignor::NAME,
            AssignorKind::RoundRobin => RoundRobinAssignor::NAME,
            AssignorKind::CooperativeSticky => CooperativeStickyAssignor::NAME,
            AssignorKind::Standby => StandbyAssignor::NAME,
        }
    }

    /// The assignors advertised, the chosen one first: an eager choice also offers the
    /// other eager assignor (so the group can agree with members preferring it); the
    /// cooperative ones are offered alone (mixing rebalance protocols needs an upgrade dance
    /// this consumer does not do).
    pub(crate) fn advertised(self, standby: &StandbyConfig) -> Vec<Box<dyn Assignor>> {
        match self {
            AssignorKind::Range => vec![
                Box::new(RangeAssignor::new()),
                Box::new(RoundRobinAssignor::new()),
            ],
            AssignorKind::RoundRobin => vec![
                Box::new(RoundRobinAssignor::new()),
                Box::new(RangeAssignor::new()),
            ],
            AssignorKind::CooperativeSticky => vec![Box::new(CooperativeStickyAssignor::new())],
            AssignorKind::Standby => vec![Box::new(StandbyAssignor::new(standby.clone()))],
        }
    }
}

impl std::str::FromStr for AssignorKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "range" => Ok(AssignorKind::Range),
            "roundrobin" => Ok(AssignorKind::RoundRobin),
            "cooperative-sticky" => Ok(AssignorKind::CooperativeSticky),
            "mephisto-standby" => Ok(AssignorKind::Standby),
            other => Err(format!(
                "unknown assignor `{other}` (range, roundrobin, cooperative-sticky, mephisto-standby)"
            )),
        }
    }
}

/// Settings of a group consumer. Build with [`GroupConfig::new`] and the `with_*` setters.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Membership settings (group id, instance id, session timeout, heartbeat interval, max
    /// poll interval, retry backoff).
    pub member: MemberConfig,
    /// The assignor advertised first.
    pub assignor: AssignorKind,
    /// Settings of the `mephisto-standby` assignor (used with [`AssignorKind::Standby`]).
    pub standby: StandbyConfig,
    /// When acked offsets are committed.
    pub commit: CommitConfig,
    /// The fetcher's settings; its `auto_offset_reset` also decides where a partition without
    /// a committed offset starts.
    pub fetcher: FetcherConfig,
}

impl GroupConfig {
    /// The Java client's defaults for `group_id`, the `range` assignor, the default commit
    /// policy and fetcher settings.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self {
            member: MemberConfig::new(group_id),
            assignor: AssignorKind::default(),
            standby: StandbyConfig::default(),
            commit: CommitConfig::default(),
            fetcher: FetcherConfig::default(),
        }
    }

    /// Sets the assignor.
    pub fn with_assignor(mut self, assignor: AssignorKind) -> Self {
        self.assignor = assignor;
        self
    }

    /// Selects the `mephisto-standby` assignor with `config`.
    pub fn with_standby_assignor(mut self, config: StandbyConfig) -> Self {
        self.assignor = AssignorKind::Standby;
        self.standby = config;
        self
    }

    /// Sets `session.timeout.ms`.
    pub fn with_session_timeout(mut self, timeout: Duration) -> Self {
        self.member.session_timeout = timeout;
        self
    }

    /// Sets `heartbeat.interval.ms`.
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.member.heartbeat_interval = interval;
        self
    }

    /// Sets `max.poll.interval.ms` (also the JoinGroup rebalance timeout).
    pub fn with_max_poll_interval(mut self, interval: Duration) -> Self {
        self.member.max_poll_interval = interval;
        self
    }

    /// Sets `group.instance.id` (static membership, KIP-345); `None` for a dynamic member.
    pub fn with_instance_id(mut self, id: Option<String>) -> Self {
        self.member.group_instance_id = id;
        self
    }

    /// Sets the commit policy.
    pub fn with_commit(mut self, commit: CommitConfig) -> Self {
        self.commit = commit;
        self
    }

    /// Sets the fetcher settings.
    pub fn with_fetcher(mut self, fetcher: FetcherConfig) -> Self {
        self.fetcher = fetcher;
        self
    }
}
