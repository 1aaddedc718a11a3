//! A partition's Raft log and state machine on RocksDB (docs/cluster.md §5–§9).
//!
//! The Raft log IS the partition's column family: a data entry is one stored record
//! batch (written once, with its `ri/` translation key, by
//! [`PartitionLog::replica_append`]); blank, membership and DeleteRecords entries take
//! an index and no offset (`re/`). The state machine is the log itself: applying a
//! committed data entry moves the high watermark to its end offset; a snapshot is a few
//! KiB of metadata (log start, high watermark, producer state, epoch history).
//!
//! * [`PartitionRaft`] — the openraft type config of partition groups.
//! * [`PartitionLogStore`] — `RaftLogStorage` over a [`PartitionLog`].
//! * [`PartitionStateMachine`] — `RaftStateMachine` over the same log.

mod log_store;
mod state_machine;

#[cfg(test)]
mod tests;

use std::io::Cursor;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

pub use log_store::PartitionLogStore;
pub use state_machine::PartitionStateMachine;

use crate::storage::PartitionLog;

openraft::declare_raft_types!(
    /// The openraft type config of a partition's Raft group.
    pub PartitionRaft:
        D = PartitionCommand,
        R = PartitionReply,
        NodeId = crate::cluster::NodeId,
        Node = crate::cluster::Node,
        Entry = openraft::Entry<PartitionRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// A partition group's Raft handle.
pub type PartitionRaftHandle = openraft::Raft<PartitionRaft>;

/// What a partition's Raft entries carry (besides openraft's blank and membership entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionCommand {
    /// One record batch, stamped by the leader (`baseOffset`, `partitionLeaderEpoch`
    /// set): stored as is, never re-encoded.
    Batch(Bytes),
    /// DeleteRecords: every replica moves its log start to `before_offset` when applying.
    DeleteRecords {
        /// The new log start offset (at most the high watermark).
        before_offset: i64,
    },
}

/// What applying an entry answers on the leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionReply {
    /// A blank or membership entry.
    None,
    /// A batch, now committed: its offsets.
    Appended {
        /// Offset of its first record.
        base_offset: i64,
        /// Offset of its last record.
        last_offset: i64,
    },
    /// DeleteRecords applied: the log start offset afterwards.
    RecordsDeleted {
        /// The new log start offset.
        log_start: i64,
    },
    /// DeleteRecords named an offset above the high watermark.
    OffsetOutOfRange,
}

/// openraft's storage error for partition groups.
pub type RaftStorageError = openraft::StorageError<crate::cluster::NodeId>;

/// The log store and state machine of one replica of a partition, over its log.
pub fn open(log: Arc<PartitionLog>) -> Result<(PartitionLogStore, PartitionStateMachine), RaftStorageError> {
    let sm = PartitionStateMachine::open(log.clone())?;
    Ok((PartitionLogStore::new(log), sm))
}

/// openraft's per-partition config (docs/cluster.md §2): quiescent groups (no ticks;
/// elections and commit heartbeats are triggered by the broker), snapshots on demand.
pub fn raft_config() -> openraft::Config {
    openraft::Config {
        enable_tick: false,
        heartbeat_interval: 499,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_payload_entries: 64,
        ..Default::default()
    }
}

/// Encodes a value kept for openraft (vote, log ids, payloads, applied state).
fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, bincode::Error> {
    bincode::serialize(value)
}

/// Decodes a value written by [`encode`].
fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::Error> {
    bincode::deserialize(bytes)
}
