//! The cluster: several brokers replicating partitions with Raft (openraft), in the
//! shape `docs/cluster.md` settles — one Raft group for cluster metadata (group 0, the
//! controller) and one Raft group per partition whose log is the partition's log.
//!
//! This module holds what every part of the cluster agrees on — node ids and group ids —
//! and its submodules, one concept each:
//!
//! * `transport` — the internal listener: one connection per broker pair, RPCs of every
//!   group multiplexed on it, liveness pings.
//! * `partition_raft` — a partition's Raft log and state machine on RocksDB (the log IS the
//!   partition's column family; Raft indexes translated to Kafka offsets).
//! * `metadata` — the controller group: brokers, topics, replica assignments.
//!
//! A single broker with no cluster settings is a one-broker cluster and needs none of it.

pub mod metadata;
pub mod transport;
pub mod node;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A broker's id in the cluster: Kafka's `node.id` and openraft's `NodeId` in every group.
pub type NodeId = u64;

/// The address data openraft keeps per member: the broker's internal listener
/// (`host:port`). Clients' listeners are broker registrations in the metadata group.
pub type Node = openraft::BasicNode;

/// Which Raft group a message or a piece of state belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum GroupId {
    /// The metadata ("controller") group: brokers, topics, assignments, configs.
    Metadata,
    /// The group replicating one partition, named by its topic id (stable across
    /// renames and recreations) and index.
    Partition {
        /// The topic's id (UUID).
        topic_id: Uuid,
        /// The partition index.
        partition: i32,
    },
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupId::Metadata => f.write_str("metadata"),
            GroupId::Partition { topic_id, partition } => write!(f, "{topic_id}-{partition}"),
        }
    }
}

pub mod partition_raft;
