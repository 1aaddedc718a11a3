//! The controller group on RocksDB: openraft's storage suite, restart from disk, and three
//! members in one process over an in-process network (the real transport is
//! `cluster::transport`'s business).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::storage::RaftLogStorage;
use openraft::testing::{StoreBuilder, Suite};
use openraft::{Raft, StorageError};
use parking_lot::Mutex;
use uuid::Uuid;

use super::group::raft_config;
use super::*;
use crate::cluster::{Node, NodeId};
use crate::security::SecurityProtocol;
use crate::storage::{Store, StoreOptions};

fn open_store(dir: &Path) -> Arc<Store> {
    open_store_with(dir, false)
}

/// With `fsync`, appends are acknowledged after the WAL syncer's fsync.
fn open_store_with(dir: &Path, fsync: bool) -> Arc<Store> {
    let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync, spare_column_families: 0 };
    Store::open(dir, &opts).expect("open store")
}

// ------------------------------------------------------------------------------------------
// openraft's storage suite
// ------------------------------------------------------------------------------------------

struct Builder;

impl StoreBuilder<MetadataRaft, MetadataLogStore, MetadataStateMachine, (Arc<Store>, tempfile::TempDir)> for Builder {
    async fn build(
        &self,
    ) -> Result<((Arc<Store>, tempfile::TempDir), MetadataLogStore, MetadataStateMachine), StorageError<NodeId>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = open_store(dir.path());
        let sm = MetadataStateMachine::open(store.clone())?;
        Ok(((store.clone(), dir), MetadataLogStore::new(store), sm))
    }
}

#[test]
fn passes_openraft_storage_suite() {
    Suite::test_all(Builder).expect("openraft storage suite");
}

// ------------------------------------------------------------------------------------------
// In-process network
// ------------------------------------------------------------------------------------------

/// The members that are up, by node id.
#[derive(Default)]
struct Router {
    nodes: Mutex<BTreeMap<NodeId, Raft<MetadataRaft>>>,
}

#[derive(Debug)]
struct Down(NodeId);

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} is down", self.0)
    }
}

impl std::error::Error for Down {}

struct Net {
    router: Arc<Router>,
    from: NodeId,
}

struct Conn {
    router: Arc<Router>,
    from: NodeId,
    target: NodeId,
}

impl Conn {
    fn target<E: std::error::Error>(&self) -> Result<Raft<MetadataRaft>, RPCError<NodeId, Node, E>> {
        let nodes = self.router.nodes.lock();
        if !nodes.contains_key(&self.from) {
            return Err(RPCError::Unreachable(Unreachable::new(&Down(self.from))));
        }
        nodes.get(&self.target).cloned().ok_or_else(|| RPCError::Unreachable(Unreachable::new(&Down(self.target))))
    }
}

impl RaftNetworkFactory<MetadataRaft> for Net {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> Conn {
        Conn { router: self.router.clone(), from: self.from, target }
    }
}

