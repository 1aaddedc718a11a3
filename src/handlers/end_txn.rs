//! EndTxn: commits or aborts the producer's transaction. The markers are written
//! into every partition of the transaction (and its offsets made visible) before
//! the answer.

use std::sync::Arc;

use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

use super::error::txn_code;
use super::{auth, Session, Versions};
use super::error::KafkaError;
use crate::broker::Broker;
use crate::security::acl::{Operation, ResourceType};

/// The EndTxn versions this broker answers (each has wire-level tests). v5
/// (transactions v2, KIP-890) is not offered.
pub const VERSIONS: Versions = Versions::new(0, 4);

/// Ends the transaction (TRANSACTIONAL_ID WRITE needed).
pub async fn handle(broker: Arc<Broker>, session: Session, request: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = request.transactional_id.0.as_str();
    if let Err(e) = auth::check(&broker, &session, Operation::Write, ResourceType::TransactionalId, id) {
        return EndTxnResponse::default().with_error_code(e.code());
    }
    let code = match broker.end_txn(id, request.producer_id.0, request.producer_epoch, request.committed).await {
        Ok(()) => 0,
        // PRODUCER_FENCED exists from v2 (KIP-588).
        Err(e) => txn_code(&e, version >= 2),
    };
    EndTxnResponse::default().with_error_code(code)
}
