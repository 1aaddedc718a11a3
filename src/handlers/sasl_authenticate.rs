//! SaslAuthenticate: one SASL token of the mechanism chosen by SaslHandshake.
//! A failure is answered after `connection_failed_authentication_delay_ms`, and
//! the connection serves nothing more. With `connections_max_reauth_ms` the
//! answer that completes an authentication carries it as `session_lifetime_ms`
//! (v1+, KIP-368): the client re-authenticates before then or is disconnected.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::{Session, Versions};
use crate::broker::Broker;
use crate::security::sasl::SaslError;

/// The SaslAuthenticate versions this broker answers.
pub const VERSIONS: Versions = Versions::new(0, 2);

/// Runs one step of the exchange.
pub async fn handle(
    _broker: Arc<Broker>,
    session: Session,
    request: SaslAuthenticateRequest,
    version: i16,
) -> SaslAuthenticateResponse {
    match authenticate(&session, &request.auth_bytes).await {
        Ok(reply) => {
            let response = SaslAuthenticateResponse::default().with_error_message(None).with_auth_bytes(Bytes::from(reply));
            // The step that completes an authentication tells the session's lifetime.
            let lifetime = session.listener.sasl.as_ref().and_then(|a| a.session_lifetime());
            match lifetime {
                Some(l) if version >= 1 && session.sasl.lock().is_authenticated() => {
                    response.with_session_lifetime_ms(i64::try_from(l.as_millis()).unwrap_or(i64::MAX))
                }
                _ => response,
            }
        }
        Err(e) => SaslAuthenticateResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
    }
}

/// One step of the exchange for `session`, shared with the bare tokens that
/// follow a v0 SaslHandshake; failures are logged and delayed.
pub async fn authenticate(session: &Session, token: &[u8]) -> Result<Vec<u8>, SaslError> {
    let Some(auth) = session.listener.sasl.clone() else {
        return Err(SaslError::IllegalState("SASL is not enabled on this listener".into()));
    };
    let result = {
        let mut sasl = session.sasl.lock();
        let result = sasl.authenticate(&auth, token);
        if let Some(principal) = sasl.principal().filter(|_| result.is_ok()) {
            tracing::info!(peer = %session.peer, %principal, "SASL authentication succeeded");
        }
        result
    };
    if let Err(e) = &result {
        tracing::warn!(peer = %session.peer, listener = %session.listener.name, error = %e, "SASL authentication failed");
        if matches!(e, SaslError::AuthenticationFailed(_)) {
            tokio::time::sleep(auth.failure_delay()).await;
        }
    }
    result
}
