//! The outbound side: one connection to each peer, dialled and re-dialled by a task of its
//! own; calls register a correlation id, queue their frame on the connection's writer and
//! wait for the answer the reader hands over.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::error::TransportError;
use super::frame::{self, Header};
use super::{io, Inner};
use crate::cluster::NodeId;

/// First pause before re-dialling a peer; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(20);
/// Longest pause between dials.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// Longest a dial may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// An answer: its header and body.
pub(super) type Reply = (Header, Bytes);

/// A peer broker: its internal address and the current connection to it.
pub(super) struct Peer {
    pub(super) node: NodeId,
    addr: Mutex<String>,
    conn: Mutex<Option<Arc<Conn>>>,
    /// Cancelled when the peer is removed or the transport shuts down.
    pub(super) stop: CancellationToken,
    /// Drops the current connection (and re-dials): for a peer that stopped answering, so
    /// frames queued for it do not pile up behind a socket nobody reads.
    reset: tokio::sync::Notify,
}

/// One established connection: the writer's queue and the calls waiting for answers.
struct Conn {
    frames: mpsc::UnboundedSender<Bytes>,
    inflight: Mutex<Inflight>,
}

#[derive(Default)]
struct Inflight {
    /// Set once the connection broke: no call may wait on it any more.
    closed: bool,
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
}

impl Conn {
    /// Fails every waiting call (their senders drop: the callers see the loss).
    fn close(&self) {
        let mut inflight = self.inflight.lock();
        inflight.closed = true;
        inflight.waiting.clear();
    }
}

impl Peer {
    pub(super) fn new(node: NodeId, addr: String, stop: CancellationToken) -> Peer {
        Peer { node, addr: Mutex::new(addr), conn: Mutex::new(None), stop, reset: tokio::sync::Notify::new() }
    }

    /// The address the next dial uses.
    pub(super) fn addr(&self) -> String {
        self.addr.lock().clone()
    }

    /// Changes the address (takes effect at the next dial); true if it changed.
    pub(super) fn set_addr(&self, addr: &str) -> bool {
        let mut current = self.addr.lock();
        if *current == addr {
            return false;
        }
        *current = addr.to_string();
        true
    }

    /// Whether a connection is established.
    pub(super) fn connected(&self) -> bool {
        self.conn.lock().is_some()
    }

    /// Closes the current connection, if any (its calls fail); the peer is re-dialled.
    pub(super) fn reset_connection(&self) {
        if self.connected() {
            self.reset.notify_one();
        }
    }

    /// Sends `frame` (a request with `header.correlation_id`) and waits up to `timeout`
    /// for its answer.
    pub(super) async fn call(&self, correlation_id: u64, frame: Bytes, timeout: Duration) -> Result<Reply, TransportError> {
        let conn = self.conn.lock().clone().ok_or(TransportError::NotConnected(self.node))?;
        let (tx, rx) = oneshot::channel();
        {
            let mut inflight = conn.inflight.lock();
            if inflight.closed {
                return Err(TransportError::ConnectionLost(self.node));
            }
            inflight.waiting.insert(correlation_id, tx);
        }
        if conn.frames.send(frame).is_err() {
            conn.inflight.lock().waiting.remove(&correlation_id);
            return Err(TransportError::ConnectionLost(self.node));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(TransportError::ConnectionLost(self.node)),
            Err(_) => {
                conn.inflight.lock().waiting.remove(&correlation_id);
                Err(TransportError::Timeout { node: self.node, timeout })
            }
        }
    }
}

/// Keeps a connection to `peer` open until it is removed or the transport stops: dials,
/// serves the connection until it breaks, fails its in-flight calls, backs off, re-dials.
pub(super) async fn maintain(inner: Arc<Inner>, peer: Arc<Peer>) {
    let mut backoff = MIN_BACKOFF;
    let mut failures = 0u64;
    loop {
        let addr = peer.addr();
        let dialled = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr)) => r,
            _ = peer.stop.cancelled() => return,
        };
        match dialled {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                inner.stats.dialled.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(peer = peer.node, %addr, "internal connection established");
                failures = 0;
                backoff = MIN_BACKOFF;
                let why = serve(&inner, &peer, stream).await;
                tracing::info!(peer = peer.node, %addr, reason = %why, "internal connection closed");
            }
            Ok(Err(e)) => {
                failures += 1;
                log_dial_failure(peer.node, &addr, failures, &e.to_string());
            }
            Err(_) => {
                failures += 1;
                log_dial_failure(peer.node, &addr, failures, "connect timed out");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = peer.stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// The first failure of a series is worth a line; the retries every half second are not.
fn log_dial_failure(node: NodeId, addr: &str, failures: u64, error: &str) {
    if failures == 1 {
        tracing::warn!(peer = node, %addr, %error, "cannot connect to peer; retrying with backoff");
    } else {
        tracing::debug!(peer = node, %addr, %error, failures, "cannot connect to peer");
    }
}

/// Serves one established connection until it breaks or the peer is stopped; returns why.
async fn serve(inner: &Arc<Inner>, peer: &Arc<Peer>, stream: TcpStream) -> String {
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    let conn = Arc::new(Conn { frames: tx, inflight: Mutex::new(Inflight::default()) });
    *peer.conn.lock() = Some(conn.clone());
    let mut reader = io::framed_reader(read, inner.settings.max_frame_bytes);
    let read_answers = async {
        loop {
            let frame = match io::next_frame(&mut reader).await {
                Ok(Some(f)) => f,
                Ok(None) => return "closed by peer".to_string(),
                Err(e) => return format!("read failed: {e}"),
            };
            match frame::decode(frame) {
                Ok((header, body)) if header.response => {
                    let waiting = conn.inflight.lock().waiting.remove(&header.correlation_id);
                    // None: the call timed out meanwhile; its answer is dropped.
                    if let Some(tx) = waiting {
                        let _ = tx.send((header, body));
                    }
                }
                Ok((header, _)) => {
                    inner.stats.connection_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return format!("peer sent a request ({:?}) on an outbound connection", header.kind);
                }
                Err(e) => {
                    inner.stats.connection_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return format!("malformed frame: {e}");
                }
            }
        }
    };
    let why = tokio::select! {
        why = read_answers => why,
        r = io::write_frames(write, rx) => match r {
            Ok(()) => "writer stopped".to_string(),
            Err(e) => format!("write failed: {e}"),
        },
        _ = peer.stop.cancelled() => "stopped".to_string(),
        _ = peer.reset.notified() => "peer stopped answering".to_string(),
    };
    {
        let mut current = peer.conn.lock();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &conn)) {
            *current = None;
        }
    }
    conn.close();
    why
}
