//! AddOffsetsToTxn: adds a consumer group to the producer's transaction, so that
//! its TxnOffsetCommits become visible when the transaction commits.

use std::sync::Arc;

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::error::{txn_code, KafkaError};
use super::{auth, Session, Versions};
use crate::broker::Broker;
use crate::security::acl::{Operation, ResourceType};

/// The AddOffsetsToTxn versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 4);

/// Adds the group (TRANSACTIONAL_ID WRITE and GROUP READ needed, as Kafka).
pub async fn handle(broker: Arc<Broker>, session: Session, request: AddOffsetsToTxnRequest, version: i16) -> AddOffsetsToTxnResponse {
    let id = request.transactional_id.0.as_str();
    let group = request.group_id.0.as_str();
    let denied = auth::check(&broker, &session, Operation::Write, ResourceType::TransactionalId, id)
        .and_then(|()| auth::check(&broker, &session, Operation::Read, ResourceType::Group, group));
    if let Err(e) = denied {
        return AddOffsetsToTxnResponse::default().with_error_code(e.code());
    }
    let code = match broker.txns().add_offsets(id, request.producer_id.0, request.producer_epoch, group) {
        Ok(()) => match broker.txns().wait_durable().await {
            Ok(()) => 0,
            Err(e) => e.code(),
        },
        // PRODUCER_FENCED exists from v2 (KIP-588).
        Err(e) => txn_code(&e, version >= 2),
    };
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
