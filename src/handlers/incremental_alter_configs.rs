//! IncrementalAlterConfigs: set, delete, append to or subtract from topic config overrides.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::admin::{alter_each, alterable_topic, error_message};
use super::Versions;
use super::error::KafkaError;
use crate::broker::{Broker, BrokerError};
use crate::error::StorageError;
use crate::broker::topic_config;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// The IncrementalAlterConfigs versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 1);

/// Applies each resource's operations; resources named twice in one request are refused.
pub async fn handle(
    broker: Arc<Broker>,
    session: super::Session,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
) -> IncrementalAlterConfigsResponse {
    let validate_only = request.validate_only;
    let outcomes = alter_each(request.resources, |r| (r.resource_type, r.resource_name.clone()), |r| {
        let op = crate::security::acl::Operation::AlterConfigs;
        super::auth::check_config_resource(&broker, &session, op, r.resource_type, r.resource_name.as_str())?;
        alter(&broker, r, validate_only)
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
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn alter(broker: &Broker, r: AlterConfigsResource, validate_only: bool) -> Result<(), BrokerError> {
    let topic = alterable_topic(broker, r.resource_type, r.resource_name.as_str())?;
    let mut configs = topic.configs.clone();
    apply(&mut configs, &r)?;
    broker.alter_topic_configs(&topic.name, configs, validate_only)
}

/// Applies the operations of one resource to its current overrides.
fn apply(configs: &mut BTreeMap<String, String>, r: &AlterConfigsResource) -> Result<(), StorageError> {
    let mut names = HashSet::new();
    for c in &r.configs {
        let key = c.name.as_str();
        if !names.insert(key) {
            return Err(StorageError::InvalidRequest(format!("config {key} is named more than once")).into());
        }
        let Some(default) = topic_config::default_of(key) else {
            return Err(StorageError::InvalidConfig(format!("unknown topic config {key}")).into());
        };
        let value = c.value.as_ref().map(|v| v.as_str());
        match c.config_operation {
            OP_SET => {
                let value = value.ok_or_else(|| StorageError::InvalidConfig(format!("null value for {key}")))?;
                configs.insert(key.to_string(), value.to_string());
            }
            OP_DELETE => {
                configs.remove(key);
            }
            OP_APPEND | OP_SUBTRACT => {
                if !topic_config::is_list(key) {
                    return Err(StorageError::InvalidConfig(format!("{key} is not a list: it cannot be appended to or subtracted from")).into());
                }
                let value = value.ok_or_else(|| StorageError::InvalidConfig(format!("null value for {key}")))?;
                let current = configs.get(key).map(String::as_str).unwrap_or(default);
                let mut items: Vec<String> =
                    current.split(',').map(str::trim).filter(|v| !v.is_empty()).map(String::from).collect();
                let change = value.split(',').map(str::trim).filter(|v| !v.is_empty());
                if c.config_operation == OP_APPEND {
                    for v in change {
                        if !items.iter().any(|i| i == v) {
                            items.push(v.to_string());
                        }
                    }
                } else {
                    let remove: Vec<&str> = change.collect();
                    items.retain(|i| !remove.contains(&i.as_str()));
                }
                configs.insert(key.to_string(), items.join(","));
            }
            other => return Err(StorageError::InvalidRequest(format!("unknown config operation {other}")).into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::admin::RESOURCE_TOPIC;
    use kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig;
    use kafka_protocol::protocol::StrBytes;

    fn op(name: &str, operation: i8, value: Option<&str>) -> AlterableConfig {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(name.into()))
            .with_config_operation(operation)
            .with_value(value.map(|v| StrBytes::from_string(v.into())))
    }

    fn run(configs: &mut BTreeMap<String, String>, ops: Vec<AlterableConfig>) -> Result<(), StorageError> {
        apply(configs, &AlterConfigsResource::default().with_resource_type(RESOURCE_TOPIC).with_configs(ops))
    }

    #[test]
    fn list_operations() {
        let mut c = BTreeMap::new();
        run(&mut c, vec![op("cleanup.policy", OP_APPEND, Some("compact"))]).unwrap();
        assert_eq!(c["cleanup.policy"], "delete,compact");
        run(&mut c, vec![op("cleanup.policy", OP_SUBTRACT, Some("delete"))]).unwrap();
        assert_eq!(c["cleanup.policy"], "compact");
        run(&mut c, vec![op("retention.ms", OP_SET, Some("1000")), op("cleanup.policy", OP_DELETE, None)]).unwrap();
        assert_eq!(c.get("cleanup.policy"), None);
        assert_eq!(c["retention.ms"], "1000");
    }

    #[test]
    fn bad_operations_fail() {
        let mut c = BTreeMap::new();
        assert!(matches!(run(&mut c, vec![op("retention.ms", OP_APPEND, Some("1"))]), Err(StorageError::InvalidConfig(_))));
        assert!(matches!(run(&mut c, vec![op("no.such", OP_SET, Some("1"))]), Err(StorageError::InvalidConfig(_))));
        assert!(matches!(run(&mut c, vec![op("retention.ms", 9, Some("1"))]), Err(StorageError::InvalidRequest(_))));
        let twice = vec![op("retention.ms", OP_SET, Some("1")), op("retention.ms", OP_DELETE, None)];
        assert!(matches!(run(&mut c, twice), Err(StorageError::InvalidRequest(_))));
    }
}
