//! The internal transport (docs/cluster.md §3, §10): broker-to-broker traffic on the
//! internal listener.
//!
//! * One TCP connection to each peer (and one from it: one per direction), carrying the
//!   RPCs of every Raft group multiplexed by [`GroupId`] and matched to their answers by
//!   correlation id, so many groups' RPCs are in flight at once on one socket; a writer
//!   task per connection writes whatever is queued together. Frames: [`frame`].
//! * [`GroupNetworkFactory`] is openraft's network for any type config whose members are
//!   brokers ([`NodeId`], [`Node`]); bodies are the openraft messages in bincode (serde),
//!   so record batches inside entries (`bytes::Bytes`) travel as raw bytes.
//! * The server side dispatches requests to the local replica registered for their group
//!   ([`Transport::register_group`]; implemented for every `openraft::Raft<C>`); a group
//!   with no local replica is answered `UnknownGroup` at once (openraft sees
//!   `Unreachable`). Group-less application requests go to one [`AppHandler`].
//! * Calls time out per openraft's `RPCOption`; a broken connection fails its in-flight
//!   calls at once and is re-dialled with backoff.
//! * Liveness: each broker pings every peer every `cluster_liveness_interval_ms`; the set of
//!   live peers is a `watch` channel ([`Transport::live_peers`]).

pub mod error;
pub mod frame;
pub mod handler;
mod io;
pub mod liveness;
pub mod network;
mod peer;
mod server;

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::{HandlerError, TransportError};
pub use frame::RpcKind;
pub use handler::{app_handler, AppHandler, GroupHandler, HandlerFuture};
pub use network::{GroupNetwork, GroupNetworkFactory};

use super::{GroupId, NodeId};
use frame::{Header, Status};
use peer::Peer;

/// What a transport needs to know.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// This broker's node id (answered to pings, named in timeouts).
    pub node_id: NodeId,
    /// Bind address of the internal listener (`ip:port`; port 0 picks a free one).
    pub listener: String,
    /// Largest frame accepted or sent, in bytes.
    pub max_frame_bytes: usize,
    /// Ping period; three missed pings make a peer suspected dead.
    pub liveness_interval: Duration,
}

impl TransportSettings {
    /// The settings of `config`, or `None` in single-broker mode (no internal listener).
    pub fn from_config(config: &crate::config::Config) -> Option<TransportSettings> {
        if config.internal_listener.is_empty() {
            return None;
        }
        Some(TransportSettings {
            node_id: config.node_id.max(0) as NodeId,
            listener: config.internal_listener.clone(),
            max_frame_bytes: config.max_frame_bytes,
            liveness_interval: Duration::from_millis(config.cluster_liveness_interval_ms),
        })
    }
}

/// Counters of a transport's connections (for tests and, later, metrics).
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Outbound connections established.
    pub dialled: AtomicU64,
    /// Inbound connections accepted.
    pub accepted: AtomicU64,
    /// Connections closed because of a malformed frame or an I/O error.
    pub connection_errors: AtomicU64,
}

/// A broker's end of the internal transport; cheap to clone.
#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    settings: TransportSettings,
    local_addr: SocketAddr,
    peers: RwLock<HashMap<NodeId, Arc<Peer>>>,
    groups: RwLock<HashMap<GroupId, Arc<dyn GroupHandler>>>,
    app: RwLock<Option<Arc<dyn AppHandler>>>,
    live: watch::Sender<BTreeSet<NodeId>>,
    next_correlation_id: AtomicU64,
    shutdown: CancellationToken,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    stats: TransportStats,
}

