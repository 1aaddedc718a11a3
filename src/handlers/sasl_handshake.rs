//! SaslHandshake: the client picks a SASL mechanism; the answer lists the ones
//! offered. v0 is followed by bare SASL tokens, v1 by SaslAuthenticate requests.

use std::sync::Arc;

use kafka_protocol::messages::{SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::{Session, Versions};
use crate::broker::Broker;
use crate::security::sasl::SaslError;

/// The SaslHandshake versions this broker answers.
pub const VERSIONS: Versions = Versions::new(0, 1);

/// Selects the mechanism for this connection.
pub async fn handle(
    _broker: Arc<Broker>,
    session: Session,
    request: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let Some(auth) = session.listener.sasl.clone() else {
        let e = SaslError::IllegalState("SASL is not enabled on this listener".into());
        return SaslHandshakeResponse::default().with_error_code(e.code());
    };
    let mechanisms = auth.mechanisms().iter().map(|m| StrBytes::from_static_str(m.name())).collect();
    let result = session.sasl.lock().handshake(&auth, request.mechanism.as_str(), version == 0);
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            tracing::info!(peer = %session.peer, mechanism = %request.mechanism.as_str(), error = %e, "SASL handshake refused");
            e.code()
        }
    };
    SaslHandshakeResponse::default().with_error_code(code).with_mechanisms(mechanisms)
}
