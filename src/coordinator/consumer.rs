//! KIP-848 consumer groups: members heartbeat with ConsumerGroupHeartbeat and the
//! broker computes the assignment (see `assignor`) and reconciles each member
//! towards it (see `reconcile`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::assignor::{self, AssignorMember};
use super::ms;
use super::reconcile::{reconcile, PartitionEpochs};
use super::{ClientInfo, Ctx};
use crate::error::GroupError;

/// Epoch of a heartbeat that leaves the group.
pub const LEAVE_EPOCH: i32 = -1;
/// Epoch of a static member that leaves for now and will be back (KIP-345 for KIP-848).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// A ConsumerGroupHeartbeat request.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeat {
    /// Member id ("" lets the coordinator pick one on join).
    pub member_id: String,
    /// Member epoch: 0 joins, -1 leaves, -2 leaves for now (static members).
    pub member_epoch: i32,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Rebalance timeout (-1: unchanged).
    pub rebalance_timeout_ms: i32,
    /// Subscribed topics (None: unchanged).
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Server assignor (None: unchanged).
    pub server_assignor: Option<String>,
    /// Partitions the member owns (None: unchanged).
    pub owned: Option<Vec<(Uuid, Vec<i32>)>>,
    /// Who sent it.
    pub client: ClientInfo,
}

/// The answer to a ConsumerGroupHeartbeat.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatOutcome {
    /// Member id.
    pub member_id: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// How often to heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The member's partitions, when they changed or the request was a full one.
    pub assignment: Option<Assignment>,
}

/// Looks up topics: by name (id, partition count) and by id (name).
pub trait TopicLookup {
    /// The topic's id and partition count, if it exists.
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)>;
    /// The name of the topic with this id, if it exists.
    fn name_of(&self, id: Uuid) -> Option<String>;
}

/// A consumer group as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, Default)]
pub struct ConsumerDescription {
    /// State name.
    pub state: String,
    /// Group epoch.
    pub group_epoch: i32,
    /// Target assignment epoch.
    pub assignment_epoch: i32,
    /// The assignor in use.
    pub assignor: String,
    /// Members.
    pub members: Vec<ConsumerMemberDescription>,
}

/// Partitions with their topic's id and name.
pub type NamedAssignment = Vec<(Uuid, String, Vec<i32>)>;

/// A member as ConsumerGroupDescribe shows it.
#[derive(Debug, Clone, Default)]
pub struct ConsumerMemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Member epoch.
    pub member_epoch: i32,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topics.
    pub subscribed_topic_names: Vec<String>,
    /// The partitions it owns.
    pub assignment: NamedAssignment,
    /// The partitions it is moving to.
    pub target: NamedAssignment,
}

/// Checks the fields a heartbeat must carry for its epoch.
pub fn validate_heartbeat(group_id: &str, hb: &ConsumerHeartbeat) -> Result<(), GroupError> {
    let invalid = |m: &str| Err(GroupError::InvalidRequest(m.to_string()));
    if group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    if hb.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if hb.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    match hb.member_epoch {
        e if e > 0 || e == LEAVE_EPOCH => {
            if hb.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
        }
        0 => {
            if hb.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if hb.owned.as_ref().map(|o| !o.is_empty()).unwrap_or(true) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if hb.subscribed_topic_names.is_none() {
                return invalid("SubscribedTopicNames must be set in first request.");
            }
        }
        STATIC_LEAVE_EPOCH => {
            if hb.member_id.is_empty() {
                return invalid("MemberId can't be empty.");
            }
            if hb.instance_id.is_none() {
                return invalid("InstanceId can't be null.");
            }
        }
        _ => return invalid("MemberEpoch is invalid."),
    }
    if let Some(name) = &hb.server_assignor {
        if !assignor::is_supported(name) {
            return Err(GroupError::UnsupportedAssignor(format!(
                "ServerAssignor {name} is not supported. Supported assignors: {}, {}.",
                assignor::RANGE,
                assignor::UNIFORM
            )));
        }
    }
    Ok(())
}

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// Where a member is in its reconciliation (Kafka's MemberState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum MemberState {
    /// The member owns exactly its assignment at its epoch.
    #[default]
    Stable,
    /// The member must first revoke partitions.
    UnrevokedPartitions,
    /// The member waits for partitions other members still own.
    UnreleasedPartitions,
}

