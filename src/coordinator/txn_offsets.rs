//! Transactional offset commits on the group side: the KIP-447 member checks of
//! TxnOffsetCommit, and making a committed transaction's offsets visible.

use super::group::GroupKind;
use super::GroupCoordinator;
use crate::error::GroupError;
use crate::storage::group_store::StoredOffset;
use crate::storage::TopicStore;

/// One offset of a TxnOffsetCommit, as the group sees it.
#[derive(Debug, Clone)]
pub struct TxnCommitMember<'a> {
    /// Member id ("" for a producer outside the group, e.g. the old
    /// `sendOffsetsToTransaction(offsets, groupId)` form).
    pub member_id: &'a str,
    /// Static instance id.
    pub instance_id: Option<&'a str>,
    /// Generation (classic) or member epoch (consumer groups); -1: not checked.
    pub generation: i32,
}

impl GroupCoordinator {
    /// KIP-447: a TxnOffsetCommit naming a member must come from a current member at
    /// the group's generation (member epoch for consumer groups). Without a member id
    /// and generation (-1) nothing is checked, as in Kafka.
    pub fn validate_txn_offset_commit(&self, group_id: &str, m: &TxnCommitMember<'_>) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let checked = !m.member_id.is_empty() || m.generation >= 0;
        self.with_group(group_id, false, |g, _| match &g.kind {
            _ if !checked => Ok(()),
            GroupKind::Classic(c) => {
                if !m.member_id.is_empty() && !c.members.contains_key(m.member_id) {
                    return Err(GroupError::UnknownMemberId);
                }
                if m.generation >= 0 && m.generation != c.generation {
                    return Err(GroupError::IllegalGeneration);
                }
                Ok(())
            }
            GroupKind::Consumer(c) => {
                let member = c.members.get(m.member_id).ok_or(GroupError::UnknownMemberId)?;
                if m.generation >= 0 && m.generation != member.epoch {
                    return Err(GroupError::IllegalGeneration);
                }
                Ok(())
            }
        })
        .unwrap_or(if checked { Err(GroupError::IllegalGeneration) } else { Ok(()) })
    }

    /// Whether (topic, partition) exists and `metadata` fits: the per-partition checks
    /// of a TxnOffsetCommit.
    pub fn check_txn_offset(&self, topics: &TopicStore, topic: &str, partition: i32, metadata: Option<&str>) -> Result<(), GroupError> {
        if !topics.get(topic).is_some_and(|t| t.partition(partition).is_some()) {
            return Err(GroupError::UnknownTopicOrPartition);
        }
        if metadata.is_some_and(|m| m.len() > self.inner.settings.offset_metadata_max_bytes) {
            return Err(GroupError::OffsetMetadataTooLarge);
        }
        Ok(())
    }

    /// Makes the offsets of a committed transaction visible: written like an
    /// OffsetCommit (the group is created if needed). Idempotent, so a transaction
    /// completed again after a crash writes the same values.
    pub fn commit_txn_offsets(&self, group_id: &str, offsets: Vec<(String, i32, i64, i32, String)>) -> Result<(), GroupError> {
        let store = &self.inner.store;
        self.with_group(group_id, true, |g, ctx| {
            let writes: Vec<(String, i32, StoredOffset)> = offsets
                .into_iter()
                .map(|(topic, partition, offset, leader_epoch, metadata)| {
                    let stored = StoredOffset { offset, leader_epoch, metadata, commit_timestamp_ms: ctx.wall_ms, expire_timestamp_ms: None };
                    (topic, partition, stored)
                })
                .collect();
            store.commit_offsets(&g.id, &writes)?;
            for (topic, partition, offset) in writes {
                g.offsets.insert((topic, partition), offset);
            }
            Ok(())
        })
        .unwrap_or(Ok(()))
    }
}
