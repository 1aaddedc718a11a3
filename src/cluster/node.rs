//! [`ClusterNode`]: this broker as a member of a cluster (`docs/cluster.md` §3, §15):
//! the internal transport, this broker's member of the metadata group (group 0)
//! registered on it, joining (learning the seeds' node ids, bootstrapping the group,
//! registering this broker) and proposing commands from any broker (forwarded to the
//! controller over the transport's app-level RPC when this broker is not it).
//!
//! Single-broker mode (no `cluster_seeds`) never creates one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::metadata::{
    group::raft_config, Applied, BrokerRegistration, ClientListener, ClusterMetadata, ControllerError, MetadataCommand,
    MetadataError, MetadataGroup,
};
use super::transport::{app_handler, Transport, TransportSettings};
use super::{GroupId, NodeId};
use crate::config::Config;
use crate::storage::Store;

/// How long one app-level RPC (hello, forwarded proposal) may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts while joining or while no controller is known.
const RETRY: Duration = Duration::from_millis(100);
/// Provisional transport ids for seeds whose node id is not known yet (hello): the top
/// of the id space, which no broker uses.
const PROVISIONAL_BASE: NodeId = u64::MAX - 1_000_000;

/// The app-level requests brokers send each other on the internal transport.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeRequest {
    /// "Who are you?": answered with [`NodeResponse::Hello`].
    Hello,
    /// Commit this command (sent to the controller).
    Propose(MetadataCommand),
}

/// Why a forwarded proposal failed, as it travels back to the proposer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ForwardError {
    /// The receiver is not the controller (it names the one it knows).
    NotController(Option<NodeId>),
    /// Committed and refused by the state machine.
    Rejected(MetadataError),
    /// The receiver's group is unavailable.
    Unavailable(String),
}

/// Answers to [`NodeRequest`]s.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum NodeResponse {
    /// The answering broker's node id and whether its metadata group has a log
    /// (is initialised).
    Hello {
        /// Its node id.
        node_id: NodeId,
        /// Whether its member of group 0 is initialised.
        has_log: bool,
    },
    /// The outcome of a forwarded proposal.
    Proposed(Result<Applied, ForwardError>),
}

impl From<ControllerError> for ForwardError {
    fn from(e: ControllerError) -> Self {
        match e {
            ControllerError::NotController { leader } => ForwardError::NotController(leader),
            ControllerError::Rejected(e) => ForwardError::Rejected(e),
            ControllerError::Unavailable(m) => ForwardError::Unavailable(m),
        }
    }
}

impl From<ForwardError> for ControllerError {
    fn from(e: ForwardError) -> Self {
        match e {
            ForwardError::NotController(leader) => ControllerError::NotController { leader },
            ForwardError::Rejected(e) => ControllerError::Rejected(e),
            ForwardError::Unavailable(m) => ControllerError::Unavailable(m),
        }
    }
}

/// This broker's membership of the cluster; cheap to clone.
#[derive(Clone)]
pub struct ClusterNode {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    group: MetadataGroup,
    registration: BrokerRegistration,
    seeds: Vec<String>,
    /// Set once this run's registration is applied locally.
    registered: watch::Sender<bool>,
}

impl ClusterNode {
    /// Starts the internal listener and this broker's member of group 0 on it, and answers
    /// hello and forwarded proposals. `None` in single-broker mode. Joining (bootstrap and
    /// registration) runs in the background: see [`ClusterNode::join`].
    pub async fn start(config: &Config, store: Arc<Store>) -> Result<Option<ClusterNode>, ControllerError> {
        if config.cluster_seeds.is_empty() {
            return Ok(None);
        }
        let unavailable = |e: String| ControllerError::Unavailable(e);
        let settings = TransportSettings::from_config(config)
            .ok_or_else(|| unavailable("cluster_seeds need internal_listener".into()))?;
        let node_id = settings.node_id;
        let transport = Transport::start(settings).await.map_err(|e| unavailable(format!("internal listener: {e}")))?;
        let group = MetadataGroup::start(node_id, store, transport.network_factory(GroupId::Metadata), raft_config()?).await?;
        transport.register_group(GroupId::Metadata, Arc::new(group.raft().clone()));
        let listeners = config
            .listener_specs()
            .map_err(|e| unavailable(e.to_string()))?
            .into_iter()
            .filter_map(|s| {
                Some(ClientListener {
                    name: s.name,
                    host: s.host,
                    port: u16::try_from(s.port).ok()?,
                    security_protocol: s.protocol,
                })
            })
            .collect();
        let registration = BrokerRegistration {
            node_id,
            internal_addr: config.internal_advertised().unwrap_or_else(|| transport.local_addr().to_string()),
            listeners,
            rack: None,
        };
        let node = ClusterNode {
            inner: Arc::new(Inner {
                transport: transport.clone(),
                group,
                registration,
                seeds: config.cluster_seeds.iter().map(|s| s.trim().to_string()).collect(),
                registered: watch::channel(false).0,
            }),
        };
        let handler_node = node.clone();
        transport.set_app_handler(app_handler(move |req: NodeRequest| {
            let node = handler_node.clone();
            async move { node.serve(req).await }
        }));
        Ok(Some(node))
    }