/// A member of a consumer group.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConsumerMember {
    /// Member id.
    pub id: String,
    /// group.instance.id of a static member.
    pub instance_id: Option<String>,
    /// Rack id.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Time the member has to revoke partitions.
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names.
    pub subscribed_topics: Vec<String>,
    /// Subscribed topic regex.
    pub subscribed_regex: Option<String>,
    /// Requested server assignor.
    pub server_assignor: Option<String>,
    /// Current member epoch (-2: a static member that left temporarily).
    pub epoch: i32,
    /// The epoch before the last bump.
    pub previous_epoch: i32,
    /// Reconciliation state.
    pub state: MemberState,
    /// Partitions the member owns (or may own) at its epoch.
    pub assigned: Assignment,
    /// Partitions the member must revoke.
    pub pending_revocation: Assignment,
    /// Session expiry.
    #[serde(skip)]
    pub session_deadline: Option<Instant>,
    /// Revocation deadline, with the epoch it applies to.
    #[serde(skip)]
    pub rebalance_deadline: Option<(Instant, i32)>,
}

/// A consumer group.
#[derive(Debug, Default)]
pub struct ConsumerGroup {
    /// Bumped by every membership, subscription or metadata change.
    pub group_epoch: i32,
    /// The epoch of the target assignment.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Static members: instance id → member id.
    pub static_members: HashMap<String, String>,
    /// Target assignment per member.
    pub target: HashMap<String, Assignment>,
    /// Subscribed topics: name → (id, partition count).
    pub subscription_metadata: BTreeMap<String, (Uuid, i32)>,
    /// Metadata changed and must be persisted.
    pub dirty: bool,
}

/// Persisted consumer group.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ConsumerRecord {
    /// Group epoch.
    pub group_epoch: i32,
    /// Target assignment epoch.
    pub assignment_epoch: i32,
    /// Members.
    pub members: Vec<ConsumerMember>,
    /// Target assignment.
    pub target: Vec<(String, Assignment)>,
    /// Subscription metadata.
    pub subscription_metadata: BTreeMap<String, (Uuid, i32)>,
}

