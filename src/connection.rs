//! One client connection: read frames, dispatch requests (several may be in
//! flight), write responses in request order.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::ApiKey;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_util::codec::FramedRead;
use tracing::Instrument;

use crate::broker::{Broker, Endpoint};
use crate::error::ConnectionError;
use crate::handlers::{self, Reply, Session};
use crate::metrics::Metrics;
use crate::protocol::{self, Request};

/// Requests a client may have in flight on one connection before we stop reading.
const MAX_IN_FLIGHT: usize = 64;

/// Request bytes a connection may hold in flight before we stop reading (one
/// request always may). Without it a producer pipelining 1 MB requests parks up
/// to 64 MB in the broker per connection, and ten of them dominate its memory;
/// past this much data in flight, more pipelining adds no throughput.
const MAX_IN_FLIGHT_BYTES: usize = 16 * 1024 * 1024;

/// Serves one connection until the client closes it, it breaks the protocol, or
/// the broker shuts down (then in-flight requests are answered first).
///
/// Requests are processed in the order they arrive, as Kafka guarantees: a
/// request starts only when the ones before it have finished. The exception is
/// a run of produce requests: their appends happen in order when they start,
/// and only their wait for durability overlaps, so pipelined produces share
/// fsyncs without reordering anything a client can observe.
pub async fn serve(
    broker: Arc<Broker>,
    endpoint: Arc<Endpoint>,
    socket: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = socket.set_nodelay(true);
    broker.metrics().connections.inc();
    broker.metrics().connections_accepted.inc();
    let _open = scopeguard(&broker);
    let session = Session { endpoint, peer };
    let (reader, mut writer) = socket.into_split();
    let mut frames = FramedRead::with_capacity(reader, protocol::codec(broker.config().max_frame_bytes), 64 * 1024);
    let mut in_flight = FuturesOrdered::new();
    // Whether each in-flight request is a produce, and its size, oldest first.
    let mut kinds: VecDeque<(bool, usize)> = VecDeque::new();
    let mut in_flight_bytes = 0usize;
    let mut waiting: Option<Request> = None;
    let mut reading = true;
    loop {
        if let Some(request) = waiting.take() {
            let is_produce = request.api_key == ApiKey::Produce;
            let size = request.body.len();
            if kinds.is_empty() || (is_produce && kinds.iter().all(|(p, _)| *p)) {
                match start(&broker, &session, request) {
                    Ok(reply) => {
                        in_flight.push_back(reply);
                        kinds.push_back((is_produce, size));
                        in_flight_bytes += size;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "closing connection");
                        reading = false;
                    }
                }
            } else {
                waiting = Some(request);
            }
        }
        let can_read = reading
            && waiting.is_none()
            && in_flight.len() < MAX_IN_FLIGHT
            && in_flight_bytes < MAX_IN_FLIGHT_BYTES;
        tokio::select! {
            Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some((_, size)) = kinds.pop_front() {
                    in_flight_bytes -= size;
                }
                match reply {
                    Ok(Some(frame)) => {
                        if let Err(e) = frame.write_to(&mut writer).await {
                            tracing::debug!(error = %e, "client went away");
                            return;
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "closing connection");
                        return;
                    }
                }
            }
            frame = frames.next(), if can_read => {
                match frame.map(|f| f.map_err(ConnectionError::from).and_then(|f| Request::parse(f.freeze()))) {
                    Some(Ok(request)) => waiting = Some(request),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "bad request, closing connection");
                        reading = false;
                    }
                    None => reading = false,
                }
            }
            _ = shutdown.changed(), if reading => reading = false,
        }
        if !reading && in_flight.is_empty() && waiting.is_none() {
            break;
        }
    }
    let _ = writer.shutdown().await;
    tracing::debug!(%peer, "connection closed");
}

/// Parses a frame and starts its handler inside a request span.
fn start(
    broker: &Arc<Broker>,
    session: &Session,
    request: Request,
) -> Result<futures::future::BoxFuture<'static, Reply>, ConnectionError> {
    let span = tracing::debug_span!(
        "request",
        api = ?request.api_key,
        version = request.version,
        correlation_id = request.correlation_id,
        client_id = request.client_id.as_deref().unwrap_or(""),
    );
    let started = Instant::now();
    let labels = Metrics::api(request.api_key);
    broker.metrics().requests.get_or_create(&labels).inc();
    let reply = match span.in_scope(|| handlers::dispatch(broker, session, request)) {
        Ok(reply) => reply,
        Err(e) => {
            broker.metrics().errors.get_or_create(&labels).inc();
            return Err(e);
        }
    };
    let broker = broker.clone();
    Ok(async move {
        let reply = reply.await;
        let elapsed = started.elapsed();
        broker.metrics().latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
        if reply.is_err() {
            broker.metrics().errors.get_or_create(&labels).inc();
        }
        tracing::debug!(elapsed_us = elapsed.as_micros() as u64, "request done");
        reply
    }
    .instrument(span)
    .boxed())
}

/// Decrements the open-connections gauge when the connection task ends, however it ends.
struct OpenConnection(Arc<Broker>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.metrics().connections.dec();
    }
}

fn scopeguard(broker: &Arc<Broker>) -> OpenConnection {
    OpenConnection(broker.clone())
}
