//! `RaftStateMachine` over a partition log: the log is the state, so applying a
//! committed entry only moves the high watermark (and applies DeleteRecords); the
//! applied state (`ra/`) and the current snapshot (`rs/`) are rows of the metadata CF.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{decode, encode, PartitionCommand, PartitionRaft, PartitionReply, RaftStorageError};
use crate::cluster::{Node, NodeId};
use crate::error::StorageError;
use crate::storage::batch;
use crate::storage::partition_log::{ReplicaKey, ReplicaState};
use crate::storage::PartitionLog;

/// What the state machine persists in `ra/` after each apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Applied {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    /// End offset of the last applied data entry.
    high_watermark: i64,
}

/// A snapshot's data: the partition state at its last included entry, never batches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotState {
    log_start: i64,
    /// The high watermark at the last included entry: where the log continues.
    high_watermark: i64,
    producers: Vec<(i64, Vec<u8>)>,
    epochs: Vec<(i32, i64)>,
}

/// The current snapshot as stored in `rs/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    data: Vec<u8>,
}

/// One replica's state machine: the partition log, its high watermark and what was applied.
#[derive(Clone)]
pub struct PartitionStateMachine {
    log: Arc<PartitionLog>,
    applied: Arc<Mutex<Applied>>,
}

fn io_read(e: &dyn std::error::Error) -> StorageIOError<NodeId> {
    StorageIOError::read_state_machine(openraft::AnyError::error(e))
}
fn io_write(e: &dyn std::error::Error) -> StorageIOError<NodeId> {
    StorageIOError::write_state_machine(openraft::AnyError::error(e))
}
fn io_snapshot(e: &dyn std::error::Error) -> StorageIOError<NodeId> {
    StorageIOError::write_snapshot(None, openraft::AnyError::error(e))
}

impl PartitionStateMachine {
    /// The state machine of this partition log: reads what was applied and moves the
    /// high watermark back to it (a replica's log may hold entries not yet committed).
    pub fn open(log: Arc<PartitionLog>) -> Result<PartitionStateMachine, RaftStorageError> {
        let applied: Applied = match log.replica_value(ReplicaKey::Applied).map_err(|e| io_read(&e))? {
            Some(v) => {
                let applied: Applied = decode(&v).map_err(|e| io_read(&*e))?;
                log.reset_high_watermark(applied.high_watermark.max(log.offsets().log_start));
                applied
            }
            // Never applied anything: a new replica (its log is empty), or a log written
            // before it was replicated, whose records stay visible.
            None => Applied { high_watermark: log.offsets().high_watermark, ..Applied::default() },
        };
        Ok(PartitionStateMachine { log, applied: Arc::new(Mutex::new(applied)) })
    }

    /// The partition log underneath.
    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// Last applied log id.
    pub fn last_applied(&self) -> Option<LogId<NodeId>> {
        self.applied.lock().last_applied
    }

    fn current_snapshot(&self) -> Result<Option<StoredSnapshot>, RaftStorageError> {
        match self.log.replica_value(ReplicaKey::Snapshot).map_err(|e| io_read(&e))? {
            Some(v) => Ok(Some(decode(&v).map_err(|e| io_read(&*e))?)),
            None => Ok(None),
        }
    }
}

