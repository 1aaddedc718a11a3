//! One client connection: read frames, dispatch requests (several may be in
//! flight), write responses in request order.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::Instrument;

use crate::broker::{Broker, Endpoint};
use crate::error::ConnectionError;
use crate::handlers::{self, Reply, Session};
use crate::metrics::Metrics;
use crate::protocol::frames::{FramePool, FrameReader, Reservation};
use crate::protocol::{self, Request};
use crate::security::ListenerSecurity;

/// Longest a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Requests a client may have in flight on one connection before we stop reading.
const MAX_IN_FLIGHT: usize = 64;

/// Request bytes a connection may hold in flight before we stop reading (one
/// request always may). Without it a producer pipelining 1 MB requests parks up
/// to 64 MB in the broker per connection, and ten of them dominate its memory;
/// past this much data in flight, more pipelining adds no throughput.
const MAX_IN_FLIGHT_BYTES: usize = 16 * 1024 * 1024;

/// What every connection shares: its limits.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    /// Close the connection after this long without a complete request while
    /// nothing is in flight (`connections_max_idle_ms`).
    pub max_idle: Duration,
    /// The broker-wide budget for buffered request frames (`queued_max_request_bytes`).
    pub pool: FramePool,
}

/// A request read and not yet finished: whether it is a produce, its size, and
/// the bytes it holds in the request pool (released when it is done).
struct Pending {
    is_produce: bool,
    size: usize,
    _reservation: Reservation,
}

/// Serves one connection until the client closes it, it breaks the protocol,
/// it stays idle for `settings.max_idle`, or the broker shuts down (then
/// in-flight requests are answered first).
///
/// Requests are processed in the order they arrive, as Kafka guarantees: a
/// request starts only when the ones before it have finished. The exception is
/// a run of produce requests: their appends happen in order when they start,
/// and only their wait for durability overlaps, so pipelined produces share
/// fsyncs without reordering anything a client can observe.
///
/// A request this broker refuses (an unknown API key, an unsupported version,
/// an undecodable header or body) closes the connection, as Kafka does, once
/// the requests before it have been answered.
///
/// On an SSL or SASL_SSL listener the TLS handshake comes first; a client that
/// fails it (a plaintext client, an untrusted certificate) is logged and dropped.
pub async fn serve(
    broker: Arc<Broker>,
    endpoint: Arc<Endpoint>,
    listener: Arc<ListenerSecurity>,
    socket: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    settings: ConnectionSettings,
) {
    let _ = socket.set_nodelay(true);
    broker.metrics().connections.inc();
    broker.metrics().connections_accepted.inc();
    let _open = scopeguard(&broker);
    let mut session = Session { endpoint, peer, listener: listener.clone(), sasl: Default::default(), tls_principal: None };
    let Some(tls) = &listener.tls else {
        let (reader, writer) = socket.into_split();
        return serve_stream(broker, session, reader, writer, shutdown, settings).await;
    };
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(socket)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::info!(%peer, listener = %listener.name, error = %e, "TLS handshake failed: closing connection");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, listener = %listener.name, "TLS handshake timed out: closing connection");
            return;
        }
    };
    tracing::debug!(
        protocol = ?stream.get_ref().1.protocol_version(),
        client_certificate = stream.get_ref().1.peer_certificates().is_some(),
        "TLS established"
    );
    // On SSL listeners a client certificate names the principal (SASL does on SASL_SSL).
    if listener.protocol == crate::security::SecurityProtocol::Ssl {
        if let Some(certificate) = stream.get_ref().1.peer_certificates().and_then(|c| c.first()) {
            match crate::security::tls::principal_from_certificate(certificate) {
                Ok(principal) => {
                    tracing::debug!(%peer, %principal, "client certificate principal");
                    session.tls_principal = Some(principal.into());
                }
                Err(e) => {
                    tracing::info!(%peer, listener = %listener.name, error = %e, "unreadable client certificate: closing connection");
                    return;
                }
            }
        }
    }
    let (reader, writer) = tokio::io::split(stream);
    serve_stream(broker, session, reader, writer, shutdown, settings).await
}

