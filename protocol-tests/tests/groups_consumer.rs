//! KIP-848 consumer groups: ConsumerGroupHeartbeat (68) and ConsumerGroupDescribe (69)
//! at every advertised version, reconciliation, fencing, static members, offsets.

#[path = "groups_common.rs"]
mod common;

use std::collections::BTreeMap;

use common::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use protocol_tests::*;

/// Partitions by topic id.
type Owned = BTreeMap<Uuid, Vec<i32>>;

struct Hb {
    group: String,
    member_id: String,
    epoch: i32,
    instance: Option<String>,
    topics: Option<Vec<String>>,
    assignor: Option<String>,
    owned: Option<Owned>,
    rebalance_ms: i32,
}

impl Hb {
    fn join(group: &str, topics: &[&str]) -> Hb {
        Hb {
            group: group.into(),
            member_id: String::new(),
            epoch: 0,
            instance: None,
            topics: Some(topics.iter().map(|t| t.to_string()).collect()),
            assignor: None,
            owned: Some(Owned::new()),
            rebalance_ms: 10_000,
        }
    }

    /// A heartbeat of a known member that owns `owned`.
    fn beat(group: &str, member_id: &str, epoch: i32, owned: &Owned) -> Hb {
        Hb {
            group: group.into(),
            member_id: member_id.into(),
            epoch,
            instance: None,
            topics: None,
            assignor: None,
            owned: Some(owned.clone()),
            rebalance_ms: -1,
        }
    }

    fn send(&self, c: &mut Client, version: i16) -> ConsumerGroupHeartbeatResponse {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_member_id(sb(&self.member_id))
            .with_member_epoch(self.epoch)
            .with_instance_id(self.instance.as_deref().map(sb))
            .with_rebalance_timeout_ms(self.rebalance_ms)
            .with_subscribed_topic_names(
                self.topics
                    .as_ref()
                    .map(|ts| ts.iter().map(|t| topic_name(t)).collect()),
            )
            .with_server_assignor(self.assignor.as_deref().map(sb))
            .with_topic_partitions(self.owned.as_ref().map(|o| {
                o.iter()
                    .map(|(id, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(*id)
                            .with_partitions(ps.clone())
                    })
                    .collect()
            }));
        c.call(version, &req)
    }

    fn ok(&self, c: &mut Client) -> ConsumerGroupHeartbeatResponse {
        let r = self.send(c, 0);
        assert_eq!(
            r.error_code,
            err::NONE,
            "heartbeat of {:?}: {:?}",
            self.member_id,
            r.error_message
        );
        r
    }
}

fn assignment(r: &ConsumerGroupHeartbeatResponse) -> Option<Owned> {
    r.assignment.as_ref().map(|a| {
        a.topic_partitions
            .iter()
            .map(|tp| {
                let mut ps = tp.partitions.clone();
                ps.sort();
                (tp.topic_id, ps)
            })
            .filter(|(_, ps)| !ps.is_empty())
            .collect()
    })
}

fn all(id: Uuid, n: i32) -> Owned {
    [(id, (0..n).collect())].into()
}

/// Heartbeats `member` until its assignment is stable at the group's epoch; returns
/// (epoch, owned). The member revokes whatever the coordinator takes away.
fn settle(c: &mut Client, group: &str, member: &str, mut epoch: i32, mut owned: Owned) -> (i32, Owned) {
    for _ in 0..20 {
        let r = Hb::beat(group, member, epoch, &owned).ok(c);
        let changed = assignment(&r).is_some_and(|a| a != owned);
        if let Some(a) = assignment(&r) {
            owned = a;
        }
        if r.member_epoch == epoch && !changed {
            return (epoch, owned);
        }
        epoch = r.member_epoch;
    }
    panic!("member {member} did not settle");
}

