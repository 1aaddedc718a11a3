//! raft-groups: how much do N openraft 0.9 groups x 3 replicas cost on this machine?
//!
//! Everything runs in ONE process: three simulated brokers (node ids 1, 2, 3), each hosting one
//! replica of every group. The network is in-process: a replica's `RaftNetwork` calls the target
//! replica's `Raft` handle directly (which is an mpsc channel into the target's `RaftCore` task),
//! so there is no serialisation, no syscall and no socket in these numbers: they are the floor of
//! what openraft itself costs (tasks, timers, channels, its engine), not the cost of a real
//! transport. Log and state machine are in memory.
//!
//! Modes (`--mode`):
//! * `pergroup`  - openraft as shipped: every replica has its own tick timer, every leader sends
//!   its own heartbeats every `--hb` ms; election timeouts are 3x..6x `--hb`.
//! * `coalesced` - per-group heartbeats off (`enable_heartbeat = false`); one ticker per broker
//!   calls `trigger().heartbeat()` on every group it leads every `--hb` ms (what a per-broker-pair
//!   heartbeat frame would drive). Per-replica tick timers (election timeouts) stay on.
//! * `quiescent` - no per-group timers at all (`enable_tick = false`): no heartbeats, no election
//!   timers. One simulated liveness check per broker every `--hb` ms; a broker missing 3 checks is
//!   declared dead and, for each group it led, one surviving replica (spread by group id) is told
//!   to `trigger().elect()` (retried every `--hb` ms until the group has a leader). openraft still
//!   needs `--lease-ms`: its (disabled) tick task wakes every ~0.75 lease, and a follower refuses
//!   votes for one lease after it last heard from its leader.
//!
//! Phases: create the replicas, `initialize` each group on broker `g % 3 + 1` (spreading leaders),
//! wait for all leaders, settle, measure idle CPU, optionally run writers, optionally kill broker
//! 1 and time the failover of the groups it led.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt::Debug;
use std::io::Cursor;
use std::ops::RangeBounds;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::Duration;
use std::time::Instant;

use openraft::error::InstallSnapshotError;
use openraft::error::RPCError;
use openraft::error::RaftError;
use openraft::error::RemoteError;
use openraft::error::Unreachable;
use openraft::network::RPCOption;
use openraft::network::RaftNetwork;
use openraft::network::RaftNetworkFactory;
use openraft::raft::AppendEntriesRequest;
use openraft::raft::AppendEntriesResponse;
use openraft::raft::InstallSnapshotRequest;
use openraft::raft::InstallSnapshotResponse;
use openraft::raft::VoteRequest;
use openraft::raft::VoteResponse;
use openraft::storage::LogFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::BasicNode;
use openraft::Config;
use openraft::Entry;
use openraft::EntryPayload;
use openraft::LogId;
use openraft::LogState;
use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::ServerState;
use openraft::Snapshot;
use openraft::SnapshotMeta;
use openraft::SnapshotPolicy;
use openraft::StorageError;
use openraft::StoredMembership;
use openraft::Vote;

openraft::declare_raft_types!(
    /// Type config of the bench: opaque byte payloads, no response body.
    pub TC:
        D = Vec<u8>,
        R = (),
);

type NodeId = u64;
type Raft = openraft::Raft<TC>;

// ---------------------------------------------------------------------------------------------
// In-memory log store
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct LogInner {
    last_purged: Option<LogId<NodeId>>,
    log: BTreeMap<u64, Entry<TC>>,
    committed: Option<LogId<NodeId>>,
    vote: Option<Vote<NodeId>>,
}

/// One replica's Raft log (shared between its RaftCore and its replication readers).
#[derive(Clone, Default)]
struct LogStore(Arc<Mutex<LogInner>>);

impl RaftLogReader<TC> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TC>>, StorageError<NodeId>> {
        let g = self.0.lock().unwrap();
        Ok(g.log.range(range).map(|(_, e)| e.clone()).collect())
    }
}

