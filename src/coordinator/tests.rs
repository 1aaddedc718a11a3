//! Coordinator tests with a manual clock: timers and offset expiry (the wire-level
//! tests in protocol-tests cover the request paths in real time).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::{Duration, Instant};

use super::*;
use crate::storage::{Store, StoreOptions, TopicStore};

struct Fixture {
    _dir: tempfile::TempDir,
    clock: Arc<Mutex<(Instant, i64)>>,
    topics: TopicStore,
    groups: GroupCoordinator,
    store: Arc<Store>,
    settings: GroupSettings,
}

fn settings() -> GroupSettings {
    GroupSettings { offsets_retention_ms: 60_000, ..GroupSettings::default() }
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 4 };
        let store = Store::open(dir.path(), &opts).unwrap();
        let topics = TopicStore::load(store.clone()).unwrap();
        topics.create("t", 2, BTreeMap::new()).unwrap();
        topics.create("other", 1, BTreeMap::new()).unwrap();
        let clock = Arc::new(Mutex::new((Instant::now(), 1_000_000)));
        let groups = GroupCoordinator::load_with_clock(store.clone(), settings(), Clock::Manual(clock.clone())).unwrap();
        Fixture { _dir: dir, clock, topics, groups, store, settings: settings() }
    }

    fn advance(&self, ms: u64) {
        let mut c = self.clock.lock();
        c.0 += Duration::from_millis(ms);
        c.1 += ms as i64;
        drop(c);
        self.groups.run_timers();
    }

    fn reload(&mut self) {
        self.groups = GroupCoordinator::load_with_clock(self.store.clone(), self.settings.clone(), Clock::Manual(self.clock.clone())).unwrap();
    }

    fn commit(&self, group: &str, generation: i32, member: &str, offsets: &[(&str, i32, i64)]) -> Result<(), GroupError> {
        let topics = offsets
            .iter()
            .map(|(t, p, o)| (t.to_string(), vec![PartitionCommit { partition: *p, offset: *o, leader_epoch: -1, metadata: None }]))
            .collect();
        let params = CommitParams {
            group_id: group.into(),
            generation_or_epoch: generation,
            member_id: member.into(),
            instance_id: None,
            retention_ms: -1,
            api_version: 9,
            topics,
        };
        let results = self.groups.commit_offsets(&self.topics, params)?;
        for (_, partitions) in results {
            for (_, r) in partitions {
                r?;
            }
        }
        Ok(())
    }

    fn committed(&self, group: &str) -> Vec<(String, i32, i64)> {
        let fetched = self.groups.fetch_offsets(group, None, None).unwrap();
        fetched.into_iter().flat_map(|(t, ps)| ps.into_iter().map(move |(p, o)| (t.clone(), p, o.unwrap().offset))).collect()
    }

    /// Joins a one-member consumer group on topic "t" and syncs: (member id, generation).
    fn stable_member(&self, group: &str) -> (String, i32) {
        let join = JoinParams {
            member_id: String::new(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription(&["t"]))],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            require_known_member_id: false,
            supports_skip_assignment: true,
            client: ClientInfo::default(),
        };
        let Pending::Wait(mut rx) = self.groups.join_group(group, join) else { panic!("first join waits") };
        assert!(rx.try_recv().is_err(), "waits for the initial delay");
        self.advance(self.settings.initial_rebalance_delay_ms as u64);
        let joined = rx.try_recv().expect("join completes after the initial delay");
        assert!(joined.error.is_none());
        let sync = SyncParams {
            generation: joined.generation,
            member_id: joined.member_id.clone(),
            instance_id: None,
            protocol_type: None,
            protocol_name: None,
            assignments: vec![(joined.member_id.clone(), Bytes::from_static(b"a"))],
        };
        let Pending::Wait(mut rx) = self.groups.sync_group(group, sync) else { panic!("leader sync parks") };
        assert!(rx.try_recv().unwrap().error.is_none());
        (joined.member_id, joined.generation)
    }
}

fn subscription(topics: &[&str]) -> Bytes {
    let mut b = vec![0u8, 0];
    b.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for t in topics {
        b.extend_from_slice(&(t.len() as i16).to_be_bytes());
        b.extend_from_slice(t.as_bytes());
    }
    Bytes::from(b)
}

