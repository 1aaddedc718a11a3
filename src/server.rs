//! The accept loop: one task per connection, graceful shutdown on a signal.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::broker::{Broker, Endpoint};
use crate::connection;

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on every listener until `shutdown` resolves, then stops
/// accepting, lets connections answer what they have in flight, and flushes.
/// Each listener carries the address its clients are told to use.
pub async fn run(
    broker: Arc<Broker>,
    listeners: Vec<(TcpListener, Arc<Endpoint>)>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            (accepted, endpoint) = accept_any(&listeners) => match accepted {
                Ok((socket, peer)) => {
                    let span = tracing::info_span!("conn", %peer);
                    let serve = connection::serve(broker.clone(), endpoint, socket, peer, stop_rx.clone());
                    connections.spawn(serve.instrument(span));
                }
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    tracing::info!(connections = connections.len(), "shutting down: draining connections");
    drop(listeners);
    let _ = stop_tx.send(true);
    broker.begin_shutdown();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("connections still busy after {DRAIN_TIMEOUT:?}; closing them");
        connections.abort_all();
    }
    if let Err(e) = broker.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    tracing::info!("shutdown complete");
}

/// The next connection on any listener, with that listener's endpoint.
async fn accept_any(
    listeners: &[(TcpListener, Arc<Endpoint>)],
) -> (std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>, Arc<Endpoint>) {
    let accepts = listeners.iter().map(|(l, e)| Box::pin(async move { (l.accept().await, e.clone()) }));
    futures::future::select_all(accepts).await.0
}