/// Serves requests on an established (plaintext or TLS) byte stream.
async fn serve_stream<R, W>(
    broker: Arc<Broker>,
    session: Session,
    reader: R,
    mut writer: W,
    mut shutdown: watch::Receiver<bool>,
    settings: ConnectionSettings,
) where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
{
    let peer = session.peer;
    let mut frames = FrameReader::new(
        reader,
        broker.config().max_frame_bytes,
        settings.pool.clone(),
        broker.metrics().request_pool_waits.clone(),
    );
    let mut in_flight = FuturesOrdered::new();
    // Each in-flight request, oldest first.
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut in_flight_bytes = 0usize;
    let mut waiting: Option<(Request, Reservation)> = None;
    let mut reading = true;
    let idle = tokio::time::sleep(settings.max_idle);
    tokio::pin!(idle);
    loop {
        if let Some((request, reservation)) = waiting.take() {
            let is_produce = request.api_key == ApiKey::Produce;
            let size = request.body.len();
            if pending.is_empty() || (is_produce && pending.iter().all(|p| p.is_produce)) {
                let (api_key, version) = (request.api_key, request.version);
                let client_id = request.client_id.clone();
                let started = match admitted(&session, api_key) {
                    Ok(()) => start(&broker, &session, request),
                    Err(e) => Err(e),
                };
                match started {
                    Ok(reply) => {
                        in_flight.push_back(reply);
                        pending.push_back(Pending { is_produce, size, _reservation: reservation });
                        in_flight_bytes += size;
                    }
                    Err(e) => {
                        broker.metrics().requests_refused.get_or_create(&Metrics::api(api_key)).inc();
                        tracing::warn!(
                            %peer,
                            api_key = api_key as i16,
                            api = ?api_key,
                            version,
                            client_id = client_id.as_deref().unwrap_or(""),
                            error = %e,
                            "refusing request: closing connection"
                        );
                        reading = false;
                    }
                }
            } else {
                waiting = Some((request, reservation));
            }
        }
        // Nothing left to read, answer or start: done. (Checked before the select:
        // with every branch disabled it would have nothing to wait for.)
        if !reading && in_flight.is_empty() && waiting.is_none() {
            break;
        }
        let can_read = reading
            && waiting.is_none()
            && in_flight.len() < MAX_IN_FLIGHT
            && in_flight_bytes < MAX_IN_FLIGHT_BYTES;
        // The idle clock runs only while the client owes us the next request.
        let idle_armed = reading && in_flight.is_empty() && waiting.is_none();
        tokio::select! {
            Some(reply) = in_flight.next(), if !in_flight.is_empty() => {
                if let Some(done) = pending.pop_front() {
                    in_flight_bytes -= done.size;
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
                idle.as_mut().reset(tokio::time::Instant::now() + settings.max_idle);
            }
            frame = frames.next_frame(), if can_read => {
                match frame {
                    Ok(Some(frame)) if session.sasl.lock().expects_raw_token() => {
                        // After a v0 SaslHandshake: a bare SASL token, answered bare.
                        match handlers::sasl_authenticate::authenticate(&session, &frame.bytes).await {
                            Ok(reply) => {
                                let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
                                framed.extend_from_slice(&reply);
                                if let Err(e) = writer.write_all(&framed).await {
                                    tracing::debug!(error = %e, "client went away");
                                    return;
                                }
                            }
                            Err(_) => reading = false,
                        }
                    }
                    Ok(Some(frame)) => match Request::parse(frame.bytes.freeze()) {
                        Ok(request) => {
                            waiting = Some((request, frame.reservation));
                            idle.as_mut().reset(tokio::time::Instant::now() + settings.max_idle);
                        }
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "bad request header: closing connection");
                            reading = false;
                        }
                    },
                    Ok(None) => reading = false,
                    Err(protocol::frames::FrameError::Io(e)) => {
                        tracing::debug!(error = %e, "connection closed while reading");
                        reading = false;
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "bad request frame: closing connection");
                        reading = false;
                    }
                }
            }
            _ = shutdown.changed(), if reading => reading = false,
            _ = &mut idle, if idle_armed => {
                broker.metrics().connections_idle_closed.inc();
                tracing::info!(
                    %peer,
                    idle_ms = settings.max_idle.as_millis() as u64,
                    mid_frame = frames.mid_frame(),
                    "closing idle connection (connections_max_idle_ms)"
                );
                reading = false;
            }
            else => break,
        }
    }
    let _ = writer.shutdown().await;
    tracing::debug!(%peer, "connection closed");
}

/// Whether the connection may make this request now: on a SASL listener only
/// ApiVersions and the SASL requests come before authentication, and nothing
/// after a failed one (Kafka closes the connection then).
fn admitted(session: &Session, api_key: ApiKey) -> Result<(), ConnectionError> {
    if session.listener.sasl.is_none() {
        return Ok(());
    }
    let sasl = session.sasl.lock();
    let pre_auth = matches!(api_key, ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
    // KIP-368: once the session has expired only a re-authentication may follow.
    if sasl.expired(Instant::now()) && !matches!(api_key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
        tracing::info!(peer = %session.peer, api_key = api_key as i16, "SASL session expired without re-authentication");
        return Err(ConnectionError::NotAuthenticated { api_key: api_key as i16 });
    }
    if sasl.is_authenticated() || (pre_auth && !sasl.has_failed()) {
        Ok(())
    } else {
        Err(ConnectionError::NotAuthenticated { api_key: api_key as i16 })
    }
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