#[test]
fn simple_group_offsets_expire_after_retention_from_commit() {
    let f = Fixture::new();
    f.commit("simple", -1, "", &[("t", 0, 5)]).unwrap();
    f.advance(30_000);
    f.commit("simple", -1, "", &[("t", 1, 6)]).unwrap();
    f.advance(29_999);
    f.groups.expire_offsets();
    assert_eq!(f.committed("simple"), vec![("t".into(), 0, 5), ("t".into(), 1, 6)]);
    f.advance(1);
    f.groups.expire_offsets();
    assert_eq!(f.committed("simple"), vec![("t".into(), 1, 6)], "the older commit expired");
    f.advance(30_000);
    f.groups.expire_offsets();
    assert!(f.committed("simple").is_empty());
    assert!(f.groups.list_groups(&[], &[]).is_empty(), "the empty group without offsets is removed");
}

#[test]
fn empty_group_offsets_expire_after_retention_from_becoming_empty() {
    let mut f = Fixture::new();
    let (member, generation) = f.stable_member("g");
    f.commit("g", generation, &member, &[("t", 0, 7), ("other", 0, 8)]).unwrap();
    // While the group is Stable, offsets of subscribed topics never expire; others do.
    for _ in 0..24 {
        f.advance(5_000);
        f.groups.heartbeat("g", &member, None, generation).expect("the member stays");
    }
    f.groups.expire_offsets();
    assert_eq!(f.committed("g"), vec![("t".into(), 0, 7)], "only the unsubscribed topic's offset expired");
    // The member leaves: retention counts from when the group became empty.
    f.groups.leave_group("g", &[(member.clone(), None)]).unwrap();
    f.advance(59_000);
    f.groups.expire_offsets();
    assert_eq!(f.committed("g"), vec![("t".into(), 0, 7)]);
    // Offsets and the empty state survive a restart.
    f.reload();
    assert_eq!(f.committed("g"), vec![("t".into(), 0, 7)]);
    f.advance(1_000);
    f.groups.expire_offsets();
    assert!(f.committed("g").is_empty());
    assert!(f.groups.list_groups(&[], &[]).is_empty(), "the group is gone");
    f.reload();
    assert!(f.groups.list_groups(&[], &[]).is_empty(), "and stays gone after a restart");
}

#[test]
fn session_expiry_empties_the_group_and_a_stale_commit_is_refused() {
    let f = Fixture::new();
    let (member, generation) = f.stable_member("g");
    f.advance(9_000);
    assert!(f.groups.heartbeat("g", &member, None, generation).is_ok());
    f.advance(9_999);
    assert!(f.groups.heartbeat("g", &member, None, generation).is_ok(), "heartbeats keep the session alive");
    f.advance(10_000);
    assert!(matches!(f.groups.heartbeat("g", &member, None, generation), Err(GroupError::UnknownMemberId)));
    let listed = f.groups.list_groups(&[], &[]);
    assert_eq!(listed[0].state, "Empty");
    assert!(matches!(f.commit("g", generation, &member, &[("t", 0, 1)]), Err(GroupError::UnknownMemberId)));
    f.commit("g", -1, "", &[("t", 0, 1)]).expect("an empty group accepts commits from outside");
}

#[test]
fn initial_delay_is_extended_while_members_arrive() {
    let f = Fixture::new();
    let join = |member: &str| JoinParams {
        member_id: member.into(),
        instance_id: None,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription(&["t"]))],
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        require_known_member_id: false,
        supports_skip_assignment: false,
        client: ClientInfo { client_id: "c".into(), client_host: String::new() },
    };
    let Pending::Wait(mut a) = f.groups.join_group("g", join("")) else { panic!() };
    f.advance(2_000);
    let Pending::Wait(mut b) = f.groups.join_group("g", join("")) else { panic!() };
    f.advance(1_000); // the first delay ends; a member arrived meanwhile: extend
    assert!(a.try_recv().is_err() && b.try_recv().is_err(), "still waiting");
    f.advance(3_000);
    let (a, b) = (a.try_recv().unwrap(), b.try_recv().unwrap());
    assert_eq!((a.generation, b.generation), (1, 1));
    assert_eq!(a.leader, b.leader);
    assert_eq!(a.members.len() + b.members.len(), 2, "the leader sees both");
}

#[test]
fn deleted_topic_offsets_are_removed_everywhere() {
    let mut f = Fixture::new();
    f.commit("a", -1, "", &[("t", 0, 1), ("other", 0, 2)]).unwrap();
    f.commit("b", -1, "", &[("t", 1, 3)]).unwrap();
    f.groups.topic_deleted("t");
    assert_eq!(f.committed("a"), vec![("other".into(), 0, 2)]);
    assert!(f.committed("b").is_empty());
    f.reload();
    assert_eq!(f.committed("a"), vec![("other".into(), 0, 2)], "the deletion is persisted");
}

