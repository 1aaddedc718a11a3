//! The broker in cluster mode (`docs/cluster.md` §15): the metadata group (group 0) is
//! the source of truth for brokers and topics, the local `TopicStore` its
//! materialisation. Topic creation and deletion are proposed to the controller and
//! answered once applied locally; every broker reconciles its topics from the applied
//! metadata (same topic ids everywhere).
//!
//! Partitions are not replicated yet: a partition's data lives on the first replica of
//! its assignment (its preferred leader), and the other brokers answer produce, fetch and
//! ListOffsets for it with `NotLeader`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use uuid::Uuid;

use super::{Broker, BrokerError, TopicRef};
use crate::cluster::metadata::{BrokerInfo, ClientListener, ClusterMetadata, ControllerError, MetadataCommand, Placement};
use crate::cluster::node::ClusterNode;
use crate::storage::Topic;

/// How long an admin request waits for its command to be committed and applied here.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(15);

/// A broker's cluster membership and what reconciling needs.
pub struct BrokerCluster {
    node: ClusterNode,
    /// Reconciliations run one at a time.
    reconcile: Mutex<()>,
}

/// A registered, unfenced broker as Metadata and DescribeCluster answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBroker {
    /// Node id.
    pub node_id: i32,
    /// Advertised host of the chosen listener.
    pub host: String,
    /// Advertised port of the chosen listener.
    pub port: i32,
    /// Rack, if any.
    pub rack: Option<String>,
}

/// Replicas and leader of one partition, from the controller's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReplicas {
    /// Replica node ids; the first is the preferred leader.
    pub replicas: Vec<i32>,
    /// The leader (the first replica, while partitions are not replicated).
    pub leader: i32,
}

/// Starts this broker's cluster membership in cluster mode (`cluster_seeds` set): the
/// internal transport, group 0, and in the background joining and then reconciling the
/// local topics from the applied metadata. `None` in single-broker mode.
pub async fn start_cluster(broker: &Arc<Broker>) -> Result<Option<ClusterNode>, ControllerError> {
    let Some(node) = ClusterNode::start(&broker.config, broker.store.clone()).await? else {
        return Ok(None);
    };
    let _ = broker.cluster.set(BrokerCluster { node: node.clone(), reconcile: Mutex::new(()) });
    tokio::spawn(run_member(broker.clone(), node.clone()));
    Ok(Some(node))
}

/// Joins the cluster, then keeps the local topics in line with the applied metadata until
/// the broker shuts down. Reconciling starts only once this run's registration is
/// applied here: by then the log before it is applied too, so a topic is never dropped
/// because a restarting broker has not replayed its creation yet.
async fn run_member(broker: Arc<Broker>, node: ClusterNode) {
    tokio::select! {
        _ = node.join() => {}
        _ = broker.shutdown.cancelled() => return,
    }
    if node.metadata().cluster_id().is_none() {
        // The first broker's claim names the cluster; the others' change nothing.
        let claim = MetadataCommand::ClaimClusterId { cluster_id: broker.cluster_id.clone() };
        if let Err(e) = node.propose(claim, Duration::from_secs(30)).await {
            tracing::warn!(error = %e, "could not claim the cluster id; reporting this data directory's");
        }
    }
    let mut watch = node.watch();
    loop {
        let state = watch.borrow_and_update().clone();
        let b = broker.clone();
        match tokio::task::spawn_blocking(move || b.reconcile_topics(&state)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "reconciling topics from the cluster metadata failed"),
            Err(e) => tracing::error!(error = %e, "topic reconciliation task failed"),
        }
        tokio::select! {
            changed = watch.changed() => if changed.is_err() { return },
            _ = broker.shutdown.cancelled() => return,
        }
    }
}

impl Broker {
    /// This broker's cluster membership; `None` in single-broker mode.
    pub fn cluster(&self) -> Option<&ClusterNode> {
        self.cluster.get().map(|c| &c.node)
    }

