//! Committed offsets: OffsetCommit (8) and OffsetFetch (9) at every advertised version,
//! their error paths, persistence across restarts, and removal with the topic.

#[path = "groups_common.rs"]
mod common;

use common::*;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use protocol_tests::*;

fn commit_request(
    version: i16,
    group: &str,
    generation: i32,
    member: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> OffsetCommitRequest {
    let partitions = offsets
        .iter()
        .map(|(p, o)| {
            let mut partition = OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_metadata(Some(sb(&format!("v{version}-p{p}"))));
            if version >= 6 {
                partition.committed_leader_epoch = 4;
            }
            partition
        })
        .collect();
    let mut req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(partitions)]);
    if version <= 4 {
        req.retention_time_ms = -1;
    }
    req
}

/// Committed offset, leader epoch, metadata and error of each requested partition (v1–7 form).
fn fetch_v1(
    client: &mut Client,
    version: i16,
    group: &str,
    topic: Option<(&str, &[i32])>,
) -> (i16, Vec<(String, i32, i64, i32, String, i16)>) {
    let mut req = OffsetFetchRequest::default().with_group_id(GroupId(sb(group)));
    req.topics = topic.map(|(t, ps)| {
        vec![OffsetFetchRequestTopic::default()
            .with_name(topic_name(t))
            .with_partition_indexes(ps.to_vec())]
    });
    let resp = client.call(version, &req);
    let mut out: Vec<_> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_deref().unwrap_or("<null>").to_string(),
                    p.error_code,
                )
            })
        })
        .collect();
    out.sort();
    (resp.error_code, out)
}

#[test]
fn commit_and_fetch_at_every_version() {
    let broker = BrokerProcess::start();
    topic(&broker, "oc", 3);
    let mut c = broker.client();
    for v in versions(ApiKey::OffsetCommit) {
        let group = format!("oc-simple-{v}");
        let resp = c.call(
            v,
            &commit_request(v, &group, -1, "", "oc", &[(0, 10 + v as i64), (2, 20)]),
        );
        let codes: Vec<_> = resp.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![(0, err::NONE), (2, err::NONE)],
            "OffsetCommit v{v}"
        );
        assert_eq!(
            resp.topics[0].name.0.as_str(),
            "oc",
            "OffsetCommit v{v}: topic name"
        );
        let (top, got) = fetch_committed(&mut c, &group, Some(&[("oc", 0), ("oc", 1), ("oc", 2)]));
        assert_eq!(top, err::NONE);
        assert_eq!(
            got,
            vec![
                ("oc".into(), 0, 10 + v as i64),
                ("oc".into(), 1, -1),
                ("oc".into(), 2, 20)
            ],
            "offsets committed with OffsetCommit v{v}"
        );
    }
    for v in versions(ApiKey::OffsetFetch).filter(|v| *v < 8) {
        let (top, got) = fetch_v1(&mut c, v, "oc-simple-9", Some(("oc", &[0, 1, 2])));
        assert_eq!(top, err::NONE, "OffsetFetch v{v}: error");
        let epoch = if v >= 5 { 4 } else { -1 };
        assert_eq!(
            got,
            vec![
                ("oc".into(), 0, 19, epoch, "v9-p0".into(), 0),
                ("oc".into(), 1, -1, -1, "".into(), 0),
                ("oc".into(), 2, 20, epoch, "v9-p2".into(), 0),
            ],
            "OffsetFetch v{v}: (topic, partition, offset, leader epoch, metadata, error)"
        );
        if v >= 2 {
            // Null topics: every committed offset of the group.
            let (_, all) = fetch_v1(&mut c, v, "oc-simple-9", None);
            let all: Vec<_> = all
                .iter()
                .map(|(t, p, o, ..)| (t.clone(), *p, *o))
                .collect();
            assert_eq!(
                all,
                vec![("oc".into(), 0, 19), ("oc".into(), 2, 20)],
                "OffsetFetch v{v}: all offsets"
            );
        }
        let (_, none) = fetch_v1(&mut c, v, "oc-no-such-group", Some(("oc", &[0])));
        assert_eq!(none[0].2, -1, "OffsetFetch v{v}: a group without offsets");
    }
    for v in versions(ApiKey::OffsetFetch).filter(|v| *v >= 8) {
        // Several groups in one request; one asks for all offsets.
        let req = OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb("oc-simple-2")))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(topic_name("oc"))
                    .with_partition_indexes(vec![0, 1])])),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb("oc-simple-3")))
                .with_topics(None),
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(sb("oc-none")))
                .with_topics(None),
        ]);
        let resp = c.call(v, &req);
        let summary: Vec<(String, i16, Vec<(i32, i64, i32, String)>)> = resp
            .groups
            .iter()
            .map(|g| {
                let ps = g
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| {
                            (
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                p.metadata.as_deref().unwrap_or("").to_string(),
                            )
                        })
                    })
                    .collect();
                (g.group_id.to_string(), g.error_code, ps)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "oc-simple-2".into(),
                    0,
                    vec![(0, 12, -1, "v2-p0".into()), (1, -1, -1, "".into())]
                ),
                (
                    "oc-simple-3".into(),
                    0,
                    vec![(0, 13, -1, "v3-p0".into()), (2, 20, -1, "v3-p2".into())]
                ),
                ("oc-none".into(), 0, vec![]),
            ],
            "OffsetFetch v{v}: groups"
        );
    }
}