impl RaftLogStorage<TC> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TC>, StorageError<NodeId>> {
        let g = self.0.lock().unwrap();
        let last = g.log.values().next_back().map(|e| e.log_id).or(g.last_purged);
        Ok(LogState { last_purged_log_id: g.last_purged, last_log_id: last })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().unwrap().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().unwrap().vote)
    }

    async fn save_committed(&mut self, c: Option<LogId<NodeId>>) -> Result<(), StorageError<NodeId>> {
        self.0.lock().unwrap().committed = c;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.0.lock().unwrap().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TC>) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        {
            let mut g = self.0.lock().unwrap();
            for e in entries {
                g.log.insert(e.log_id.index, e);
            }
        }
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut g = self.0.lock().unwrap();
        let _ = g.log.split_off(&log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut g = self.0.lock().unwrap();
        g.last_purged = Some(log_id);
        let keep = g.log.split_off(&(log_id.index + 1));
        g.log = keep;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Trivial state machine (the partition log is the state; only remember what was applied)
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct SmInner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    snapshot: Option<SnapshotMeta<NodeId, BasicNode>>,
}

#[derive(Clone, Default)]
struct StateMachine(Arc<Mutex<SmInner>>);

impl RaftSnapshotBuilder<TC> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TC>, StorageError<NodeId>> {
        let mut g = self.0.lock().unwrap();
        let meta = SnapshotMeta {
            last_log_id: g.last_applied,
            last_membership: g.membership.clone(),
            snapshot_id: format!("{:?}", g.last_applied.map(|l| l.index)),
        };
        g.snapshot = Some(meta.clone());
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(Vec::new())) })
    }
}

impl RaftStateMachine<TC> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>> {
        let g = self.0.lock().unwrap();
        Ok((g.last_applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TC>> + Send,
        I::IntoIter: Send,
    {
        let mut g = self.0.lock().unwrap();
        let mut out = Vec::new();
        for e in entries {
            g.last_applied = Some(e.log_id);
            if let EntryPayload::Membership(m) = &e.payload {
                g.membership = StoredMembership::new(Some(e.log_id), m.clone());
            }
            out.push(());
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        _snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut g = self.0.lock().unwrap();
        g.last_applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TC>>, StorageError<NodeId>> {
        let g = self.0.lock().unwrap();
        Ok(g.snapshot.clone().map(|meta| Snapshot { meta, snapshot: Box::new(Cursor::new(Vec::new())) }))
    }
}

// ---------------------------------------------------------------------------------------------
// In-process network
// ---------------------------------------------------------------------------------------------

/// All replicas of all groups, and which simulated brokers are alive.
struct Router {
    /// `nodes[g][b - 1]` is broker b's replica of group g.
    nodes: Vec<[OnceLock<Raft>; 3]>,
    alive: [AtomicBool; 3],
    append_rpcs: AtomicU64,
    empty_append_rpcs: AtomicU64,
    vote_rpcs: AtomicU64,
}

impl Router {
    fn node(&self, g: usize, b: NodeId) -> &Raft {
        self.nodes[g][(b - 1) as usize].get().expect("replica created")
    }
    fn is_alive(&self, b: NodeId) -> bool {
        self.alive[(b - 1) as usize].load(Ordering::Relaxed)
    }
}

#[derive(Debug)]
struct Down;
impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("broker down")
    }
}
impl std::error::Error for Down {}

struct NetFactory {
    router: Arc<Router>,
    group: usize,
    from: NodeId,
}

struct Conn {
    router: Arc<Router>,
    group: usize,
    from: NodeId,
    target: NodeId,
}

impl Conn {
    fn target<E: std::error::Error>(&self) -> Result<Raft, RPCError<NodeId, BasicNode, E>> {
        if !self.router.is_alive(self.from) || !self.router.is_alive(self.target) {
            return Err(RPCError::Unreachable(Unreachable::new(&Down)));
        }
        Ok(self.router.node(self.group, self.target).clone())
    }
}

impl RaftNetworkFactory<TC> for NetFactory {
    type Network = Conn;
    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Conn {
        Conn { router: self.router.clone(), group: self.group, from: self.from, target }
    }
}

impl RaftNetwork<TC> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TC>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.router.append_rpcs.fetch_add(1, Ordering::Relaxed);
        if rpc.entries.is_empty() {
            self.router.empty_append_rpcs.fetch_add(1, Ordering::Relaxed);
        }
        let t = self.target()?;
        t.append_entries(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TC>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        let t = self.target()?;
        t.install_snapshot(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.router.vote_rpcs.fetch_add(1, Ordering::Relaxed);
        let t = self.target()?;
        t.vote(rpc).await.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

// ---------------------------------------------------------------------------------------------
// Process measurements (Linux /proc)
// ---------------------------------------------------------------------------------------------

/// CPU time (user + system) this process has used, in seconds.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the comm field: state is index 0, utime index 11, stime index 12.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0 // CLK_TCK is 100 on Linux
}

/// Resident set size in bytes.
fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 4096
}

// ---------------------------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    PerGroup,
    Coalesced,
    Quiescent,
}

struct Args {
    groups: usize,
    mode: Mode,
    hb: u64,
    idle_secs: u64,
    writers: usize,
    write_secs: u64,
    payload: usize,
    failover: bool,
    threads: usize,
    lease_ms: u64,
}

fn parse_args() -> Args {
    let mut a = Args {
        groups: 100,
        mode: Mode::PerGroup,
        hb: 50,
        idle_secs: 5,
        writers: 0,
        write_secs: 5,
        payload: 100,
        failover: false,
        threads: 2,
        lease_ms: 1000,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--groups" => a.groups = val.parse().expect("--groups N"),
            "--mode" => {
                a.mode = match val.as_str() {
                    "pergroup" => Mode::PerGroup,
                    "coalesced" => Mode::Coalesced,
                    "quiescent" => Mode::Quiescent,
                    m => panic!("unknown mode {m}"),
                }
            }
            "--hb" => a.hb = val.parse().expect("--hb MS"),
            "--idle-secs" => a.idle_secs = val.parse().expect("--idle-secs S"),
            "--writers" => a.writers = val.parse().expect("--writers W"),
            "--write-secs" => a.write_secs = val.parse().expect("--write-secs S"),
            "--payload" => a.payload = val.parse().expect("--payload BYTES"),
            "--threads" => a.threads = val.parse().expect("--threads T"),
            "--lease-ms" => a.lease_ms = val.parse().expect("--lease-ms MS"),
            "--failover" => {
                a.failover = true;
                i += 1;
                continue;
            }
            x => panic!("unknown argument {x}"),
        }
        i += 2;
    }
    a
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(args));
}

