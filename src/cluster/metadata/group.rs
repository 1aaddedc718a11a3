//! [`MetadataGroup`]: one broker's member of the controller group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::{Config, Raft, SnapshotPolicy};
use tokio::sync::watch;

use super::store::{MetadataLogStore, MetadataStateMachine};
use super::{Applied, ClusterMetadata, MetadataCommand, MetadataError, MetadataRaft};
use crate::cluster::{Node, NodeId};
use crate::storage::Store;

/// A snapshot is taken after this many applied entries (restart replays at most as many).
pub const SNAPSHOT_EVERY: u64 = 1000;

/// Why a proposal (or starting the group) failed.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// This broker is not the controller: send the command to `leader` (None: no leader
    /// is known yet; retry).
    #[error("not the controller (leader: {leader:?})")]
    NotController {
        /// The controller, when known.
        leader: Option<NodeId>,
    },
    /// The command was committed and refused by the state machine.
    #[error(transparent)]
    Rejected(#[from] MetadataError),
    /// The group is stopping or failed (storage error, shut down).
    #[error("controller group unavailable: {0}")]
    Unavailable(String),
}

/// The controller group's openraft settings (`docs/cluster.md` §2): its own timers,
/// heartbeat every 100 ms, elections after 300–600 ms of silence.
pub fn raft_config() -> Result<Arc<Config>, ControllerError> {
    let config = Config {
        cluster_name: "fluxo-metadata".into(),
        heartbeat_interval: 100,
        election_timeout_min: 300,
        election_timeout_max: 600,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
        ..Default::default()
    };
    config.validate().map(Arc::new).map_err(|e| ControllerError::Unavailable(e.to_string()))
}

/// One broker's member of the controller group: proposes commands, publishes the
/// applied [`ClusterMetadata`], and bootstraps the group on first start.
#[derive(Clone)]
pub struct MetadataGroup {
    node_id: NodeId,
    raft: Raft<MetadataRaft>,
    state: watch::Receiver<Arc<ClusterMetadata>>,
}

impl MetadataGroup {
    /// Starts this broker's member of the group from what `store` holds (latest snapshot,
    /// then the committed log re-applied), talking to the others through `network`.
    pub async fn start<N>(
        node_id: NodeId,
        store: Arc<Store>,
        network: N,
        config: Arc<Config>,
    ) -> Result<MetadataGroup, ControllerError>
    where
        N: RaftNetworkFactory<MetadataRaft>,
    {
        let sm = MetadataStateMachine::open(store.clone()).map_err(|e| ControllerError::Unavailable(e.to_string()))?;
        let state = sm.subscribe();
        let raft = Raft::new(node_id, config, network, MetadataLogStore::new(store), sm)
            .await
            .map_err(|e| ControllerError::Unavailable(e.to_string()))?;
        Ok(MetadataGroup { node_id, raft, state })
    }

    /// Forms the group on first start. `seeds` are the controller voters (node id →
    /// internal address); the one with the lowest id initialises the group with all of
    /// them (the others wait to be contacted: several nodes initialising with the same
    /// set is safe, different sets are not, so the set comes only from `seeds`). With no
    /// seeds this broker forms a one-voter group on itself at `own_addr`. Returns whether
    /// this call initialised the group (false: not ours to do, or already formed).
    pub async fn bootstrap(&self, own_addr: &str, seeds: &BTreeMap<NodeId, String>) -> Result<bool, ControllerError> {
        let members: BTreeMap<NodeId, Node> = if seeds.is_empty() {
            BTreeMap::from([(self.node_id, Node::new(own_addr))])
        } else {
            seeds.iter().map(|(id, addr)| (*id, Node::new(addr.clone()))).collect()
        };
        if members.keys().next() != Some(&self.node_id) {
            return Ok(false);
        }
        if self.raft.is_initialized().await.map_err(|e| ControllerError::Unavailable(e.to_string()))? {
            return Ok(false);
        }
        match self.raft.initialize(members.clone()).await {
            Ok(()) => {
                tracing::info!(voters = ?members.keys().collect::<Vec<_>>(), "cluster metadata group initialised");
                Ok(true)
            }
            Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }

    /// Commits `cmd` and returns what applying it gave. On a broker that is not the
    /// controller: [`ControllerError::NotController`] naming the leader, to forward to.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<Applied, ControllerError> {
        match self.raft.client_write(cmd).await {
            Ok(response) => Ok(response.data?),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotController { leader: f.leader_id })
            }
            Err(e) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }

    /// Adds a broker that is not a controller voter as a learner of the group (on the
    /// controller): it then receives every entry, or a snapshot when it is far behind,
    /// and learns the whole cluster by applying them (`docs/cluster.md` §3).
    pub async fn add_learner(&self, node_id: NodeId, internal_addr: &str) -> Result<(), ControllerError> {
        match self.raft.add_learner(node_id, Node::new(internal_addr), false).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(ControllerError::NotController { leader: f.leader_id })
            }
            Err(e) => Err(ControllerError::Unavailable(e.to_string())),
        }
    }

    /// The applied metadata, now and as it changes (what Metadata and DescribeCluster
    /// answers read).
    pub fn state(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.state.clone()
    }

    /// The applied metadata now.
    pub fn current(&self) -> Arc<ClusterMetadata> {
        self.state.borrow().clone()
    }

    /// This broker's node id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The controller this member knows of.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.metrics().borrow().current_leader
    }

    /// Whether this broker is the controller.
    pub fn is_controller(&self) -> bool {
        self.leader() == Some(self.node_id)
    }

    /// Waits up to `timeout` until a controller is known; returns it.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Option<NodeId> {
        let mut metrics = self.raft.metrics();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = metrics.borrow_and_update().current_leader {
                return Some(leader);
            }
            if tokio::time::timeout_at(deadline, metrics.changed()).await.map_or(true, |r| r.is_err()) {
                return None;
            }
        }
    }

    /// The openraft handle: the transport delivers incoming RPCs to it.
    pub fn raft(&self) -> &Raft<MetadataRaft> {
        &self.raft
    }

    /// Stops this member (its storage handles are released when it has stopped).
    pub async fn shutdown(&self) {
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "cluster metadata group did not stop cleanly");
        }
    }
}
