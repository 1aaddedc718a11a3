//! Helpers shared by the consumer group tests (`groups*.rs` include this file with
//! `#[path]`; on its own it is an empty test target).
#![allow(dead_code)]

use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use protocol_tests::*;

/// JOIN/SYNC/… error codes used by the group tests.
pub mod err {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
}

/// The smallest session timeout the broker accepts (group.min.session.timeout.ms).
pub const SESSION_MS: i32 = 6_000;

/// Consumer protocol subscription metadata (v0): the topics, no user data.
pub fn subscription(topics: &[&str]) -> Bytes {
    let mut b = Vec::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.extend_from_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.into()
}

/// Parameters of a JoinGroup.
#[derive(Clone)]
pub struct Join {
    pub version: i16,
    pub group: String,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub session_ms: i32,
    pub rebalance_ms: i32,
}

impl Join {
    /// A consumer join for `topics` with the "range" protocol.
    pub fn new(version: i16, group: &str, topics: &[&str]) -> Join {
        Join {
            version,
            group: group.into(),
            member_id: String::new(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), subscription(topics))],
            session_ms: SESSION_MS,
            rebalance_ms: 2_000,
        }
    }

    pub fn member(mut self, id: &str) -> Join {
        self.member_id = id.into();
        self
    }

    pub fn instance(mut self, id: &str) -> Join {
        self.instance_id = Some(id.into());
        self
    }

    pub fn request(&self) -> JoinGroupRequest {
        let protocols = self
            .protocols
            .iter()
            .map(|(n, m)| {
                JoinGroupRequestProtocol::default()
                    .with_name(sb(n))
                    .with_metadata(m.clone())
            })
            .collect();
        let mut req = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(&self.group)))
            .with_session_timeout_ms(self.session_ms)
            .with_member_id(sb(&self.member_id))
            .with_protocol_type(sb(&self.protocol_type))
            .with_protocols(protocols);
        if self.version >= 1 {
            req.rebalance_timeout_ms = self.rebalance_ms;
        }
        if self.version >= 5 {
            req.group_instance_id = self.instance_id.as_deref().map(sb);
        }
        req
    }

    /// Sends the join and waits for the response (however long the rebalance takes).
    pub fn send(&self, client: &mut Client) -> JoinGroupResponse {
        client.call(self.version, &self.request())
    }

    /// Joins as a new member, answering MEMBER_ID_REQUIRED (v4+) with the assigned id.
    pub fn join_new(&self, client: &mut Client) -> JoinGroupResponse {
        let resp = self.send(client);
        if self.version >= 4 && self.instance_id.is_none() && self.member_id.is_empty() {
            assert_eq!(
                resp.error_code,
                err::MEMBER_ID_REQUIRED,
                "JoinGroup v{}: first join",
                self.version
            );
            assert!(
                !resp.member_id.is_empty(),
                "JoinGroup v{}: MEMBER_ID_REQUIRED without an id",
                self.version
            );
            return self.clone().member(&resp.member_id).send(client);
        }
        resp
    }
}

/// SyncGroup at `version`.
pub fn sync(
    client: &mut Client,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
    assignments: &[(&str, &[u8])],
) -> SyncGroupResponse {
    let mut req = SyncGroupRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member_id))
        .with_assignments(
            assignments
                .iter()
                .map(|(m, a)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(sb(m))
                        .with_assignment(Bytes::copy_from_slice(a))
                })
                .collect(),
        );
    if version >= 3 {
        req.group_instance_id = instance_id.map(sb);
    }
    if version >= 5 {
        req.protocol_type = Some(sb("consumer"));
        req.protocol_name = Some(sb("range"));
    }
    client.call(version, &req)
}

/// Heartbeat at `version`; returns the error code.
pub fn heartbeat(
    client: &mut Client,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    instance_id: Option<&str>,
) -> i16 {
    let mut req = HeartbeatRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id(generation)
        .with_member_id(sb(member_id));
    if version >= 3 {
        req.group_instance_id = instance_id.map(sb);
    }
    client.call(version, &req).error_code
}

/// LeaveGroup of one member at `version`: (top-level error, per-member errors for v3+).
pub fn leave(
    client: &mut Client,
    version: i16,
    group: &str,
    member_id: &str,
    instance_id: Option<&str>,
) -> (i16, Vec<i16>) {
    let mut req = LeaveGroupRequest::default().with_group_id(GroupId(sb(group)));
    if version >= 3 {
        req.members = vec![MemberIdentity::default()
            .with_member_id(sb(member_id))
            .with_group_instance_id(instance_id.map(sb))];
    } else {
        req.member_id = sb(member_id);
    }
    let resp = client.call(version, &req);
    (
        resp.error_code,
        resp.members.iter().map(|m| m.error_code).collect(),
    )
}

/// A one-member group, joined and synced at the highest versions: (member id, generation).
pub fn stable_group(
    client: &mut Client,
    group: &str,
    topics: &[&str],
    assignment: &[u8],
) -> (String, i32) {
    let joined = Join::new(9, group, topics).join_new(client);
    assert_eq!(joined.error_code, err::NONE, "join {group}");
    let synced = sync(
        client,
        5,
        group,
        joined.generation_id,
        &joined.member_id,
        None,
        &[(&joined.member_id, assignment)],
    );
    assert_eq!(synced.error_code, err::NONE, "sync {group}");
    (joined.member_id.to_string(), joined.generation_id)
}

/// OffsetCommit at `version` of (topic, partition, offset) with generation/member.
pub fn commit(
    client: &mut Client,
    version: i16,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64)],
) -> Vec<(String, i32, i16)> {
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (t, p, o) in offsets {
        let mut partition = OffsetCommitRequestPartition::default()
            .with_partition_index(*p)
            .with_committed_offset(*o)
            .with_committed_metadata(Some(sb(&format!("m{o}"))));
        if version >= 6 {
            partition.committed_leader_epoch = 0;
        }
        match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
            Some(topic) => topic.partitions.push(partition),
            None => topics.push(
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![partition]),
            ),
        }
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(sb(member_id))
        .with_topics(topics);
    let resp = client.call(version, &req);
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.error_code))
        })
        .collect()
}

/// OffsetFetch (v8) of one group's partitions: (topic, partition, offset, error); None = all.
pub fn fetch_committed(
    client: &mut Client,
    group: &str,
    partitions: Option<&[(&str, i32)]>,
) -> (i16, Vec<(String, i32, i64)>) {
    let topics = partitions.map(|ps| {
        let mut topics: Vec<OffsetFetchRequestTopics> = Vec::new();
        for (t, p) in ps {
            match topics.iter_mut().find(|x| x.name.0.as_str() == *t) {
                Some(topic) => topic.partition_indexes.push(*p),
                None => topics.push(
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(vec![*p]),
                ),
            }
        }
        topics
    });
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(topics)]);
    let resp = client.call(8, &req);
    let g = &resp.groups[0];
    let mut out: Vec<(String, i32, i64)> = g
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
        })
        .collect();
    out.sort();
    (g.error_code, out)
}

/// Polls `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Creates a topic with `partitions` partitions on a fresh connection.
pub fn topic(broker: &BrokerProcess, name: &str, partitions: i32) {
    broker.client().create_topic(name, partitions);
}
