//! The data of a classic group: members, generation, state (Empty,
//! PreparingRebalance, CompletingRebalance, Stable; Dead is a group removed from
//! the coordinator), and its persisted form.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::protocol::{JoinOutcome, SyncOutcome};
use crate::coordinator::{ms, Ctx};

/// Protocol type of Kafka consumers (the only one whose metadata the broker reads).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Classic group states (Dead groups are removed from the coordinator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ClassicState {
    /// No members (possibly offsets).
    #[default]
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl ClassicState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            ClassicState::Empty => "Empty",
            ClassicState::PreparingRebalance => "PreparingRebalance",
            ClassicState::CompletingRebalance => "CompletingRebalance",
            ClassicState::Stable => "Stable",
        }
    }
}

/// A member of a classic group.
pub struct ClassicMember {
    /// Member id assigned by the coordinator.
    pub id: String,
    /// group.instance.id of a static member.
    pub instance_id: Option<String>,
    /// Client id from the request header.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout (the session timeout for JoinGroup v0).
    pub rebalance_timeout_ms: i32,
    /// Supported protocols (assignors) in preference order, with metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment from the last SyncGroup.
    pub assignment: Bytes,
    /// The parked JoinGroup, if any.
    pub(crate) awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    /// The parked SyncGroup, if any.
    pub(crate) awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    /// When the member is evicted unless it heartbeats (None while parked in a rebalance).
    pub(crate) heartbeat_deadline: Option<Instant>,
    /// Joined but has not received its first JoinGroup response.
    pub(crate) is_new: bool,
}

impl ClassicMember {
    /// Metadata the member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }

    /// Whether the member's protocols (names and metadata, in order) are `protocols`.
    pub fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Whether a JoinGroup of this member is parked.
    pub fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }

    /// Whether the member needs no heartbeat right now (it is parked in a rebalance).
    pub(crate) fn has_satisfied_heartbeat(&self) -> bool {
        !self.is_new && (self.awaiting_join.is_some() || self.awaiting_sync.is_some())
    }

    /// Restarts the session timer.
    pub(crate) fn reschedule_heartbeat(&mut self, now: Instant) {
        self.heartbeat_deadline = Some(now + ms(self.session_timeout_ms));
    }
}

/// The join phase timer.
#[derive(Debug, Clone, Copy)]
pub enum JoinTimer {
    /// The initial rebalance of an empty group waits `delay_ms` for more members,
    /// extended while members keep joining, up to the rebalance timeout.
    Initial {
        /// When the delay ends.
        deadline: Instant,
        /// The delay that is running.
        delay_ms: i64,
        /// Rebalance time left after it.
        remaining_ms: i64,
    },
    /// A rebalance completes when every member rejoined or at this deadline.
    Rebalance {
        /// The rebalance timeout.
        deadline: Instant,
    },
}

impl JoinTimer {
    /// When the timer fires.
    pub fn deadline(&self) -> Instant {
        match self {
            JoinTimer::Initial { deadline, .. } | JoinTimer::Rebalance { deadline } => *deadline,
        }
    }
}

/// A classic group.
#[derive(Default)]
pub struct ClassicGroup {
    /// Current state.
    pub state: ClassicState,
    /// State before the current one.
    pub previous_state: ClassicState,
    /// When the group entered its state (ms since the epoch).
    pub state_timestamp_ms: Option<i64>,
    /// Generation id, incremented by every completed join phase.
    pub generation: i32,
    /// Protocol type of the members ("consumer", "connect", …); None for a simple group.
    pub protocol_type: Option<String>,
    /// The protocol (assignor) selected for the current generation.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// Members by id.
    pub members: BTreeMap<String, ClassicMember>,
    /// Static members: instance id → member id.
    pub static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pub pending_members: HashMap<String, Instant>,
    /// Members that have not sent SyncGroup for the current generation.
    pub pending_sync: HashSet<String>,
    /// Join phase timer.
    pub join_timer: Option<JoinTimer>,
    /// Sync phase timer and the generation it belongs to.
    pub sync_timer: Option<(Instant, i32)>,
    /// A member joined during the initial delay (extends it).
    pub new_member_added: bool,
    /// Metadata changed and must be persisted.
    pub dirty: bool,
}

/// Persisted classic group (as Kafka's GroupMetadata record).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClassicRecord {
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Generation id.
    pub generation: i32,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its state.
    pub state_timestamp_ms: Option<i64>,
    /// Members with their assignment.
    pub members: Vec<MemberRecord>,
}

/// Persisted classic member.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MemberRecord {
    /// Member id.
    pub id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocols with metadata.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// Assignment.
    pub assignment: Vec<u8>,
}


impl ClassicGroup {
    /// Moves to `state`, remembering the previous one and when it happened.
    pub fn transition(&mut self, state: ClassicState, ctx: &Ctx) {
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = Some(ctx.wall_ms);
    }

    /// The largest rebalance timeout of the members.
    pub fn rebalance_timeout_ms(&self) -> i32 {
        self.members.values().map(|m| m.rebalance_timeout_ms).max().unwrap_or(0)
    }

