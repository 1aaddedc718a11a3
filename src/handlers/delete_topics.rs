//! DeleteTopics: by name (all versions) or by topic id (v6+).

use std::sync::Arc;

use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use uuid::Uuid;

use super::admin::{error_message, topic_name};
use super::error::KafkaError;
use super::Versions;
use crate::broker::{Broker, TopicRef};

/// Clears fields the response version does not have (ids and messages, v5/v6).
fn for_version(mut result: DeletableTopicResult, version: i16) -> DeletableTopicResult {
    if version < 6 {
        result.topic_id = Uuid::nil();
    }
    if version < 5 {
        result.error_message = None;
    }
    result
}

/// The DeleteTopics versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(1, 6);

/// Deletes each named topic.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
    let wanted: Vec<(Option<TopicName>, Uuid)> = if version >= 6 {
        request.topics.into_iter().map(|t| (t.name, t.topic_id)).collect()
    } else {
        request.topic_names.into_iter().map(|n| (Some(n), Uuid::nil())).collect()
    };
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        responses.push({
            let requested_name = name.as_ref().map(|n| n.0.to_string());
            let target = match &name {
                Some(n) => TopicRef::Name(n.0.as_str()),
                None => TopicRef::Id(id),
            };
            let allowed = super::auth::topic(&broker, &session, crate::security::acl::Operation::Delete, target);
            // Cluster mode: the controller deletes the topic; every broker drops it.
            let deleted = match allowed {
                Ok(_) if broker.cluster().is_some() => broker.delete_topic_replicated(target).await,
                Ok(_) => broker.delete_topic(target),
                Err(e) => Err(e),
            };
            let result = match deleted {
                Ok(topic) => {
                    DeletableTopicResult::default().with_name(Some(topic_name(&topic.name))).with_topic_id(topic.id)
                }
                Err(e) => DeletableTopicResult::default()
                    .with_name(requested_name.map(|n| topic_name(&n)))
                    .with_topic_id(id)
                    .with_error_code(e.code())
                    .with_error_message(error_message(&e)),
            };
            for_version(result, version)
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
