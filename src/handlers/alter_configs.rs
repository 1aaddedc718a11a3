//! AlterConfigs (the legacy, non-incremental form): replace all of a topic's config
//! overrides with the given set.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::admin::{alter_each, alterable_topic, error_message};
use super::Versions;
use super::error::KafkaError;
use crate::broker::{Broker, BrokerError};
use crate::error::StorageError;

/// The AlterConfigs versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 2);

/// Replaces each resource's overrides; resources named twice in one request are refused.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: AlterConfigsRequest, _version: i16) -> AlterConfigsResponse {
    let validate_only = request.validate_only;
    let outcomes = alter_each(request.resources, |r| (r.resource_type, r.resource_name.clone()), |r| {
        let op = crate::security::acl::Operation::AlterConfigs;
        super::auth::check_config_resource(&broker, &session, op, r.resource_type, r.resource_name.as_str())?;
        replace(&broker, r, validate_only)
    });
    let responses = outcomes
        .into_iter()
        .map(|(kind, name, outcome)| {
            let base = AlterConfigsResourceResponse::default().with_resource_type(kind).with_resource_name(name);
            match outcome {
                Ok(()) => base,
                Err(e) => base.with_error_code(e.code()).with_error_message(error_message(&e)),
            }
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

fn replace(broker: &Broker, r: AlterConfigsResource, validate_only: bool) -> Result<(), BrokerError> {
    let topic = alterable_topic(broker, r.resource_type, r.resource_name.as_str())?;
    let mut configs = BTreeMap::new();
    for c in r.configs {
        let key = c.name.to_string();
        let value = c.value.ok_or_else(|| StorageError::InvalidConfig(format!("null value for {key}")))?;
        if configs.insert(key.clone(), value.to_string()).is_some() {
            return Err(StorageError::InvalidRequest(format!("config {key} is named more than once")).into());
        }
    }
    broker.alter_topic_configs(&topic.name, configs, validate_only)
}
