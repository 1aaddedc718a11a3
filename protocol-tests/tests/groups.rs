//! Classic consumer group membership: JoinGroup (11), SyncGroup (14), Heartbeat (12),
//! LeaveGroup (13) at every advertised version, rebalances, timeouts, static members.

#[path = "groups_common.rs"]
mod common;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use kafka_protocol::messages::ApiKey;
use protocol_tests::*;

/// One member through join, sync, heartbeat and leave, at each version of each API
/// (JoinGroup vN with SyncGroup/Heartbeat/LeaveGroup at min(N, their max)). The groups
/// are independent, so the versions run in parallel (each waits the initial delay).
#[test]
fn single_member_lifecycle_at_every_version() {
    let broker = BrokerProcess::start();
    topic(&broker, "lifecycle", 2);
    let handles: Vec<_> = versions(ApiKey::JoinGroup)
        .map(|v| {
            let addr = broker.addr();
            thread::spawn(move || lifecycle(Client::connect(addr), v))
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

fn lifecycle(mut client: Client, v: i16) {
    let sync_v = v.min(max_version(ApiKey::SyncGroup));
    let hb_v = v.min(max_version(ApiKey::Heartbeat));
    let leave_v = v.min(max_version(ApiKey::LeaveGroup));
    let ctx =
        format!("JoinGroup v{v} / SyncGroup v{sync_v} / Heartbeat v{hb_v} / LeaveGroup v{leave_v}");
    let group = format!("lifecycle-{v}");
    let join = Join::new(v, &group, &["lifecycle"]);
    let joined = join.join_new(&mut client);
    assert_eq!(joined.error_code, err::NONE, "{ctx}: join");
    assert_eq!(joined.generation_id, 1, "{ctx}: generation");
    assert_eq!(
        joined.leader, joined.member_id,
        "{ctx}: the only member leads"
    );
    assert_eq!(
        joined.protocol_name.as_deref(),
        Some("range"),
        "{ctx}: protocol"
    );
    if v >= 7 {
        assert_eq!(
            joined.protocol_type.as_deref(),
            Some("consumer"),
            "{ctx}: protocol type"
        );
    }
    assert_eq!(joined.members.len(), 1, "{ctx}: leader sees the members");
    assert_eq!(
        joined.members[0].member_id, joined.member_id,
        "{ctx}: member id in the list"
    );
    assert_eq!(
        joined.members[0].metadata,
        subscription(&["lifecycle"]),
        "{ctx}: member metadata"
    );
    assert!(
        joined.member_id.starts_with(CLIENT_ID),
        "{ctx}: member id {:?} starts with the client id",
        joined.member_id
    );
    let me = joined.member_id.to_string();

    let synced = sync(
        &mut client,
        sync_v,
        &group,
        1,
        &me,
        None,
        &[(&me, b"assignment-1")],
    );
    assert_eq!(synced.error_code, err::NONE, "{ctx}: sync");
    assert_eq!(&synced.assignment[..], b"assignment-1", "{ctx}: assignment");
    if sync_v >= 5 {
        assert_eq!(
            synced.protocol_name.as_deref(),
            Some("range"),
            "{ctx}: sync protocol name"
        );
        assert_eq!(
            synced.protocol_type.as_deref(),
            Some("consumer"),
            "{ctx}: sync protocol type"
        );
    }
    // A follower-style resync in Stable returns the stored assignment.
    let again = sync(&mut client, sync_v, &group, 1, &me, None, &[]);
    assert_eq!(
        (again.error_code, &again.assignment[..]),
        (err::NONE, &b"assignment-1"[..]),
        "{ctx}: resync"
    );

    assert_eq!(
        heartbeat(&mut client, hb_v, &group, 1, &me, None),
        err::NONE,
        "{ctx}: heartbeat"
    );
    assert_eq!(
        heartbeat(&mut client, hb_v, &group, 7, &me, None),
        err::ILLEGAL_GENERATION,
        "{ctx}: heartbeat, wrong generation"
    );
    assert_eq!(
        heartbeat(&mut client, hb_v, &group, 1, "nobody", None),
        err::UNKNOWN_MEMBER_ID,
        "{ctx}: heartbeat, unknown member"
    );
    let bad_sync = sync(&mut client, sync_v, &group, 2, &me, None, &[]);
    assert_eq!(
        bad_sync.error_code,
        err::ILLEGAL_GENERATION,
        "{ctx}: sync, wrong generation"
    );

    let (top, members) = leave(&mut client, leave_v, &group, &me, None);
    assert_eq!(top, err::NONE, "{ctx}: leave");
    if leave_v >= 3 {
        assert_eq!(members, vec![err::NONE], "{ctx}: leave member result");
    }
    assert_eq!(
        heartbeat(&mut client, hb_v, &group, 1, &me, None),
        err::UNKNOWN_MEMBER_ID,
        "{ctx}: heartbeat after leave"
    );
    let (top, members) = leave(&mut client, leave_v, &group, &me, None);
    if leave_v >= 3 {
        assert_eq!(
            (top, members),
            (err::NONE, vec![err::UNKNOWN_MEMBER_ID]),
            "{ctx}: second leave"
        );
    } else {
        assert_eq!(top, err::UNKNOWN_MEMBER_ID, "{ctx}: second leave");
    }
    // The group is Empty at generation 2: a stale member is told to rejoin.
    let rejoin = join.clone().member(&me).send(&mut client);
    assert_eq!(
        rejoin.error_code,
        err::UNKNOWN_MEMBER_ID,
        "{ctx}: rejoin with a removed id"
    );
}

#[test]
fn second_member_triggers_rebalance_and_leader_gets_both() {
    let broker = BrokerProcess::start();
    topic(&broker, "rb", 4);
    let mut a = broker.client();
    let (a_id, gen1) = stable_group(&mut a, "rb-group", &["rb"], b"all");
    assert_eq!(gen1, 1);
    let addr = broker.addr();
    let b_thread = thread::spawn(move || {
        let mut b = Client::connect(addr);
        Join::new(9, "rb-group", &["rb"]).join_new(&mut b)
    });
    // A learns about the rebalance from its heartbeat, then rejoins.
    wait_for(
        Duration::from_secs(10),
        "REBALANCE_IN_PROGRESS on A's heartbeat",
        || {
            (heartbeat(&mut a, 4, "rb-group", gen1, &a_id, None) == err::REBALANCE_IN_PROGRESS)
                .then_some(())
        },
    );
    let sync_in_rebalance = sync(&mut a, 5, "rb-group", gen1, &a_id, None, &[]);
    assert_eq!(
        sync_in_rebalance.error_code,
        err::REBALANCE_IN_PROGRESS,
        "sync while preparing"
    );
    let a_joined = Join::new(9, "rb-group", &["rb"]).member(&a_id).send(&mut a);
    let b_joined = b_thread.join().unwrap();
    assert_eq!(
        (a_joined.error_code, b_joined.error_code),
        (err::NONE, err::NONE)
    );
    assert_eq!(a_joined.generation_id, 2);
    assert_eq!(b_joined.generation_id, 2);
    assert_eq!(
        a_joined.leader.as_str(),
        a_id.as_str(),
        "the previous leader keeps leading"
    );
    assert_eq!(b_joined.leader.as_str(), a_id.as_str());
    let mut ids: Vec<String> = a_joined
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    ids.sort();
    let mut want = vec![a_id.clone(), b_joined.member_id.to_string()];
    want.sort();
    assert_eq!(ids, want, "leader sees both members");
    assert!(b_joined.members.is_empty(), "followers get no member list");
    // B syncs first and waits for the leader's assignment.
    let b_id = b_joined.member_id.to_string();
    let b_sync = thread::spawn(move || {
        let mut b = Client::connect(addr);
        sync(&mut b, 5, "rb-group", 2, &b_id, None, &[])
    });
    thread::sleep(Duration::from_millis(200)); // let B's sync park first (not needed for correctness)
    let a_sync = sync(
        &mut a,
        5,
        "rb-group",
        2,
        &a_id,
        None,
        &[(&a_id, b"p0p1"), (&b_joined.member_id, b"p2p3")],
    );
    assert_eq!(
        (a_sync.error_code, &a_sync.assignment[..]),
        (err::NONE, &b"p0p1"[..])
    );
    let b_sync = b_sync.join().unwrap();
    assert_eq!(
        (b_sync.error_code, &b_sync.assignment[..]),
        (err::NONE, &b"p2p3"[..])
    );
    // Committing with the old generation is rejected, with the new one accepted.
    let stale = commit(&mut a, 9, "rb-group", 1, &a_id, &[("rb", 0, 5)]);
    assert_eq!(stale, vec![("rb".into(), 0, err::ILLEGAL_GENERATION)]);
    let ok = commit(&mut a, 9, "rb-group", 2, &a_id, &[("rb", 0, 5)]);
    assert_eq!(ok, vec![("rb".into(), 0, err::NONE)]);
}

/// A member that stops heartbeating is evicted after its session timeout; the
/// survivor is told to rejoin and the next generation has only it.
#[test]
fn silent_member_is_evicted_after_session_timeout() {
    let broker = BrokerProcess::start();
    topic(&broker, "evict", 2);
    let addr = broker.addr();
    let joins: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                Join::new(9, "evict-group", &["evict"]).join_new(&mut Client::connect(addr))
            })
        })
        .collect();
    let joined: Vec<_> = joins.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(
        joined
            .iter()
            .all(|j| j.error_code == err::NONE && j.generation_id == 1),
        "both joined generation 1"
    );
    let leader = joined
        .iter()
        .find(|j| j.leader == j.member_id)
        .expect("a leader")
        .member_id
        .to_string();
    let silent = joined
        .iter()
        .find(|j| j.leader != j.member_id)
        .expect("a follower")
        .member_id
        .to_string();
    let mut a = broker.client();
    let s = sync(
        &mut a,
        5,
        "evict-group",
        1,
        &leader,
        None,
        &[(&leader, b"x"), (&silent, b"y")],
    );
    assert_eq!(s.error_code, err::NONE);
    let mut b = broker.client();
    assert_eq!(
        sync(&mut b, 5, "evict-group", 1, &silent, None, &[]).error_code,
        err::NONE
    );
    let started = Instant::now();
    wait_for(
        Duration::from_secs(15),
        "eviction of the silent member",
        || {
            let code = heartbeat(&mut a, 4, "evict-group", 1, &leader, None);
            assert!(
                code == err::NONE || code == err::REBALANCE_IN_PROGRESS,
                "heartbeat: {code}"
            );
            thread::sleep(Duration::from_millis(900));
            (code == err::REBALANCE_IN_PROGRESS).then_some(())
        },
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(SESSION_MS as u64 - 1_000),
        "evicted after only {waited:?}"
    );
    let rejoined = Join::new(9, "evict-group", &["evict"])
        .member(&leader)
        .send(&mut a);
    assert_eq!(
        (rejoined.error_code, rejoined.generation_id),
        (err::NONE, 2)
    );
    assert_eq!(rejoined.members.len(), 1, "only the survivor is left");
    assert_eq!(
        heartbeat(&mut b, 4, "evict-group", 1, &silent, None),
        err::UNKNOWN_MEMBER_ID,
        "the evicted member is gone"
    );
}