#[test]
fn commit_errors() {
    let broker = BrokerProcess::start();
    topic(&broker, "ce", 2);
    let mut c = broker.client();
    // Unknown topic / partition.
    let r = commit(
        &mut c,
        9,
        "ce-g",
        -1,
        "",
        &[("ce-missing", 0, 1), ("ce", 5, 1), ("ce", 1, 1)],
    );
    assert_eq!(
        r,
        vec![
            ("ce-missing".into(), 0, err::UNKNOWN_TOPIC_OR_PARTITION),
            ("ce".into(), 5, err::UNKNOWN_TOPIC_OR_PARTITION),
            ("ce".into(), 1, err::NONE)
        ]
    );
    // Metadata over offset.metadata.max.bytes (4096).
    let mut req = commit_request(9, "ce-g", -1, "", "ce", &[(0, 1)]);
    req.topics[0].partitions[0].committed_metadata = Some(sb(&"m".repeat(5000)));
    let resp = c.call(9, &req);
    assert_eq!(
        resp.topics[0].partitions[0].error_code,
        err::OFFSET_METADATA_TOO_LARGE
    );
    // A generation for a group that does not exist.
    for v in [2i16, 8, 9] {
        let resp = c.call(
            v,
            &commit_request(v, "ce-nonexistent", 3, "m", "ce", &[(0, 1)]),
        );
        let want = if v >= 9 {
            err::GROUP_ID_NOT_FOUND
        } else {
            err::ILLEGAL_GENERATION
        };
        assert_eq!(
            resp.topics[0].partitions[0].error_code, want,
            "OffsetCommit v{v} to a missing group with a generation"
        );
    }
    // Members of a live group: stale generation, unknown member; outsiders are refused.
    let (member, generation) = stable_group(&mut c, "ce-live", &["ce"], b"a");
    assert_eq!(
        commit(&mut c, 9, "ce-live", generation, &member, &[("ce", 0, 7)])[0].2,
        err::NONE,
        "current generation"
    );
    assert_eq!(
        commit(
            &mut c,
            9,
            "ce-live",
            generation + 1,
            &member,
            &[("ce", 0, 8)]
        )[0]
        .2,
        err::ILLEGAL_GENERATION,
        "wrong generation"
    );
    assert_eq!(
        commit(
            &mut c,
            9,
            "ce-live",
            generation,
            "intruder",
            &[("ce", 0, 8)]
        )[0]
        .2,
        err::UNKNOWN_MEMBER_ID,
        "unknown member"
    );
    assert_eq!(
        commit(&mut c, 9, "ce-live", -1, "", &[("ce", 0, 8)])[0].2,
        err::UNKNOWN_MEMBER_ID,
        "outsider while the group has members"
    );
    assert_eq!(
        fetch_committed(&mut c, "ce-live", Some(&[("ce", 0)])).1,
        vec![("ce".into(), 0, 7)],
        "rejected commits change nothing"
    );
    // Empty group id.
    assert_eq!(
        commit(&mut c, 9, "", -1, "", &[("ce", 0, 1)])[0].2,
        err::INVALID_GROUP_ID
    );
    assert_eq!(fetch_committed(&mut c, "", None).0, err::INVALID_GROUP_ID);
    let (top, _) = fetch_v1(&mut c, 7, "", None);
    assert_eq!(top, err::INVALID_GROUP_ID, "OffsetFetch v7 top-level error");
    let (_, per_partition) = fetch_v1(&mut c, 1, "", Some(("ce", &[0])));
    assert_eq!(
        per_partition[0].5,
        err::INVALID_GROUP_ID,
        "OffsetFetch v1 reports it per partition"
    );
}