impl ConsumerGroup {
    /// Kafka's state name: Empty, Assigning, Reconciling or Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.group_epoch > self.assignment_epoch {
            "Assigning"
        } else if self.members.values().any(|m| m.state != MemberState::Stable || m.epoch != self.assignment_epoch) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Names of every subscribed topic.
    pub fn subscribed_topic_names(&self) -> HashSet<String> {
        self.members.values().flat_map(|m| m.subscribed_topics.iter().cloned()).collect()
    }

    /// The record to persist.
    pub fn record(&self) -> ConsumerRecord {
        ConsumerRecord {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            members: self.members.values().cloned().collect(),
            target: self.target.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            subscription_metadata: self.subscription_metadata.clone(),
        }
    }

    /// Rebuilds a group after a restart; member sessions restart now.
    pub fn from_record(record: ConsumerRecord, ctx: &Ctx) -> ConsumerGroup {
        let mut group = ConsumerGroup {
            group_epoch: record.group_epoch,
            assignment_epoch: record.assignment_epoch,
            target: record.target.into_iter().collect(),
            subscription_metadata: record.subscription_metadata,
            ..Default::default()
        };
        for mut m in record.members {
            m.session_deadline = Some(ctx.now + super::ms(ctx.settings.consumer_session_timeout_ms));
            if let Some(instance) = &m.instance_id {
                group.static_members.insert(instance.clone(), m.id.clone());
            }
            group.members.insert(m.id.clone(), m);
        }
        group
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| m.session_deadline.into_iter().chain(m.rebalance_deadline.map(|(d, _)| d)))
            .min()
    }

    /// The ConsumerGroupDescribe view.
    pub fn describe(&self, topics: &dyn TopicLookup) -> ConsumerDescription {
        let names: HashMap<Uuid, String> = self.subscription_metadata.iter().map(|(n, (id, _))| (*id, n.clone())).collect();
        let named = |a: &Assignment| -> NamedAssignment {
            a.iter()
                .map(|(id, ps)| {
                    let name = names.get(id).cloned().or_else(|| topics.name_of(*id)).unwrap_or_default();
                    (*id, name, ps.iter().copied().collect())
                })
                .collect()
        };
        ConsumerDescription {
            state: self.state_name().to_string(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.preferred_assignor(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topics.clone(),
                    assignment: named(&m.assigned),
                    target: named(self.target.get(&m.id).unwrap_or(&Assignment::new())),
                })
                .collect(),
        }
    }

    /// Fences members whose session expired or who did not revoke partitions in time.
    pub fn on_timer(&mut self, ctx: &Ctx) {
        let expired: Vec<(String, &'static str)> = self
            .members
            .values()
            .filter_map(|m| {
                if m.session_deadline.is_some_and(|d| d <= ctx.now) {
                    Some((m.id.clone(), "session timeout"))
                } else if m.rebalance_deadline.is_some_and(|(d, epoch)| {
                    d <= ctx.now && epoch == m.epoch && m.state == MemberState::UnrevokedPartitions
                }) {
                    Some((m.id.clone(), "partitions not revoked within the rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (id, reason) in expired {
            tracing::info!(member = %id, reason, "consumer group member fenced");
            self.fence(&id);
        }
        for m in self.members.values_mut() {
            if m.rebalance_deadline.is_some_and(|(d, _)| d <= ctx.now) {
                m.rebalance_deadline = None;
            }
        }
    }

    /// Removes a member; the next heartbeat of any member computes a new assignment.
    pub fn fence(&mut self, member_id: &str) {
        let Some(member) = self.members.remove(member_id) else { return };
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.target.remove(member_id);
        let still: HashSet<String> = self.subscribed_topic_names();
        self.subscription_metadata.retain(|name, _| still.contains(name));
        self.group_epoch += 1;
        self.dirty = true;
    }

    /// The assignor most members asked for (the default if none).
    pub fn preferred_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *votes.entry(a.as_str()).or_default() += 1;
            }
        }
        votes.into_iter().max_by_key(|(_, n)| *n).map(|(a, _)| a.to_string()).unwrap_or_else(|| assignor::UNIFORM.to_string())
    }

    /// Owner epoch of every owned or revoking partition.
    fn partition_epochs(&self) -> PartitionEpochs {
        let mut epochs = PartitionEpochs::new();
        for m in self.members.values() {
            for (topic, partitions) in m.assigned.iter().chain(m.pending_revocation.iter()) {
                for p in partitions {
                    epochs.insert((*topic, *p), m.epoch);
                }
            }
        }
        epochs
    }

    /// Recomputes every member's target assignment at the group epoch.
    fn compute_target(&mut self) {
        let topics: BTreeMap<Uuid, (String, i32)> =
            self.subscription_metadata.iter().map(|(name, (id, n))| (*id, (name.clone(), *n))).collect();
        let assignor = self.preferred_assignor();
        let members: Vec<AssignorMember> = self
            .members
            .values()
            .map(|m| AssignorMember {
                id: &m.id,
                topics: m.subscribed_topics.iter().filter_map(|t| self.subscription_metadata.get(t).map(|(id, _)| *id)).collect(),
                current: self.target.get(&m.id),
            })
            .collect();
        let target = assignor::assign(&assignor, &members, &topics);
        self.target = target;
        self.assignment_epoch = self.group_epoch;
        tracing::info!(epoch = self.group_epoch, members = self.members.len(), assignor, "target assignment computed");
    }

    /// Handles a ConsumerGroupHeartbeat (validated by `validate_heartbeat`).
    pub fn heartbeat(&mut self, ctx: &Ctx, topics: &dyn TopicLookup, hb: ConsumerHeartbeat) -> Result<HeartbeatOutcome, GroupError> {
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&hb);
        }
        let full = hb.member_epoch == 0
            || (hb.rebalance_timeout_ms != -1 && hb.subscribed_topic_names.is_some() && hb.owned.is_some());
        let member_id = if hb.member_id.is_empty() { Uuid::new_v4().to_string() } else { hb.member_id.clone() };
        let mut replaced = None;
        let existing = match &hb.instance_id {
            None => match self.members.get(&member_id) {
                Some(m) => {
                    check_epoch(m, hb.member_epoch, hb.owned.as_deref())?;
                    Some(m.clone())
                }
                None if hb.member_epoch == 0 => None,
                None => return Err(GroupError::UnknownMemberId),
            },
            Some(instance) => {
                let holder = self.static_members.get(instance).and_then(|id| self.members.get(id));
                match holder {
                    Some(old) if old.id == member_id => {
                        check_epoch(old, hb.member_epoch, hb.owned.as_deref())?;
                        Some(old.clone())
                    }
                    Some(old) if hb.member_epoch == 0 => {
                        if old.epoch != STATIC_LEAVE_EPOCH {
                            return Err(GroupError::UnreleasedInstanceId(format!(
                                "instance id {instance} is still held by member {}",
                                old.id
                            )));
                        }
                        // The static member is back: it takes over the old one's partitions.
                        replaced = Some(old.id.clone());
                        let mut m = old.clone();
                        m.id = member_id.clone();
                        m.epoch = 0;
                        m.previous_epoch = 0;
                        m.state = MemberState::Stable;
                        m.pending_revocation.clear();
                        Some(m)
                    }
                    Some(_) => return Err(GroupError::FencedInstanceId),
                    None if hb.member_epoch == 0 => self.members.get(&member_id).cloned(),
                    None => return Err(GroupError::UnknownMemberId),
                }
            }
        };
        let is_new = existing.is_none();
        let before = existing.clone().unwrap_or_default();
        let mut member = existing.unwrap_or_else(|| ConsumerMember { id: member_id.clone(), ..Default::default() });
        if hb.instance_id.is_some() {
            member.instance_id = hb.instance_id.clone();
        }
        if hb.rack_id.is_some() {
            member.rack_id = hb.rack_id.clone();
        }
        if hb.rebalance_timeout_ms != -1 {
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if hb.server_assignor.is_some() {
            member.server_assignor = hb.server_assignor.clone();
        }
        if let Some(names) = &hb.subscribed_topic_names {
            let mut names = names.clone();
            names.sort();
            names.dedup();
            member.subscribed_topics = names;
        }
        member.client_id = hb.client.client_id.clone();
        member.client_host = hb.client.client_host.clone();
        let mut bump = is_new || member.subscribed_topics != before.subscribed_topics;
        if let Some(old_id) = &replaced {
            self.members.remove(old_id);
            if let Some(t) = self.target.remove(old_id) {
                self.target.insert(member_id.clone(), t);
            }
            bump = member.subscribed_topics != before.subscribed_topics;
        }
        if let Some(instance) = &member.instance_id {
            self.static_members.insert(instance.clone(), member_id.clone());
        }
        self.members.insert(member_id.clone(), member);
        // Topic metadata of every subscription (new topics, more partitions, deletions).
        let metadata: BTreeMap<String, (Uuid, i32)> = self
            .subscribed_topic_names()
            .into_iter()
            .filter_map(|name| topics.lookup(&name).map(|t| (name, t)))
            .collect();
        if metadata != self.subscription_metadata {
            self.subscription_metadata = metadata;
            bump = true;
        }
        if bump {
            self.group_epoch += 1;
            self.dirty = true;
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target();
            self.dirty = true;
        }
        let target = self.target.get(&member_id).cloned().unwrap_or_default();
        let epochs = self.partition_epochs();
        let current = self.members[&member_id].clone();
        let mut updated = reconcile(&current, self.assignment_epoch, &target, hb.owned.as_deref(), &epochs);
        updated.session_deadline = Some(ctx.now + ms(ctx.settings.consumer_session_timeout_ms));
        if updated.state == MemberState::UnrevokedPartitions {
            if updated.rebalance_deadline.map(|(_, e)| e) != Some(updated.epoch) {
                updated.rebalance_deadline = Some((ctx.now + ms(updated.rebalance_timeout_ms), updated.epoch));
            }
        } else {
            updated.rebalance_deadline = None;
        }
        if !is_new && !persisted_eq(&updated, &before) {
            self.dirty = true;
        }
        let assignment_changed = is_new || updated.assigned != before.assigned;
        tracing::debug!(
            member = %member_id,
            epoch_in = hb.member_epoch,
            epoch = updated.epoch,
            state = ?updated.state,
            owned = ?hb.owned,
            assigned = ?updated.assigned,
            revoking = ?updated.pending_revocation,
            target = ?target,
            "consumer heartbeat"
        );
        let outcome = HeartbeatOutcome {
            member_id: member_id.clone(),
            member_epoch: updated.epoch,
            heartbeat_interval_ms: ctx.settings.consumer_heartbeat_interval_ms,
            assignment: (full || assignment_changed).then(|| updated.assigned.clone()),
        };
        self.members.insert(member_id, updated);
        Ok(outcome)
    }

    /// A heartbeat with epoch -1 (leave) or -2 (a static member leaving for now).
    fn leave(&mut self, hb: &ConsumerHeartbeat) -> Result<HeartbeatOutcome, GroupError> {
        let member_id = match &hb.instance_id {
            None => {
                self.members.get(&hb.member_id).ok_or(GroupError::UnknownMemberId)?;
                hb.member_id.clone()
            }
            Some(instance) => {
                let id = self.static_members.get(instance).cloned().ok_or(GroupError::UnknownMemberId)?;
                if id != hb.member_id {
                    return Err(GroupError::FencedInstanceId);
                }
                id
            }
        };
        if hb.member_epoch == STATIC_LEAVE_EPOCH {
            // Kept with its partitions until it is back or its session expires.
            let m = self.members.get_mut(&member_id).expect("checked");
            m.epoch = STATIC_LEAVE_EPOCH;
            m.pending_revocation.clear();
            self.dirty = true;
        } else {
            tracing::info!(member = %member_id, "consumer group member left");
            self.fence(&member_id);
        }
        Ok(HeartbeatOutcome { member_id, member_epoch: hb.member_epoch, ..Default::default() })
    }
}

