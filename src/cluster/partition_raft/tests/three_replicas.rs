//! Three replicas of one partition in one process (an in-process network, as in
//! `bench/raft-groups`): the leader proposes stamped batches; followers store the same
//! bytes at the same offsets; after the leader stops, another takes over with no gap.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::{BasicNode, Raft};
use tempfile::TempDir;
use uuid::Uuid;

use super::super::*;
use super::{open_store, sample_batch, split_and_validate, Stamped};
use crate::cluster::NodeId;

/// The replicas by node id, and which are running.
#[derive(Default)]
struct Router {
    nodes: [OnceLock<Raft<PartitionRaft>>; 3],
    down: [AtomicBool; 3],
}

impl Router {
    fn up(&self, id: NodeId) -> bool {
        !self.down[(id - 1) as usize].load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Down;
impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("replica down")
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
    fn target<E: std::error::Error>(&self) -> Result<Raft<PartitionRaft>, RPCError<NodeId, BasicNode, E>> {
        if !self.router.up(self.from) || !self.router.up(self.target) {
            return Err(RPCError::Unreachable(Unreachable::new(&Down)));
        }
        Ok(self.router.nodes[(self.target - 1) as usize].get().expect("replica started").clone())
    }
}

impl RaftNetworkFactory<PartitionRaft> for Net {
    type Network = Conn;
    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Conn {
        Conn { router: self.router.clone(), from: self.from, target }
    }
}

impl RaftNetwork<PartitionRaft> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<PartitionRaft>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let t = self.target()?;
        t.append_entries(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<PartitionRaft>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>>
    {
        let t = self.target()?;
        t.install_snapshot(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let t = self.target()?;
        t.vote(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

struct Member {
    _dir: TempDir,
    log: Arc<PartitionLog>,
    raft: Raft<PartitionRaft>,
}

/// Polls `check` every 10 ms until it holds or `secs` pass.
async fn eventually(what: &str, secs: u64, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Proposes `count` batches through `leader`, stamped from its log end in its term;
/// returns their base offsets as committed and the last entry's log id.
async fn propose(leader: &Member, count: usize, pid: i64, first_seq: i32) -> (Vec<i64>, openraft::LogId<NodeId>) {
    let term = leader.raft.metrics().borrow().current_term;
    let mut offsets = Vec::new();
    let mut last = None;
    for i in 0..count {
        let next = leader.log.offsets().log_end;
        let batches = split_and_validate(sample_batch(2, pid, first_seq + 2 * i as i32).freeze()).unwrap();
        let Stamped::New(_, bytes) = leader.log.stamp(batches, next, term as i32).unwrap().batches.remove(0) else {
            panic!("a new batch")
        };
        let written = leader.raft.client_write(PartitionCommand::Batch(bytes.freeze())).await.unwrap();
        let PartitionReply::Appended { base_offset, last_offset } = written.data else { panic!("{:?}", written.data) };
        assert_eq!(base_offset, next);
        assert_eq!(last_offset, next + 1);
        offsets.push(base_offset);
        last = Some(written.log_id);
    }
    (offsets, last.expect("at least one batch"))
}

/// Whether every member has applied `log_id`.
fn all_applied(members: &BTreeMap<NodeId, Member>, log_id: openraft::LogId<NodeId>) -> bool {
    members.values().all(|m| m.raft.metrics().borrow().last_applied.is_some_and(|a| a >= log_id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_store_the_same_batches_and_fail_over_without_a_gap() {
    // RUST_LOG=openraft=debug shows what the replicas do.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let topic = Uuid::new_v4();
    let router = Arc::new(Router::default());
    let config = Arc::new(
        openraft::Config {
            enable_tick: true,
            heartbeat_interval: 50,
            election_timeout_min: 300,
            election_timeout_max: 600,
            ..raft_config()
        }
        .validate()
        .unwrap(),
    );
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let dir = tempfile::tempdir().unwrap();
        // Replica 2 fsyncs: its acknowledgements wait for the group commit.
        let store = open_store(dir.path(), id == 2);
        let log = PartitionLog::create(store, topic, 0).unwrap();
        let (log_store, sm) = open(log.clone()).unwrap();
        let net = Net { router: router.clone(), from: id };
        let raft = Raft::new(id, config.clone(), net, log_store, sm).await.unwrap();
        router.nodes[(id - 1) as usize].set(raft.clone()).ok().unwrap();
        members.insert(id, Member { _dir: dir, log, raft });
    }
    let voters: BTreeMap<NodeId, BasicNode> = (1..=3).map(|id| (id, BasicNode::new(format!("replica-{id}")))).collect();
    members[&1].raft.initialize(voters).await.unwrap();
    let leader_of = |members: &BTreeMap<NodeId, Member>| -> Option<NodeId> {
        members.values().find_map(|m| m.raft.metrics().borrow().current_leader).filter(|l| members.contains_key(l))
    };
    eventually("a leader", 10, || leader_of(&members).is_some()).await;
    let first = leader_of(&members).unwrap();
    let (offsets, last) = propose(&members[&first], 5, 42, 0).await;
    assert_eq!(offsets, vec![0, 2, 4, 6, 8]);

    // Every replica holds the same bytes at the same offsets, and the same HW, once applied.
    eventually("followers applying", 10, || all_applied(&members, last)).await;
    let leader_bytes = members[&first].log.read(0, 1 << 20, true).unwrap().records;
    assert_eq!(crate::storage::batch::count_records(&leader_bytes), 10);
    for (id, m) in &members {
        assert_eq!(m.log.read(0, 1 << 20, true).unwrap().records, leader_bytes, "replica {id}");
        assert_eq!(m.log.offsets().high_watermark, 10, "replica {id}");
        assert_eq!(m.log.offsets().log_end, 10, "replica {id}");
    }

    // The leader stops; one of the others is elected and the log goes on at offset 10.
    router.down[(first - 1) as usize].store(true, Ordering::SeqCst);
    let gone = members.remove(&first).unwrap();
    gone.raft.shutdown().await.unwrap();
    let old_term = members.values().map(|m| m.raft.metrics().borrow().current_term).max().unwrap();
    eventually("a new leader", 15, || {
        leader_of(&members).is_some_and(|l| members[&l].raft.metrics().borrow().current_term > old_term)
    })
    .await;
    let second = leader_of(&members).unwrap();
    let (offsets, last) = propose(&members[&second], 3, 42, 10).await;
    assert_eq!(offsets, vec![10, 12, 14], "no gap, no overlap after failover");
    eventually("the survivor applying", 10, || all_applied(&members, last)).await;
    let bytes = members[&second].log.read(0, 1 << 20, true).unwrap().records;
    assert_eq!(bytes.slice(..leader_bytes.len()), leader_bytes, "what was committed before stays byte for byte");
    for m in members.values() {
        assert_eq!(m.log.read(0, 1 << 20, true).unwrap().records, bytes);
        assert_eq!(m.log.offsets().high_watermark, 16);
        // The new term wrote data: the epoch history knows where it started.
        let term = members[&second].raft.metrics().borrow().current_term as i32;
        assert_eq!(m.log.end_offset_for_epoch(term - 1).unwrap().map(|(_, end)| end), Some(10));
    }
    // A retry of the last batch before the failover is a duplicate on the new leader.
    let retry = split_and_validate(sample_batch(2, 42, 8).freeze()).unwrap();
    let new_leader = &members[&second];
    let stamp = new_leader.log.stamp(retry, new_leader.log.offsets().log_end, 0).unwrap();
    assert!(matches!(stamp.batches[0], Stamped::Duplicate(8)));
    for m in members.values() {
        m.raft.shutdown().await.unwrap();
    }
}