/// A member that does not rejoin within the rebalance timeout is dropped from the
/// rebalance; the join completes for the others.
#[test]
fn member_missing_the_rebalance_is_dropped_at_rebalance_timeout() {
    let broker = BrokerProcess::start();
    topic(&broker, "rbt", 1);
    let addr = broker.addr();
    let mut a = broker.client();
    let mut join = Join::new(9, "rbt-group", &["rbt"]);
    join.rebalance_ms = 3_000;
    let first = join.join_new(&mut a);
    let a_id = first.member_id.to_string();
    assert_eq!(
        sync(&mut a, 5, "rbt-group", 1, &a_id, None, &[(&a_id, b"a")]).error_code,
        err::NONE
    );
    // C joins; A never rejoins (it keeps heartbeating, so only the rebalance timeout applies).
    let c_join = join.clone();
    let started = Instant::now();
    let c = thread::spawn(move || c_join.join_new(&mut Client::connect(addr)));
    wait_for(Duration::from_secs(5), "rebalance", || {
        (heartbeat(&mut a, 4, "rbt-group", 1, &a_id, None) == err::REBALANCE_IN_PROGRESS)
            .then_some(())
    });
    let c = c.join().unwrap();
    let waited = started.elapsed();
    assert_eq!(
        (c.error_code, c.generation_id),
        (err::NONE, 2),
        "C joined generation 2"
    );
    assert_eq!(c.leader, c.member_id, "C leads: A did not rejoin");
    assert_eq!(c.members.len(), 1, "A was dropped");
    assert!(
        waited >= Duration::from_millis(2_500),
        "join completed after {waited:?}, before the rebalance timeout"
    );
    assert_eq!(
        heartbeat(&mut a, 4, "rbt-group", 1, &a_id, None),
        err::UNKNOWN_MEMBER_ID
    );
}

