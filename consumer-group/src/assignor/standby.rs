//! `mephisto-standby`: an assignor that places state where it already is (Kafka Streams'
//! KIP-441 ideas inside the classic consumer protocol), cooperative.
//!
//! Faust's assignor "prefers standbys" but ignores how far behind they are (faust.md §5).
//! Here each member reports, in its subscription user data ([`StandbySubscriptionData`]),
//! its active, standby, warm-up and pending partitions and the changelog offset it has
//! applied per partition; the leader knows the changelog end offsets
//! ([`AssignContext::end_offsets`]) and computes each member's lag per unit.
//!
//! # Units
//! A unit (a task) is partition `p` of every topic of a co-partitioned group
//! ([`CoPartitionGroup`]); its partitions always move together, for actives and standbys.
//! A unit may run on members subscribed to every topic of its group that anyone subscribes
//! to (if nobody is, the group is split by subscriber set, without state, and a warning is
//! logged). Subscribed topics outside every group are stateless units of one topic. Units of
//! a group with changelog topics are stateful: they have lags and standbys.
//!
//! # Lag
//! Per changelog partition `end − applied`; nothing applied, or applied beyond the end,
//! counts as `end` (full restore, as Streams does); an unknown end offset counts as 0. A
//! member currently running the unit (a current-generation owner) has lag 0 (Streams'
//! `LATEST`). Caught up: lag ≤ `acceptable_recovery_lag`.
//!
//! # Active placement (rules chosen where the brief left room)
//! 1. **Sticky**: a unit stays with its previous owner (owned partitions of the highest
//!    generation, from the consumer protocol and the user data; stale generations are
//!    ignored; two claimants: the one owning more of the unit's partitions, then member id).
//!    A unit being warmed up starts on its warm-up member (its intended owner), so that the
//!    situation that created the warm-up is seen again; a unit without either goes to the
//!    member it was promised to last round (pending).
//! 2. **Fill**: the rest, units with the fewest caught-up candidates first, go to the
//!    least-loaded eligible member; among equally loaded ones, caught up first, smallest lag.
//! 3. **Balance wins over stickiness**: chains of moves are applied until the sum of squared
//!    unit counts is minimal (the shared `balance` module); members with identical
//!    subscriptions end within one unit of each other. The cheapest chain wins, counting in
//!    this order: units put on lagging members, units taken from their previous owner,
//!    units taken from the member they were promised to, hops not towards a unit's warm-up
//!    member, lag.
//! 4. **Caught-up members win where there is room**: a unit on a lagging member moves to a
//!    caught-up member holding fewer units if balance stays within one, or is swapped with a
//!    unit of a caught-up member that the lagging one runs at least as well (KIP-441's
//!    standby/active swap; a swap that takes a unit from its previous owner needs the
//!    lagging member to be caught up on it). Afterwards no lagging member runs a unit that a
//!    caught-up member with room could run.
//! 5. **Warm-ups (KIP-441)**: a unit still on a lagging member, while some member is caught
//!    up, runs on a caught-up member instead (its previous owner if possible, so nothing
//!    moves) and the lagging member gets a warm-up replica, for at most
//!    `max_warmup_replicas` units per rebalance (continuing warm-ups first). This is the one
//!    exception to balance: counting each such unit for its warm-up member, the counts are
//!    within one. Warm-ups are standbys on the wire (flagged), `probing_rebalance` asks
//!    members to rejoin later, and once the warm-up member is caught up the unit moves to
//!    it (through the cooperative hand-over). `max_warmup_replicas = 0` makes balance strict.
//!
//! # Standbys
//! `num_standby_replicas` per stateful unit, or every other eligible member if fewer, never
//! on the owner nor the warm-up member: caught-up members first (then smallest lag), then
//! members that kept it before, then the least loaded.
//!
//! # Cooperative rule
//! A unit whose new owner would take a partition another current member owns is not
//! assigned in this round: the old owner revokes it (and usually keeps it as a standby), the
//! new owner gets it as `pending` in its user data (to restore now and report back), and the
//! follow-up rebalance gives it over. A partition never moves directly between owners.
//!
//! With unchanged state, the follow-up round hands every pending unit over and withholds
//! nothing new, and the round after it reproduces the assignment (tested over random groups).
//!
//! Deterministic: members are ordered by member id and every choice breaks ties by index;
//! no clock, no randomness.

