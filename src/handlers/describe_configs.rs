//! DescribeConfigs: topic configs (overrides and Kafka's defaults) and the
//! broker's own settings under their Kafka names.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Versions;
use crate::broker::{Broker, Topic, TopicRef};
use crate::broker::topic_config;

/// Config source: a topic override.
pub const SOURCE_TOPIC: i8 = 1;
/// Config source: the broker's static configuration.
pub const SOURCE_STATIC_BROKER: i8 = 4;
/// Config source: a default.
pub const SOURCE_DEFAULT: i8 = 5;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

/// One config entry as it will be reported.
struct Entry {
    name: String,
    value: String,
    source: i8,
    read_only: bool,
    config_type: i8,
}

/// The DescribeConfigs versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(1, 4);

/// Describes each requested resource.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: DescribeConfigsRequest, version: i16) -> DescribeConfigsResponse {
    let results = request
        .resources
        .into_iter()
        .map(|r| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            let op = crate::security::acl::Operation::DescribeConfigs;
            if let Err(e) = super::auth::check_config_resource(&broker, &session, op, r.resource_type, r.resource_name.as_str()) {
                return base.with_error_code(super::error::KafkaError::code(&e)).with_error_message(Some(StrBytes::from_string(e.to_string())));
            }
            let entries = match r.resource_type {
                RESOURCE_TOPIC => match broker.topic(TopicRef::Name(r.resource_name.as_str())).ok() {
                    Some(topic) => topic_entries(&broker, &topic),
                    None => return base.with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                },
                RESOURCE_BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != broker.node_id().to_string() {
                        return base
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(StrBytes::from_string(format!("unknown broker id {name}"))));
                    }
                    broker_entries(&broker)
                }
                other => {
                    return base
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(format!("unsupported resource type {other}"))))
                }
            };
            let keys = r.configuration_keys;
            let configs = entries
                .into_iter()
                .filter(|e| keys.as_ref().map(|k| k.iter().any(|k| k.as_str() == e.name)).unwrap_or(true))
                .map(|e| to_result(e, request.include_synonyms, version))
                .collect();
            base.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn to_result(e: Entry, synonyms: bool, version: i16) -> DescribeConfigsResourceResult {
    let name = StrBytes::from_string(e.name);
    let value = Some(StrBytes::from_string(e.value));
    let synonyms = if synonyms {
        vec![DescribeConfigsSynonym::default().with_name(name.clone()).with_value(value.clone()).with_source(e.source)]
    } else {
        vec![]
    };
    DescribeConfigsResourceResult::default()
        .with_name(name)
        .with_value(value)
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_config_type(if version >= 3 { e.config_type } else { 0 })
        .with_synonyms(synonyms)
}

fn topic_entries(broker: &Broker, topic: &Topic) -> Vec<Entry> {
    // Topic configs the broker's own settings default (Kafka: log.retention.ms, …).
    let config = broker.config();
    let broker_default = |key: &str| match key {
        "retention.ms" => Some(config.log_retention_ms.to_string()),
        "retention.bytes" => Some(config.log_retention_bytes.to_string()),
        _ => None,
    };
    topic_config::keys()
        .map(|key| {
            let kafka_default = topic_config::default_of(key).unwrap_or_default().to_string();
            let (value, source) = match (topic.configs.get(key), broker_default(key)) {
                (Some(v), _) => (v.clone(), SOURCE_TOPIC),
                (None, Some(v)) if v != kafka_default => (v, SOURCE_STATIC_BROKER),
                (None, _) => (kafka_default, SOURCE_DEFAULT),
            };
            Entry { name: key.to_string(), value, source, read_only: false, config_type: topic_config::type_of(key) }
        })
        .collect()
}

fn broker_entries(broker: &Broker) -> Vec<Entry> {
    let c = broker.config();
    let entry = |name: &str, value: String, config_type: i8| Entry {
        name: name.to_string(),
        value,
        source: SOURCE_STATIC_BROKER,
        read_only: true,
        config_type,
    };
    const BOOLEAN: i8 = 1;
    const STRING: i8 = 2;
    const INT: i8 = 3;
    const LONG: i8 = 5;
    vec![
        entry("advertised.listeners", format!("PLAINTEXT://{}", c.advertised_listener), STRING),
        entry("auto.create.topics.enable", c.auto_create_topics.to_string(), BOOLEAN),
        entry("broker.id", c.node_id.to_string(), INT),
        entry("default.replication.factor", "1".into(), INT),
        entry("listeners", format!("PLAINTEXT://{}", c.listener), STRING),
        entry("log.dirs", c.data_dir.display().to_string(), STRING),
        entry("log.retention.ms", topic_config::default_of("retention.ms").unwrap_or_default().into(), LONG),
        entry("message.max.bytes", topic_config::default_of("max.message.bytes").unwrap_or_default().into(), INT),
        entry("min.insync.replicas", "1".into(), INT),
        entry("node.id", c.node_id.to_string(), INT),
        entry("num.partitions", c.num_partitions.to_string(), INT),
        entry("offsets.topic.replication.factor", "1".into(), INT),
        entry("socket.request.max.bytes", c.max_frame_bytes.to_string(), INT),
        entry("transaction.state.log.replication.factor", "1".into(), INT),
    ]
}