impl RaftSnapshotBuilder<PartitionRaft> for PartitionStateMachine {
    /// Builds the small snapshot of docs/cluster.md §8 at the last applied entry and
    /// keeps it as the current one.
    async fn build_snapshot(&mut self) -> Result<Snapshot<PartitionRaft>, RaftStorageError> {
        let applied = self.applied.lock().clone();
        let state = self.log.replica_state(applied.high_watermark).map_err(|e| io_snapshot(&e))?;
        let data = SnapshotState {
            log_start: state.log_start.min(applied.high_watermark),
            high_watermark: applied.high_watermark,
            producers: state.producers,
            epochs: state.epochs,
        };
        let data = encode(&data).map_err(|e| io_snapshot(&*e))?;
        let snapshot_id = match applied.last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, applied.high_watermark),
            None => format!("none-{}", applied.high_watermark),
        };
        let meta = SnapshotMeta { last_log_id: applied.last_applied, last_membership: applied.membership, snapshot_id };
        let stored = StoredSnapshot { meta: meta.clone(), data: data.clone() };
        let value = encode(&stored).map_err(|e| io_snapshot(&*e))?;
        self.log.put_replica_value(ReplicaKey::Snapshot, &value).map_err(|e| io_snapshot(&e))?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<PartitionRaft> for PartitionStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), RaftStorageError> {
        let applied = self.applied.lock();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    /// Applies committed entries in order: a batch moves the high watermark to its end
    /// offset; DeleteRecords moves the log start; a membership is remembered. The
    /// applied state is written once per call, then the high watermark is published.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<PartitionReply>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry<PartitionRaft>> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.applied.lock().clone();
        let mut replies = Vec::new();
        for entry in entries {
            let reply = match entry.payload {
                EntryPayload::Blank => PartitionReply::None,
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), m);
                    PartitionReply::None
                }
                EntryPayload::Normal(PartitionCommand::Batch(bytes)) => {
                    if bytes.len() < batch::HEADER_LEN {
                        return Err(StorageIOError::apply(entry.log_id, openraft::AnyError::error("short batch")).into());
                    }
                    let (base_offset, last_offset) = batch::offsets_of(&bytes);
                    applied.high_watermark = applied.high_watermark.max(last_offset + 1);
                    PartitionReply::Appended { base_offset, last_offset }
                }
                EntryPayload::Normal(PartitionCommand::DeleteRecords { before_offset }) => {
                    // Everything applied before it is visible first: it deletes below it.
                    self.log.advance_high_watermark(applied.high_watermark);
                    match self.log.delete_records(before_offset) {
                        Ok(log_start) => PartitionReply::RecordsDeleted { log_start },
                        Err(StorageError::OffsetOutOfRange) => PartitionReply::OffsetOutOfRange,
                        Err(e) => return Err(StorageIOError::apply(entry.log_id, openraft::AnyError::error(e)).into()),
                    }
                }
            };
            applied.last_applied = Some(entry.log_id);
            replies.push(reply);
        }
        let value = encode(&applied).map_err(|e| io_write(&*e))?;
        self.log.replica_applied(&value, applied.high_watermark).map_err(|e| io_write(&e))?;
        *self.applied.lock() = applied;
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, RaftStorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    /// Installs a leader's snapshot: the partition state (log start, producers, epoch
    /// history; the log restarts at its high watermark when this replica is behind it),
    /// the applied state, and the snapshot as the current one.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), RaftStorageError> {
        let data = snapshot.into_inner();
        let state: SnapshotState = decode(&data).map_err(|e| io_snapshot(&*e))?;
        self.log
            .install_replica_state(&ReplicaState {
                log_start: state.log_start,
                log_end: state.high_watermark,
                producers: state.producers,
                epochs: state.epochs,
            })
            .map_err(|e| io_snapshot(&e))?;
        let applied = Applied {
            last_applied: meta.last_log_id,
            membership: meta.last_membership.clone(),
            high_watermark: state.high_watermark,
        };
        let stored = StoredSnapshot { meta: meta.clone(), data };
        let value = encode(&stored).map_err(|e| io_snapshot(&*e))?;
        self.log.put_replica_value(ReplicaKey::Snapshot, &value).map_err(|e| io_snapshot(&e))?;
        let value = encode(&applied).map_err(|e| io_write(&*e))?;
        self.log.replica_applied(&value, applied.high_watermark).map_err(|e| io_write(&e))?;
        *self.applied.lock() = applied;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<PartitionRaft>>, RaftStorageError> {
        Ok(self
            .current_snapshot()?
            .map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
