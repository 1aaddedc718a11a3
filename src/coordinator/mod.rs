//! The group coordinator: consumer groups (the classic JoinGroup/SyncGroup protocol
//! and KIP-848 consumer groups) and their committed offsets.
//!
//! Each group lives behind its own mutex; an operation locks one group, changes it,
//! persists what changed (`GroupStore`) and returns either an answer or a receiver
//! the handler awaits (a JoinGroup that waits for the rebalance). Timers (initial
//! delay, rebalance, session and sync timeouts, offset expiry) run in one background
//! task that wakes at the earliest deadline of any group.

mod assignor;
mod classic;
mod consumer;
mod group;
mod offsets;
mod reconcile;
pub mod txn;
mod txn_offsets;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, Notify};
use tokio::time::{Duration, Instant};

pub use classic::{JoinOutcome, JoinParams, JoinedMember, SyncOutcome, SyncParams};
pub use consumer::{
    Assignment, ConsumerDescription, ConsumerHeartbeat, ConsumerMemberDescription, HeartbeatOutcome, NamedAssignment,
    TopicLookup,
};
pub use group::{Group, GroupKind};
pub use offsets::{CommitParams, CommitResults, FetchedOffsets, PartitionCommit};
pub use txn_offsets::TxnCommitMember;

use crate::error::{GroupError, StorageError};
pub use crate::storage::group_store::StoredOffset;
use crate::storage::group_store::GroupStore;
use crate::storage::{Store, TopicStore};
use classic::ClassicGroup;
use group::GroupRecord;

/// Milliseconds as a Duration (negative values count as zero).
pub fn ms(v: impl Into<i64>) -> Duration {
    Duration::from_millis(v.into().max(0) as u64)
}

/// Coordinator settings (Kafka's broker defaults).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// group.min.session.timeout.ms
    pub min_session_timeout_ms: i32,
    /// group.max.session.timeout.ms
    pub max_session_timeout_ms: i32,
    /// group.initial.rebalance.delay.ms
    pub initial_rebalance_delay_ms: i32,
    /// How long a new member's first JoinGroup may wait.
    pub new_member_join_timeout_ms: i32,
    /// offsets.retention.minutes, in ms.
    pub offsets_retention_ms: i64,
    /// offsets.retention.check.interval.ms
    pub offsets_retention_check_interval_ms: u64,
    /// offset.metadata.max.bytes
    pub offset_metadata_max_bytes: usize,
    /// group.consumer.session.timeout.ms (KIP-848 groups)
    pub consumer_session_timeout_ms: i32,
    /// group.consumer.heartbeat.interval.ms (KIP-848 groups)
    pub consumer_heartbeat_interval_ms: i32,
}

/// Kafka's default retention of an empty group's offsets: 7 days.
pub const DEFAULT_OFFSETS_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

impl Default for GroupSettings {
    fn default() -> Self {
        GroupSettings {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            new_member_join_timeout_ms: 300_000,
            offsets_retention_ms: DEFAULT_OFFSETS_RETENTION_MS,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            consumer_session_timeout_ms: 45_000,
            consumer_heartbeat_interval_ms: 5_000,
        }
    }
}

/// Who sent a request.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client id from the request header.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
}

/// An answer now, or one to wait for.
pub enum Pending<T> {
    /// The answer.
    Ready(T),
    /// The answer arrives when the group moves on.
    Wait(oneshot::Receiver<T>),
}

impl<T> Pending<T> {
    /// The answer; `dropped` if the group dropped the request without one.
    pub async fn resolve(self, dropped: impl FnOnce() -> T) -> T {
        match self {
            Pending::Ready(t) => t,
            Pending::Wait(rx) => rx.await.unwrap_or_else(|_| dropped()),
        }
    }
}

/// Time as the state machines see it.
pub struct Ctx<'a> {
    /// Settings.
    pub settings: &'a GroupSettings,
    /// Monotonic now (deadlines).
    pub now: Instant,
    /// Wall-clock now in ms since the epoch (persisted timestamps).
    pub wall_ms: i64,
}

