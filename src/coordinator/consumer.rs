//! KIP-848 consumer groups: members heartbeat with ConsumerGroupHeartbeat and the
//! broker computes the assignment (see `assignor`) and reconciles each member
//! towards it (see `reconcile`).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use super::Ctx;

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
            m.session_deadline = Some(ctx.now + super::group::ms(ctx.settings.consumer_session_timeout_ms));
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

    /// Runs due timers (phase 2).
    pub fn on_timer(&mut self, _ctx: &Ctx) {}
}
