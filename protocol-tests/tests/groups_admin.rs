//! Group administration: ListGroups (16), DescribeGroups (15), DeleteGroups (42) and
//! OffsetDelete (47) at every advertised version.

#[path = "groups_common.rs"]
mod common;

use common::*;
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::*;
use protocol_tests::*;

/// A Stable consumer group ("adm-stable", subscribed to "adm") and a simple group
/// with offsets only ("adm-simple").
fn setup(broker: &BrokerProcess) -> (Client, String) {
    topic(broker, "adm", 2);
    topic(broker, "adm-other", 1);
    let mut c = broker.client();
    let (member, _) = stable_group(&mut c, "adm-stable", &["adm"], b"assigned");
    assert_eq!(
        commit(
            &mut c,
            9,
            "adm-simple",
            -1,
            "",
            &[("adm", 0, 3), ("adm-other", 0, 4)]
        )[0]
        .2,
        err::NONE
    );
    (c, member)
}

#[test]
fn list_groups_at_every_version() {
    let broker = BrokerProcess::start();
    let (mut c, _) = setup(&broker);
    for v in versions(ApiKey::ListGroups) {
        let resp = c.call(v, &ListGroupsRequest::default());
        assert_eq!(resp.error_code, err::NONE, "ListGroups v{v}");
        let mut got: Vec<(String, String, String, String)> = resp
            .groups
            .iter()
            .map(|g| {
                (
                    g.group_id.to_string(),
                    g.protocol_type.to_string(),
                    g.group_state.to_string(),
                    g.group_type.to_string(),
                )
            })
            .collect();
        got.sort();
        let state = |s: &str| if v >= 4 { s.to_string() } else { String::new() };
        let kind = if v >= 5 {
            "classic".to_string()
        } else {
            String::new()
        };
        assert_eq!(
            got,
            vec![
                ("adm-simple".into(), "".into(), state("Empty"), kind.clone()),
                (
                    "adm-stable".into(),
                    "consumer".into(),
                    state("Stable"),
                    kind.clone()
                ),
            ],
            "ListGroups v{v}: (id, protocol type, state, type)"
        );
        if v >= 4 {
            let filtered = c.call(
                v,
                &ListGroupsRequest::default().with_states_filter(vec![sb("stable")]),
            );
            let ids: Vec<String> = filtered
                .groups
                .iter()
                .map(|g| g.group_id.to_string())
                .collect();
            assert_eq!(
                ids,
                vec!["adm-stable".to_string()],
                "ListGroups v{v}: state filter (case-insensitive)"
            );
        }
        if v >= 5 {
            let consumer = c.call(
                v,
                &ListGroupsRequest::default().with_types_filter(vec![sb("consumer")]),
            );
            assert!(
                consumer.groups.is_empty(),
                "ListGroups v{v}: no KIP-848 groups"
            );
            let classic = c.call(
                v,
                &ListGroupsRequest::default().with_types_filter(vec![sb("Classic")]),
            );
            assert_eq!(classic.groups.len(), 2, "ListGroups v{v}: type filter");
        }
    }
}

#[test]
fn describe_groups_at_every_version() {
    let broker = BrokerProcess::start();
    let (mut c, member) = setup(&broker);
    for v in versions(ApiKey::DescribeGroups) {
        let mut req = DescribeGroupsRequest::default().with_groups(vec![
            GroupId(sb("adm-stable")),
            GroupId(sb("adm-simple")),
            GroupId(sb("adm-missing")),
        ]);
        if v >= 3 {
            req.include_authorized_operations = true;
        }
        let resp = c.call(v, &req);
        let [stable, simple, missing] = &resp.groups[..] else {
            panic!("DescribeGroups v{v}: 3 groups")
        };
        assert_eq!(
            (
                stable.error_code,
                stable.group_id.as_str(),
                stable.group_state.as_str(),
                stable.protocol_type.as_str(),
                stable.protocol_data.as_str()
            ),
            (0, "adm-stable", "Stable", "consumer", "range"),
            "DescribeGroups v{v}: stable group"
        );
        assert_eq!(stable.members.len(), 1);
        let m = &stable.members[0];
        assert_eq!(
            m.member_id.as_str(),
            member,
            "DescribeGroups v{v}: member id"
        );
        assert_eq!(
            m.client_id.as_str(),
            CLIENT_ID,
            "DescribeGroups v{v}: client id"
        );
        assert_eq!(
            m.member_metadata,
            subscription(&["adm"]),
            "DescribeGroups v{v}: metadata"
        );
        assert_eq!(
            &m.member_assignment[..],
            b"assigned",
            "DescribeGroups v{v}: assignment"
        );
        if v >= 3 {
            assert_eq!(
                stable.authorized_operations,
                (1 << 3) | (1 << 6) | (1 << 8),
                "DescribeGroups v{v}: operations"
            );
        }
        assert_eq!(
            (
                simple.error_code,
                simple.group_state.as_str(),
                simple.members.len()
            ),
            (0, "Empty", 0),
            "v{v}: simple group"
        );
        assert_eq!(
            missing.group_state.as_str(),
            "Dead",
            "DescribeGroups v{v}: missing group"
        );
        if v >= 6 {
            assert_eq!(
                missing.error_code,
                err::GROUP_ID_NOT_FOUND,
                "DescribeGroups v{v}: missing group error"
            );
            assert!(missing.error_message.is_some());
        } else {
            assert_eq!(
                missing.error_code,
                err::NONE,
                "DescribeGroups v{v}: missing group error"
            );
        }
    }
    // Static members carry their instance id (v4+); members without metadata while rebalancing.
    let mut s = broker.client();
    let j = Join::new(9, "adm-static", &["adm"])
        .instance("inst-a")
        .send(&mut s);
    let resp = c.call(
        4,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("adm-static"))]),
    );
    let g = &resp.groups[0];
    assert_eq!(g.group_state.as_str(), "CompletingRebalance");
    assert_eq!(g.members[0].group_instance_id.as_deref(), Some("inst-a"));
    assert!(
        g.members[0].member_metadata.is_empty(),
        "no metadata outside Stable"
    );
    assert_eq!(g.protocol_data.as_str(), "", "no protocol outside Stable");
    assert_eq!(j.error_code, err::NONE);
}

