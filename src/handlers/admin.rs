//! Small helpers shared by handlers: names, error messages, this node as a broker.

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::error::StorageError;

/// A topic name for a response.
pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// The error message a response carries for a storage error.
pub fn error_message(e: &StorageError) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}
