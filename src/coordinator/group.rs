//! The group record every protocol shares: id, membership protocol, committed
//! offsets, timers.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::classic::{ClassicGroup, ClassicRecord, ClassicState, CONSUMER_PROTOCOL_TYPE};
use super::consumer::ConsumerGroup;
use super::Ctx;
use crate::storage::group_store::StoredOffset;


/// One group: a classic group (which includes "simple" groups that only commit
/// offsets) or a KIP-848 consumer group, plus its committed offsets.
pub struct Group {
    /// The group id.
    pub id: String,
    /// Protocol-specific state.
    pub kind: GroupKind,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), StoredOffset>,
    /// Set when the group was removed from the coordinator; holders of the old
    /// handle must look the group up again.
    pub dead: bool,
    /// Deadline of the timer entry currently queued for this group.
    pub scheduled: Option<Instant>,
}

/// The membership protocol of a group.
pub enum GroupKind {
    /// JoinGroup/SyncGroup/Heartbeat (and offset-only "simple" groups).
    Classic(ClassicGroup),
    /// ConsumerGroupHeartbeat (KIP-848).
    Consumer(ConsumerGroup),
}

/// The persisted form of a group's membership.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupRecord {
    /// A classic group.
    Classic(ClassicRecord),
    /// A KIP-848 consumer group.
    Consumer(super::consumer::ConsumerRecord),
}

impl Group {
    /// A new, empty classic group.
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            kind: GroupKind::Classic(ClassicGroup::default()),
            offsets: BTreeMap::new(),
            dead: false,
            scheduled: None,
        }
    }

    /// The state name clients see (ListGroups, DescribeGroups).
    pub fn state_name(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(c) => c.state.name(),
            GroupKind::Consumer(c) => c.state_name(),
        }
    }

    /// The group type name (ListGroups v5): "classic" or "consumer".
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            GroupKind::Classic(_) => "classic",
            GroupKind::Consumer(_) => "consumer",
        }
    }

    /// The protocol type ("" for a simple group).
    pub fn protocol_type(&self) -> String {
        match &self.kind {
            GroupKind::Classic(c) => c.protocol_type.clone().unwrap_or_default(),
            GroupKind::Consumer(_) => CONSUMER_PROTOCOL_TYPE.to_string(),
        }
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            GroupKind::Classic(c) => c.state == ClassicState::Empty,
            GroupKind::Consumer(c) => c.members.is_empty(),
        }
    }

    /// Takes the "metadata changed, persist it" flag.
    pub fn take_dirty(&mut self) -> bool {
        match &mut self.kind {
            GroupKind::Classic(c) => std::mem::take(&mut c.dirty),
            GroupKind::Consumer(c) => std::mem::take(&mut c.dirty),
        }
    }

    /// The record to persist for this group's membership.
    pub fn record(&self) -> GroupRecord {
        match &self.kind {
            GroupKind::Classic(c) => GroupRecord::Classic(c.record()),
            GroupKind::Consumer(c) => GroupRecord::Consumer(c.record()),
        }
    }

    /// The earliest timer deadline of this group.
    pub fn next_deadline(&self) -> Option<Instant> {
        match &self.kind {
            GroupKind::Classic(c) => c.next_deadline(),
            GroupKind::Consumer(c) => c.next_deadline(),
        }
    }

    /// Runs every timer that is due.
    pub fn on_timer(&mut self, ctx: &Ctx) {
        match &mut self.kind {
            GroupKind::Classic(c) => c.on_timer(ctx),
            GroupKind::Consumer(c) => c.on_timer(ctx),
        }
    }

    /// Topics the members are known to consume (None: unknown).
    pub fn subscribed_topics(&self) -> Option<HashSet<String>> {
        match &self.kind {
            GroupKind::Classic(c) => c.subscribed_topics(),
            GroupKind::Consumer(c) => Some(c.subscribed_topic_names()),
        }
    }

    /// Whether offsets of `topic` belong to an active subscription (they must not be deleted).
    pub fn is_subscribed_to(&self, topic: &str) -> bool {
        match &self.kind {
            GroupKind::Classic(c) => match c.subscribed_topics() {
                Some(topics) => topics.contains(topic),
                // A consumer group whose subscriptions cannot be read: assume it is.
                None => c.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE),
            },
            GroupKind::Consumer(c) => c.subscribed_topic_names().contains(topic),
        }
    }
}
