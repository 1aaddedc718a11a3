//! Small helpers shared by handlers: names, error messages, this node as a broker.

use std::collections::HashSet;
use std::sync::Arc;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::broker::{Broker, BrokerError, Topic, TopicRef};
use crate::error::StorageError;

/// Config resource type of a topic.
pub const RESOURCE_TOPIC: i8 = 2;
/// Config resource type of a broker.
pub const RESOURCE_BROKER: i8 = 4;

/// A topic name for a response.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The error message a response carries for an error.
pub fn error_message(e: &impl std::fmt::Display) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}

/// Runs `alter` on each resource of an alter-configs request, in order, and pairs each
/// outcome with the resource's (type, name). A resource named more than once in the
/// request is not altered: Kafka refuses every copy of it with INVALID_REQUEST.
pub fn alter_each<R>(
    resources: Vec<R>,
    key: impl Fn(&R) -> (i8, StrBytes),
    mut alter: impl FnMut(R) -> Result<(), BrokerError>,
) -> Vec<(i8, StrBytes, Result<(), BrokerError>)> {
    let mut seen = HashSet::new();
    let duplicates: HashSet<(i8, StrBytes)> = resources.iter().map(&key).filter(|k| !seen.insert(k.clone())).collect();
    resources
        .into_iter()
        .map(|r| {
            let (kind, name) = key(&r);
            let outcome = if duplicates.contains(&(kind, name.clone())) {
                Err(StorageError::InvalidRequest(format!("resource {} is named more than once", name.as_str())).into())
            } else {
                alter(r)
            };
            (kind, name, outcome)
        })
        .collect()
}

/// The topic an alter-configs resource names; broker configs are static and other
/// resource types do not exist here.
pub fn alterable_topic(broker: &Broker, resource_type: i8, name: &str) -> Result<Arc<Topic>, BrokerError> {
    match resource_type {
        RESOURCE_TOPIC => broker.topic(TopicRef::Name(name)),
        RESOURCE_BROKER => Err(StorageError::InvalidConfig("broker configs are static: set them in the config file".into()).into()),
        other => Err(StorageError::InvalidRequest(format!("unsupported resource type {other}")).into()),
    }
}