    /// Joins the cluster: learns the seeds' node ids, bootstraps group 0 when this broker
    /// is the lowest seed and no seed has a log, then registers this broker (retried
    /// until committed) and waits until the registration is applied locally, so every
    /// entry before it is applied too. Returns when done or when the transport stops.
    pub async fn join(&self) {
        let group = &self.inner.group;
        let initialised = group.raft().is_initialized().await.unwrap_or(false);
        if !initialised {
            let seeds = self.hello_seeds().await;
            let any_log = seeds.values().any(|(_, has_log)| *has_log);
            let voters: BTreeMap<NodeId, String> = seeds.iter().map(|(id, (addr, _))| (*id, addr.clone())).collect();
            if !any_log {
                match group.bootstrap(&self.inner.registration.internal_addr, &voters).await {
                    Ok(true) => tracing::info!(voters = ?voters.keys().collect::<Vec<_>>(), "bootstrapped the cluster"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "bootstrap failed"),
                }
            }
        }
        let cmd = MetadataCommand::RegisterBroker(self.inner.registration.clone());
        let epoch = loop {
            match self.propose(cmd.clone(), Duration::from_secs(30)).await {
                Ok(Applied::BrokerRegistered { broker_epoch }) => break broker_epoch,
                Ok(other) => {
                    tracing::warn!(?other, "unexpected answer to RegisterBroker");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "registering this broker failed; retrying");
                    tokio::time::sleep(RETRY).await;
                }
            }
        };
        let mut state = group.state();
        let me = group.node_id();
        while !state.borrow_and_update().broker(me).is_some_and(|b| b.epoch >= epoch) {
            if state.changed().await.is_err() {
                return;
            }
        }
        tracing::info!(node_id = me, broker_epoch = epoch, "broker registered in the cluster");
        self.inner.registered.send_replace(true);
    }

    /// Asks every seed for its node id until all answered: seed id → (address, has a log).
    async fn hello_seeds(&self) -> BTreeMap<NodeId, (String, bool)> {
        let transport = &self.inner.transport;
        let mut known: BTreeMap<usize, (NodeId, bool)> = BTreeMap::new();
        let mut attempts = 0u64;
        while known.len() < self.inner.seeds.len() {
            for (i, addr) in self.inner.seeds.iter().enumerate() {
                if known.contains_key(&i) {
                    continue;
                }
                let provisional = PROVISIONAL_BASE + i as NodeId;
                transport.add_peer(provisional, addr);
                match transport.app_call::<_, NodeResponse>(provisional, &NodeRequest::Hello, RPC_TIMEOUT).await {
                    Ok(NodeResponse::Hello { node_id, has_log }) => {
                        transport.remove_peer(provisional);
                        transport.add_peer(node_id, addr);
                        known.insert(i, (node_id, has_log));
                    }
                    Ok(other) => tracing::warn!(seed = %addr, ?other, "unexpected hello answer"),
                    Err(e) => {
                        if attempts % 50 == 0 {
                            tracing::info!(seed = %addr, error = %e, "waiting for seed");
                        }
                    }
                }
            }
            if known.len() < self.inner.seeds.len() {
                attempts += 1;
                tokio::time::sleep(RETRY).await;
            }
        }
        known.into_iter().map(|(i, (id, has_log))| (id, (self.inner.seeds[i].clone(), has_log))).collect()
    }

    /// Serves one app-level request from another broker.
    async fn serve(&self, req: NodeRequest) -> NodeResponse {
        match req {
            NodeRequest::Hello => NodeResponse::Hello {
                node_id: self.node_id(),
                has_log: self.inner.group.raft().is_initialized().await.unwrap_or(false),
            },
            NodeRequest::Propose(cmd) => NodeResponse::Proposed(self.propose_here(cmd).await.map_err(ForwardError::from)),
        }
    }

    /// Proposes on this broker's member (it must be the controller). A broker registering
    /// that is not a member of group 0 is first added as a learner, so it receives the log.
    async fn propose_here(&self, cmd: MetadataCommand) -> Result<Applied, ControllerError> {
        if let MetadataCommand::RegisterBroker(reg) = &cmd {
            let metrics = self.inner.group.raft().metrics().borrow().clone();
            let member = metrics.membership_config.nodes().any(|(id, _)| *id == reg.node_id);
            if !member {
                self.inner.group.add_learner(reg.node_id, &reg.internal_addr).await?;
            }
        }
        self.inner.group.propose(cmd).await
    }

    /// Commits `cmd` through the controller, wherever it is: proposed here when this
    /// broker is the controller, else forwarded to it; retried while no controller is
    /// known or it moves, for up to `timeout`. A refusal by the state machine is returned
    /// at once.
    pub async fn propose(&self, cmd: MetadataCommand, timeout: Duration) -> Result<Applied, ControllerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let outcome = match self.inner.group.leader() {
                Some(leader) if leader == self.node_id() => self.propose_here(cmd.clone()).await,
                Some(leader) => self.forward(leader, cmd.clone()).await,
                None => Err(ControllerError::NotController { leader: None }),
            };
            match outcome {
                Err(ControllerError::NotController { .. }) | Err(ControllerError::Unavailable(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(RETRY).await;
                }
                other => return other,
            }
        }
    }

    async fn forward(&self, leader: NodeId, cmd: MetadataCommand) -> Result<Applied, ControllerError> {
        let addr = {
            let metrics = self.inner.group.raft().metrics().borrow().clone();
            let addr = metrics.membership_config.nodes().find(|(id, _)| **id == leader).map(|(_, n)| n.addr.clone());
            addr
        };
        if let Some(addr) = addr {
            self.inner.transport.add_peer(leader, &addr);
        }
        match self.inner.transport.app_call::<_, NodeResponse>(leader, &NodeRequest::Propose(cmd), RPC_TIMEOUT).await {
            Ok(NodeResponse::Proposed(r)) => r.map_err(ControllerError::from),
            Ok(other) => Err(ControllerError::Unavailable(format!("unexpected answer {other:?}"))),
            Err(e) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }

    /// This broker's node id.
    pub fn node_id(&self) -> NodeId {
        self.inner.group.node_id()
    }

    /// The controller (group 0's leader), when known.
    pub fn controller(&self) -> Option<NodeId> {
        self.inner.group.leader()
    }

    /// The applied cluster metadata now.
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.inner.group.current()
    }

    /// The applied cluster metadata as it changes.
    pub fn watch(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.inner.group.state()
    }

    /// Whether this run's registration has been applied locally (set once by `join`).
    pub fn registered(&self) -> watch::Receiver<bool> {
        self.inner.registered.subscribe()
    }

    /// What this broker registered with.
    pub fn registration(&self) -> &BrokerRegistration {
        &self.inner.registration
    }

    /// Stops the metadata group and the transport.
    pub async fn shutdown(&self) {
        self.inner.group.shutdown().await;
        self.inner.transport.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A forwarded proposal's outcome crosses the transport in bincode and comes back as
    /// the same `ControllerError` (the proposer maps it to Kafka codes).
    #[test]
    fn forwarded_outcomes_round_trip() {
        let cases = [
            ControllerError::NotController { leader: Some(2) },
            ControllerError::NotController { leader: None },
            ControllerError::Rejected(MetadataError::InvalidReplicationFactor { requested: 4, live: 3 }),
            ControllerError::Unavailable("stopping".into()),
        ];
        for case in cases {
            let expected = case.to_string();
            let wire = bincode::serialize(&NodeResponse::Proposed(Err(ForwardError::from(case)))).unwrap();
            let NodeResponse::Proposed(Err(back)) = bincode::deserialize(&wire).unwrap() else { panic!("variant") };
            assert_eq!(ControllerError::from(back).to_string(), expected);
        }
        let hello = bincode::serialize(&NodeResponse::Hello { node_id: 7, has_log: true }).unwrap();
        assert!(matches!(bincode::deserialize(&hello).unwrap(), NodeResponse::Hello { node_id: 7, has_log: true }));
    }
}
