//! [`ClusterMetadata`]: the controller group's state machine, and its pure `apply`.
//!
//! Like `coordinator::reconcile`, this is logic without I/O: the Raft state machine
//! (see `store`) feeds it committed commands in log order and persists it as a
//! snapshot; handlers read it through the [`MetadataGroup`](super::MetadataGroup)'s
//! watch channel.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::assignment::{self, Placement};
use super::command::{Applied, BrokerRegistration, MetadataCommand, MetadataReply, ProducerIdBlock};
use crate::cluster::NodeId;
use crate::storage::topic_store::MAX_PARTITIONS;

/// Producer ids handed out per AllocateProducerIds (Kafka's block size).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Why the controller refused a command (or an assignment could not be made). Domain
/// errors: the handlers map them to Kafka codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MetadataError {
    /// No broker with this id is registered.
    #[error("broker {0} is not registered")]
    UnknownBroker(NodeId),
    /// A topic with this name exists.
    #[error("topic {0} already exists")]
    TopicAlreadyExists(String),
    /// A topic with this id exists (the proposer must pick a fresh id).
    #[error("topic id {0} is already in use")]
    TopicIdInUse(Uuid),
    /// No topic has this id.
    #[error("unknown topic id {0}")]
    UnknownTopicId(Uuid),
    /// The partition count is not acceptable.
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// A replica list is empty, repeats a broker, names an unregistered broker or has a
    /// size different from the topic's other partitions.
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    /// More replicas asked for than there are live brokers (or fewer than one).
    #[error("replication factor {requested} is invalid: {live} live brokers")]
    InvalidReplicationFactor {
        /// The replication factor asked for.
        requested: i32,
        /// Unfenced brokers available.
        live: usize,
    },
    /// Producer ids ran out (the 64-bit id space is used up).
    #[error("producer ids exhausted")]
    ProducerIdsExhausted,
}

/// A registered broker as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// What the broker registered with.
    pub registration: BrokerRegistration,
    /// Epoch of its latest registration (grows with every registration in the cluster).
    pub epoch: u64,
    /// Fenced: not heartbeating; leads nothing and gets no new replicas.
    pub fenced: bool,
}

/// A topic as the controller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// Topic name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
    /// Replica list per partition (first = preferred leader).
    pub assignments: Vec<Vec<NodeId>>,
}

impl TopicInfo {
    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.assignments.len()
    }

    /// Replicas per partition (all partitions have the same number).
    pub fn replication_factor(&self) -> usize {
        self.assignments.first().map_or(0, Vec::len)
    }
}

/// The cluster's metadata: brokers, topics and their assignments, and the producer id
/// high-water mark. Changed only by [`ClusterMetadata::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMetadata {
    brokers: BTreeMap<NodeId, BrokerInfo>,
    topics: BTreeMap<Uuid, TopicInfo>,
    topic_ids: BTreeMap<String, Uuid>,
    /// First producer id not yet handed out in a block.
    next_producer_id: i64,
    /// Epoch the next registration gets.
    next_broker_epoch: u64,
    /// The cluster's id, once a broker claimed it.
    cluster_id: Option<String>,
}