impl RaftNetwork<MetadataRaft> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<MetadataRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        // Through bincode, as the real transport will carry it.
        let rpc = bincode::deserialize(&bincode::serialize(&rpc).map_err(|e| RPCError::Network(NetworkError::new(&e)))?)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let t = self.target()?;
        t.append_entries(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<MetadataRaft>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        let t = self.target()?;
        t.install_snapshot(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let t = self.target()?;
        t.vote(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

// ------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------

const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `check` every 10 ms until it is true; panics after [`DEADLINE`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn registration(id: NodeId) -> MetadataCommand {
    MetadataCommand::RegisterBroker(BrokerRegistration {
        node_id: id,
        internal_addr: format!("127.0.0.1:{}", 19090 + id),
        listeners: vec![ClientListener {
            name: "PLAINTEXT".into(),
            host: "localhost".into(),
            port: 9090 + id as u16,
            security_protocol: SecurityProtocol::Plaintext,
        }],
        rack: Some(format!("rack-{id}")),
    })
}

/// The leader all `members` agree on, when they do and it says it leads.
fn agreed_leader(members: &BTreeMap<NodeId, MetadataGroup>) -> Option<NodeId> {
    let leaders: BTreeSet<Option<NodeId>> = members.values().map(|m| m.leader()).collect();
    let leader = (leaders.len() == 1).then(|| leaders.into_iter().next().flatten()).flatten()?;
    members.get(&leader).filter(|m| m.is_controller()).map(|_| leader)
}

/// Reopens a store once every handle to the previous one in `dir` is gone.
async fn reopen_store(dir: &Path, old: Arc<Store>) -> Arc<Store> {
    let weak = Arc::downgrade(&old);
    drop(old);
    eventually("the old store to be released", || weak.strong_count() == 0).await;
    open_store(dir)
}

// ------------------------------------------------------------------------------------------
// Three members
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_replicate_fail_over_and_restart_from_disk() {
    let router = Arc::new(Router::default());
    let config = raft_config().unwrap();
    let dirs: BTreeMap<NodeId, tempfile::TempDir> = (1..=3).map(|id| (id, tempfile::tempdir().unwrap())).collect();
    let mut stores: BTreeMap<NodeId, Arc<Store>> = dirs.iter().map(|(id, d)| (*id, open_store(d.path()))).collect();
    let mut members = BTreeMap::new();
    for id in 1..=3 {
        let net = Net { router: router.clone(), from: id };
        let m = MetadataGroup::start(id, stores[&id].clone(), net, config.clone()).await.unwrap();
        router.nodes.lock().insert(id, m.raft().clone());
        members.insert(id, m);
    }

    // Bootstrap: only the lowest seed initialises, with the whole seed set.
    let seeds: BTreeMap<NodeId, String> = (1..=3).map(|id| (id, format!("127.0.0.1:{}", 19090 + id))).collect();
    let mut initialised = Vec::new();
    for (id, m) in &members {
        if m.bootstrap(&seeds[id], &seeds).await.unwrap() {
            initialised.push(*id);
        }
    }
    assert_eq!(initialised, vec![1]);
    assert!(!members[&1].bootstrap(&seeds[&1], &seeds).await.unwrap(), "a formed group is not re-initialised");
    eventually("a leader all members agree on", || agreed_leader(&members).is_some()).await;
    let leader = agreed_leader(&members).unwrap();
    let follower = *members.keys().find(|id| **id != leader).unwrap();

    // A follower refuses and names the controller.
    match members[&follower].propose(registration(1)).await {
        Err(ControllerError::NotController { leader: Some(l) }) => assert_eq!(l, leader),
        other => panic!("expected NotController, got {other:?}"),
    }

    // Register three brokers and create a topic with RF 3 on the controller.
    for id in 1..=3 {
        match members[&leader].propose(registration(id)).await.unwrap() {
            Applied::BrokerRegistered { broker_epoch } => assert_eq!(broker_epoch, id - 1),
            other => panic!("{other:?}"),
        }
    }
    let topic_id = Uuid::new_v4();
    let assignments = members[&leader]
        .current()
        .assign(6, 3, None, Placement::from_seed(topic_id.as_u64_pair().0))
        .unwrap();
    let create = MetadataCommand::CreateTopic {
        name: "orders".into(),
        topic_id,
        configs: BTreeMap::from([("retention.ms".into(), "60000".into())]),
        assignments: assignments.clone(),
    };
    assert_eq!(members[&leader].propose(create.clone()).await.unwrap(), Applied::Partitions { count: 6 });
    match members[&leader].propose(create).await {
        Err(ControllerError::Rejected(MetadataError::TopicAlreadyExists(name))) => assert_eq!(name, "orders"),
        other => panic!("expected TopicAlreadyExists, got {other:?}"),
    }

    // Every member's watch shows the same assignment.
    for (id, m) in &members {
        let mut watch = m.state();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            if watch.borrow_and_update().topic_by_name("orders").is_some() {
                break;
            }
            tokio::time::timeout_at(deadline, watch.changed()).await.expect("topic reaches every member").unwrap();
        }
        let state = m.current();
        let topic = state.topic_by_name("orders").unwrap();
        assert_eq!((topic.id, &topic.assignments), (topic_id, &assignments), "member {id}");
        assert_eq!(state.brokers().len(), 3, "member {id}");
        assert_eq!(state.broker(2).unwrap().registration.rack.as_deref(), Some("rack-2"));
    }
    let mut leads = BTreeMap::new();
    for replicas in &assignments {
        *leads.entry(replicas[0]).or_insert(0) += 1;
    }
    assert_eq!(leads, BTreeMap::from([(1, 2), (2, 2), (3, 2)]));
    let before_failover = members[&leader].current();

    // The controller goes away: another member takes over and commits.
    router.nodes.lock().remove(&leader);
    let old = members.remove(&leader).unwrap();
    old.shutdown().await;
    drop(old);
    eventually("a new controller", || agreed_leader(&members).is_some_and(|l| l != leader)).await;
    let new_leader = agreed_leader(&members).unwrap();
    let block = match members[&new_leader].propose(MetadataCommand::AllocateProducerIds { broker: new_leader }).await {
        Ok(Applied::ProducerIds(block)) => block,
        other => panic!("{other:?}"),
    };
    assert_eq!((block.first, block.size, block.broker), (0, PRODUCER_ID_BLOCK_SIZE, new_leader));
    members[&new_leader].propose(MetadataCommand::FenceBroker { node_id: leader }).await.unwrap();
    eventually("the survivors to agree", || {
        let states: Vec<_> = members.values().map(|m| m.current()).collect();
        states.iter().all(|s| s == &states[0] && s.next_producer_id() == PRODUCER_ID_BLOCK_SIZE)
    })
    .await;

    // The old controller restarts from its RocksDB directory: it has what it applied
    // before, then catches up.
    let store = reopen_store(dirs[&leader].path(), stores.remove(&leader).unwrap()).await;
    let net = Net { router: router.clone(), from: leader };
    let restarted = MetadataGroup::start(leader, store.clone(), net, config.clone()).await.unwrap();
    assert_eq!(restarted.current(), before_failover, "state restored from disk before any contact");
    router.nodes.lock().insert(leader, restarted.raft().clone());
    members.insert(leader, restarted);
    let expected = members[&new_leader].current();
    eventually("the restarted member to catch up", || members[&leader].current() == expected).await;
    assert!(members[&leader].current().broker(leader).unwrap().fenced);

    for m in members.values() {
        m.shutdown().await;
    }
}

// ------------------------------------------------------------------------------------------
// One member: bootstrap alone, snapshot, purge, restart
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_broker_forms_a_group_alone_and_restarts_from_snapshot_and_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let router = Arc::new(Router::default());
    let mut config = (*raft_config().unwrap()).clone();
    config.max_in_snapshot_log_to_keep = 0;
    let config = Arc::new(config);
    let m = MetadataGroup::start(7, store.clone(), Net { router: router.clone(), from: 7 }, config.clone()).await.unwrap();
    router.nodes.lock().insert(7, m.raft().clone());
    assert!(m.bootstrap("127.0.0.1:19097", &BTreeMap::new()).await.unwrap());
    assert_eq!(m.wait_for_leader(DEADLINE).await, Some(7));
    eventually("leadership", || m.is_controller()).await;

    m.propose(registration(7)).await.unwrap();
    let first = Uuid::new_v4();
    m.propose(MetadataCommand::CreateTopic {
        name: "a".into(),
        topic_id: first,
        configs: BTreeMap::new(),
        assignments: m.current().assign(3, 1, None, Placement::default()).unwrap(),
    })
    .await
    .unwrap();

    // Snapshot now; the log up to it is purged.
    m.raft().trigger().snapshot().await.unwrap();
    let mut metrics = m.raft().metrics();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while metrics.borrow_and_update().purged.is_none() {
        tokio::time::timeout_at(deadline, metrics.changed()).await.expect("snapshot and purge").unwrap();
    }
    let mut log = MetadataLogStore::new(store.clone());
    let state = log.get_log_state().await.unwrap();
    assert!(state.last_purged_log_id.is_some(), "log purged behind the snapshot");

    // More after the snapshot: replayed from the log at restart.
    m.propose(MetadataCommand::AllocateProducerIds { broker: 7 }).await.unwrap();
    m.propose(MetadataCommand::AlterTopicConfigs {
        topic_id: first,
        configs: BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
    })
    .await
    .unwrap();
    let before = m.current();
    assert_eq!(before.next_producer_id(), PRODUCER_ID_BLOCK_SIZE);

    router.nodes.lock().remove(&7);
    m.shutdown().await;
    drop(m);
    drop(log);
    let store = reopen_store(dir.path(), store).await;
    let m = MetadataGroup::start(7, store, Net { router: router.clone(), from: 7 }, config).await.unwrap();
    router.nodes.lock().insert(7, m.raft().clone());
    assert_eq!(m.current(), before, "snapshot + replayed log = the state before the restart");
    assert!(!m.bootstrap("127.0.0.1:19097", &BTreeMap::new()).await.unwrap(), "already formed");
    eventually("leadership after restart", || m.is_controller()).await;
    match m.propose(MetadataCommand::AllocateProducerIds { broker: 7 }).await.unwrap() {
        Applied::ProducerIds(block) => assert_eq!(block.first, PRODUCER_ID_BLOCK_SIZE, "no id handed out twice"),
        other => panic!("{other:?}"),
    }
    m.shutdown().await;
}

// ------------------------------------------------------------------------------------------
// A learner far behind gets the snapshot
// ------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learner_behind_a_purged_log_installs_the_snapshot_then_follows() {
    let router = Arc::new(Router::default());
    let mut config = (*raft_config().unwrap()).clone();
    config.max_in_snapshot_log_to_keep = 0;
    let config = Arc::new(config);
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // fsync on: log appends are acknowledged by the WAL syncer.
    let m1 = MetadataGroup::start(1, open_store_with(d1.path(), true), Net { router: router.clone(), from: 1 }, config.clone())
        .await
        .unwrap();
    router.nodes.lock().insert(1, m1.raft().clone());
    assert!(m1.bootstrap("n1", &BTreeMap::new()).await.unwrap());
    eventually("leadership", || m1.is_controller()).await;
    for id in [1, 2] {
        m1.propose(registration(id)).await.unwrap();
    }
    let topic_id = Uuid::new_v4();
    let assignments = m1.current().assign(4, 2, None, Placement::default()).unwrap();
    m1.propose(MetadataCommand::CreateTopic { name: "t".into(), topic_id, configs: BTreeMap::new(), assignments })
        .await
        .unwrap();
    m1.raft().trigger().snapshot().await.unwrap();
    let mut metrics = m1.raft().metrics();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while metrics.borrow_and_update().purged.is_none() {
        tokio::time::timeout_at(deadline, metrics.changed()).await.expect("snapshot and purge").unwrap();
    }

    let m2 = MetadataGroup::start(2, open_store_with(d2.path(), true), Net { router: router.clone(), from: 2 }, config.clone())
        .await
        .unwrap();
    router.nodes.lock().insert(2, m2.raft().clone());
    assert!(!m2.bootstrap("n2", &BTreeMap::from([(1, "n1".to_string())])).await.unwrap(), "not a seed");
    match m2.add_learner(2, "n2").await {
        Err(ControllerError::NotController { leader }) => assert_eq!(leader, None, "no contact yet"),
        other => panic!("expected NotController, got {other:?}"),
    }
    m1.add_learner(2, "n2").await.unwrap();
    let expected = m1.current();
    eventually("the learner to install the snapshot", || m2.current() == expected).await;
    assert!(m2.raft().metrics().borrow().snapshot.is_some(), "caught up by snapshot, not entries");

    // Later entries reach it as entries.
    m1.propose(MetadataCommand::DeleteTopic { topic_id }).await.unwrap();
    eventually("the learner to apply the deletion", || m2.current().topic(topic_id).is_none()).await;
    assert_eq!(m2.leader(), Some(1));
    m2.shutdown().await;
    m1.shutdown().await;
}
