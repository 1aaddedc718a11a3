//! InitProducerId: idempotent producers get a fresh producer id (or, KIP-360, an
//! epoch bump); transactional producers get their transactional id's producer id at a
//! new epoch from the transaction coordinator, which fences the previous producer.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{auth, Session, Versions};
use crate::security::acl::{AuthorizationError, Operation, ResourceType};
use super::error::{txn_code, KafkaError};
use crate::broker::Broker;

/// The InitProducerId versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 5);

/// Allocates a producer id, or bumps the epoch of a known one (KIP-360).
pub async fn handle(broker: Arc<Broker>, session: Session, request: InitProducerIdRequest, version: i16) -> InitProducerIdResponse {
    let failed = |code: i16| {
        InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
    };
    if let Some(id) = request.transactional_id.as_ref() {
        // A transactional producer needs TRANSACTIONAL_ID WRITE (Kafka).
        if let Err(e) = auth::check(&broker, &session, Operation::Write, ResourceType::TransactionalId, id.as_str()) {
            return failed(e.code());
        }
        // KIP-360 (v3+): the producer id and epoch the client already has.
        let expected = (request.producer_id.0 >= 0 && request.producer_epoch >= 0).then_some((request.producer_id.0, request.producer_epoch));
        let timeout = request.transaction_timeout_ms as i64;
        return match broker.init_transactional_producer(id.as_str(), timeout, expected).await {
            Ok((pid, epoch)) => InitProducerIdResponse::default().with_producer_id(ProducerId(pid)).with_producer_epoch(epoch),
            // PRODUCER_FENCED exists from v4 (KIP-588).
            Err(e) => failed(txn_code(&e, version >= 4)),
        };
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