mod config;
mod model;
mod place;
mod replicas;
mod user_data;

pub use config::{CoPartitionGroup, StandbyConfig};
pub use user_data::{
    StandbyAssignmentData, StandbySubscriptionData, UserDataError, STANDBY_USER_DATA_VERSION,
};

use std::collections::BTreeSet;

use super::{
    AssignContext, AssignError, Assignor, GroupAssignment, MemberSubscription, RebalanceProtocol,
    TopicPartition,
};
use config::TopicGroup;
use model::Model;

/// The standby-aware assignor; protocol name `mephisto-standby`.
#[derive(Debug, Clone)]
pub struct StandbyAssignor {
    config: StandbyConfig,
    groups: Vec<TopicGroup>,
}

impl StandbyAssignor {
    /// The protocol name advertised in JoinGroup.
    pub const NAME: &'static str = "mephisto-standby";

    /// Creates the assignor; overlapping co-partitioned groups are merged.
    pub fn new(config: StandbyConfig) -> Self {
        let groups = config::normalise(&config.co_partitioned);
        Self { config, groups }
    }

    /// The configuration the assignor was created with.
    pub fn config(&self) -> &StandbyConfig {
        &self.config
    }
}

impl Default for StandbyAssignor {
    fn default() -> Self {
        Self::new(StandbyConfig::default())
    }
}

impl Assignor for StandbyAssignor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn rebalance_protocol(&self) -> RebalanceProtocol {
        RebalanceProtocol::Cooperative
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        context: &AssignContext,
    ) -> Result<GroupAssignment, AssignError> {
        let model = Model::build(
            members,
            context,
            &self.groups,
            self.config.acceptable_recovery_lag,
        )?;
        let actives = place::place_actives(&model, self.config.max_warmup_replicas);
        let standbys = replicas::place_standbys(&model, &actives, self.config.num_standby_replicas);
        replicas::build_assignment(&model, &actives, &standbys)
    }

    /// The changelog partitions (of the configured co-partitioned groups) that some member
    /// names in its [`StandbySubscriptionData`]: an applied offset, a standby, a warm-up or a
    /// pending unit. Their end offsets give each holder's lag. Members whose user data cannot
    /// be read add nothing ([`assign`](Assignor::assign) reports them).
    fn end_offsets_needed(&self, members: &[MemberSubscription]) -> BTreeSet<TopicPartition> {
        let changelogs: BTreeSet<&str> = self
            .groups
            .iter()
            .flat_map(|g| g.changelogs.iter().map(String::as_str))
            .collect();
        let mut needed = BTreeSet::new();
        for member in members {
            let Some(bytes) = member.user_data.as_deref().filter(|b| !b.is_empty()) else {
                continue;
            };
            let Ok(data) = StandbySubscriptionData::decode(bytes) else {
                continue;
            };
            let named = data
                .applied_offsets
                .iter()
                .flat_map(|(t, ps)| ps.keys().map(move |p| (t, *p)))
                .chain(
                    [&data.standby, &data.warmup, &data.pending]
                        .into_iter()
                        .flat_map(|m| m.iter().flat_map(|(t, ps)| ps.iter().map(move |p| (t, *p)))),
                );
            for (topic, partition) in named {
                if changelogs.contains(topic.as_str()) {
                    needed.insert(TopicPartition::new(topic.as_str(), partition));
                }
            }
        }
        needed
    }
}