/// Leader of group `g` if both `observers` agree it is `Some(l)` and `l` itself is Leader.
fn agreed_leader(router: &Router, g: usize, observers: &[NodeId]) -> Option<NodeId> {
    let mut leader = None;
    for &b in observers {
        let l = router.node(g, b).metrics().borrow().current_leader?;
        if leader.is_some() && leader != Some(l) {
            return None;
        }
        leader = Some(l);
    }
    let l = leader?;
    if !observers.contains(&l) && !router.is_alive(l) {
        return None;
    }
    if router.node(g, l).metrics().borrow().state == ServerState::Leader {
        Some(l)
    } else {
        None
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

async fn run(args: Args) {
    let n = args.groups;
    let hb = args.hb;
    // pergroup/coalesced: openraft's timers at `--hb`, election timeouts 3x..6x `--hb`.
    // quiescent: ticks are disabled, but openraft's tick task still wakes every
    // 1.5 x heartbeat_interval, and a follower refuses votes for `election_timeout_max` after
    // it last heard from its leader (the leader lease): both come from `--lease-ms`.
    let (raft_hb, el_min, el_max) = match args.mode {
        Mode::Quiescent => (args.lease_ms / 2 - 1, args.lease_ms / 2, args.lease_ms),
        _ => (hb, hb * 3, hb * 6),
    };
    let config = Arc::new(
        Config {
            cluster_name: "bench".into(),
            heartbeat_interval: raft_hb,
            election_timeout_min: el_min,
            election_timeout_max: el_max,
            enable_tick: args.mode != Mode::Quiescent,
            enable_heartbeat: args.mode == Mode::PerGroup,
            snapshot_policy: SnapshotPolicy::Never,
            ..Default::default()
        }
        .validate()
        .expect("valid raft config"),
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "# groups={n} replicas={} mode={:?} hb={hb}ms raft_hb={raft_hb}ms election={el_min}..{el_max}ms tokio_threads={} loadavg={}",
        n * 3,
        args.mode,
        args.threads,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );

    let rss0 = rss_bytes();
    let router = Arc::new(Router {
        nodes: (0..n).map(|_| [OnceLock::new(), OnceLock::new(), OnceLock::new()]).collect(),
        alive: [AtomicBool::new(true), AtomicBool::new(true), AtomicBool::new(true)],
        append_rpcs: AtomicU64::new(0),
        empty_append_rpcs: AtomicU64::new(0),
        vote_rpcs: AtomicU64::new(0),
    });

    // --- create replicas
    let t = Instant::now();
    for g in 0..n {
        for b in 1..=3u64 {
            let net = NetFactory { router: router.clone(), group: g, from: b };
            let raft = Raft::new(b, config.clone(), net, LogStore::default(), StateMachine::default())
                .await
                .expect("raft node");
            let _ = router.nodes[g][(b - 1) as usize].set(raft);
        }
    }
    let create_ms = t.elapsed().as_millis();

    // --- elect: initialize each group on broker g%3+1 (it campaigns at once)
    let t = Instant::now();
    let members: BTreeSet<NodeId> = [1, 2, 3].into_iter().collect();
    for g in 0..n {
        let b = (g % 3) as u64 + 1;
        router.node(g, b).initialize(members.clone()).await.expect("initialize");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ready = (0..n).filter(|&g| agreed_leader(&router, g, &[1, 2, 3]).is_some()).count();
        if ready == n {
            break;
        }
        if Instant::now() > deadline {
            println!("ELECTION TIMEOUT: {ready}/{n} groups have a leader");
            std::process::exit(1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elect_ms = t.elapsed().as_millis();
    let leaders_on = |b: NodeId| (0..n).filter(|&g| agreed_leader(&router, g, &[1, 2, 3]) == Some(b)).count();
    println!(
        "create_replicas_ms={create_ms} elect_all_ms={elect_ms} leaders_per_broker={}/{}/{}",
        leaders_on(1),
        leaders_on(2),
        leaders_on(3)
    );

    // --- background tickers for the non-default modes
    let stop = Arc::new(AtomicBool::new(false));
    if args.mode == Mode::Coalesced {
        for b in 1..=3u64 {
            let router = router.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut iv = tokio::time::interval(Duration::from_millis(hb));
                while !stop.load(Ordering::Relaxed) {
                    iv.tick().await;
                    if !router.is_alive(b) {
                        return;
                    }
                    for g in 0..n {
                        let r = router.node(g, b);
                        if r.metrics().borrow().state == ServerState::Leader {
                            let _ = r.trigger().heartbeat().await;
                        }
                    }
                }
            });
        }
    }

    // settle, then measure memory and idle cost
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss1 = rss_bytes();
    let (c0, a0, e0, v0) = (
        cpu_secs(),
        router.append_rpcs.load(Ordering::Relaxed),
        router.empty_append_rpcs.load(Ordering::Relaxed),
        router.vote_rpcs.load(Ordering::Relaxed),
    );
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let secs = t.elapsed().as_secs_f64();
    let idle_cpu = (cpu_secs() - c0) / secs;
    let ae = (router.append_rpcs.load(Ordering::Relaxed) - a0) as f64 / secs;
    let ee = (router.empty_append_rpcs.load(Ordering::Relaxed) - e0) as f64 / secs;
    let vv = (router.vote_rpcs.load(Ordering::Relaxed) - v0) as f64 / secs;
    println!(
        "rss_mib={:.1} rss_per_group_kib={:.1} idle_cpu_cores={:.3} idle_cpu_us_per_group_per_s={:.1} append_rpcs_per_s={ae:.0} (empty {ee:.0}) vote_rpcs_per_s={vv:.1}",
        rss1 as f64 / 1048576.0,
        (rss1.saturating_sub(rss0)) as f64 / 1024.0 / n as f64,
        idle_cpu,
        idle_cpu * 1e6 / n as f64,
    );

    // --- writes
    if args.writers > 0 {
        let c0 = cpu_secs();
        let t = Instant::now();
        let end = t + Duration::from_secs(args.write_secs);
        let mut tasks = Vec::new();
        for w in 0..args.writers {
            let router = router.clone();
            let payload = vec![0x5a_u8; args.payload];
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut k = 0usize;
                while Instant::now() < end {
                    let g = (w + k * args.writers) % n;
                    k += 1;
                    let Some(l) = agreed_leader(&router, g, &[1, 2, 3]) else { continue };
                    let s = Instant::now();
                    if router.node(g, l).client_write(payload.clone()).await.is_ok() {
                        lat.push(s.elapsed().as_micros() as u64);
                    }
                }
                lat
            }));
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.expect("writer"));
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = (cpu_secs() - c0) / secs;
        lat.sort_unstable();
        println!(
            "writers={} payload={}B commits_per_s={:.0} p50_us={} p99_us={} max_us={} write_cpu_cores={:.2} cpu_us_per_commit={:.1} (above idle {:.1})",
            args.writers,
            args.payload,
            lat.len() as f64 / secs,
            pct(&lat, 0.50),
            pct(&lat, 0.99),
            lat.last().copied().unwrap_or(0),
            cpu,
            cpu * secs * 1e6 / lat.len().max(1) as f64,
            (cpu - idle_cpu).max(0.0) * secs * 1e6 / lat.len().max(1) as f64
        );
    }

    // --- failover: broker 1 dies (all its replicas stop answering, then shut down)
    if args.failover {
        let led: Vec<usize> = (0..n).filter(|&g| agreed_leader(&router, g, &[1, 2, 3]) == Some(1)).collect();
        let t = Instant::now();
        router.alive[0].store(false, Ordering::Relaxed);
        for g in 0..n {
            let r = router.node(g, 1).clone();
            tokio::spawn(async move {
                let _ = r.shutdown().await;
            });
        }
        if args.mode == Mode::Quiescent {
            // Simulated per-broker-pair liveness: broker 1 is declared dead after 3 missed
            // checks; then one survivor per group campaigns (spread by group id), retried.
            let router = router.clone();
            let led = led.clone();
            tokio::spawn(async move {
                let mut missed = 0;
                let mut iv = tokio::time::interval(Duration::from_millis(hb));
                loop {
                    iv.tick().await;
                    if router.is_alive(1) {
                        missed = 0;
                        continue;
                    }
                    missed += 1;
                    if missed < 3 {
                        continue;
                    }
                    let mut pending = 0;
                    for &g in &led {
                        if agreed_leader(&router, g, &[2, 3]).is_some() {
                            continue;
                        }
                        pending += 1;
                        let b = if g % 2 == 0 { 2 } else { 3 };
                        let _ = router.node(g, b).trigger().elect().await;
                    }
                    if pending == 0 {
                        return;
                    }
                }
            });
        }
        let mut done_at: Vec<Option<u128>> = vec![None; led.len()];
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut left = 0;
            for (i, &g) in led.iter().enumerate() {
                if done_at[i].is_none() {
                    if agreed_leader(&router, g, &[2, 3]).is_some() {
                        done_at[i] = Some(t.elapsed().as_millis());
                    } else {
                        left += 1;
                    }
                }
            }
            if left == 0 || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut ms: Vec<u64> = done_at.iter().flatten().map(|&v| v as u64).collect();
        ms.sort_unstable();
        println!(
            "failover: groups_led_by_dead_broker={} re_elected={} first_ms={} p50_ms={} p99_ms={} all_ms={}",
            led.len(),
            ms.len(),
            ms.first().copied().unwrap_or(0),
            pct(&ms, 0.5),
            pct(&ms, 0.99),
            ms.last().copied().unwrap_or(0)
        );
    }
    stop.store(true, Ordering::Relaxed);
    // Exit without an orderly shutdown of thousands of replicas.
    std::process::exit(0);
}
