//! CreateTopics: new topics with partition counts and config overrides.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::error_message;
use super::describe_configs::{SOURCE_DEFAULT, SOURCE_TOPIC};
use super::error::KafkaError;
use super::Versions;
use crate::broker::{Broker, BrokerError, PartitionBudget, Topic};
use crate::error::StorageError;
use crate::broker::topic_config;

/// The CreateTopics versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(2, 7);

/// Creates each requested topic (or only validates, when asked). Creating column
/// families can take long: it runs on a blocking thread, so the connection's other
/// clients are served meanwhile.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: CreateTopicsRequest, version: i16) -> CreateTopicsResponse {
    let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
    // Creating a topic needs CREATE on the cluster or on the topic (Kafka).
    use crate::security::acl::{Operation, ResourceType};
    let cluster_create = super::auth::check_cluster(&broker, &session, Operation::Create).is_ok();
    let denied: std::collections::HashSet<String> = names
        .iter()
        .map(|n| n.0.to_string())
        .filter(|n| !cluster_create && !super::auth::allowed(&broker, &session, Operation::Create, ResourceType::Topic, n))
        .collect();
    match tokio::task::spawn_blocking(move || create_all(&broker, request, version, &denied)).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "CreateTopics failed");
            let failed = |name| {
                CreatableTopicResult::default().with_name(name).with_error_code(ResponseError::UnknownServerError.code())
            };
            CreateTopicsResponse::default().with_topics(names.into_iter().map(failed).collect())
        }
    }
}

fn create_all(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
    denied: &std::collections::HashSet<String>,
) -> CreateTopicsResponse {
    // Partitions this request has created (or validated) so far, against max_partitions_per_request.
    let mut budget = PartitionBudget::new(broker.config().max_partitions_per_request, "CreateTopics");
    let mut seen: HashMap<String, usize> = HashMap::new();
    for t in &request.topics {
        *seen.entry(t.name.0.to_string()).or_default() += 1;
    }
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.clone();
            let base = CreatableTopicResult::default().with_name(name.clone());
            if seen[name.0.as_str()] > 1 {
                return base
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(StrBytes::from_static_str("topic appears more than once in the request")));
            }
            if denied.contains(name.0.as_str()) {
                let e = crate::security::acl::AuthorizationError::Topic;
                return base.with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(e.to_string())));
            }
            match create(broker, t, request.validate_only, &mut budget) {
                Ok((partitions, rf, configs, topic)) => {
                    let mut created = base;
                    // v5 reports the topic's layout and configs, v7 its id.
                    if version >= 5 {
                        created = created.with_num_partitions(partitions).with_replication_factor(rf).with_configs(Some(describe(&configs)));
                    }
                    if version >= 7 {
                        created = created.with_topic_id(topic.map(|t| t.id).unwrap_or_default());
                    }
                    created
                }
                Err(e) => base.with_error_code(e.code()).with_error_message(error_message(&e)),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// Partitions, replication factor, config overrides and the topic (None: validate only).
type Created = (i32, i16, BTreeMap<String, String>, Option<Arc<Topic>>);

fn create(broker: &Broker, t: CreatableTopic, validate_only: bool, budget: &mut PartitionBudget) -> Result<Created, BrokerError> {
    let name = t.name.0.as_str();
    let partitions = if !t.assignments.is_empty() {
        if broker.cluster().is_some() {
            return Err(StorageError::InvalidReplicaAssignment("manual replica assignments are not supported in cluster mode yet".into()).into());
        }
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return Err(StorageError::InvalidRequest(
                "num_partitions and replication_factor must be -1 with a manual assignment".into(),
            ).into());
        }
        let node = broker.node_id();
        if t.assignments.iter().any(|a| a.broker_ids.iter().any(|b| b.0 != node) || a.broker_ids.len() != 1) {
            return Err(StorageError::InvalidReplicaAssignment(format!("only broker {node} exists, one replica each")).into());
        }
        t.assignments.len() as i32
    } else if t.num_partitions == -1 {
        broker.config().num_partitions
    } else {
        t.num_partitions
    };
    if broker.cluster().is_some() {
        return create_replicated(broker, t, partitions, validate_only, budget);
    }
    match t.replication_factor {
        -1 | 1 => {}
        rf if rf > 1 => {
            return Err(StorageError::InvalidReplicationFactor(format!(
                "replication factor {rf} is larger than the 1 available broker"
            )).into())
        }
        rf => return Err(StorageError::InvalidReplicationFactor(format!("replication factor must be positive, got {rf}")).into()),
    }
    let mut configs = BTreeMap::new();
    for c in t.configs {
        let value = c.value.ok_or_else(|| StorageError::InvalidConfig(format!("null value for {}", c.name.as_str())))?;
        configs.insert(c.name.to_string(), value.to_string());
    }
    broker.validate_create_topic(name, partitions, &configs)?;
    budget.check(partitions)?;
    if validate_only {
        // The topics validated before this one in the request count against the broker's cap.
        broker.check_partition_capacity(budget.used + partitions as usize)?;
        budget.used += partitions as usize;
        return Ok((partitions, 1, configs, None));
    }
    let topic = broker.create_topic(name, partitions, configs.clone())?;
    budget.used += partitions as usize;
    Ok((partitions, 1, configs, Some(topic)))
}

/// Cluster mode: validated as for one broker, then assigned over the live brokers and
/// committed by the controller (`replication_factor` -1: `default_replication_factor`).
fn create_replicated(
    broker: &Broker,
    t: CreatableTopic,
    partitions: i32,
    validate_only: bool,
    budget: &mut PartitionBudget,
) -> Result<Created, BrokerError> {
    let configs = configs_of(&t)?;
    budget.check(partitions)?;
    let requested = i32::from(t.replication_factor);
    let (rf, topic) = broker.create_topic_replicated(t.name.0.as_str(), partitions, requested, configs.clone(), validate_only)?;
    budget.used += partitions as usize;
    Ok((partitions, i16::try_from(rf).unwrap_or(i16::MAX), configs, topic))
}

fn configs_of(t: &CreatableTopic) -> Result<BTreeMap<String, String>, BrokerError> {
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let value = c.value.as_ref().ok_or_else(|| StorageError::InvalidConfig(format!("null value for {}", c.name.as_str())))?;
        configs.insert(c.name.to_string(), value.to_string());
    }
    Ok(configs)
}

/// The effective configs of a new topic, as CreateTopics v5+ returns them.
fn describe(overrides: &BTreeMap<String, String>) -> Vec<CreatableTopicConfigs> {
    topic_config::keys()
        .map(|key| {
            let (value, source) = match overrides.get(key) {
                Some(v) => (v.clone(), SOURCE_TOPIC),
                None => (topic_config::default_of(key).unwrap_or_default().to_string(), SOURCE_DEFAULT),
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(key))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect()
}