/// KIP-345: a static member that restarts (new JoinGroup with its instance id and no
/// member id) gets the current generation back without a rebalance; the old member
/// id is fenced.
#[test]
fn static_member_rejoin_does_not_rebalance() {
    let broker = BrokerProcess::start();
    topic(&broker, "static", 2);
    for v in [5i16, 9] {
        let group = format!("static-group-{v}");
        let mut c = broker.client();
        let join = Join::new(v, &group, &["static"]).instance("instance-1");
        let first = join.send(&mut c);
        assert_eq!(
            first.error_code,
            err::NONE,
            "v{v}: static members need no MEMBER_ID_REQUIRED"
        );
        assert!(
            first.member_id.starts_with("instance-1-"),
            "v{v}: member id {:?}",
            first.member_id
        );
        let old_id = first.member_id.to_string();
        let s = sync(
            &mut c,
            5,
            &group,
            1,
            &old_id,
            Some("instance-1"),
            &[(&old_id, b"both")],
        );
        assert_eq!(s.error_code, err::NONE, "v{v}: sync");

        // The "restarted" process joins again: answered at once, same generation.
        let started = Instant::now();
        let again = join.send(&mut c);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "v{v}: rejoin took {:?}",
            started.elapsed()
        );
        assert_eq!(
            (again.error_code, again.generation_id),
            (err::NONE, 1),
            "v{v}: no new generation"
        );
        let new_id = again.member_id.to_string();
        assert_ne!(new_id, old_id, "v{v}: a new member id");
        if v >= 9 {
            assert_eq!(
                again.leader.as_str(),
                new_id.as_str(),
                "v{v}: leader id follows the instance"
            );
            assert!(
                again.skip_assignment,
                "v{v}: the static leader skips the assignment"
            );
            assert_eq!(
                again.members.len(),
                1,
                "v{v}: members for the skipping leader"
            );
        } else {
            assert_eq!(
                again.leader.as_str(),
                old_id.as_str(),
                "v{v}: an old client must not reassign"
            );
            assert!(again.members.is_empty());
        }
        let s = sync(&mut c, 5, &group, 1, &new_id, Some("instance-1"), &[]);
        assert_eq!(
            (s.error_code, &s.assignment[..]),
            (err::NONE, &b"both"[..]),
            "v{v}: the old assignment"
        );
        assert_eq!(
            heartbeat(&mut c, 4, &group, 1, &new_id, Some("instance-1")),
            err::NONE,
            "v{v}: new id heartbeats"
        );
        assert_eq!(
            heartbeat(&mut c, 4, &group, 1, &old_id, Some("instance-1")),
            err::FENCED_INSTANCE_ID,
            "v{v}: old id fenced"
        );
        let commit_old = commit(&mut c, 9, &group, 1, &old_id, &[("static", 0, 1)]);
        assert_eq!(
            commit_old[0].2,
            err::UNKNOWN_MEMBER_ID,
            "v{v}: old id cannot commit"
        );
        // Leaving by instance id only (administrative removal).
        let (top, members) = leave(&mut c, 5, &group, "", Some("instance-1"));
        assert_eq!(
            (top, members),
            (err::NONE, vec![err::NONE]),
            "v{v}: leave by instance id"
        );
        assert_eq!(
            heartbeat(&mut c, 4, &group, 1, &new_id, Some("instance-1")),
            err::UNKNOWN_MEMBER_ID
        );
    }
}

