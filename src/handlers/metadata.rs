//! Metadata: brokers (this one, at its advertised listener) and topics with ids,
//! creating unknown topics when allowed.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::admin::topic_name;
use super::error::KafkaError;
use super::{auth, Session, Versions};
use crate::security::acl::{AuthorizationError, Operation, ResourceType};
use crate::broker::{Broker, Endpoint, Topic, TopicRef};


/// The Metadata versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 13);

/// Answers a metadata request.
pub async fn handle(broker: Arc<Broker>, session: Session, request: MetadataRequest, version: i16) -> MetadataResponse {
    let endpoint = session.endpoint.clone();
    let describable = |name: &str| auth::allowed(&broker, &session, Operation::Describe, ResourceType::Topic, name);
    // Cluster mode: topics are created through the controller only (CreateTopics).
    let auto_create = broker.cluster().is_none() && broker.config().auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    // Kafka's bit field of what the principal may do on each topic, when asked for.
    let ops = |name: &str| auth::operations_if(request.include_topic_authorized_operations, &broker, &session, ResourceType::Topic, name);
    let wanted = match request.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(list),
    };
    let topics = match wanted {
        // Topics the client may not describe are left out of a listing.
        None => broker
            .all_topics()
            .iter()
            .filter(|t| describable(&t.name))
            .map(|t| describe(&broker, t, ops(&t.name), version))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|wanted| match wanted.name {
                Some(name) => {
                    let name = name.0.as_str();
                    // Auto-creation needs CREATE on the cluster or the topic (Kafka).
                    let may_create = || {
                        auth::allowed(&broker, &session, Operation::Create, ResourceType::Cluster, crate::security::acl::CLUSTER_NAME)
                            || auth::allowed(&broker, &session, Operation::Create, ResourceType::Topic, name)
                    };
                    let missing = || broker.topic(TopicRef::Name(name)).is_err();
                    if !describable(name) || (auto_create && missing() && !may_create()) {
                        refused(Some(name), Uuid::nil())
                    } else {
                        by_name(&broker, name, auto_create, ops(name), version)
                    }
                }
                None => match broker.topic(TopicRef::Id(wanted.topic_id)) {
                    Ok(t) if !describable(&t.name) => refused(None, wanted.topic_id),
                    Ok(t) => by_id(&broker, wanted.topic_id, ops(&t.name), version),
                    Err(_) => by_id(&broker, wanted.topic_id, auth::OPERATIONS_OMITTED, version),
                },
            })
            .collect(),
    };
    let mut response = MetadataResponse::default().with_brokers(brokers(&broker, &endpoint)).with_topics(topics);
    if version >= 1 {
        response.controller_id = BrokerId(controller_id(&broker));
    }
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(broker.cluster_id()));
    }
    response
        .with_cluster_authorized_operations(cluster_operations(&broker, &session, request.include_cluster_authorized_operations))
}

/// The cluster's authorized operations (v8–10) when asked for: 0 without
/// DESCRIBE on the cluster, as Kafka answers.
fn cluster_operations(broker: &Broker, session: &Session, wanted: bool) -> i32 {
    let cluster = crate::security::acl::CLUSTER_NAME;
    if !wanted {
        auth::OPERATIONS_OMITTED
    } else if !auth::allowed(broker, session, Operation::Describe, ResourceType::Cluster, cluster) {
        0
    } else {
        auth::authorized_operations(broker, session, ResourceType::Cluster, cluster)
    }
}

/// Every registered, unfenced broker in cluster mode (this one alone until its
/// registration is applied), else this broker.
fn brokers(broker: &Broker, endpoint: &Endpoint) -> Vec<MetadataResponseBroker> {
    match broker.cluster_brokers(&endpoint.host, endpoint.port) {
        Some(all) => all
            .into_iter()
            .map(|b| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(b.host))
                    .with_port(b.port)
                    .with_rack(b.rack.map(StrBytes::from_string))
            })
            .collect(),
        None => vec![this_broker(broker, endpoint)],
    }
}

/// The controller: group 0's leader in cluster mode (-1 while none is known), else this broker.
pub fn controller_id(broker: &Broker) -> i32 {
    match broker.cluster() {
        Some(_) => broker.controller_id().unwrap_or(-1),
        None => broker.node_id(),
    }
}

/// This broker as metadata lists it.
fn this_broker(broker: &Broker, endpoint: &Endpoint) -> MetadataResponseBroker {
    MetadataResponseBroker::default()
        .with_node_id(BrokerId(broker.node_id()))
        .with_host(StrBytes::from_string(endpoint.host.clone()))
        .with_port(endpoint.port)
}

fn by_name(broker: &Broker, name: &str, auto_create: bool, ops: i32, version: i16) -> MetadataResponseTopic {
    match broker.topic_or_create(name, auto_create) {
        Ok(topic) => describe(broker, &topic, ops, version),
        Err(e) => MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(e.code())
            .with_topic_authorized_operations(ops),
    }
}

/// A topic the client may not see (or create); as Kafka, its authorized
/// operations are not computed.
fn refused(name: Option<&str>, id: Uuid) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(AuthorizationError::Topic.code())
        .with_topic_authorized_operations(auth::OPERATIONS_OMITTED)
}

fn by_id(broker: &Broker, id: Uuid, ops: i32, version: i16) -> MetadataResponseTopic {
    match broker.topic(TopicRef::Id(id)) {
        Ok(topic) => describe(broker, &topic, ops, version),
        Err(_) => MetadataResponseTopic::default()
            .with_topic_id(id)
            .with_error_code(ResponseError::UnknownTopicId.code())
            .with_topic_authorized_operations(ops),
    }
}

fn describe(broker: &Broker, topic: &Arc<Topic>, ops: i32, version: i16) -> MetadataResponseTopic {
    let node = BrokerId(broker.node_id());
    // Cluster mode: replicas from the controller's assignment, leader = first replica.
    let assigned = broker.partition_replicas(topic);
    let partitions = broker
        .partitions(topic)
        .iter()
        .map(|p| {
            let (leader, replicas) = match assigned.as_ref().and_then(|a| usize::try_from(p.index()).ok().and_then(|i| a.get(i))) {
                Some(r) => (BrokerId(r.leader), r.replicas.iter().map(|&b| BrokerId(b)).collect()),
                None => (node, vec![node]),
            };
            let partition = MetadataResponsePartition::default()
                .with_partition_index(p.index())
                .with_leader_id(leader)
                .with_replica_nodes(replicas.clone())
                .with_isr_nodes(replicas);
            // Leader epochs are reported from v7.
            if version >= 7 {
                partition.with_leader_epoch(p.offsets().leader_epoch)
            } else {
                partition
            }
        })
        .collect();
    let described = MetadataResponseTopic::default()
        .with_name(Some(topic_name(&topic.name)))
        .with_partitions(partitions)
        .with_topic_authorized_operations(ops);
    // Topic ids are reported from v10.
    if version >= 10 {
        described.with_topic_id(topic.id)
    } else {
        described
    }
}