/// A source of time: the system clock, or a manual one for tests.
#[derive(Clone)]
pub enum Clock {
    /// Real time; timers run in a background task.
    System,
    /// Time set by the test; timers run when the test calls `run_timers`.
    Manual(Arc<Mutex<(Instant, i64)>>),
}

impl Clock {
    fn now(&self) -> (Instant, i64) {
        match self {
            Clock::System => {
                let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
                (Instant::now(), wall)
            }
            Clock::Manual(t) => *t.lock(),
        }
    }
}

/// A group in the describe form of the classic protocol.
#[derive(Debug, Clone, Default)]
pub struct GroupDescription {
    /// State name.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Selected protocol (Stable groups).
    pub protocol_data: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A member in DescribeGroups.
#[derive(Debug, Clone, Default)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata of the selected protocol (Stable groups).
    pub metadata: Bytes,
    /// Assignment (Stable groups).
    pub assignment: Bytes,
}

/// A group in ListGroups.
#[derive(Debug, Clone)]
pub struct ListedGroup {
    /// Group id.
    pub group_id: String,
    /// Protocol type.
    pub protocol_type: String,
    /// State name.
    pub state: String,
    /// "classic" or "consumer".
    pub group_type: String,
}

/// The group coordinator.
pub struct GroupCoordinator {
    inner: Arc<Inner>,
}

struct Inner {
    settings: GroupSettings,
    clock: Clock,
    store: GroupStore,
    groups: RwLock<HashMap<String, Arc<Mutex<Group>>>>,
    timers: Mutex<BinaryHeap<Reverse<(Instant, String)>>>,
    wake: Arc<Notify>,
    reaper_started: AtomicBool,
}

impl GroupCoordinator {
    /// Loads every persisted group and offset.
    pub fn load(store: Arc<Store>, settings: GroupSettings) -> Result<GroupCoordinator, StorageError> {
        Self::load_with_clock(store, settings, Clock::System)
    }

    /// Loads with an explicit clock (tests).
    pub fn load_with_clock(store: Arc<Store>, settings: GroupSettings, clock: Clock) -> Result<GroupCoordinator, StorageError> {
        let store = GroupStore::new(store);
        let loaded = store.load()?;
        let (now, wall_ms) = clock.now();
        let ctx = Ctx { settings: &settings, now, wall_ms };
        let mut groups: HashMap<String, Group> = HashMap::new();
        for (id, bytes) in loaded.groups {
            let mut group = Group::new(&id);
            match serde_json::from_slice::<GroupRecord>(&bytes) {
                Ok(GroupRecord::Classic(r)) => group.kind = GroupKind::Classic(ClassicGroup::from_record(r, now)),
                Ok(GroupRecord::Consumer(r)) => {
                    group.kind = GroupKind::Consumer(consumer::ConsumerGroup::from_record(r, &ctx))
                }
                Err(e) => return Err(StorageError::CorruptMetadata(format!("group {id}: {e}"))),
            }
            groups.insert(id, group);
        }
        let offsets = loaded.offsets.len();
        for (id, topic, partition, offset) in loaded.offsets {
            groups.entry(id.clone()).or_insert_with(|| Group::new(&id)).offsets.insert((topic, partition), offset);
        }
        tracing::info!(groups = groups.len(), offsets, "consumer groups loaded");
        let coordinator = GroupCoordinator {
            inner: Arc::new(Inner {
                settings,
                clock,
                store,
                groups: RwLock::new(HashMap::new()),
                timers: Mutex::new(BinaryHeap::new()),
                wake: Arc::new(Notify::new()),
                reaper_started: AtomicBool::new(false),
            }),
        };
        for (id, mut group) in groups {
            coordinator.inner.schedule(&mut group);
            coordinator.inner.groups.write().insert(id, Arc::new(Mutex::new(group)));
        }
        coordinator.ensure_reaper();
        Ok(coordinator)
    }

