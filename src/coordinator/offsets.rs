//! Committed offsets: which commits and fetches a group accepts, and when offsets
//! expire (Kafka's rules: an empty group's offsets expire `offsets.retention.minutes`
//! after it became empty; a simple group's after their commit).

use super::consumer::ConsumerGroup;
use super::classic::ClassicState;
use super::group::{Group, GroupKind};
use crate::error::GroupError;
use crate::storage::group_store::StoredOffset;

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct PartitionCommit {
    /// Partition index.
    pub partition: i32,
    /// Offset to commit.
    pub offset: i64,
    /// Leader epoch of the last consumed record (-1: unknown).
    pub leader_epoch: i32,
    /// Metadata string.
    pub metadata: Option<String>,
}

/// An OffsetCommit request.
#[derive(Debug, Clone)]
pub struct CommitParams {
    /// Group id.
    pub group_id: String,
    /// Generation (classic) or member epoch (consumer groups); -1 outside group management.
    pub generation_or_epoch: i32,
    /// Member id ("" outside group management).
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Retention time (v2–4; -1: the broker default).
    pub retention_ms: i64,
    /// The request version.
    pub api_version: i16,
    /// Offsets per topic.
    pub topics: Vec<(String, Vec<PartitionCommit>)>,
}

/// Per-partition results of a commit, per topic.
pub type CommitResults = Vec<(String, Vec<(i32, Result<(), GroupError>)>)>;

/// Offsets returned by a fetch, per topic: (partition, committed offset if any).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<StoredOffset>)>)>;

impl Group {
    /// Whether this commit's member and generation/epoch are accepted.
    pub fn validate_offset_commit(&self, p: &CommitParams) -> Result<(), GroupError> {
        match &self.kind {
            GroupKind::Classic(c) => c.validate_offset_commit(&p.member_id, p.instance_id.as_deref(), p.generation_or_epoch),
            GroupKind::Consumer(c) => c.validate_offset_commit(&p.member_id, p.generation_or_epoch, p.api_version),
        }
    }

    /// Whether an offset fetch naming a member (OffsetFetch v9) is accepted.
    pub fn validate_offset_fetch(&self, member: Option<(&str, i32)>) -> Result<(), GroupError> {
        match &self.kind {
            GroupKind::Classic(_) => Ok(()),
            GroupKind::Consumer(c) => c.validate_offset_fetch(member),
        }
    }

    /// Committed offsets of the requested partitions (None: every committed offset).
    pub fn fetch_offsets(&self, topics: Option<&[(String, Vec<i32>)]>) -> FetchedOffsets {
        match topics {
            Some(topics) => topics
                .iter()
                .map(|(topic, partitions)| {
                    let found = partitions.iter().map(|p| (*p, self.offsets.get(&(topic.clone(), *p)).cloned())).collect();
                    (topic.clone(), found)
                })
                .collect(),
            None => {
                let mut out: FetchedOffsets = Vec::new();
                for ((topic, partition), offset) in &self.offsets {
                    match out.last_mut() {
                        Some((t, parts)) if t == topic => parts.push((*partition, Some(offset.clone()))),
                        _ => out.push((topic.clone(), vec![(*partition, Some(offset.clone()))])),
                    }
                }
                out
            }
        }
    }

    /// Removes the offsets that expired at `now_ms`; returns them, and whether every
    /// offset of the group is gone.
    pub fn expire_offsets(&mut self, now_ms: i64, retention_ms: i64) -> (Vec<(String, i32)>, bool) {
        // The timestamp retention counts from, per offset (None: never expires now).
        let base: Box<dyn Fn(&StoredOffset) -> i64> = match &self.kind {
            GroupKind::Classic(c) => match (&c.protocol_type, c.state) {
                (None, _) => Box::new(|o| o.commit_timestamp_ms),
                (Some(_), ClassicState::Empty) => {
                    let since = c.state_timestamp_ms;
                    Box::new(move |o| since.unwrap_or(o.commit_timestamp_ms))
                }
                (Some(t), ClassicState::Stable) if t == super::classic::CONSUMER_PROTOCOL_TYPE && c.subscribed_topics().is_some() => {
                    Box::new(|o| o.commit_timestamp_ms)
                }
                _ => return (Vec::new(), false),
            },
            GroupKind::Consumer(_) => Box::new(|o| o.commit_timestamp_ms),
        };
        let mut expired = Vec::new();
        let mut all = true;
        for ((topic, partition), offset) in &self.offsets {
            let gone = !self.is_subscribed_to(topic)
                && match offset.expire_timestamp_ms {
                    Some(at) => now_ms >= at,
                    None => now_ms - base(offset) >= retention_ms,
                };
            if gone {
                expired.push((topic.clone(), *partition));
            } else {
                all = false;
            }
        }
        for key in &expired {
            self.offsets.remove(key);
        }
        (expired, all)
    }
}

impl ConsumerGroup {
    /// Commits must come from a current member at its epoch (v9+), or from outside
    /// the group (epoch -1) when it has no members.
    pub fn validate_offset_commit(&self, member_id: &str, epoch: i32, api_version: i16) -> Result<(), GroupError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        let member = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        if api_version < 9 {
            return Err(GroupError::UnsupportedVersion(
                "OffsetCommit version 9 or above must be used by members using the consumer protocol".into(),
            ));
        }
        if epoch != member.epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// A fetch naming a member must carry its current epoch.
    pub fn validate_offset_fetch(&self, member: Option<(&str, i32)>) -> Result<(), GroupError> {
        let Some((member_id, epoch)) = member else { return Ok(()) };
        let member = self.members.get(member_id).ok_or(GroupError::UnknownMemberId)?;
        if epoch != member.epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }
}