#[test]
fn two_members_split_partitions_after_revocation() {
    let broker = BrokerProcess::start();
    let mut c = broker.client();
    let topic = c.create_topic("kc", 4);
    let g = "kc-group";
    // A joins and gets everything; the coordinator picks its member id (v0).
    let a = Hb::join(g, &["kc"]).ok(&mut c);
    let a_id = a.member_id.clone().expect("member id").to_string();
    assert!(!a_id.is_empty());
    assert_eq!((a.member_epoch, a.heartbeat_interval_ms), (1, 5_000));
    assert_eq!(assignment(&a), Some(all(topic, 4)));
    // B joins with its own member id (KIP-1082 clients pick it): nothing is free yet.
    let mut join_b = Hb::join(g, &["kc"]);
    join_b.member_id = "member-b".into();
    let b = join_b.ok(&mut c);
    assert_eq!(b.member_id.as_deref(), Some("member-b"));
    assert_eq!(b.member_epoch, 2, "B is at the new group epoch");
    assert_eq!(
        assignment(&b),
        Some(Owned::new()),
        "B's partitions are still A's"
    );
    // A is asked to revoke two partitions, at its old epoch.
    let r = Hb::beat(g, &a_id, 1, &all(topic, 4)).ok(&mut c);
    assert_eq!(r.member_epoch, 1, "A stays at epoch 1 until it revoked");
    let kept = assignment(&r).expect("A's reduced assignment");
    assert_eq!(kept[&topic].len(), 2);
    // Still reporting everything: no progress.
    let r = Hb::beat(g, &a_id, 1, &all(topic, 4)).ok(&mut c);
    assert_eq!((r.member_epoch, assignment(&r)), (1, None));
    // Revoked: A moves to epoch 2; B gets the released partitions.
    let r = Hb::beat(g, &a_id, 1, &kept).ok(&mut c);
    assert_eq!(r.member_epoch, 2);
    let b = Hb::beat(g, "member-b", 2, &Owned::new()).ok(&mut c);
    let got = assignment(&b).expect("B's partitions");
    let mut union: Vec<i32> = got[&topic]
        .iter()
        .chain(kept[&topic].iter())
        .copied()
        .collect();
    union.sort();
    assert_eq!(union, vec![0, 1, 2, 3], "A and B split the partitions");
    // A heartbeat from the previous epoch with a subset of the partitions is accepted
    // (the response with the new epoch may have been lost); other epochs are fenced.
    assert_eq!(
        Hb::beat(g, &a_id, 1, &kept).send(&mut c, 0).error_code,
        err::NONE
    );
    assert_eq!(
        Hb::beat(g, &a_id, 3, &kept).send(&mut c, 0).error_code,
        err::FENCED_MEMBER_EPOCH
    );
    assert_eq!(
        Hb::beat(g, &a_id, 1, &all(topic, 4))
            .send(&mut c, 0)
            .error_code,
        err::FENCED_MEMBER_EPOCH
    );
    // B leaves: A gets everything back.
    let left = Hb::beat(g, "member-b", -1, &Owned::new()).ok(&mut c);
    assert_eq!(left.member_epoch, -1);
    let (epoch, owned) = settle(&mut c, g, &a_id, 2, kept);
    assert_eq!((epoch, owned), (3, all(topic, 4)));
    assert_eq!(
        Hb::beat(g, "member-b", 2, &Owned::new())
            .send(&mut c, 0)
            .error_code,
        err::UNKNOWN_MEMBER_ID
    );
}