impl ClusterMetadata {
    /// Applies one committed command. Refused commands change nothing.
    pub fn apply(&mut self, cmd: MetadataCommand) -> MetadataReply {
        match cmd {
            MetadataCommand::RegisterBroker(registration) => {
                let broker_epoch = self.next_broker_epoch;
                self.next_broker_epoch += 1;
                let node_id = registration.node_id;
                self.brokers.insert(node_id, BrokerInfo { registration, epoch: broker_epoch, fenced: false });
                Ok(Applied::BrokerRegistered { broker_epoch })
            }
            MetadataCommand::ClaimClusterId { cluster_id } => {
                self.cluster_id.get_or_insert(cluster_id);
                Ok(Applied::Done)
            }
            MetadataCommand::FenceBroker { node_id } => self.set_fenced(node_id, true),
            MetadataCommand::UnfenceBroker { node_id } => self.set_fenced(node_id, false),
            MetadataCommand::CreateTopic { name, topic_id, configs, assignments } => {
                if self.topic_ids.contains_key(&name) {
                    return Err(MetadataError::TopicAlreadyExists(name));
                }
                if self.topics.contains_key(&topic_id) {
                    return Err(MetadataError::TopicIdInUse(topic_id));
                }
                if assignments.is_empty() {
                    return Err(MetadataError::InvalidPartitions("a topic needs at least one partition".into()));
                }
                self.check_partition_count(assignments.len())?;
                let rf = assignments[0].len();
                self.check_assignments(&assignments, rf)?;
                let count = assignments.len();
                self.topic_ids.insert(name.clone(), topic_id);
                self.topics.insert(topic_id, TopicInfo { name, id: topic_id, configs, assignments });
                Ok(Applied::Partitions { count })
            }
            MetadataCommand::DeleteTopic { topic_id } => {
                let topic = self.topics.remove(&topic_id).ok_or(MetadataError::UnknownTopicId(topic_id))?;
                self.topic_ids.remove(&topic.name);
                Ok(Applied::Done)
            }
            MetadataCommand::CreatePartitions { topic_id, assignments } => {
                let topic = self.topics.get(&topic_id).ok_or(MetadataError::UnknownTopicId(topic_id))?;
                if assignments.is_empty() {
                    return Err(MetadataError::InvalidPartitions("no partitions to add".into()));
                }
                self.check_partition_count(topic.partition_count().saturating_add(assignments.len()))?;
                self.check_assignments(&assignments, topic.replication_factor())?;
                let topic = self.topics.get_mut(&topic_id).ok_or(MetadataError::UnknownTopicId(topic_id))?;
                topic.assignments.extend(assignments);
                Ok(Applied::Partitions { count: topic.partition_count() })
            }
            MetadataCommand::AlterTopicConfigs { topic_id, configs } => {
                let topic = self.topics.get_mut(&topic_id).ok_or(MetadataError::UnknownTopicId(topic_id))?;
                topic.configs = configs;
                Ok(Applied::Done)
            }
            MetadataCommand::AllocateProducerIds { broker } => {
                if !self.brokers.contains_key(&broker) {
                    return Err(MetadataError::UnknownBroker(broker));
                }
                let first = self.next_producer_id;
                let next = first.checked_add(PRODUCER_ID_BLOCK_SIZE).ok_or(MetadataError::ProducerIdsExhausted)?;
                self.next_producer_id = next;
                Ok(Applied::ProducerIds(ProducerIdBlock { broker, first, size: PRODUCER_ID_BLOCK_SIZE }))
            }
        }
    }

    fn set_fenced(&mut self, node_id: NodeId, fenced: bool) -> MetadataReply {
        let broker = self.brokers.get_mut(&node_id).ok_or(MetadataError::UnknownBroker(node_id))?;
        broker.fenced = fenced;
        Ok(Applied::Done)
    }

    fn check_partition_count(&self, count: usize) -> Result<(), MetadataError> {
        if count > MAX_PARTITIONS as usize {
            return Err(MetadataError::InvalidPartitions(format!(
                "at most {MAX_PARTITIONS} partitions per topic, got {count}"
            )));
        }
        Ok(())
    }

