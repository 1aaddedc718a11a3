//! `RaftLogStorage` over a partition log: entries are stored batches (+ `ri/`) or
//! `re/` rows; vote, committed and purged log ids are rows of the metadata CF.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, StorageIOError, Vote};
use tokio::sync::mpsc;

use super::{decode, encode, PartitionCommand, PartitionRaft, RaftStorageError};
use crate::cluster::NodeId;
use crate::storage::partition_log::{ReplicaEntry, ReplicaKey};
use crate::storage::{Durability, PartitionLog};

/// One replica's Raft log: the partition's column family (shared by RaftCore and the
/// replication tasks' readers; every clone reads and writes the same log).
#[derive(Clone)]
pub struct PartitionLogStore {
    log: Arc<PartitionLog>,
    /// Completes appends' flush callbacks in append order once the group commit covers
    /// them (started on the first append that has to wait for an fsync).
    flusher: Option<mpsc::UnboundedSender<(Durability, LogFlushed<PartitionRaft>)>>,
}

impl PartitionLogStore {
    /// The Raft log of this partition log.
    pub fn new(log: Arc<PartitionLog>) -> PartitionLogStore {
        PartitionLogStore { log, flusher: None }
    }

    /// The partition log underneath.
    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    fn read_value<T: serde::de::DeserializeOwned>(
        &self,
        key: ReplicaKey,
        err: fn(&dyn std::error::Error) -> StorageIOError<NodeId>,
    ) -> Result<Option<T>, RaftStorageError> {
        match self.log.replica_value(key).map_err(|e| err(&e))? {
            Some(v) => Ok(Some(decode(&v).map_err(|e| err(&*e))?)),
            None => Ok(None),
        }
    }
}

/// The openraft entry a stored entry is.
pub(super) fn to_entry(stored: ReplicaEntry) -> Result<Entry<PartitionRaft>, RaftStorageError> {
    let (term, leader, index) = (stored.term(), stored.leader(), stored.index());
    let log_id = LogId::new(CommittedLeaderId::new(term, leader), index);
    let payload = match stored {
        ReplicaEntry::Data { batch, .. } => EntryPayload::Normal(PartitionCommand::Batch(batch)),
        ReplicaEntry::Other { payload, .. } => {
            decode(&payload).map_err(|e| StorageIOError::read_log_at_index(index, &*e))?
        }
    };
    Ok(Entry { log_id, payload })
}

/// How an openraft entry is stored, with its term.
pub(super) fn from_entry(entry: Entry<PartitionRaft>) -> Result<(ReplicaEntry, u64), RaftStorageError> {
    let index = entry.log_id.index;
    let term = entry.log_id.leader_id.term;
    let leader = entry.log_id.leader_id.node_id;
    let stored = match entry.payload {
        EntryPayload::Normal(PartitionCommand::Batch(batch)) => ReplicaEntry::Data { index, leader, batch },
        payload => ReplicaEntry::Other {
            index,
            term,
            leader,
            payload: encode(&payload).map_err(|e| StorageIOError::write_log_entry(entry.log_id, &*e))?.into(),
        },
    };
    Ok((stored, term))
}

fn io_read_logs(e: &dyn std::error::Error) -> StorageIOError<NodeId> {
    StorageIOError::read_logs(openraft::AnyError::error(e))
}
fn io_write_logs(e: &dyn std::error::Error) -> StorageIOError<NodeId> {
    StorageIOError::write_logs(openraft::AnyError::error(e))
}
fn io_read_vote(e: &dyn std::error::Error) -> StorageIOError<NodeId> {
    StorageIOError::read_vote(openraft::AnyError::error(e))
}
fn io_write_vote(e: &dyn std::error::Error) -> StorageIOError<NodeId> {
    StorageIOError::write_vote(openraft::AnyError::error(e))
}

impl RaftLogReader<PartitionRaft> for PartitionLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<PartitionRaft>>, RaftStorageError> {
        let from = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let until = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        let stored = self.log.replica_entries(from, until).map_err(|e| io_read_logs(&e))?;
        stored.into_iter().map(to_entry).collect()
    }
}

impl RaftLogStorage<PartitionRaft> for PartitionLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<PartitionRaft>, RaftStorageError> {
        let last_purged_log_id: Option<LogId<NodeId>> = self.read_value(ReplicaKey::Purged, io_read_logs)?;
        let last = self.log.replica_last_entry().map_err(|e| io_read_logs(&e))?;
        let last_log_id = match last {
            Some((index, term, leader)) => Some(LogId::new(CommittedLeaderId::new(term, leader), index)),
            None => last_purged_log_id,
        };
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        PartitionLogStore::new(self.log.clone())
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), RaftStorageError> {
        let value = encode(vote).map_err(|e| io_write_vote(&*e))?;
        self.log.put_replica_value(ReplicaKey::Vote, &value).map_err(|e| io_write_vote(&e))?;
        // A vote must be on disk before it is answered.
        self.log.durability().wait().await.map_err(|e| io_write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, RaftStorageError> {
        self.read_value(ReplicaKey::Vote, io_read_vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), RaftStorageError> {
        let value = encode(&committed).map_err(|e| io_write_logs(&*e))?;
        Ok(self.log.put_replica_value(ReplicaKey::Committed, &value).map_err(|e| io_write_logs(&e))?)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, RaftStorageError> {
        Ok(self.read_value::<Option<LogId<NodeId>>>(ReplicaKey::Committed, io_read_logs)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<PartitionRaft>) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry<PartitionRaft>> + Send,
        I::IntoIter: Send,
    {
        let stored = entries.into_iter().map(from_entry).collect::<Result<Vec<_>, _>>()?;
        self.log.replica_append(stored).map_err(|e| io_write_logs(&e))?;
        match self.log.durability() {
            Durability::Done if self.flusher.is_none() => callback.log_io_completed(Ok(())),
            durability => {
                // Flush callbacks complete in append order: one task per log store.
                let flusher = self.flusher.get_or_insert_with(|| {
                    let (tx, mut rx) = mpsc::unbounded_channel::<(Durability, LogFlushed<PartitionRaft>)>();
                    tokio::spawn(async move {
                        while let Some((durability, callback)) = rx.recv().await {
                            let done = durability.wait().await.map_err(std::io::Error::other);
                            callback.log_io_completed(done);
                        }
                    });
                    tx
                });
                if let Err(mpsc::error::SendError((_, callback))) = flusher.send((durability, callback)) {
                    callback.log_io_completed(Err(std::io::Error::other("log flusher stopped")));
                }
            }
        }
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftStorageError> {
        self.log.replica_truncate(log_id.index).map_err(|e| io_write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), RaftStorageError> {
        let value = encode(&log_id).map_err(|e| io_write_logs(&*e))?;
        self.log.replica_purge(log_id.index, &value).map_err(|e| io_write_logs(&e).into())
    }
}