    /// The controller's node id (group 0's leader) in cluster mode, when known.
    pub fn controller_id(&self) -> Option<i32> {
        self.cluster()?.controller().and_then(|id| i32::try_from(id).ok())
    }

    /// The registered, unfenced brokers with their address on the listener named like the
    /// one `(host, port)` (this broker's advertised address the client connected to)
    /// belongs to; a broker without that listener is shown with its first one. `None` in
    /// single-broker mode or before this broker's registration is applied here.
    pub fn cluster_brokers(&self, host: &str, port: i32) -> Option<Vec<ClusterBroker>> {
        let node = self.cluster()?;
        let md = node.metadata();
        let me = md.broker(node.node_id())?;
        let name = me
            .registration
            .listeners
            .iter()
            .find(|l| l.host == host && i32::from(l.port) == port)
            .or_else(|| me.registration.listeners.first())
            .map(|l| l.name.clone())?;
        Some(
            md.brokers()
                .iter()
                .filter(|(_, b)| !b.fenced)
                .filter_map(|(id, b)| {
                    let listener = pick_listener(b, &name)?;
                    Some(ClusterBroker {
                        node_id: i32::try_from(*id).ok()?,
                        host: listener.host.clone(),
                        port: i32::from(listener.port),
                        rack: b.registration.rack.clone(),
                    })
                })
                .collect(),
        )
    }

    /// Replicas and leader of each partition of `topic` from the controller's assignment
    /// (index = partition); `None` in single-broker mode or for a topic the applied
    /// metadata does not have.
    pub fn partition_replicas(&self, topic: &Topic) -> Option<Vec<PartitionReplicas>> {
        let md = self.cluster()?.metadata();
        let info = md.topic(topic.id)?;
        Some(
            info.assignments
                .iter()
                .map(|replicas| {
                    let replicas: Vec<i32> = replicas.iter().filter_map(|r| i32::try_from(*r).ok()).collect();
                    PartitionReplicas { leader: replicas.first().copied().unwrap_or(-1), replicas }
                })
                .collect(),
        )
    }

    /// In cluster mode, refuses (`NotLeader`) a partition this broker does not lead.
    pub(super) fn check_leader(&self, topic: &Topic, index: i32) -> Result<(), BrokerError> {
        let Some(node) = self.cluster() else { return Ok(()) };
        let md = node.metadata();
        let leader = md
            .topic(topic.id)
            .and_then(|t| t.assignments.get(usize::try_from(index).ok()?))
            .and_then(|replicas| replicas.first().copied());
        match leader {
            Some(leader) if leader == node.node_id() => Ok(()),
            other => Err(BrokerError::NotLeader { leader: other.and_then(|l| i32::try_from(l).ok()) }),
        }
    }

    /// The replication factor a CreateTopics asking for `requested` gets (-1: the
    /// `default_replication_factor`, capped at the number of live brokers).
    fn replication_factor(&self, requested: i32, md: &ClusterMetadata) -> i32 {
        if requested != -1 {
            return requested;
        }
        let live = i32::try_from(md.live_brokers().len()).unwrap_or(i32::MAX);
        self.config.default_replication_factor.min(live).max(1)
    }