#[test]
fn join_errors() {
    let broker = BrokerProcess::start();
    topic(&broker, "je", 1);
    let mut c = broker.client();
    // Empty group id.
    let r = Join::new(9, "", &["je"]).send(&mut c);
    assert_eq!(r.error_code, err::INVALID_GROUP_ID, "empty group id");
    // Session timeout outside [6 s, 30 min].
    let mut j = Join::new(9, "je-g", &["je"]);
    j.session_ms = 1_000;
    assert_eq!(
        j.send(&mut c).error_code,
        err::INVALID_SESSION_TIMEOUT,
        "short session timeout"
    );
    j.session_ms = 3_600_000;
    assert_eq!(
        j.send(&mut c).error_code,
        err::INVALID_SESSION_TIMEOUT,
        "long session timeout"
    );
    // A member id the group does not know (the group does not exist).
    let r = Join::new(9, "je-none", &["je"])
        .member("ghost")
        .send(&mut c);
    assert_eq!(
        r.error_code,
        err::UNKNOWN_MEMBER_ID,
        "unknown member, no group"
    );
    // No protocols / empty protocol type.
    let mut j = Join::new(9, "je-g2", &["je"]);
    j.protocols.clear();
    assert_eq!(
        j.send(&mut c).error_code,
        err::INCONSISTENT_GROUP_PROTOCOL,
        "no protocols"
    );
    // A stable group rejects a different protocol type and protocols it cannot share.
    let (_, _) = stable_group(&mut c, "je-g3", &["je"], b"");
    let mut other_type = Join::new(9, "je-g3", &["je"]);
    other_type.protocol_type = "connect".into();
    assert_eq!(
        other_type.send(&mut c).error_code,
        err::INCONSISTENT_GROUP_PROTOCOL,
        "protocol type"
    );
    let mut other_protocol = Join::new(9, "je-g3", &["je"]);
    other_protocol.protocols = vec![("roundrobin".into(), subscription(&["je"]))];
    assert_eq!(
        other_protocol.send(&mut c).error_code,
        err::INCONSISTENT_GROUP_PROTOCOL,
        "no common protocol"
    );
    // Sync/heartbeat/leave of groups that do not exist.
    assert_eq!(
        sync(&mut c, 5, "je-none", 1, "m", None, &[]).error_code,
        err::UNKNOWN_MEMBER_ID,
        "sync, no group"
    );
    assert_eq!(
        heartbeat(&mut c, 4, "je-none", 1, "m", None),
        err::UNKNOWN_MEMBER_ID,
        "heartbeat, no group"
    );
    assert_eq!(
        leave(&mut c, 5, "je-none", "m", None).0,
        err::UNKNOWN_MEMBER_ID,
        "leave, no group"
    );
    assert_eq!(
        heartbeat(&mut c, 4, "", 1, "m", None),
        err::INVALID_GROUP_ID,
        "heartbeat, empty group id"
    );
    assert_eq!(
        sync(&mut c, 5, "", 1, "m", None, &[]).error_code,
        err::INVALID_GROUP_ID,
        "sync, empty group id"
    );
    // A static member whose instance id maps to another member id is fenced.
    let mut s = broker.client();
    let st = Join::new(9, "je-static", &["je"])
        .instance("i1")
        .send(&mut s);
    assert_eq!(st.error_code, err::NONE);
    assert_eq!(
        sync(
            &mut s,
            5,
            "je-static",
            st.generation_id,
            "someone-else",
            Some("i1"),
            &[]
        )
        .error_code,
        err::FENCED_INSTANCE_ID,
        "sync with a foreign member id for the instance"
    );
    let r = Join::new(9, "je-static", &["je"])
        .instance("i1")
        .member("someone-else")
        .send(&mut s);
    assert_eq!(
        r.error_code,
        err::FENCED_INSTANCE_ID,
        "join with a foreign member id for the instance"
    );
}

