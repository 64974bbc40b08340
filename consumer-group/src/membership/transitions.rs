//! State changes shared by the handlers: rejoin, revoke, reset, lose, fail, and applying
//! the error table with the "only if the generation is still ours" guard.

use std::time::Instant;

use kafka_protocol::error::ResponseError;

use super::event::{GroupError, GroupEvent, PartitionSet};
use super::member::Member;
use super::reaction::{reaction, Reaction};
use super::request::ApiKind;
use super::state::Phase;

impl Member {
    /// From Stable: go back to Unjoined and revoke what the protocol requires before
    /// JoinGroup.
    pub(crate) fn start_rejoin(&mut self, reason: &str) {
        tracing::debug!(group = %self.config.group_id, reason, "rejoining");
        self.phase = Phase::Unjoined;
        self.rejoin_reason = Some(reason.to_owned());
        self.revoke_for_join();
    }

    /// Revokes what must go before JoinGroup: everything for eager assignors; for
    /// cooperative ones only partitions of topics we no longer subscribe to (KIP-429: the
    /// rest stays owned through the rebalance).
    pub(crate) fn revoke_for_join(&mut self) {
        let revoke: PartitionSet = match &self.generation {
            Some(g) if !g.cooperative => self.owned.clone(),
            Some(_) => self
                .owned
                .iter()
                .filter(|tp| !self.topics.contains(&*tp.topic))
                .cloned()
                .collect(),
            None => {
                // Without a generation nothing can be committed: what we hold is lost.
                self.lose_owned();
                return;
            }
        };
        self.revoke(revoke);
    }

    /// Revokes everything we own (close, unsubscribe).
    pub(crate) fn revoke_all(&mut self) {
        if self.generation.is_some() {
            let all = self.owned.clone();
            self.revoke(all);
        } else {
            self.lose_owned();
        }
    }

    /// Emits `Revoked` for `partitions` (if any) and waits for its acknowledgement.
    fn revoke(&mut self, partitions: PartitionSet) {
        if partitions.is_empty() {
            return;
        }
        self.owned.retain(|tp| !partitions.contains(tp));
        self.pending_revocations = self.pending_revocations.saturating_add(1);
        self.events.push_back(GroupEvent::Revoked { partitions });
    }

    /// Emits `Lost` for everything we own.
    pub(crate) fn lose_owned(&mut self) {
        if self.owned.is_empty() {
            return;
        }
        let partitions = std::mem::take(&mut self.owned);
        self.events.push_back(GroupEvent::Lost { partitions });
    }

    /// Forgets the generation (keeps the member id): owned partitions are lost; rejoin.
    pub(crate) fn reset_generation(&mut self, reason: &str) {
        tracing::info!(group = %self.config.group_id, reason, "resetting generation");
        self.lose_owned();
        self.generation = None;
        self.heartbeats.clear();
        self.rejoin_after_sync = None;
        if !matches!(self.phase, Phase::Idle) {
            self.phase = Phase::Unjoined;
        }
        self.rejoin_reason = Some(reason.to_owned());
        self.retry_at = None;
    }

    /// Forgets generation and member id; rejoin.
    pub(crate) fn reset_member(&mut self, reason: &str) {
        self.reset_generation(reason);
        self.member_id.clear();
    }

    /// Forgets the coordinator (it moved or is unreachable): in-flight Join/Sync are
    /// abandoned (the Java client disconnects, failing them) and the member finds the
    /// coordinator again. The generation is kept.
    pub(crate) fn mark_coordinator_unknown(&mut self, reason: &str) {
        if self.coordinator.known.is_some() {
            tracing::info!(group = %self.config.group_id, reason, "coordinator unknown");
        }
        self.coordinator.known = None;
        self.heartbeats.in_flight = None;
        if matches!(
            self.phase,
            Phase::Joining { .. } | Phase::Assigning { .. } | Phase::Syncing { .. }
        ) {
            self.phase = Phase::Unjoined;
        }
    }

    /// Stops the member for good.
    pub(crate) fn fail(&mut self, error: GroupError) {
        tracing::error!(group = %self.config.group_id, %error, "fatal group error");
        self.lose_owned();
        self.phase = Phase::Idle;
        self.outbox.clear();
        self.events.push_back(GroupEvent::Fatal(error.clone()));
        self.fatal = Some(error);
    }

    /// Applies the error table ([`reaction`]) to an error from `api`. `sent_generation` is
    /// the generation the request carried (`None` for JoinGroup, which carries none):
    /// generation-dependent reactions apply only if it is still ours.
    pub(crate) fn apply_reaction(
        &mut self,
        now: Instant,
        api: ApiKind,
        error: ResponseError,
        sent_generation: Option<i32>,
        response_member_id: Option<&str>,
    ) {
        let ours = sent_generation.is_none_or(|g| g == self.generation_id());
        let joining = matches!(api, ApiKind::JoinGroup | ApiKind::SyncGroup);
        let reason = format!("{api} failed: {error}");
        match reaction(api, error) {
            Reaction::Backoff => match api {
                ApiKind::JoinGroup | ApiKind::SyncGroup | ApiKind::FindCoordinator => {
                    self.retry_at = Some(self.backoff.fail(now));
                }
                ApiKind::Heartbeat => {
                    self.heartbeats.next_at = Some(self.heartbeat_backoff.fail(now));
                }
                _ => {}
            },
            Reaction::Rediscover => self.mark_coordinator_unknown(&reason),
            Reaction::Rejoin if ours => {
                if joining {
                    self.phase = Phase::Unjoined;
                    self.rejoin_reason = Some(reason);
                    self.retry_at = None;
                } else if matches!(self.phase, Phase::Stable) {
                    self.start_rejoin(&reason);
                }
            }
            Reaction::ResetGeneration if ours => self.reset_generation(&reason),
            Reaction::ResetMember if ours => self.reset_member(&reason),
            Reaction::Rejoin | Reaction::ResetGeneration | Reaction::ResetMember => {
                tracing::debug!(group = %self.config.group_id, %reason, "stale generation: ignored");
            }
            Reaction::AdoptMemberId => {
                self.member_id = response_member_id.unwrap_or_default().to_owned();
                self.phase = Phase::Unjoined;
                self.rejoin_reason = Some("member id required".to_owned());
                self.retry_at = None;
            }
            Reaction::Fatal => self.fail(GroupError::Broker { api, error }),
            Reaction::Ignore => {}
        }
    }
}