#[test]
fn delete_groups_at_every_version() {
    let broker = BrokerProcess::start();
    let (mut c, member) = setup(&broker);
    for v in versions(ApiKey::DeleteGroups) {
        let group = format!("adm-del-{v}");
        assert_eq!(
            commit(&mut c, 9, &group, -1, "", &[("adm", 1, 9)])[0].2,
            err::NONE
        );
        let resp = c.call(
            v,
            &DeleteGroupsRequest::default().with_groups_names(vec![
                GroupId(sb(&group)),
                GroupId(sb("adm-stable")),
                GroupId(sb("adm-missing")),
                GroupId(sb("")),
            ]),
        );
        let got: Vec<(String, i16)> = resp
            .results
            .iter()
            .map(|r| (r.group_id.to_string(), r.error_code))
            .collect();
        assert_eq!(
            got,
            vec![
                (group.clone(), err::NONE),
                ("adm-stable".into(), err::NON_EMPTY_GROUP),
                ("adm-missing".into(), err::GROUP_ID_NOT_FOUND),
                ("".into(), err::INVALID_GROUP_ID),
            ],
            "DeleteGroups v{v}"
        );
        assert_eq!(
            fetch_committed(&mut c, &group, None).1,
            vec![],
            "DeleteGroups v{v}: offsets are gone"
        );
        let listed = c.call(5, &ListGroupsRequest::default());
        assert!(
            listed.groups.iter().all(|g| g.group_id.as_str() != group),
            "DeleteGroups v{v}: group is gone"
        );
    }
    // Once its member left, the consumer group can be deleted.
    assert_eq!(leave(&mut c, 5, "adm-stable", &member, None).0, err::NONE);
    let resp = c.call(
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(sb("adm-stable"))]),
    );
    assert_eq!(resp.results[0].error_code, err::NONE);
}

fn offset_delete(c: &mut Client, group: &str, topics: &[(&str, &[i32])]) -> OffsetDeleteResponse {
    let req = OffsetDeleteRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(
            topics
                .iter()
                .map(|(t, ps)| {
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    OffsetDeleteRequestPartition::default().with_partition_index(*p)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    c.call(0, &req)
}

#[test]
fn offset_delete_rules() {
    let broker = BrokerProcess::start();
    let (mut c, member) = setup(&broker);
    // A simple group: offsets go, others stay.
    let resp = offset_delete(&mut c, "adm-simple", &[("adm", &[0])]);
    assert_eq!(
        (resp.error_code, resp.topics[0].partitions[0].error_code),
        (0, 0)
    );
    assert_eq!(
        fetch_committed(&mut c, "adm-simple", None).1,
        vec![("adm-other".into(), 0, 4)]
    );
    // The consumer group: subscribed topics are protected, others can go.
    assert_eq!(
        commit(
            &mut c,
            9,
            "adm-stable",
            1,
            &member,
            &[("adm", 0, 1), ("adm-other", 0, 2)]
        )
        .len(),
        2
    );
    let resp = offset_delete(&mut c, "adm-stable", &[("adm", &[0]), ("adm-other", &[0])]);
    let codes: Vec<(String, i16)> = resp
        .topics
        .iter()
        .map(|t| (t.name.0.to_string(), t.partitions[0].error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("adm".into(), err::GROUP_SUBSCRIBED_TO_TOPIC),
            ("adm-other".into(), err::NONE)
        ]
    );
    assert_eq!(
        fetch_committed(&mut c, "adm-stable", None).1,
        vec![("adm".into(), 0, 1)]
    );
    // Missing group; a non-consumer group with members.
    assert_eq!(
        offset_delete(&mut c, "adm-missing", &[("adm", &[0])]).error_code,
        err::GROUP_ID_NOT_FOUND
    );
    let mut connect = Join::new(9, "adm-connect", &["adm"]);
    connect.protocol_type = "connect".into();
    assert_eq!(connect.join_new(&mut broker.client()).error_code, err::NONE);
    assert_eq!(
        offset_delete(&mut c, "adm-connect", &[("adm", &[0])]).error_code,
        err::NON_EMPTY_GROUP
    );
}