    /// Whether every member has a parked JoinGroup and no member id is pending.
    pub fn has_all_members_joined(&self) -> bool {
        self.members.values().all(|m| m.is_awaiting_join()) && self.pending_members.is_empty()
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> HashSet<&str> {
        let mut members = self.members.values();
        let Some(first) = members.next() else { return HashSet::new() };
        let mut candidates: HashSet<&str> = first.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for m in members {
            candidates.retain(|c| m.protocols.iter().any(|(n, _)| n == c));
        }
        candidates
    }

    /// Whether a member with these protocols can join: a non-empty group needs the
    /// same protocol type and at least one protocol every member supports.
    pub fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == ClassicState::Empty {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(n, _)| self.members.is_empty() || candidates.contains(n.as_str()))
    }

    /// The protocol for the next generation: each member votes for its most preferred
    /// protocol that every member supports; the most votes win.
    pub fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(n.as_str())) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        // Ties go to the protocol the leader prefers, then by name (deterministic).
        let leader = self.leader.as_ref().and_then(|l| self.members.get(l));
        let rank = |name: &str| leader.and_then(|l| l.protocols.iter().position(|(n, _)| n == name)).unwrap_or(usize::MAX);
        votes
            .into_iter()
            .max_by(|(a, va), (b, vb)| va.cmp(vb).then(rank(b).cmp(&rank(a))).then(b.cmp(a)))
            .map(|(name, _)| name.to_string())
    }

    /// Checks that `member_id` is a member and, for a static member, that the
    /// instance id maps to it.
    pub fn validate_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), crate::error::GroupError> {
        use crate::error::GroupError;
        if let Some(instance) = instance_id {
            match self.static_members.get(instance) {
                None => return Err(GroupError::UnknownMemberId),
                Some(existing) if existing != member_id => return Err(GroupError::FencedInstanceId),
                Some(_) => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// Removes a member (its parked requests are dropped by the caller first).
    pub fn remove(&mut self, member_id: &str) {
        if let Some(m) = self.members.remove(member_id) {
            if let Some(instance) = &m.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if self.leader.as_deref() == Some(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
    }

    /// Topics the members subscribe to, read from the consumer protocol metadata of
    /// the selected protocol (None when unknown: not a consumer group, or unparsable).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            topics.extend(parse_subscription_topics(&m.metadata(protocol))?);
        }
        Some(topics)
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        let timers = self.join_timer.map(|t| t.deadline()).into_iter().chain(self.sync_timer.map(|(d, _)| d));
        let members = self.members.values().filter_map(|m| m.heartbeat_deadline);
        timers.chain(members).chain(self.pending_members.values().copied()).min()
    }

    /// The record to persist.
    pub fn record(&self) -> ClassicRecord {
        ClassicRecord {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|m| MemberRecord {
                    id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m.protocols.iter().map(|(n, b)| (n.clone(), b.to_vec())).collect(),
                    assignment: m.assignment.to_vec(),
                })
                .collect(),
        }
    }

    /// Rebuilds a group from its record after a restart: Stable with its members
    /// (their sessions restart now) or Empty.
    pub fn from_record(record: ClassicRecord, now: Instant) -> ClassicGroup {
        let mut group = ClassicGroup {
            protocol_type: record.protocol_type,
            generation: record.generation,
            protocol_name: record.protocol_name,
            leader: record.leader,
            state_timestamp_ms: record.state_timestamp_ms,
            ..Default::default()
        };
        for m in record.members {
            if let Some(instance) = &m.instance_id {
                group.static_members.insert(instance.clone(), m.id.clone());
            }
            let member = ClassicMember {
                id: m.id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: m.protocols.into_iter().map(|(n, b)| (n, Bytes::from(b))).collect(),
                assignment: Bytes::from(m.assignment),
                awaiting_join: None,
                awaiting_sync: None,
                heartbeat_deadline: Some(now + ms(m.session_timeout_ms)),
                is_new: false,
            };
            group.members.insert(m.id, member);
        }
        if group.members.is_empty() {
            group.leader = None;
        } else {
            group.state = ClassicState::Stable;
            group.previous_state = ClassicState::Stable;
            if group.leader.as_ref().map(|l| !group.members.contains_key(l)).unwrap_or(true) {
                group.leader = group.members.keys().next().cloned();
            }
        }
        group
    }
}

/// The topics of a consumer protocol subscription (the v0 prefix every version
/// shares: version, then an array of topic names).
pub fn parse_subscription_topics(metadata: &[u8]) -> Option<Vec<String>> {
    let mut buf = metadata.get(2..)?;
    let count = i32::from_be_bytes(buf.get(..4)?.try_into().ok()?);
    buf = &buf[4..];
    if count < 0 || count as usize > buf.len() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = i16::from_be_bytes(buf.get(..2)?.try_into().ok()?);
        let len = usize::try_from(len).ok()?;
        topics.push(String::from_utf8(buf.get(2..2 + len)?.to_vec()).ok()?);
        buf = &buf[2 + len..];
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_topics_are_parsed() {
        let mut m = vec![0u8, 1];
        m.extend_from_slice(&2i32.to_be_bytes());
        for t in ["orders", "b"] {
            m.extend_from_slice(&(t.len() as i16).to_be_bytes());
            m.extend_from_slice(t.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 0, 0]); // user data and later fields are ignored
        assert_eq!(parse_subscription_topics(&m), Some(vec!["orders".to_string(), "b".to_string()]));
        assert_eq!(parse_subscription_topics(&[0, 1, 0, 0, 0, 9]), None);
    }
}