    /// The settings in force.
    pub fn settings(&self) -> &GroupSettings {
        &self.inner.settings
    }

    /// Starts the timer task once a tokio runtime is available.
    fn ensure_reaper(&self) {
        if !matches!(self.inner.clock, Clock::System) || self.inner.reaper_started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        if self.inner.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        handle.spawn(reaper(Arc::downgrade(&self.inner), self.inner.wake.clone()));
    }

    /// Runs `f` on the group (created if `create`), then persists and reschedules it.
    /// None if the group does not exist.
    fn with_group<R>(&self, id: &str, create: bool, f: impl FnOnce(&mut Group, &Ctx) -> R) -> Option<R> {
        self.ensure_reaper();
        self.inner.with_group(id, create, f)
    }

    /// Waits until committed offsets are durable (fsync mode).
    pub async fn wait_durable(&self) -> Result<(), GroupError> {
        Ok(self.inner.store.wait_durable().await?)
    }

    /// JoinGroup.
    pub fn join_group(&self, group_id: &str, p: JoinParams) -> Pending<JoinOutcome> {
        if group_id.is_empty() {
            return Pending::Ready(JoinOutcome::failed(&GroupError::InvalidGroupId, &p.member_id));
        }
        let s = &self.inner.settings;
        if p.session_timeout_ms < s.min_session_timeout_ms || p.session_timeout_ms > s.max_session_timeout_ms {
            return Pending::Ready(JoinOutcome::failed(&GroupError::InvalidSessionTimeout(p.session_timeout_ms), &p.member_id));
        }
        let member_id = p.member_id.clone();
        let create = p.member_id.is_empty();
        // A zero rebalance timeout would make the join timer fire continuously.
        let mut p = p;
        p.rebalance_timeout_ms = p.rebalance_timeout_ms.max(1_000);
        self.with_group(group_id, create, |g, ctx| {
            if let GroupKind::Consumer(c) = &g.kind {
                if !c.members.is_empty() {
                    return Pending::Ready(JoinOutcome::failed(&GroupError::InconsistentGroupProtocol, &p.member_id));
                }
                // An empty consumer group becomes a classic group (its offsets stay).
                g.kind = GroupKind::Classic(ClassicGroup::default());
            }
            let GroupKind::Classic(c) = &mut g.kind else { unreachable!() };
            c.join(ctx, p)
        })
        .unwrap_or_else(|| Pending::Ready(JoinOutcome::failed(&GroupError::UnknownMemberId, &member_id)))
    }

    /// ConsumerGroupHeartbeat (KIP-848): joins, heartbeats, reconciles or leaves.
    pub fn consumer_heartbeat(&self, topics: &dyn TopicLookup, group_id: &str, hb: ConsumerHeartbeat) -> Result<HeartbeatOutcome, GroupError> {
        consumer::validate_heartbeat(group_id, &hb)?;
        let joining = hb.member_epoch == 0;
        let not_consumer = || GroupError::GroupIdNotFound(format!("group {group_id} is not a consumer group"));
        self.with_group(group_id, joining, |g, ctx| {
            if let GroupKind::Classic(c) = &g.kind {
                // An empty classic group (or one that only has offsets) becomes a consumer group.
                if !(joining && c.members.is_empty() && c.pending_members.is_empty()) {
                    return Err(not_consumer());
                }
                g.kind = GroupKind::Consumer(consumer::ConsumerGroup::default());
            }
            let GroupKind::Consumer(c) = &mut g.kind else { unreachable!() };
            c.heartbeat(ctx, topics, hb)
        })
        .unwrap_or_else(|| Err(GroupError::GroupIdNotFound(format!("group {group_id} not found"))))
    }

