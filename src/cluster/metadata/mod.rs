//! The cluster metadata ("controller") Raft group, group 0 (`docs/cluster.md` §2, §3):
//! brokers, topics with their replica assignments and configs, and producer id blocks,
//! replicated to every broker by openraft.
//!
//! * [`command`]: what the controller commits ([`MetadataCommand`]) and what applying
//!   it answers ([`MetadataReply`]).
//! * [`state`]: [`ClusterMetadata`], the state machine, with a pure `apply`.
//! * [`assignment`]: Kafka's rack-unaware replica placement.
//! * [`store`]: the group's Raft log and state machine on RocksDB.
//! * [`group`]: [`MetadataGroup`], the handle the broker uses: propose, watch the
//!   applied state, bootstrap.
//!
//! Transport (how Raft RPCs reach other brokers) is not here: the group takes any
//! `RaftNetworkFactory<MetadataRaft>`.

pub mod assignment;
pub mod command;
pub mod group;
pub mod state;
pub mod store;
#[cfg(test)]
mod tests;

use std::io::Cursor;

pub use assignment::{assign_replicas, Placement};
pub use command::{Applied, BrokerRegistration, ClientListener, MetadataCommand, MetadataReply, ProducerIdBlock};
pub use group::{ControllerError, MetadataGroup};
pub use state::{BrokerInfo, ClusterMetadata, MetadataError, TopicInfo, PRODUCER_ID_BLOCK_SIZE};
pub use store::{MetadataLogStore, MetadataStateMachine};

openraft::declare_raft_types!(
    /// openraft's type configuration of the controller group: entries carry
    /// [`MetadataCommand`]s, applying one answers a [`MetadataReply`].
    pub MetadataRaft:
        D = MetadataCommand,
        R = MetadataReply,
        NodeId = crate::cluster::NodeId,
        Node = crate::cluster::Node,
        Entry = openraft::Entry<MetadataRaft>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