/// A KIP-848 client as the Java consumer behaves: it reports its partitions only when
/// they changed and gives up revoked partitions at once.
struct SimMember {
    id: String,
    epoch: i32,
    owned: BTreeMap<uuid::Uuid, Vec<i32>>,
    report: bool,
}

impl Fixture {
    fn consumer_beat(&self, m: &mut SimMember, join: bool) -> Result<(), GroupError> {
        let hb = ConsumerHeartbeat {
            member_id: m.id.clone(),
            member_epoch: if join { 0 } else { m.epoch },
            rebalance_timeout_ms: if join { 30_000 } else { -1 },
            subscribed_topic_names: join.then(|| vec!["t".to_string(), "other".to_string()]),
            owned: (join || m.report).then(|| m.owned.iter().map(|(t, p)| (*t, p.clone())).collect()),
            ..Default::default()
        };
        let out = self.groups.consumer_heartbeat(&self.topics, "cg", hb)?;
        m.report = false;
        m.epoch = out.member_epoch;
        if let Some(a) = out.assignment {
            let new: BTreeMap<uuid::Uuid, Vec<i32>> =
                a.into_iter().filter(|(_, p)| !p.is_empty()).map(|(t, p)| (t, p.into_iter().collect())).collect();
            if new != m.owned {
                m.owned = new;
                m.report = true;
            }
        }
        Ok(())
    }
}

#[test]
fn consumer_members_never_share_a_partition_and_converge() {
    let f = Fixture::new();
    let mut members: Vec<SimMember> = Vec::new();
    let check = |members: &[SimMember]| {
        let mut seen = std::collections::HashSet::new();
        for m in members {
            for (t, ps) in &m.owned {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "partition {t}/{p} owned twice: {:?}", members.iter().map(|m| (&m.id, &m.owned)).collect::<Vec<_>>());
                }
            }
        }
        seen.len()
    };
    // Members join one by one, everyone heartbeats in varying orders; one leaves.
    for round in 0..40 {
        if round % 8 == 0 && members.len() < 4 {
            let mut m = SimMember { id: format!("m{round}"), epoch: 0, owned: BTreeMap::new(), report: false };
            f.consumer_beat(&mut m, true).unwrap();
            members.push(m);
        }
        if round == 30 {
            let gone = members.remove(1);
            let hb = ConsumerHeartbeat { member_id: gone.id.clone(), member_epoch: -1, ..Default::default() };
            f.groups.consumer_heartbeat(&f.topics, "cg", hb).unwrap();
        }
        let n = members.len();
        for i in 0..n {
            let idx = (i * 7 + round) % n;
            f.consumer_beat(&mut members[idx], false).unwrap();
            check(&members);
        }
    }
    // Converged: every partition (2 of t, 1 of other) owned, balanced.
    for _ in 0..3 {
        for m in members.iter_mut() {
            f.consumer_beat(m, false).unwrap();
        }
    }
    assert_eq!(check(&members), 3);
    let counts: Vec<usize> = members.iter().map(|m| m.owned.values().map(Vec::len).sum()).collect();
    assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "balanced: {counts:?}");
}

#[test]
fn consumer_member_is_fenced_after_session_timeout() {
    let f = Fixture::new();
    let mut a = SimMember { id: "a".into(), epoch: 0, owned: BTreeMap::new(), report: false };
    let mut b = SimMember { id: "b".into(), epoch: 0, owned: BTreeMap::new(), report: false };
    f.consumer_beat(&mut a, true).unwrap();
    f.consumer_beat(&mut b, true).unwrap();
    for _ in 0..4 {
        f.consumer_beat(&mut a, false).unwrap();
        f.consumer_beat(&mut b, false).unwrap();
    }
    assert!(!b.owned.is_empty());
    // b goes silent; a keeps heartbeating every 5 s.
    for _ in 0..9 {
        f.advance(5_000);
        f.consumer_beat(&mut a, false).unwrap();
    }
    assert!(matches!(f.consumer_beat(&mut b, false), Err(GroupError::UnknownMemberId)), "b was fenced");
    f.consumer_beat(&mut a, false).unwrap();
    f.consumer_beat(&mut a, false).unwrap();
    assert_eq!(a.owned.values().map(Vec::len).sum::<usize>(), 3, "a owns everything");
}