    /// ConsumerGroupDescribe for one group.
    pub fn consumer_describe(&self, topics: &dyn TopicLookup, group_id: &str) -> Result<ConsumerDescription, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.with_group(group_id, false, |g, _| match &g.kind {
            GroupKind::Consumer(c) => Ok(c.describe(topics)),
            GroupKind::Classic(_) => Err(GroupError::GroupIdNotFound(format!("group {group_id} is not a consumer group"))),
        })
        .unwrap_or_else(|| Err(GroupError::GroupIdNotFound(format!("group {group_id} not found"))))
    }

    /// SyncGroup.
    pub fn sync_group(&self, group_id: &str, p: SyncParams) -> Pending<SyncOutcome> {
        if group_id.is_empty() {
            return Pending::Ready(SyncOutcome::failed(&GroupError::InvalidGroupId));
        }
        self.with_group(group_id, false, |g, ctx| match &mut g.kind {
            GroupKind::Classic(c) => c.sync(ctx, p),
            GroupKind::Consumer(_) => Pending::Ready(SyncOutcome::failed(&GroupError::UnknownMemberId)),
        })
        .unwrap_or_else(|| Pending::Ready(SyncOutcome::failed(&GroupError::UnknownMemberId)))
    }

    /// Heartbeat.
    pub fn heartbeat(&self, group_id: &str, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.with_group(group_id, false, |g, ctx| match &mut g.kind {
            GroupKind::Classic(c) => c.heartbeat(ctx, member_id, instance_id, generation),
            GroupKind::Consumer(_) => Err(GroupError::UnknownMemberId),
        })
        .unwrap_or(Err(GroupError::UnknownMemberId))
    }

    /// LeaveGroup: one result per (member id, instance id).
    pub fn leave_group(&self, group_id: &str, members: &[(String, Option<String>)]) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.with_group(group_id, false, |g, ctx| match &mut g.kind {
            GroupKind::Classic(c) => Ok(c.leave(ctx, members)),
            GroupKind::Consumer(_) => Err(GroupError::UnknownMemberId),
        })
        .unwrap_or(Err(GroupError::UnknownMemberId))
    }

    /// OffsetCommit: validates the member and generation, checks each partition
    /// exists, persists the offsets. The caller waits for durability.
    pub fn commit_offsets(&self, topics: &TopicStore, p: CommitParams) -> Result<CommitResults, GroupError> {
        if p.group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let create = p.generation_or_epoch < 0;
        let group_id = p.group_id.clone();
        let max_metadata = self.inner.settings.offset_metadata_max_bytes;
        let store = &self.inner.store;
        self.with_group(&group_id, create, |g, ctx| {
            g.validate_offset_commit(&p)?;
            if let GroupKind::Classic(c) = &mut g.kind {
                c.commit_keeps_alive(ctx, &p.member_id);
            }
            let expire = (p.retention_ms >= 0 && p.api_version <= 4).then(|| ctx.wall_ms + p.retention_ms);
            let mut writes = Vec::new();
            let results: CommitResults = p
                .topics
                .iter()
                .map(|(topic, partitions)| {
                    let log = topics.get(topic);
                    let results = partitions
                        .iter()
                        .map(|pc| {
                            let result = if log.as_ref().and_then(|t| t.partition(pc.partition)).is_none() {
                                Err(GroupError::UnknownTopicOrPartition)
                            } else if pc.metadata.as_ref().map(|m| m.len() > max_metadata).unwrap_or(false) {
                                Err(GroupError::OffsetMetadataTooLarge)
                            } else {
                                let offset = StoredOffset {
                                    offset: pc.offset,
                                    leader_epoch: pc.leader_epoch,
                                    metadata: pc.metadata.clone().unwrap_or_default(),
                                    commit_timestamp_ms: ctx.wall_ms,
                                    expire_timestamp_ms: expire,
                                };
                                writes.push((topic.clone(), pc.partition, offset));
                                Ok(())
                            };
                            (pc.partition, result)
                        })
                        .collect();
                    (topic.clone(), results)
                })
                .collect();
            store.commit_offsets(&g.id, &writes)?;
            for (topic, partition, offset) in writes {
                g.offsets.insert((topic, partition), offset);
            }
            Ok(results)
        })
        .unwrap_or_else(|| {
            // The group does not exist and the commit claims a generation.
            Err(if p.api_version >= 9 {
                GroupError::GroupIdNotFound(format!("group {group_id} does not exist"))
            } else {
                GroupError::IllegalGeneration
            })
        })
    }

    /// OffsetFetch for one group: the requested partitions (None: all committed).
    /// `member` is the (member id, epoch) of OffsetFetch v9.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<&[(String, Vec<i32>)]>,
        member: Option<(&str, i32)>,
    ) -> Result<FetchedOffsets, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let none_committed = || match topics {
            Some(topics) => topics.iter().map(|(t, ps)| (t.clone(), ps.iter().map(|p| (*p, None)).collect())).collect(),
            None => Vec::new(),
        };
        self.with_group(group_id, false, |g, _| {
            g.validate_offset_fetch(member)?;
            Ok(g.fetch_offsets(topics))
        })
        .unwrap_or_else(|| Ok(none_committed()))
    }

    /// DescribeGroups for one group.
    pub fn describe_group(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let not_found = || GroupError::GroupIdNotFound(format!("group {group_id} not found"));
        self.with_group(group_id, false, |g, _| match &g.kind {
            GroupKind::Classic(c) => Ok(c.describe()),
            GroupKind::Consumer(_) => Err(GroupError::GroupIdNotFound(format!("group {group_id} is not a classic group"))),
        })
        .unwrap_or_else(|| Err(not_found()))
    }

    /// ListGroups with optional state and type filters (case-insensitive).
    pub fn list_groups(&self, states: &[String], types: &[String]) -> Vec<ListedGroup> {
        let states: Vec<String> = states.iter().map(|s| s.trim().to_lowercase()).collect();
        let types: Vec<String> = types.iter().map(|s| s.trim().to_lowercase()).collect();
        let cells: Vec<Arc<Mutex<Group>>> = self.inner.groups.read().values().cloned().collect();
        let mut listed: Vec<ListedGroup> = cells
            .iter()
            .filter_map(|cell| {
                let g = cell.lock();
                let listed = ListedGroup {
                    group_id: g.id.clone(),
                    protocol_type: g.protocol_type(),
                    state: g.state_name().to_string(),
                    group_type: g.type_name().to_string(),
                };
                let state_ok = states.is_empty() || states.contains(&listed.state.to_lowercase());
                let type_ok = types.is_empty() || types.contains(&listed.group_type);
                (!g.dead && state_ok && type_ok).then_some(listed)
            })
            .collect();
        listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listed
    }

    /// DeleteGroups for one group: only an empty group can be deleted.
    pub fn delete_group(&self, group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        self.inner.remove_group(group_id, |g| if g.is_empty() { Ok(()) } else { Err(GroupError::NonEmptyGroup) })
    }

    /// OffsetDelete: removes offsets of topics the group does not consume.
    pub fn delete_offsets(&self, group_id: &str, topics: &[(String, Vec<i32>)]) -> Result<CommitResults, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let store = &self.inner.store;
        self.with_group(group_id, false, |g, _| {
            if let GroupKind::Classic(c) = &g.kind {
                let consumer = c.protocol_type.as_deref() == Some(classic::CONSUMER_PROTOCOL_TYPE);
                if !g.is_empty() && !consumer {
                    return Err(GroupError::NonEmptyGroup);
                }
            }
            let mut deleted = Vec::new();
            let results = topics
                .iter()
                .map(|(topic, partitions)| {
                    let subscribed = g.is_subscribed_to(topic);
                    let results = partitions
                        .iter()
                        .map(|p| {
                            if subscribed {
                                return (*p, Err(GroupError::GroupSubscribedToTopic));
                            }
                            if g.offsets.contains_key(&(topic.clone(), *p)) {
                                deleted.push((topic.clone(), *p));
                            }
                            (*p, Ok(()))
                        })
                        .collect();
                    (topic.clone(), results)
                })
                .collect();
            store.delete_offsets(&g.id, &deleted)?;
            for key in &deleted {
                g.offsets.remove(key);
            }
            Ok(results)
        })
        .unwrap_or_else(|| Err(GroupError::GroupIdNotFound(format!("group {group_id} not found"))))
    }

    /// Every committed offset of every live group, as (group, topic, partition,
    /// offset), sorted. Read-only: for the metrics endpoint, which computes lag
    /// from it at scrape time. Locks each group briefly, one at a time; starts no
    /// timers and persists nothing.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let cells: Vec<Arc<Mutex<Group>>> = self.inner.groups.read().values().cloned().collect();
        let mut all = Vec::new();
        for cell in cells {
            let g = cell.lock();
            if g.dead {
                continue;
            }
            all.extend(g.offsets.iter().map(|((topic, partition), o)| (g.id.clone(), topic.clone(), *partition, o.offset)));
        }
        all.sort();
        all
    }

    /// Forgets every group's offsets of a deleted topic.
    pub fn topic_deleted(&self, topic: &str) {
        let cells: Vec<Arc<Mutex<Group>>> = self.inner.groups.read().values().cloned().collect();
        for cell in cells {
            let mut g = cell.lock();
            let keys: Vec<(String, i32)> = g.offsets.keys().filter(|(t, _)| t == topic).cloned().collect();
            if keys.is_empty() {
                continue;
            }
            if let Err(e) = self.inner.store.delete_offsets(&g.id, &keys) {
                tracing::error!(group = %g.id, error = %e, "cannot delete offsets of a deleted topic");
                continue;
            }
            for key in &keys {
                g.offsets.remove(key);
            }
        }
    }

    /// Runs the timers due at the clock's current time (the background task does
    /// this on its own; tests with a manual clock call it).
    pub fn run_timers(&self) {
        self.inner.run_due_timers();
    }

    /// Expires offsets now (the background task does this periodically).
    pub fn expire_offsets(&self) {
        self.inner.expire_offsets();
    }
}