#[test]
fn heartbeat_errors() {
    let broker = BrokerProcess::start();
    let mut c = broker.client();
    c.create_topic("ke", 2);
    let code = |c: &mut Client, hb: Hb| hb.send(c, 0).error_code;
    let mut no_topics = Hb::join("ke-g", &[]);
    no_topics.topics = None;
    assert_eq!(
        code(&mut c, no_topics),
        err::INVALID_REQUEST,
        "no subscription on join"
    );
    let mut owning = Hb::join("ke-g", &["ke"]);
    owning.owned = Some([(Uuid::new_v4(), vec![0])].into());
    assert_eq!(
        code(&mut c, owning),
        err::INVALID_REQUEST,
        "partitions on join"
    );
    let mut no_timeout = Hb::join("ke-g", &["ke"]);
    no_timeout.rebalance_ms = -1;
    assert_eq!(
        code(&mut c, no_timeout),
        err::INVALID_REQUEST,
        "no rebalance timeout on join"
    );
    assert_eq!(
        code(&mut c, Hb::join("", &["ke"])),
        err::INVALID_REQUEST,
        "empty group id"
    );
    assert_eq!(
        code(&mut c, Hb::beat("ke-g", "m", -3, &Owned::new())),
        err::INVALID_REQUEST,
        "epoch -3"
    );
    assert_eq!(
        code(&mut c, Hb::beat("ke-g", "", 3, &Owned::new())),
        err::INVALID_REQUEST,
        "no member id"
    );
    let mut bad_assignor = Hb::join("ke-g", &["ke"]);
    bad_assignor.assignor = Some("sticky-fancy".into());
    assert_eq!(code(&mut c, bad_assignor), err::UNSUPPORTED_ASSIGNOR);
    assert_eq!(
        code(&mut c, Hb::beat("ke-none", "m", 1, &Owned::new())),
        err::GROUP_ID_NOT_FOUND,
        "no such group"
    );
    let joined = Hb::join("ke-g", &["ke"]).ok(&mut c);
    let id = joined.member_id.unwrap().to_string();
    assert_eq!(
        code(&mut c, Hb::beat("ke-g", "stranger", 1, &Owned::new())),
        err::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        code(&mut c, Hb::beat("ke-g", &id, 2, &Owned::new())),
        err::FENCED_MEMBER_EPOCH
    );
    // Rejoining with epoch 0 after being fenced is accepted (same member id).
    let mut rejoin = Hb::join("ke-g", &["ke"]);
    rejoin.member_id = id.clone();
    let r = rejoin.ok(&mut c);
    assert_eq!(
        (r.member_id.as_deref(), r.member_epoch),
        (Some(id.as_str()), 1)
    );
    // Classic and consumer groups do not mix.
    let joined = Join::new(9, "ke-g", &["ke"]).send(&mut c);
    assert_eq!(
        joined.error_code,
        err::INCONSISTENT_GROUP_PROTOCOL,
        "classic join to a consumer group"
    );
    let (_, _) = stable_group(&mut c, "ke-classic", &["ke"], b"");
    assert_eq!(
        code(&mut c, Hb::join("ke-classic", &["ke"])),
        err::GROUP_ID_NOT_FOUND,
        "consumer join to a classic group"
    );
}

#[test]
fn static_member_comes_back_without_a_rebalance() {
    let broker = BrokerProcess::start();
    let mut c = broker.client();
    let topic = c.create_topic("ks", 4);
    let g = "ks-group";
    let join = |id: &str, instance: &str| {
        let mut hb = Hb::join(g, &["ks"]);
        hb.member_id = id.into();
        hb.instance = Some(instance.into());
        hb
    };
    let a = join("a-1", "instance-a").ok(&mut c);
    let b = join("b-1", "instance-b").ok(&mut c);
    let (a_epoch, a_owned) = settle(&mut c, g, "a-1", a.member_epoch, assignment(&a).unwrap());
    let (b_epoch, b_owned) = settle(
        &mut c,
        g,
        "b-1",
        b.member_epoch,
        assignment(&b).unwrap_or_default(),
    );
    let (a_epoch, a_owned) = settle(&mut c, g, "a-1", a_epoch, a_owned);
    assert_eq!(
        a_owned[&topic].len() + b_owned.get(&topic).map_or(0, |p| p.len()),
        4
    );
    // Another process with the same instance id while a-1 is active.
    assert_eq!(
        join("a-2", "instance-a").send(&mut c, 0).error_code,
        err::UNRELEASED_INSTANCE_ID
    );
    // a-1 leaves for now (epoch -2) and comes back as a-2.
    let mut leave = Hb::beat(g, "a-1", -2, &a_owned);
    leave.instance = Some("instance-a".into());
    assert_eq!(leave.ok(&mut c).member_epoch, -2);
    let back = join("a-2", "instance-a").ok(&mut c);
    assert_eq!(back.member_epoch, a_epoch, "no new group epoch");
    assert_eq!(
        assignment(&back),
        Some(a_owned.clone()),
        "the same partitions"
    );
    let b_again = Hb::beat(g, "b-1", b_epoch, &b_owned).ok(&mut c);
    assert_eq!(
        (b_again.member_epoch, assignment(&b_again)),
        (b_epoch, None),
        "B sees no change"
    );
    assert_eq!(
        Hb::beat(g, "a-1", a_epoch, &a_owned)
            .send(&mut c, 0)
            .error_code,
        err::UNKNOWN_MEMBER_ID
    );
    let mut wrong = Hb::beat(g, "a-1", a_epoch, &a_owned);
    wrong.instance = Some("instance-a".into());
    assert_eq!(
        wrong.send(&mut c, 0).error_code,
        err::FENCED_INSTANCE_ID,
        "the old id of the instance"
    );
}