/// A heartbeat's epoch must be the member's, or its previous one if it still owns
/// only what it was assigned (the response with the new epoch may have been lost);
/// epoch 0 rejoins a member that was fenced.
fn check_epoch(member: &ConsumerMember, epoch: i32, owned: Option<&[(Uuid, Vec<i32>)]>) -> Result<(), GroupError> {
    if epoch == 0 {
        return Ok(());
    }
    let fenced = |rel: &str| {
        Err(GroupError::FencedMemberEpoch(format!(
            "the member epoch {epoch} is {rel} than the coordinator's {}; the member must rejoin",
            member.epoch
        )))
    };
    if epoch > member.epoch {
        return fenced("greater");
    }
    if epoch < member.epoch {
        let subset = owned.is_some_and(|owned| {
            owned.iter().all(|(t, ps)| member.assigned.get(t).is_some_and(|set| ps.iter().all(|p| set.contains(p))))
        });
        if epoch != member.previous_epoch || !subset {
            return fenced("smaller");
        }
    }
    Ok(())
}

/// Whether two states of a member are the same as far as persistence goes.
fn persisted_eq(a: &ConsumerMember, b: &ConsumerMember) -> bool {
    (a.epoch, a.previous_epoch, a.state, &a.assigned, &a.pending_revocation, &a.subscribed_topics, &a.server_assignor)
        == (b.epoch, b.previous_epoch, b.state, &b.assigned, &b.pending_revocation, &b.subscribed_topics, &b.server_assignor)
        && (&a.instance_id, &a.rack_id, a.rebalance_timeout_ms, &a.client_id) == (&b.instance_id, &b.rack_id, b.rebalance_timeout_ms, &b.client_id)
}