impl TopicLookup for TopicStore {
    fn lookup(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self.get(name).map(|t| (t.id, t.partitions.len() as i32))
    }

    fn name_of(&self, id: uuid::Uuid) -> Option<String> {
        self.get_by_id(id).map(|t| t.name.clone())
    }
}

impl Inner {
    fn ctx(&self) -> Ctx<'_> {
        let (now, wall_ms) = self.clock.now();
        Ctx { settings: &self.settings, now, wall_ms }
    }

    fn with_group<R>(&self, id: &str, create: bool, f: impl FnOnce(&mut Group, &Ctx) -> R) -> Option<R> {
        loop {
            let existing = self.groups.read().get(id).cloned();
            let cell = match existing {
                Some(cell) => cell,
                None if create => self.groups.write().entry(id.to_string()).or_insert_with(|| Arc::new(Mutex::new(Group::new(id)))).clone(),
                None => return None,
            };
            let mut g = cell.lock();
            if g.dead {
                continue; // removed meanwhile: look it up again
            }
            let ctx = self.ctx();
            let result = f(&mut g, &ctx);
            self.persist(&mut g);
            self.schedule(&mut g);
            return Some(result);
        }
    }

    /// Writes the group's metadata record if it changed.
    fn persist(&self, g: &mut Group) {
        if !g.take_dirty() {
            return;
        }
        let record = serde_json::to_vec(&g.record()).expect("group records serialize");
        if let Err(e) = self.store.put_group(&g.id, &record) {
            tracing::error!(group = %g.id, error = %e, "cannot persist group metadata");
        }
    }

    /// Queues a timer entry if the group's earliest deadline moved earlier.
    fn schedule(&self, g: &mut Group) {
        let Some(next) = g.next_deadline() else { return };
        if g.scheduled.is_some_and(|s| s <= next) {
            return;
        }
        g.scheduled = Some(next);
        let mut timers = self.timers.lock();
        let earliest = timers.peek().map(|Reverse((d, _))| next < *d).unwrap_or(true);
        timers.push(Reverse((next, g.id.clone())));
        drop(timers);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Fires every queued entry whose deadline has passed.
    fn run_due_timers(&self) {
        let (now, _) = self.clock.now();
        let due: Vec<(Instant, String)> = {
            let mut timers = self.timers.lock();
            let mut due = Vec::new();
            while timers.peek().is_some_and(|Reverse((d, _))| *d <= now) {
                due.extend(timers.pop().map(|Reverse(e)| e));
            }
            due
        };
        for (deadline, id) in due {
            let cell = self.groups.read().get(&id).cloned();
            let Some(cell) = cell else { continue };
            let mut g = cell.lock();
            if g.dead || g.scheduled != Some(deadline) {
                continue; // a stale entry: the live one is queued separately
            }
            g.scheduled = None;
            let ctx = self.ctx();
            g.on_timer(&ctx);
            self.persist(&mut g);
            self.schedule(&mut g);
        }
    }

    fn next_timer(&self) -> Option<Instant> {
        self.timers.lock().peek().map(|Reverse((d, _))| *d)
    }

    /// Removes a group if `check` allows it: its record, offsets and timers.
    fn remove_group(&self, id: &str, check: impl FnOnce(&Group) -> Result<(), GroupError>) -> Result<(), GroupError> {
        let mut groups = self.groups.write();
        let Some(cell) = groups.get(id).cloned() else {
            return Err(GroupError::GroupIdNotFound(format!("group {id} not found")));
        };
        let mut g = cell.lock();
        check(&g)?;
        self.store.delete_group(id)?;
        g.dead = true;
        groups.remove(id);
        tracing::info!(group = id, "group deleted");
        Ok(())
    }

    /// Deletes expired offsets, and empty groups left without offsets.
    fn expire_offsets(&self) {
        let (_, wall_ms) = self.clock.now();
        let cells: Vec<Arc<Mutex<Group>>> = self.groups.read().values().cloned().collect();
        let mut removable = Vec::new();
        for cell in cells {
            let mut g = cell.lock();
            if g.dead {
                continue;
            }
            let (expired, all_gone) = g.expire_offsets(wall_ms, self.settings.offsets_retention_ms);
            if !expired.is_empty() {
                tracing::info!(group = %g.id, offsets = expired.len(), "committed offsets expired");
                if let Err(e) = self.store.delete_offsets(&g.id, &expired) {
                    tracing::error!(group = %g.id, error = %e, "cannot delete expired offsets");
                }
            }
            if all_gone && g.is_empty() {
                removable.push(g.id.clone());
            }
        }
        for id in removable {
            let _ = self.remove_group(&id, |g| {
                if g.is_empty() && g.offsets.is_empty() {
                    Ok(())
                } else {
                    Err(GroupError::NonEmptyGroup)
                }
            });
        }
    }
}

/// The timer task: sleeps until the earliest deadline (or a wake-up), fires due
/// timers, and expires offsets every retention check interval.
async fn reaper(inner: Weak<Inner>, wake: Arc<Notify>) {
    let mut next_expiry = Instant::now();
    loop {
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            inner.run_due_timers();
            if Instant::now() >= next_expiry {
                inner.expire_offsets();
                next_expiry = Instant::now() + Duration::from_millis(inner.settings.offsets_retention_check_interval_ms);
            }
            inner.next_timer().map(|t| t.min(next_expiry)).unwrap_or(next_expiry)
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}


#[cfg(test)]
mod tests;