#[test]
fn describe_at_every_version_and_offsets_with_member_epochs() {
    let broker = BrokerProcess::start();
    let mut c = broker.client();
    let topic = c.create_topic("kd", 3);
    let mut hb = Hb::join("kd-group", &["kd"]);
    hb.assignor = Some("range".into());
    let joined = hb.ok(&mut c);
    let id = joined.member_id.unwrap().to_string();
    let epoch = joined.member_epoch;
    stable_group(&mut c, "kd-classic", &["kd"], b"");
    for v in versions(ApiKey::ConsumerGroupDescribe) {
        let req = ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![
                GroupId(sb("kd-group")),
                GroupId(sb("kd-classic")),
                GroupId(sb("kd-none")),
            ])
            .with_include_authorized_operations(true);
        let resp = c.call(v, &req);
        let [g, classic, none] = &resp.groups[..] else {
            panic!("v{v}: three groups")
        };
        assert_eq!(
            (
                g.error_code,
                g.group_state.as_str(),
                g.group_epoch,
                g.assignment_epoch,
                g.assignor_name.as_str()
            ),
            (0, "Stable", 1, 1, "range"),
            "ConsumerGroupDescribe v{v}"
        );
        assert_eq!(g.authorized_operations, (1 << 3) | (1 << 6) | (1 << 8));
        let m = &g.members[0];
        assert_eq!(
            (m.member_id.as_str(), m.member_epoch, m.client_id.as_str()),
            (id.as_str(), epoch, CLIENT_ID)
        );
        assert_eq!(
            m.subscribed_topic_names
                .iter()
                .map(|t| t.0.to_string())
                .collect::<Vec<_>>(),
            vec!["kd".to_string()]
        );
        let a = &m.assignment.topic_partitions[0];
        assert_eq!(
            (a.topic_id, a.topic_name.0.as_str(), a.partitions.clone()),
            (topic, "kd", vec![0, 1, 2])
        );
        assert_eq!(
            m.target_assignment.topic_partitions[0].partitions,
            vec![0, 1, 2]
        );
        if v >= 1 {
            assert_eq!(m.member_type, 1, "v{v}: consumer protocol member");
        }
        assert_eq!(
            classic.error_code,
            err::GROUP_ID_NOT_FOUND,
            "v{v}: a classic group"
        );
        assert_eq!(none.error_code, err::GROUP_ID_NOT_FOUND, "v{v}: no group");
    }
    // DescribeGroups and ListGroups see the consumer group too.
    let listed = c.call(
        5,
        &ListGroupsRequest::default().with_types_filter(vec![sb("consumer")]),
    );
    let got: Vec<_> = listed
        .groups
        .iter()
        .map(|g| {
            (
                g.group_id.to_string(),
                g.group_state.to_string(),
                g.protocol_type.to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![(
            "kd-group".to_string(),
            "Stable".to_string(),
            "consumer".to_string()
        )]
    );
    // Offsets: members commit with their epoch (OffsetCommit v9+).
    assert_eq!(
        commit(&mut c, 9, "kd-group", epoch, &id, &[("kd", 0, 11)])[0].2,
        err::NONE
    );
    assert_eq!(
        commit(&mut c, 9, "kd-group", epoch + 1, &id, &[("kd", 0, 12)])[0].2,
        err::STALE_MEMBER_EPOCH
    );
    assert_eq!(
        commit(&mut c, 8, "kd-group", epoch, &id, &[("kd", 0, 12)])[0].2,
        err::UNSUPPORTED_VERSION
    );
    assert_eq!(
        commit(&mut c, 9, "kd-group", epoch, "ghost", &[("kd", 0, 12)])[0].2,
        err::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(&mut c, 9, "kd-group", -1, "", &[("kd", 0, 12)])[0].2,
        err::UNKNOWN_MEMBER_ID,
        "outsider of a non-empty group"
    );
    let fetch = |c: &mut Client, member: &str, epoch: i32| {
        let req =
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb("kd-group")))
                .with_member_id(Some(sb(member)))
                .with_member_epoch(epoch)
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic_name("kd"))
                    .with_partition_indexes(vec![0])]))]);
        let g = c.call(9, &req).groups.remove(0);
        (
            g.error_code,
            g.topics.first().map(|t| t.partitions[0].committed_offset),
        )
    };
    assert_eq!(fetch(&mut c, &id, epoch), (err::NONE, Some(11)));
    assert_eq!(
        fetch(&mut c, &id, epoch + 5),
        (err::STALE_MEMBER_EPOCH, None)
    );
    assert_eq!(
        fetch(&mut c, "ghost", epoch),
        (err::UNKNOWN_MEMBER_ID, None)
    );
    assert_eq!(
        fetch_committed(&mut c, "kd-group", None).1,
        vec![("kd".to_string(), 0, 11)],
        "admin fetch without a member"
    );
}