#[test]
fn commit_during_completing_rebalance_is_rejected() {
    let broker = BrokerProcess::start();
    topic(&broker, "cr", 1);
    let mut c = broker.client();
    let joined = Join::new(9, "cr-g", &["cr"]).join_new(&mut c);
    // Joined, not synced yet: CompletingRebalance.
    let r = commit(
        &mut c,
        9,
        "cr-g",
        joined.generation_id,
        &joined.member_id,
        &[("cr", 0, 1)],
    );
    assert_eq!(r[0].2, err::REBALANCE_IN_PROGRESS);
}

#[test]
fn offsets_and_groups_survive_restart() {
    let mut broker = BrokerProcess::start();
    topic(&broker, "rs", 2);
    let (member, generation) = {
        let mut c = broker.client();
        assert_eq!(
            commit(
                &mut c,
                9,
                "rs-simple",
                -1,
                "",
                &[("rs", 0, 42), ("rs", 1, 43)]
            )[1]
            .2,
            err::NONE
        );
        let (member, generation) = stable_group(&mut c, "rs-live", &["rs"], b"mine");
        assert_eq!(
            commit(&mut c, 9, "rs-live", generation, &member, &[("rs", 1, 99)])[0].2,
            err::NONE
        );
        (member, generation)
    };
    broker.restart();
    let mut c = broker.client();
    assert_eq!(
        fetch_committed(&mut c, "rs-simple", None),
        (0, vec![("rs".into(), 0, 42), ("rs".into(), 1, 43)])
    );
    let (_, v1) = fetch_v1(&mut c, 7, "rs-live", Some(("rs", &[1])));
    assert_eq!(
        (v1[0].2, v1[0].3, v1[0].4.as_str()),
        (99, 0, "m99"),
        "offset, leader epoch and metadata"
    );
    // The member is still known after the restart: it can heartbeat, resync and commit.
    assert_eq!(
        heartbeat(&mut c, 4, "rs-live", generation, &member, None),
        err::NONE,
        "heartbeat after restart"
    );
    let s = sync(&mut c, 5, "rs-live", generation, &member, None, &[]);
    assert_eq!(
        (s.error_code, &s.assignment[..]),
        (err::NONE, &b"mine"[..]),
        "assignment after restart"
    );
    assert_eq!(
        commit(&mut c, 9, "rs-live", generation, &member, &[("rs", 1, 100)])[0].2,
        err::NONE
    );
    assert_eq!(
        commit(
            &mut c,
            9,
            "rs-live",
            generation - 1,
            &member,
            &[("rs", 1, 1)]
        )[0]
        .2,
        err::ILLEGAL_GENERATION
    );
}

#[test]
fn deleting_a_topic_removes_its_offsets() {
    let broker = BrokerProcess::start();
    let mut c = broker.client();
    c.create_topic("dt", 2);
    c.create_topic("dt-keep", 1);
    assert_eq!(
        commit(
            &mut c,
            9,
            "dt-g",
            -1,
            "",
            &[("dt", 0, 5), ("dt", 1, 6), ("dt-keep", 0, 7)]
        )
        .len(),
        3
    );
    let resp = c.call(
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![
                kafka_protocol::messages::delete_topics_request::DeleteTopicState::default()
                    .with_name(Some(topic_name("dt"))),
            ])
            .with_timeout_ms(10_000),
    );
    assert_eq!(resp.responses[0].error_code, 0);
    c.create_topic("dt", 2);
    assert_eq!(
        fetch_committed(&mut c, "dt-g", None),
        (0, vec![("dt-keep".into(), 0, 7)]),
        "only the other topic's offset is left"
    );
}
