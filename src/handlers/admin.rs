//! Small helpers shared by handlers: names, error messages, this node as a broker.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::error::StorageError;
use crate::storage::Topic;

/// Config resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Config resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// A topic name for a response.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The error message a response carries for a storage error.
pub fn error_message(e: &StorageError) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}

/// The (resource type, name) pairs that appear more than once in an alter-configs request:
/// Kafka refuses all of them with INVALID_REQUEST.
pub fn duplicate_resources<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> HashSet<(i8, String)> {
    let mut seen = HashSet::new();
    resources.map(|(t, n)| (t, n.to_string())).filter(|k| !seen.insert(k.clone())).collect()
}

/// The topic an alter-configs resource names; broker configs are static and other
/// resource types do not exist here.
pub fn alterable_topic(broker: &Broker, resource_type: i8, name: &str) -> Result<Arc<Topic>, StorageError> {
    match resource_type {
        RESOURCE_TOPIC => broker.topics.get(name).ok_or(StorageError::UnknownTopicOrPartition),
        RESOURCE_BROKER => Err(StorageError::InvalidConfig("broker configs are static: set them in the config file".into())),
        other => Err(StorageError::InvalidRequest(format!("unsupported resource type {other}"))),
    }
}