#[test]
fn consumer_group_survives_restart() {
    let mut broker = BrokerProcess::start();
    let mut c = broker.client();
    let topic = c.create_topic("kr", 2);
    let joined = Hb::join("kr-group", &["kr"]).ok(&mut c);
    let id = joined.member_id.unwrap().to_string();
    assert_eq!(
        commit(
            &mut c,
            9,
            "kr-group",
            joined.member_epoch,
            &id,
            &[("kr", 1, 5)]
        )[0]
        .2,
        err::NONE
    );
    drop(c);
    broker.restart();
    let mut c = broker.client();
    let r = Hb::beat("kr-group", &id, joined.member_epoch, &all(topic, 2)).ok(&mut c);
    assert_eq!(
        r.member_epoch, joined.member_epoch,
        "the member and its epoch survive"
    );
    assert_eq!(
        commit(
            &mut c,
            9,
            "kr-group",
            joined.member_epoch,
            &id,
            &[("kr", 1, 6)]
        )[0]
        .2,
        err::NONE
    );
    assert_eq!(
        fetch_committed(&mut c, "kr-group", None).1,
        vec![("kr".to_string(), 1, 6)]
    );
}

/// New partitions of a subscribed topic are picked up (the group epoch moves).
#[test]
fn new_partitions_are_assigned() {
    let broker = BrokerProcess::start();
    let mut c = broker.client();
    let topic = c.create_topic("kp", 1);
    let joined = Hb::join("kp-group", &["kp"]).ok(&mut c);
    let id = joined.member_id.unwrap().to_string();
    let req = CreatePartitionsRequest::default()
        .with_topics(vec![
            kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic::default()
                .with_name(topic_name("kp"))
                .with_count(3),
        ])
        .with_timeout_ms(10_000);
    assert_eq!(c.call(3, &req).results[0].error_code, 0);
    let (epoch, owned) = settle(&mut c, "kp-group", &id, joined.member_epoch, all(topic, 1));
    assert_eq!((epoch, owned), (2, all(topic, 3)));
}
