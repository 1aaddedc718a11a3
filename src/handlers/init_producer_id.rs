//! InitProducerId for idempotent (non-transactional) producers.

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{auth, Session, Versions};
use crate::security::acl::{AuthorizationError, Operation, ResourceType};
use super::error::KafkaError;
use crate::broker::Broker;

/// The InitProducerId versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 5);

/// Allocates a producer id, or bumps the epoch of a known one (KIP-360).
pub async fn handle(broker: Arc<Broker>, session: Session, request: InitProducerIdRequest, _version: i16) -> InitProducerIdResponse {
    let failed = |code: i16| {
        InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    if request.transactional_id.is_some() {
        // Transactions come with a later issue; refuse clearly instead of pretending.
        return failed(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // An idempotent producer needs CLUSTER IDEMPOTENT_WRITE or WRITE on some topic (Kafka).
    if !auth::allowed_on_any(&broker, &session, Operation::Write, ResourceType::Topic)
        && auth::check_cluster(&broker, &session, Operation::IdempotentWrite).is_err()
    {
        return failed(AuthorizationError::Cluster.code());
    }
    if request.producer_id.0 >= 0 && request.producer_epoch >= 0 && request.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match broker.next_producer_id() {
        Ok(id) => InitProducerIdResponse::default().with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => failed(e.code()),
    }
}