    /// Cluster mode: validates, assigns replicas over the live brokers, proposes the topic
    /// to the controller and returns it once applied and materialised here. Blocking
    /// (call from a blocking task). Returns the replication factor used with the topic;
    /// with `validate_only` nothing is proposed (the topic is `None`).
    pub fn create_topic_replicated(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(i32, Option<Arc<Topic>>), BrokerError> {
        let node = self.cluster().ok_or_else(not_cluster)?.clone();
        self.validate_create_topic(name, partitions, &configs)?;
        let md = node.metadata();
        if md.topic_by_name(name).is_some() {
            return Err(crate::error::StorageError::TopicAlreadyExists.into());
        }
        let rf = self.replication_factor(replication_factor, &md);
        let id = Uuid::new_v4();
        let count = usize::try_from(partitions).unwrap_or(0);
        let assignments = md
            .assign(count, rf, None, Placement::from_seed(id.as_u64_pair().0))
            .map_err(|e| BrokerError::Controller(e.into()))?;
        if validate_only {
            return Ok((rf, None));
        }
        let cmd = MetadataCommand::CreateTopic { name: name.to_string(), topic_id: id, configs, assignments };
        self.commit_and_reconcile(&node, cmd, move |md| md.topic(id).is_some())?;
        let topic = self.topic(TopicRef::Name(name))?;
        Ok((rf, Some(topic)))
    }

    /// Cluster mode: proposes the topic's deletion and returns once it is gone here.
    pub async fn delete_topic_replicated(&self, topic: TopicRef<'_>) -> Result<Arc<Topic>, BrokerError> {
        let node = self.cluster().ok_or_else(not_cluster)?.clone();
        let local = self.topic(topic)?;
        let id = local.id;
        let state = commit_and_wait(&node, MetadataCommand::DeleteTopic { topic_id: id }, move |md| md.topic(id).is_none()).await?;
        self.reconcile_topics(&state)?;
        Ok(local)
    }

    /// Commits `cmd` (from a blocking task), waits until the applied metadata here
    /// satisfies `applied`, then reconciles the local topics with it.
    fn commit_and_reconcile(
        &self,
        node: &ClusterNode,
        cmd: MetadataCommand,
        applied: impl Fn(&ClusterMetadata) -> bool,
    ) -> Result<(), BrokerError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| not_cluster())?;
        let state = runtime.block_on(commit_and_wait(node, cmd, applied))?;
        self.reconcile_topics(&state)
    }

    /// Makes the local topics those of `md`: creates missing ones under the controller's
    /// topic id (never a new one), recreates one whose id differs, drops the ones `md` no
    /// longer has. Idempotent; one at a time.
    pub fn reconcile_topics(&self, md: &ClusterMetadata) -> Result<(), BrokerError> {
        let Some(cluster) = self.cluster.get() else { return Ok(()) };
        let _one = cluster.reconcile.lock();
        for local in self.topics.all() {
            if md.topic(local.id).is_none() {
                self.delete_topic(TopicRef::Name(&local.name))?;
                tracing::info!(topic = %local.name, id = %local.id, "topic deleted by the controller");
            }
        }
        for info in md.topics().values() {
            if self.topics.get(&info.name).is_some_and(|t| t.id == info.id) {
                continue;
            }
            let partitions = i32::try_from(info.partition_count()).unwrap_or(i32::MAX);
            self.topics.create_with_id(&info.name, info.id, partitions, info.configs.clone())?;
        }
        Ok(())
    }
}

/// Commits `cmd` through the controller and waits until the metadata applied here
/// satisfies `applied`; returns that metadata.
async fn commit_and_wait(
    node: &ClusterNode,
    cmd: MetadataCommand,
    applied: impl Fn(&ClusterMetadata) -> bool,
) -> Result<Arc<ClusterMetadata>, BrokerError> {
    node.propose(cmd, ADMIN_TIMEOUT).await?;
    let mut watch = node.watch();
    let wait = async {
        loop {
            let state = watch.borrow_and_update().clone();
            if applied(&state) {
                return Ok(state);
            }
            if watch.changed().await.is_err() {
                return Err(ControllerError::Unavailable("metadata group stopped".into()));
            }
        }
    };
    let state = tokio::time::timeout(ADMIN_TIMEOUT, wait)
        .await
        .unwrap_or_else(|_| Err(ControllerError::Unavailable("not applied locally in time".into())))?;
    Ok(state)
}

fn pick_listener<'a>(broker: &'a BrokerInfo, name: &str) -> Option<&'a ClientListener> {
    let listeners = &broker.registration.listeners;
    listeners.iter().find(|l| l.name == name).or_else(|| listeners.first())
}

fn not_cluster() -> BrokerError {
    BrokerError::Controller(ControllerError::Unavailable("not in cluster mode".into()))
}