impl Transport {
    /// Binds the internal listener and starts serving it.
    pub async fn start(settings: TransportSettings) -> std::io::Result<Transport> {
        let addr: SocketAddr = settings
            .listener
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{}: {e}", settings.listener)))?;
        let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
        // A restarted broker binds its port again while old connections linger in TIME_WAIT.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let local_addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            settings,
            local_addr,
            peers: RwLock::new(HashMap::new()),
            groups: RwLock::new(HashMap::new()),
            app: RwLock::new(None),
            live: watch::channel(BTreeSet::new()).0,
            next_correlation_id: AtomicU64::new(1),
            shutdown: CancellationToken::new(),
            accept_task: Mutex::new(None),
            stats: TransportStats::default(),
        });
        let task = tokio::spawn(server::accept_loop(inner.clone(), listener));
        *inner.accept_task.lock() = Some(task);
        tracing::info!(node_id = inner.settings.node_id, internal = %local_addr, "internal listener started");
        Ok(Transport { inner })
    }

    /// This broker's node id.
    pub fn node_id(&self) -> NodeId {
        self.inner.settings.node_id
    }

    /// The address the internal listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// Connection counters.
    pub fn stats(&self) -> &TransportStats {
        &self.inner.stats
    }

    /// Adds a peer broker at `addr` (`host:port` of its internal listener), or changes its
    /// address (used from the next dial). The transport keeps a connection to it and pings
    /// it. Adding this broker itself does nothing.
    pub fn add_peer(&self, node: NodeId, addr: &str) {
        if node == self.node_id() || self.inner.shutdown.is_cancelled() {
            return;
        }
        if let Some(peer) = self.inner.peers.read().get(&node) {
            if peer.set_addr(addr) {
                tracing::info!(peer = node, %addr, "peer address changed");
            }
            return;
        }
        let mut peers = self.inner.peers.write();
        if peers.contains_key(&node) {
            return;
        }
        let peer = Arc::new(Peer::new(node, addr.to_string(), self.inner.shutdown.child_token()));
        peers.insert(node, peer.clone());
        tokio::spawn(peer::maintain(self.inner.clone(), peer.clone()));
        tokio::spawn(liveness::watch_peer(self.inner.clone(), peer));
    }

    /// Forgets a peer: closes its connection (failing its calls) and stops pinging it.
    pub fn remove_peer(&self, node: NodeId) {
        if let Some(peer) = self.inner.peers.write().remove(&node) {
            peer.stop.cancel();
        }
        self.inner.set_live(node, false);
    }

    /// The peers known, with their addresses.
    pub fn peers(&self) -> Vec<(NodeId, String)> {
        let mut all: Vec<_> = self.inner.peers.read().values().map(|p| (p.node, p.addr())).collect();
        all.sort();
        all
    }

    /// Whether a connection to `node` is established right now.
    pub fn is_connected(&self, node: NodeId) -> bool {
        self.inner.peers.read().get(&node).is_some_and(|p| p.connected())
    }

    /// The set of peers currently answering pings (this broker not included); changes
    /// when a peer is suspected dead or answers again.
    pub fn live_peers(&self) -> watch::Receiver<BTreeSet<NodeId>> {
        self.inner.live.subscribe()
    }

    /// Serves `group`'s RPCs with `handler` (e.g. the local `openraft::Raft` replica),
    /// replacing any previous one.
    pub fn register_group(&self, group: GroupId, handler: Arc<dyn GroupHandler>) {
        self.inner.groups.write().insert(group, handler);
    }

    /// Stops serving `group`: its RPCs are answered `UnknownGroup` from now on.
    pub fn unregister_group(&self, group: GroupId) {
        self.inner.groups.write().remove(&group);
    }

    /// Serves group-less application requests with `handler`.
    pub fn set_app_handler(&self, handler: Arc<dyn AppHandler>) {
        *self.inner.app.write() = Some(handler);
    }

    /// openraft's network factory for this broker's replica of `group`.
    pub fn network_factory<C>(&self, group: GroupId) -> GroupNetworkFactory<C> {
        GroupNetworkFactory::new(self.clone(), group)
    }

    /// Sends `req` (bincode) to `node` as a `kind` request for `group` and waits up to
    /// `timeout` for the answer body.
    pub async fn call<T: Serialize + ?Sized>(
        &self,
        node: NodeId,
        group: Option<GroupId>,
        kind: RpcKind,
        req: &T,
        timeout: Duration,
    ) -> Result<Bytes, TransportError> {
        if kind.is_raft() != group.is_some() || kind == RpcKind::Ping {
            return Err(TransportError::Encode(format!("{kind:?} request with group {group:?}")));
        }
        let peer = self.inner.peer(node)?;
        let correlation_id = self.inner.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = Header::request(kind, correlation_id, group);
        let frame = frame::encode(&header, req).map_err(|e| TransportError::Encode(e.to_string()))?;
        let max = self.inner.settings.max_frame_bytes;
        if frame.len() - frame::LENGTH_BYTES > max {
            return Err(TransportError::TooLarge { size: frame.len() - frame::LENGTH_BYTES, max });
        }
        let (answer, body) = peer.call(correlation_id, frame, timeout).await?;
        match answer.status {
            Status::Ok => Ok(body),
            Status::UnknownGroup => Err(TransportError::UnknownGroup {
                node,
                group: group.unwrap_or(GroupId::Metadata),
            }),
            Status::NoHandler => Err(TransportError::NoHandler { node, kind }),
            Status::Failed => Err(TransportError::Failed { node, message: String::from_utf8_lossy(&body).into_owned() }),
        }
    }

    /// A group-less application request to `node`'s [`AppHandler`], bincode both ways.
    pub async fn app_call<Req: Serialize + ?Sized, Resp: DeserializeOwned>(
        &self,
        node: NodeId,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, TransportError> {
        let body = self.call(node, None, RpcKind::App, req, timeout).await?;
        bincode::deserialize(&body).map_err(|e| TransportError::Decode { node, detail: e.to_string() })
    }

    /// Pings `node` once (what the liveness task does every interval).
    pub async fn ping(&self, node: NodeId, timeout: Duration) -> Result<(), TransportError> {
        let peer = self.inner.peer(node)?;
        self.inner.ping(&peer, timeout).await
    }

    /// Stops the transport: closes the listener and every connection (failing calls in
    /// flight), stops pinging. Returns once the listener's port is free again.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let task = self.inner.accept_task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.peers.write().clear();
        self.inner.live.send_replace(BTreeSet::new());
        tracing::info!(node_id = self.node_id(), "internal transport stopped");
    }
}

impl Inner {
    fn peer(&self, node: NodeId) -> Result<Arc<Peer>, TransportError> {
        if self.shutdown.is_cancelled() {
            return Err(TransportError::Shutdown);
        }
        self.peers.read().get(&node).cloned().ok_or(TransportError::UnknownPeer(node))
    }

    async fn ping(&self, peer: &Peer, timeout: Duration) -> Result<(), TransportError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = Header::request(RpcKind::Ping, correlation_id, None);
        let frame = frame::encode(&header, &self.settings.node_id).map_err(|e| TransportError::Encode(e.to_string()))?;
        let (_, body) = peer.call(correlation_id, frame, timeout).await?;
        let actual: NodeId =
            bincode::deserialize(&body).map_err(|e| TransportError::Decode { node: peer.node, detail: e.to_string() })?;
        if actual != peer.node {
            return Err(TransportError::WrongNode { expected: peer.node, actual });
        }
        Ok(())
    }

    /// Marks `node` live or not; true if that changed the set.
    fn set_live(&self, node: NodeId, live: bool) -> bool {
        self.live.send_if_modified(|set| if live { set.insert(node) } else { set.remove(&node) })
    }
}

#[cfg(test)]
mod tests;