/// A pending member id (MEMBER_ID_REQUIRED) can leave before joining; a JoinGroup
/// parked in a rebalance is answered UNKNOWN_MEMBER_ID when its member leaves.
#[test]
fn pending_member_leaves_and_parked_join_is_answered() {
    let broker = BrokerProcess::start();
    topic(&broker, "pm", 1);
    let mut c = broker.client();
    let first = Join::new(9, "pm-g", &["pm"]).send(&mut c);
    assert_eq!(first.error_code, err::MEMBER_ID_REQUIRED);
    let (top, members) = leave(&mut c, 5, "pm-g", &first.member_id, None);
    assert_eq!(
        (top, members),
        (err::NONE, vec![err::NONE]),
        "pending member leaves"
    );
    // Park a join (initial delay) and remove the member from another connection.
    let addr = broker.addr();
    let id = Join::new(9, "pm-g", &["pm"])
        .send(&mut c)
        .member_id
        .to_string();
    let parked_id = id.clone();
    let parked = thread::spawn(move || {
        Join::new(9, "pm-g", &["pm"])
            .member(&parked_id)
            .send(&mut Client::connect(addr))
    });
    wait_for(Duration::from_secs(5), "the parked join", || {
        let req = kafka_protocol::messages::DescribeGroupsRequest::default()
            .with_groups(vec![kafka_protocol::messages::GroupId(sb("pm-g"))]);
        let g = c.call(5, &req).groups.remove(0);
        (g.group_state.as_str() == "PreparingRebalance" && g.members.len() == 1).then_some(())
    });
    let (_, members) = leave(&mut c, 5, "pm-g", &id, None);
    assert_eq!(members, vec![err::NONE], "the parked member leaves");
    let r = parked.join().unwrap();
    assert_eq!(
        r.error_code,
        err::UNKNOWN_MEMBER_ID,
        "parked join of a removed member"
    );
}
