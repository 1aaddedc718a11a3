//! What the controller commits: [`MetadataCommand`] (the Raft entries' payload) and
//! what applying one answers ([`MetadataReply`]).
//!
//! Commands are decided *before* they are proposed (the controller picks topic ids and
//! replica assignments), so applying one is deterministic: every broker applying the
//! same log reaches the same [`ClusterMetadata`](super::ClusterMetadata).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::MetadataError;
use crate::cluster::NodeId;
use crate::security::SecurityProtocol;

/// One client listener a broker advertises (Kafka's `advertised.listeners` entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientListener {
    /// Listener name (`PLAINTEXT`, `INTERNAL`, …).
    pub name: String,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: u16,
    /// The listener's security protocol.
    #[serde(with = "protocol_name")]
    pub security_protocol: SecurityProtocol,
}

/// What a broker tells the controller about itself when it (re)joins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// The broker's node id.
    pub node_id: NodeId,
    /// Its internal listener (`host:port`), where Raft RPCs reach it.
    pub internal_addr: String,
    /// Its client listeners, as Metadata and DescribeCluster answer them.
    pub listeners: Vec<ClientListener>,
    /// Its rack (`broker.rack`), if any.
    pub rack: Option<String>,
}

/// A change to the cluster metadata: the payload of the controller group's Raft entries.
///
/// Entries are encoded with bincode, which writes the variant's index: new commands are
/// appended at the end, existing ones are never reordered or changed. Planned next:
/// ACL bindings (create/delete, replacing today's `a/` keys) and SCRAM credentials
/// (upsert/delete, for AlterUserScramCredentials), each applied like the ones here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// A broker joins or rejoins the cluster (a registration also unfences it).
    RegisterBroker(BrokerRegistration),
    /// A broker stopped heartbeating: it leads nothing and is left out of new assignments.
    FenceBroker {
        /// The broker.
        node_id: NodeId,
    },
    /// A fenced broker is alive again.
    UnfenceBroker {
        /// The broker.
        node_id: NodeId,
    },
    /// Creates a topic with its replica assignment, decided by the controller.
    CreateTopic {
        /// Topic name.
        name: String,
        /// Topic id, chosen by the controller.
        topic_id: Uuid,
        /// Config overrides.
        configs: BTreeMap<String, String>,
        /// Replica list of each partition (index = partition); the first replica is the
        /// preferred leader.
        assignments: Vec<Vec<NodeId>>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// The topic.
        topic_id: Uuid,
    },
    /// Adds partitions to a topic.
    CreatePartitions {
        /// The topic.
        topic_id: Uuid,
        /// Replica lists of the new partitions, which follow the existing ones.
        assignments: Vec<Vec<NodeId>>,
    },
    /// Replaces a topic's config overrides (already validated by the proposer).
    AlterTopicConfigs {
        /// The topic.
        topic_id: Uuid,
        /// The new overrides (all of them).
        configs: BTreeMap<String, String>,
    },
    /// Hands a block of producer ids to a broker (KRaft's AllocateProducerIds): blocks
    /// never overlap, so no id is ever given out twice in the cluster.
    AllocateProducerIds {
        /// The broker asking.
        broker: NodeId,
    },
    /// Names the cluster (Kafka's cluster id) once: the first claim committed wins and
    /// later ones change nothing, so every broker reports the same id.
    ClaimClusterId {
        /// The id the proposing broker made for its data directory.
        cluster_id: String,
    },
}

/// What applying a command produced, when it succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applied {
    /// Done; nothing to report.
    Done,
    /// The broker is registered with this epoch (higher at every registration).
    BrokerRegistered {
        /// The registration's epoch.
        broker_epoch: u64,
    },
    /// The topic has this many partitions now.
    Partitions {
        /// Partition count.
        count: usize,
    },
    /// A block of producer ids for the asking broker.
    ProducerIds(ProducerIdBlock),
}

/// A block of producer ids: `first .. first + size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdBlock {
    /// The broker the block belongs to.
    pub broker: NodeId,
    /// First id of the block.
    pub first: i64,
    /// Number of ids in the block.
    pub size: i64,
}

/// The answer of applying one command: the outcome, or why it was refused (a refused
/// command is still in the log, and changed nothing).
pub type MetadataReply = Result<Applied, MetadataError>;

/// Serialises a [`SecurityProtocol`] by its Kafka name.
mod protocol_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::security::SecurityProtocol;

    pub fn serialize<S: Serializer>(p: &SecurityProtocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecurityProtocol, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries in existing logs name commands by bincode variant index: reordering the
    /// enum would make every stored log mean something else.
    #[test]
    fn command_variant_indexes_are_stable() {
        let id = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let registration = BrokerRegistration {
            node_id: 3,
            internal_addr: "h:1".into(),
            listeners: vec![ClientListener {
                name: "SSL".into(),
                host: "h".into(),
                port: 9093,
                security_protocol: SecurityProtocol::Ssl,
            }],
            rack: None,
        };
        let commands = [
            MetadataCommand::RegisterBroker(registration),
            MetadataCommand::FenceBroker { node_id: 3 },
            MetadataCommand::UnfenceBroker { node_id: 3 },
            MetadataCommand::CreateTopic { name: "t".into(), topic_id: id, configs: BTreeMap::new(), assignments: vec![vec![3]] },
            MetadataCommand::DeleteTopic { topic_id: id },
            MetadataCommand::CreatePartitions { topic_id: id, assignments: vec![vec![3]] },
            MetadataCommand::AlterTopicConfigs { topic_id: id, configs: BTreeMap::new() },
            MetadataCommand::AllocateProducerIds { broker: 3 },
            MetadataCommand::ClaimClusterId { cluster_id: "c".into() },
        ];
        for (index, cmd) in commands.iter().enumerate() {
            let bytes = bincode::serialize(cmd).unwrap();
            assert_eq!(bytes[..4], (index as u32).to_le_bytes(), "{cmd:?}");
            assert_eq!(&bincode::deserialize::<MetadataCommand>(&bytes).unwrap(), cmd);
        }
        let fence = bincode::serialize(&MetadataCommand::FenceBroker { node_id: 3 }).unwrap();
        assert_eq!(fence, [1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0]);
        let listener = bincode::serialize(&commands[0]).unwrap();
        assert!(listener.windows(3).any(|w| w == b"SSL"), "protocol stored by its Kafka name");
    }

    #[test]
    fn unknown_security_protocol_name_is_an_error_not_a_panic() {
        let mut bytes = bincode::serialize(&ClientListener {
            name: "X".into(),
            host: "h".into(),
            port: 1,
            security_protocol: SecurityProtocol::Plaintext,
        })
        .unwrap();
        let at = bytes.windows(9).position(|w| w == b"PLAINTEXT").unwrap();
        bytes[at..at + 9].copy_from_slice(b"PLAINTEXX");
        assert!(bincode::deserialize::<ClientListener>(&bytes).is_err());
    }
}
