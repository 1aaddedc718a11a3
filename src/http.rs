//! The operations HTTP endpoint: `/metrics` (Prometheus) and `/health`.
//!
//! It binds to loopback unless `metrics_listener` says otherwise; with
//! `metrics_token` set, `/metrics` wants `Authorization: Bearer <token>` (401
//! otherwise). `/health` says only whether the broker serves and stays open, for
//! container probes.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::broker::Broker;

/// Serves the endpoint until the broker shuts down.
pub async fn serve(broker: Arc<Broker>, listener: TcpListener) {
    let shutdown = broker.shutdown_signal().clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .with_state(broker);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await {
        tracing::error!(error = %e, "metrics endpoint failed");
    }
}

async fn metrics(State(broker): State<Arc<Broker>>, headers: HeaderMap) -> axum::response::Response {
    if !token_accepted(&broker.config().metrics_token, &headers) {
        return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "metrics_token required\n").into_response();
    }
    let body = broker.render_metrics();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response()
}

/// Whether the request carries `Authorization: Bearer <token>` (always, without a token).
fn token_accepted(token: &str, headers: &HeaderMap) -> bool {
    use subtle::ConstantTimeEq;
    if token.is_empty() {
        return true;
    }
    let Some(given) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    match given.split_once(' ') {
        Some((scheme, value)) if scheme.eq_ignore_ascii_case("bearer") => bool::from(value.trim().as_bytes().ct_eq(token.as_bytes())),
        _ => false,
    }
}

/// Warns when the endpoint is reachable beyond this host without a token.
pub fn warn_if_exposed(addr: &std::net::SocketAddr, token: &str) {
    if !addr.ip().is_loopback() && token.is_empty() {
        tracing::warn!(metrics = %addr, "metrics endpoint is reachable beyond loopback without metrics_token");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_token() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(token_accepted("", &HeaderMap::new()));
        assert!(!token_accepted("s3cret", &HeaderMap::new()));
        assert!(token_accepted("s3cret", &with("Bearer s3cret")));
        assert!(token_accepted("s3cret", &with("bearer s3cret")));
        assert!(!token_accepted("s3cret", &with("Bearer s3cre")));
        assert!(!token_accepted("s3cret", &with("Basic s3cret")));
    }
}

async fn health(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    if broker.shutdown_signal().is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ok\n")
    }
}
