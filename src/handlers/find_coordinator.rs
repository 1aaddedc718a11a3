//! FindCoordinator: this broker coordinates every group and every transactional id.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::Versions;
use crate::broker::{Broker, Endpoint};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The FindCoordinator versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 6);

/// Finds the coordinator for one key (v0–3) or many (v4+).
pub async fn handle(
    broker: Arc<Broker>,
    session: super::Session,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let endpoint: Arc<Endpoint> = session.endpoint.clone();
    use crate::security::acl::{Operation, ResourceType};
    // Finding a group's coordinator needs GROUP DESCRIBE, a transactional id's
    // TRANSACTIONAL_ID DESCRIBE (Kafka).
    let refused = |key: &str| match request.key_type {
        KEY_TYPE_GROUP => (!super::auth::allowed(&broker, &session, Operation::Describe, ResourceType::Group, key))
            .then(|| super::error::KafkaError::code(&crate::security::acl::AuthorizationError::Group)),
        _ => (!super::auth::allowed(&broker, &session, Operation::Describe, ResourceType::TransactionalId, key))
            .then(|| super::error::KafkaError::code(&crate::security::acl::AuthorizationError::TransactionalId)),
    };
    let (node, host, port) = (BrokerId(broker.node_id()), StrBytes::from_string(endpoint.host.clone()), endpoint.port);
    // Transaction coordinators exist from v1 (key types before that are groups).
    let known = request.key_type == KEY_TYPE_GROUP || request.key_type == KEY_TYPE_TRANSACTION;
    let error = (!known).then_some(ResponseError::InvalidRequest.code());
    if version < 4 {
        return match error.or_else(|| refused(request.key.as_str())) {
            Some(code) => FindCoordinatorResponse::default()
                .with_error_code(code)
                .with_node_id(BrokerId(-1))
                .with_host(StrBytes::default())
                .with_port(-1),
            None => FindCoordinatorResponse::default().with_node_id(node).with_host(host).with_port(port),
        };
    }
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| match error.or_else(|| refused(key.as_str())) {
            Some(code) => Coordinator::default().with_key(key).with_node_id(BrokerId(-1)).with_port(-1).with_error_code(code),
            None => Coordinator::default().with_key(key).with_node_id(node).with_host(host.clone()).with_port(port),
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