    /// Every replica list has `rf` (≥ 1) distinct registered brokers.
    fn check_assignments(&self, assignments: &[Vec<NodeId>], rf: usize) -> Result<(), MetadataError> {
        for (i, replicas) in assignments.iter().enumerate() {
            if replicas.is_empty() {
                return Err(MetadataError::InvalidReplicaAssignment(format!("partition {i} has no replicas")));
            }
            if replicas.len() != rf {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "partition {i} has {} replicas, the topic's others have {rf}",
                    replicas.len()
                )));
            }
            let distinct: BTreeSet<_> = replicas.iter().collect();
            if distinct.len() != replicas.len() {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "partition {i} lists a broker twice: {replicas:?}"
                )));
            }
            if let Some(unknown) = replicas.iter().find(|b| !self.brokers.contains_key(b)) {
                return Err(MetadataError::InvalidReplicaAssignment(format!(
                    "partition {i} names broker {unknown}, which is not registered"
                )));
            }
        }
        Ok(())
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> &BTreeMap<NodeId, BrokerInfo> {
        &self.brokers
    }

    /// One registered broker.
    pub fn broker(&self, node_id: NodeId) -> Option<&BrokerInfo> {
        self.brokers.get(&node_id)
    }

    /// Ids of the unfenced brokers, ascending: where new replicas go.
    pub fn live_brokers(&self) -> Vec<NodeId> {
        self.brokers.iter().filter(|(_, b)| !b.fenced).map(|(id, _)| *id).collect()
    }

    /// Every topic, by id.
    pub fn topics(&self) -> &BTreeMap<Uuid, TopicInfo> {
        &self.topics
    }

    /// The topic with this id.
    pub fn topic(&self, id: Uuid) -> Option<&TopicInfo> {
        self.topics.get(&id)
    }

    /// The topic with this name.
    pub fn topic_by_name(&self, name: &str) -> Option<&TopicInfo> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    /// The cluster's id (None until a broker claimed one).
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The first producer id no block has covered yet.
    pub fn next_producer_id(&self) -> i64 {
        self.next_producer_id
    }

    /// Replica lists for `partitions` new partitions of `replication_factor` replicas over
    /// the live brokers (Kafka's rack-unaware placement). For a new topic pass
    /// `existing = None`; to grow a topic, pass it: the new partitions continue its
    /// striping, as Kafka's CreatePartitions does.
    pub fn assign(
        &self,
        partitions: usize,
        replication_factor: i32,
        existing: Option<&TopicInfo>,
        placement: Placement,
    ) -> Result<Vec<Vec<NodeId>>, MetadataError> {
        let live = self.live_brokers();
        match existing {
            None => assignment::assign_replicas(&live, partitions, replication_factor, 0, placement),
            Some(topic) => {
                // Kafka: continue from the broker that leads partition 0, at the next partition id.
                let start = topic
                    .assignments
                    .first()
                    .and_then(|r| r.first())
                    .map_or(0, |leader| live.iter().position(|b| b >= leader).unwrap_or(0));
                let fixed = Placement { start_index: start, replica_shift: start };
                assignment::assign_replicas(&live, partitions, replication_factor, topic.partition_count(), fixed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::metadata::command::ClientListener;
    use crate::security::SecurityProtocol;

    fn registration(id: NodeId) -> MetadataCommand {
        MetadataCommand::RegisterBroker(BrokerRegistration {
            node_id: id,
            internal_addr: format!("127.0.0.1:{}", 19000 + id),
            listeners: vec![ClientListener {
                name: "PLAINTEXT".into(),
                host: "localhost".into(),
                port: 9090 + id as u16,
                security_protocol: SecurityProtocol::Plaintext,
            }],
            rack: None,
        })
    }

    fn three_brokers() -> ClusterMetadata {
        let mut md = ClusterMetadata::default();
        for id in 1..=3 {
            md.apply(registration(id)).unwrap();
        }
        md
    }

    fn create(name: &str, id: Uuid, assignments: Vec<Vec<NodeId>>) -> MetadataCommand {
        MetadataCommand::CreateTopic { name: name.into(), topic_id: id, configs: BTreeMap::new(), assignments }
    }

    #[test]
    fn registration_epochs_grow_and_reregistration_replaces() {
        let mut md = ClusterMetadata::default();
        assert_eq!(md.apply(registration(1)), Ok(Applied::BrokerRegistered { broker_epoch: 0 }));
        assert_eq!(md.apply(registration(2)), Ok(Applied::BrokerRegistered { broker_epoch: 1 }));
        md.apply(MetadataCommand::FenceBroker { node_id: 1 }).unwrap();
        assert_eq!(md.live_brokers(), vec![2]);
        let MetadataCommand::RegisterBroker(mut again) = registration(1) else { unreachable!() };
        again.internal_addr = "10.0.0.1:9999".into();
        assert_eq!(md.apply(MetadataCommand::RegisterBroker(again)), Ok(Applied::BrokerRegistered { broker_epoch: 2 }));
        let b = md.broker(1).unwrap();
        assert_eq!((b.epoch, b.fenced, b.registration.internal_addr.as_str()), (2, false, "10.0.0.1:9999"));
        assert_eq!(md.live_brokers(), vec![1, 2]);
        assert_eq!(md.brokers().len(), 2);
    }

    #[test]
    fn fence_and_unfence_unknown_broker_refused() {
        let mut md = three_brokers();
        assert_eq!(md.apply(MetadataCommand::FenceBroker { node_id: 9 }), Err(MetadataError::UnknownBroker(9)));
        assert_eq!(md.apply(MetadataCommand::UnfenceBroker { node_id: 9 }), Err(MetadataError::UnknownBroker(9)));
        md.apply(MetadataCommand::FenceBroker { node_id: 2 }).unwrap();
        assert_eq!(md.live_brokers(), vec![1, 3]);
        md.apply(MetadataCommand::UnfenceBroker { node_id: 2 }).unwrap();
        assert_eq!(md.live_brokers(), vec![1, 2, 3]);
    }

    #[test]
    fn create_topic_then_lookups_and_duplicates_refused() {
        let mut md = three_brokers();
        let id = Uuid::new_v4();
        let a = vec![vec![1, 2], vec![2, 3], vec![3, 1]];
        assert_eq!(md.apply(create("orders", id, a.clone())), Ok(Applied::Partitions { count: 3 }));
        let t = md.topic_by_name("orders").unwrap();
        assert_eq!((t.id, t.partition_count(), t.replication_factor()), (id, 3, 2));
        assert_eq!(md.topic(id).unwrap().assignments, a);
        let before = md.clone();
        assert_eq!(
            md.apply(create("orders", Uuid::new_v4(), vec![vec![1]])),
            Err(MetadataError::TopicAlreadyExists("orders".into()))
        );
        assert_eq!(md.apply(create("other", id, vec![vec![1]])), Err(MetadataError::TopicIdInUse(id)));
        assert_eq!(md, before, "refused commands change nothing");
    }

    #[test]
    fn create_topic_validates_assignments() {
        let mut md = three_brokers();
        let before = md.clone();
        let bad = [
            (vec![], "no partitions"),
            (vec![vec![]], "no replicas"),
            (vec![vec![1, 1]], "duplicate broker"),
            (vec![vec![1, 4]], "unregistered broker"),
            (vec![vec![1, 2], vec![3]], "mixed replication factors"),
        ];
        for (assignments, why) in bad {
            let err = md.apply(create("t", Uuid::new_v4(), assignments)).expect_err(why);
            assert!(
                matches!(err, MetadataError::InvalidPartitions(_) | MetadataError::InvalidReplicaAssignment(_)),
                "{why}: {err:?}"
            );
        }
        let too_many = vec![vec![1]; MAX_PARTITIONS as usize + 1];
        assert!(matches!(md.apply(create("t", Uuid::new_v4(), too_many)), Err(MetadataError::InvalidPartitions(_))));
        assert_eq!(md, before);
    }

    #[test]
    fn delete_topic_frees_the_name() {
        let mut md = three_brokers();
        let id = Uuid::new_v4();
        md.apply(create("t", id, vec![vec![1]])).unwrap();
        assert_eq!(md.apply(MetadataCommand::DeleteTopic { topic_id: id }), Ok(Applied::Done));
        assert!(md.topic(id).is_none() && md.topic_by_name("t").is_none());
        assert_eq!(md.apply(MetadataCommand::DeleteTopic { topic_id: id }), Err(MetadataError::UnknownTopicId(id)));
        let id2 = Uuid::new_v4();
        assert_eq!(md.apply(create("t", id2, vec![vec![2]])), Ok(Applied::Partitions { count: 1 }));
        assert_eq!(md.topic_by_name("t").unwrap().id, id2);
    }

    #[test]
    fn create_partitions_appends_with_the_same_replication_factor() {
        let mut md = three_brokers();
        let id = Uuid::new_v4();
        md.apply(create("t", id, vec![vec![1, 2]])).unwrap();
        let add = |a: Vec<Vec<NodeId>>| MetadataCommand::CreatePartitions { topic_id: id, assignments: a };
        assert_eq!(md.apply(add(vec![vec![2, 3], vec![3, 1]])), Ok(Applied::Partitions { count: 3 }));
        assert_eq!(md.topic(id).unwrap().assignments, vec![vec![1, 2], vec![2, 3], vec![3, 1]]);
        assert!(matches!(md.apply(add(vec![vec![1]])), Err(MetadataError::InvalidReplicaAssignment(_))));
        assert!(matches!(md.apply(add(vec![])), Err(MetadataError::InvalidPartitions(_))));
        let other = Uuid::new_v4();
        assert_eq!(
            md.apply(MetadataCommand::CreatePartitions { topic_id: other, assignments: vec![vec![1, 2]] }),
            Err(MetadataError::UnknownTopicId(other))
        );
        assert_eq!(md.topic(id).unwrap().partition_count(), 3);
    }

    #[test]
    fn alter_configs_replaces_overrides() {
        let mut md = three_brokers();
        let id = Uuid::new_v4();
        md.apply(MetadataCommand::CreateTopic {
            name: "t".into(),
            topic_id: id,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            assignments: vec![vec![1]],
        })
        .unwrap();
        let configs = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
        md.apply(MetadataCommand::AlterTopicConfigs { topic_id: id, configs: configs.clone() }).unwrap();
        assert_eq!(md.topic(id).unwrap().configs, configs);
        let other = Uuid::new_v4();
        assert_eq!(
            md.apply(MetadataCommand::AlterTopicConfigs { topic_id: other, configs }),
            Err(MetadataError::UnknownTopicId(other))
        );
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut md = three_brokers();
        let mut blocks = Vec::new();
        for broker in [1, 2, 1, 3] {
            match md.apply(MetadataCommand::AllocateProducerIds { broker }) {
                Ok(Applied::ProducerIds(b)) => blocks.push(b),
                other => panic!("{other:?}"),
            }
        }
        let firsts: Vec<i64> = blocks.iter().map(|b| b.first).collect();
        assert_eq!(firsts, vec![0, 1000, 2000, 3000]);
        assert_eq!(blocks[1].broker, 2);
        assert!(blocks.iter().all(|b| b.size == PRODUCER_ID_BLOCK_SIZE));
        assert_eq!(md.next_producer_id(), 4000);
        assert_eq!(md.apply(MetadataCommand::AllocateProducerIds { broker: 7 }), Err(MetadataError::UnknownBroker(7)));
        md.next_producer_id = i64::MAX - 10;
        assert_eq!(md.apply(MetadataCommand::AllocateProducerIds { broker: 1 }), Err(MetadataError::ProducerIdsExhausted));
        assert_eq!(md.next_producer_id(), i64::MAX - 10);
    }

    #[test]
    fn assign_over_live_brokers_and_grow() {
        let mut md = three_brokers();
        md.apply(registration(4)).unwrap();
        md.apply(MetadataCommand::FenceBroker { node_id: 4 }).unwrap();
        let a = md.assign(6, 3, None, Placement { start_index: 0, replica_shift: 0 }).unwrap();
        assert!(a.iter().flatten().all(|b| *b != 4), "fenced broker gets no replicas: {a:?}");
        assert_eq!(
            md.assign(1, 4, None, Placement::default()),
            Err(MetadataError::InvalidReplicationFactor { requested: 4, live: 3 })
        );
        let id = Uuid::new_v4();
        md.apply(create("t", id, a)).unwrap();
        let topic = md.topic(id).unwrap().clone();
        let more = md.assign(3, 3, Some(&topic), Placement::default()).unwrap();
        assert_eq!(more.len(), 3);
        // Leaders continue the round robin: partitions 6, 7, 8 start where 0, 1, 2 did.
        let leaders: Vec<NodeId> = more.iter().map(|r| r[0]).collect();
        let first_leaders: Vec<NodeId> = topic.assignments[..3].iter().map(|r| r[0]).collect();
        assert_eq!(leaders, first_leaders);
        md.apply(MetadataCommand::CreatePartitions { topic_id: id, assignments: more }).unwrap();
        assert_eq!(md.topic(id).unwrap().partition_count(), 9);
    }

    #[test]
    fn state_round_trips_through_bincode() {
        let mut md = three_brokers();
        md.apply(create("t", Uuid::new_v4(), vec![vec![1, 2, 3]])).unwrap();
        md.apply(MetadataCommand::AllocateProducerIds { broker: 2 }).unwrap();
        let bytes = bincode::serialize(&md).unwrap();
        let back: ClusterMetadata = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back, md);
    }
}
