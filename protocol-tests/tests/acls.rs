//! ACLs on a broker with the authorizer on, `User:admin` a super user and SASL
//! PLAIN users admin and alice: CreateAcls/DescribeAcls/DeleteAcls, what alice
//! may and may not do (produce, fetch, metadata, ACL admin), deny over allow, and
//! ACLs surviving a restart.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateTopicsRequest, DeleteAclsRequest, DescribeAclsRequest, FetchRequest, MetadataRequest,
    ProduceRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use protocol_tests::{assert_records_eq, decode_records, encode_batch, fluxo_bin, sample_records, sb, topic_name, Client};

const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

// Wire codes.
const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const ANY: i8 = 1;
const READ: i8 = 3;
const WRITE: i8 = 4;
const CREATE: i8 = 5;
const DENY: i8 = 2;
const ALLOW: i8 = 3;

struct Broker {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(dir: &Path) -> Broker {
    let port = free_port();
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("broker.log")).unwrap();
    let child = Command::new(fluxo_bin())
        .args(["--listeners", &format!("SASL_PLAINTEXT://127.0.0.1:{port}")])
        .args(["--sasl-user", "admin:admin-secret", "--sasl-user", "alice:alice-secret"])
        .args(["--authorizer-enabled", "true", "--super-users", "User:admin"])
        .args(["--metrics-listener", "", "--auto-create-topics", "true"])
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn fluxo");
    let broker = Broker { child, addr: format!("127.0.0.1:{port}").parse().unwrap() };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(broker.addr).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    broker
}

fn assert_no_panic(dir: &Path) {
    let log = std::fs::read_to_string(dir.join("broker.log")).unwrap_or_default();
    assert!(!log.contains("panicked at"), "the broker panicked:\n{log}");
}

fn login(broker: &Broker, user: &str) -> Client {
    let mut c = Client::connect(broker.addr);
    let r = c.call(1, &SaslHandshakeRequest::default().with_mechanism(sb("PLAIN")));
    assert_eq!(r.error_code, 0);
    let token = format!("\0{user}\0{user}-secret");
    let r = c.call(2, &SaslAuthenticateRequest::default().with_auth_bytes(token.into_bytes().into()));
    assert_eq!(r.error_code, 0, "{user} logs in");
    c
}

fn creation(kind: i8, name: &str, pattern: i8, principal: &str, op: i8, perm: i8) -> AclCreation {
    AclCreation::default()
        .with_resource_type(kind)
        .with_resource_name(sb(name))
        .with_resource_pattern_type(pattern)
        .with_principal(sb(principal))
        .with_host(sb("*"))
        .with_operation(op)
        .with_permission_type(perm)
}

fn create_acls(c: &mut Client, creations: Vec<AclCreation>) -> Vec<i16> {
    let r = c.call(3, &CreateAclsRequest::default().with_creations(creations));
    r.results.iter().map(|r| r.error_code).collect()
}

fn create_topic(c: &mut Client, name: &str) {
    let r = c.call(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default().with_name(topic_name(name)).with_num_partitions(1).with_replication_factor(1)])
            .with_timeout_ms(5000),
    );
    assert_eq!(r.topics[0].error_code, 0, "create {name}");
}

fn produce(c: &mut Client, topic: &str, tag: &str) -> (i16, i64, Vec<kafka_protocol::records::Record>) {
    let records = sample_records(tag, 3);
    let req = ProduceRequest::default().with_acks(-1).with_timeout_ms(5000).with_topic_data(vec![TopicProduceData::default()
        .with_name(topic_name(topic))
        .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(encode_batch(&records)))])]);
    let r = c.call(9, &req);
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset, records)
}

fn fetch(c: &mut Client, topic: &str) -> (i16, Option<bytes::Bytes>) {
    let req = FetchRequest::default().with_max_wait_ms(0).with_max_bytes(1 << 20).with_topics(vec![FetchTopic::default()
        .with_topic(topic_name(topic))
        .with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)])]);
    let r = c.call(12, &req);
    let p = &r.responses[0].partitions[0];
    (p.error_code, p.records.clone())
}

fn listed_topics(c: &mut Client) -> Vec<String> {
    let r = c.call(12, &MetadataRequest::default().with_topics(None));
    let mut names: Vec<String> = r.topics.iter().filter_map(|t| t.name.as_ref().map(|n| n.to_string())).collect();
    names.sort();
    names
}

/// DescribeAcls matching everything (the generated defaults are "" filters, not null).
fn describe_any() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

fn describe_all(c: &mut Client) -> Vec<(i8, String, i8, String, i8, i8)> {
    let r = c.call(3, &describe_any());
    assert_eq!(r.error_code, 0);
    let mut out = Vec::new();
    for res in &r.resources {
        for a in &res.acls {
            out.push((res.resource_type, res.resource_name.to_string(), res.pattern_type, a.principal.to_string(), a.operation, a.permission_type));
        }
    }
    out.sort();
    out
}

#[test]
fn acls_decide_what_alice_may_do_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    create_topic(&mut admin, "t1");
    create_topic(&mut admin, "t2");
    create_topic(&mut admin, "secret-1");

    let mut alice = login(&broker, "alice");
    // Without ACLs alice may do nothing.
    assert_eq!(produce(&mut alice, "t1", "before").0, TOPIC_AUTHORIZATION_FAILED);
    assert!(listed_topics(&mut alice).is_empty());
    // Nor may she administer ACLs.
    let own = creation(TOPIC, "t1", LITERAL, "User:alice", WRITE, ALLOW);
    assert_eq!(create_acls(&mut alice, vec![own.clone()]), vec![CLUSTER_AUTHORIZATION_FAILED]);
    let r = alice.call(3, &describe_any());
    assert_eq!(r.error_code, CLUSTER_AUTHORIZATION_FAILED);

    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                own,
                creation(TOPIC, "t1", LITERAL, "User:alice", READ, ALLOW),
                creation(GROUP, "g1", LITERAL, "User:alice", READ, ALLOW),
                creation(TOPIC, "secret-", PREFIXED, "User:alice", WRITE, ALLOW),
                creation(TOPIC, "secret-1", LITERAL, "User:*", WRITE, DENY),
                creation(CLUSTER, "not-the-cluster", LITERAL, "User:alice", CREATE, ALLOW),
            ]
        ),
        vec![0, 0, 0, 0, 0, 42],
        "the last one names no cluster: INVALID_REQUEST"
    );

    // alice writes t1 and reads back exactly what she wrote.
    let (code, base, records) = produce(&mut alice, "t1", "alice");
    assert_eq!((code, base), (0, 0));
    let (code, fetched) = fetch(&mut alice, "t1");
    assert_eq!(code, 0);
    assert_records_eq(&decode_records(&fetched), &records, 0, "alice reads t1");
    // t2 has no ACL for her; secret-1 is denied although the prefix allows it.
    assert_eq!(produce(&mut alice, "t2", "no").0, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(fetch(&mut alice, "t2").0, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(produce(&mut alice, "secret-1", "no").0, TOPIC_AUTHORIZATION_FAILED, "deny wins over allow");
    // Metadata lists only what she may describe (WRITE and READ imply DESCRIBE; the
    // deny is for WRITE only, so the prefix ACL still lets her see secret-1)...
    assert_eq!(listed_topics(&mut alice), vec!["secret-1".to_string(), "t1".into()]);
    assert_eq!(listed_topics(&mut admin), vec!["secret-1".to_string(), "t1".into(), "t2".into()]);
    // ...and a named topic she may not see is refused, not created.
    let r = alice.call(12, &MetadataRequest::default().with_allow_auto_topic_creation(true).with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name("t2"))),
        MetadataRequestTopic::default().with_name(Some(topic_name("new-one"))),
    ])));
    assert_eq!(r.topics.iter().map(|t| t.error_code).collect::<Vec<_>>(), vec![TOPIC_AUTHORIZATION_FAILED; 2]);
    assert_eq!(listed_topics(&mut admin).len(), 3, "new-one was not created");

    let expected = vec![
        (TOPIC, "secret-".to_string(), PREFIXED, "User:alice".to_string(), WRITE, ALLOW),
        (TOPIC, "secret-1".into(), LITERAL, "User:*".into(), WRITE, DENY),
        (TOPIC, "t1".into(), LITERAL, "User:alice".into(), READ, ALLOW),
        (TOPIC, "t1".into(), LITERAL, "User:alice".into(), WRITE, ALLOW),
        (GROUP, "g1".into(), LITERAL, "User:alice".into(), READ, ALLOW),
    ];
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(describe_all(&mut admin), expected_sorted);

    // Restart: the ACLs are still there and still decide.
    drop(alice);
    drop(admin);
    drop(broker);
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    assert_eq!(describe_all(&mut admin), expected_sorted, "ACLs after a restart");
    let mut alice = login(&broker, "alice");
    let (code, base, _) = produce(&mut alice, "t1", "again");
    assert_eq!((code, base), (0, 3));
    assert_eq!(produce(&mut alice, "secret-1", "no").0, TOPIC_AUTHORIZATION_FAILED);

    // DeleteAcls: alice may not; admin deletes the deny and alice's prefix ACL then lets her write.
    let deny_filter = DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(sb("secret-1")))
        .with_pattern_type_filter(LITERAL)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(DENY);
    let r = alice.call(3, &DeleteAclsRequest::default().with_filters(vec![deny_filter.clone()]));
    assert_eq!(r.filter_results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    let r = admin.call(3, &DeleteAclsRequest::default().with_filters(vec![deny_filter]));
    assert_eq!(r.filter_results[0].error_code, 0);
    let gone: Vec<(String, String, i8)> = r.filter_results[0]
        .matching_acls
        .iter()
        .map(|m| (m.resource_name.to_string(), m.principal.to_string(), m.permission_type))
        .collect();
    assert_eq!(gone, vec![("secret-1".to_string(), "User:*".to_string(), DENY)]);
    let (code, base, _) = produce(&mut alice, "secret-1", "now");
    assert_eq!((code, base), (0, 0), "without the deny the prefix ACL allows");
    let mut left = expected_sorted.clone();
    left.retain(|a| a.1 != "secret-1");
    assert_eq!(describe_all(&mut admin), left);
    drop(alice);
    drop(admin);
    drop(broker);
    assert_no_panic(dir.path());
}

#[test]
fn group_topic_admin_and_config_apis_are_authorized() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::messages::{
        DeleteTopicsRequest, DescribeConfigsRequest, FindCoordinatorRequest, GroupId, JoinGroupRequest, ListGroupsRequest,
        OffsetCommitRequest, OffsetFetchRequest,
    };
    const GROUP_AUTHORIZATION_FAILED: i16 = 30;

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    create_topic(&mut admin, "t1");
    create_topic(&mut admin, "t2");
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                creation(TOPIC, "t1", LITERAL, "User:alice", READ, ALLOW),
                creation(GROUP, "g1", LITERAL, "User:alice", READ, ALLOW),
            ]
        ),
        vec![0, 0]
    );
    let mut alice = login(&broker, "alice");

    // FindCoordinator and JoinGroup: g1 yes, g2 no.
    let find = |c: &mut Client, g: &str| c.call(3, &FindCoordinatorRequest::default().with_key(sb(g))).error_code;
    assert_eq!(find(&mut alice, "g1"), 0);
    assert_eq!(find(&mut alice, "g2"), GROUP_AUTHORIZATION_FAILED);
    let join = |c: &mut Client, g: &str| {
        let r = c.call(
            5,
            &JoinGroupRequest::default()
                .with_group_id(GroupId(sb(g)))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(10_000)
                .with_protocol_type(sb("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(sb("range"))]),
        );
        r.error_code
    };
    assert_eq!(join(&mut alice, "g2"), GROUP_AUTHORIZATION_FAILED);

    // OffsetCommit (simple, outside group management): t1 is committed, t2 refused per partition.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(sb("g1")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            ["t1", "t2"]
                .iter()
                .map(|t| {
                    OffsetCommitRequestTopic::default().with_name(topic_name(t)).with_partitions(vec![
                        OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(7),
                    ])
                })
                .collect(),
        );
    let r = alice.call(8, &commit);
    let mut codes: Vec<(String, i16)> =
        r.topics.iter().map(|t| (t.name.to_string(), t.partitions[0].error_code)).collect();
    codes.sort();
    assert_eq!(codes, vec![("t1".to_string(), 0), ("t2".to_string(), TOPIC_AUTHORIZATION_FAILED)]);
    let r = alice.call(8, &commit.clone().with_group_id(GroupId(sb("g2"))));
    assert!(r.topics.iter().all(|t| t.partitions[0].error_code == GROUP_AUTHORIZATION_FAILED));
    // OffsetFetch reads back what was committed; g2 is refused.
    let fetch = |c: &mut Client, g: &str| {
        c.call(
            7,
            &OffsetFetchRequest::default().with_group_id(GroupId(sb(g))).with_topics(Some(vec![
                OffsetFetchRequestTopic::default().with_name(topic_name("t1")).with_partition_indexes(vec![0]),
            ])),
        )
    };
    let r = fetch(&mut alice, "g1");
    assert_eq!((r.error_code, r.topics[0].partitions[0].committed_offset), (0, 7));
    assert_eq!(fetch(&mut alice, "g2").error_code, GROUP_AUTHORIZATION_FAILED);
    // ListGroups shows alice only g1 (admin sees it too).
    let list = |c: &mut Client| {
        let mut ids: Vec<String> = c.call(4, &ListGroupsRequest::default()).groups.iter().map(|g| g.group_id.to_string()).collect();
        ids.sort();
        ids
    };
    assert_eq!(list(&mut alice), vec!["g1".to_string()]);
    assert_eq!(list(&mut admin), vec!["g1".to_string()]);

    // CreateTopics and DeleteTopics need CREATE / DELETE; DescribeConfigs DESCRIBE_CONFIGS.
    let r = alice.call(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default().with_name(topic_name("t3")).with_num_partitions(1).with_replication_factor(1)])
            .with_timeout_ms(5000),
    );
    assert_eq!(r.topics[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let r = alice.call(4, &DeleteTopicsRequest::default().with_topic_names(vec![topic_name("t2")]).with_timeout_ms(5000));
    assert_eq!(r.responses[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    let r = alice.call(
        4,
        &DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb("t1"))
            .with_configuration_keys(None)]),
    );
    assert_eq!(r.results[0].error_code, TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(listed_topics(&mut admin), vec!["t1".to_string(), "t2".into()], "t2 still there, t3 not created");

    // CLUSTER CREATE lets alice create any topic.
    assert_eq!(create_acls(&mut admin, vec![creation(CLUSTER, "kafka-cluster", LITERAL, "User:alice", CREATE, ALLOW)]), vec![0]);
    let r = alice.call(
        7,
        &CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default().with_name(topic_name("t3")).with_num_partitions(1).with_replication_factor(1)])
            .with_timeout_ms(5000),
    );
    assert_eq!(r.topics[0].error_code, 0);
    drop(alice);
    drop(admin);
    drop(broker);
    assert_no_panic(dir.path());
}

#[test]
fn partitions_and_records_need_alter_and_delete() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
    use kafka_protocol::messages::{CreatePartitionsRequest, DeleteRecordsRequest};
    const ALTER: i8 = 7;
    const DELETE: i8 = 6;

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    create_topic(&mut admin, "t1");
    let (code, _, _) = produce(&mut admin, "t1", "x");
    assert_eq!(code, 0);
    let mut alice = login(&broker, "alice");
    let grow = |c: &mut Client| {
        c.call(
            3,
            &CreatePartitionsRequest::default()
                .with_topics(vec![CreatePartitionsTopic::default().with_name(topic_name("t1")).with_count(2)])
                .with_timeout_ms(5000),
        )
        .results[0]
            .error_code
    };
    let trim = |c: &mut Client| {
        let r = c.call(
            2,
            &DeleteRecordsRequest::default()
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(topic_name("t1"))
                    .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(1)])])
                .with_timeout_ms(5000),
        );
        (r.topics[0].partitions[0].error_code, r.topics[0].partitions[0].low_watermark)
    };
    assert_eq!(grow(&mut alice), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(trim(&mut alice), (TOPIC_AUTHORIZATION_FAILED, -1));
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                creation(TOPIC, "t", PREFIXED, "User:alice", ALTER, ALLOW),
                creation(TOPIC, "t1", LITERAL, "User:alice", DELETE, ALLOW),
            ]
        ),
        vec![0, 0]
    );
    assert_eq!(grow(&mut alice), 0);
    assert_eq!(trim(&mut alice), (0, 1));
    drop(alice);
    drop(admin);
    drop(broker);
    assert_no_panic(dir.path());
}

#[test]
fn kip848_heartbeat_and_leader_epochs_are_authorized() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
    use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, GroupId, OffsetForLeaderEpochRequest};
    const GROUP_AUTHORIZATION_FAILED: i16 = 30;

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    create_topic(&mut admin, "t1");
    let mut alice = login(&broker, "alice");
    let r = alice.call(
        0,
        &ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb("g9")))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(10_000)
            .with_subscribed_topic_names(Some(vec![topic_name("t1")])),
    );
    assert_eq!(r.error_code, GROUP_AUTHORIZATION_FAILED);
    let r = alice.call(0, &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(sb("g9"))]));
    assert_eq!(r.groups[0].error_code, GROUP_AUTHORIZATION_FAILED);
    let epochs = |c: &mut Client| {
        let r = c.call(
            4,
            &OffsetForLeaderEpochRequest::default().with_replica_id(kafka_protocol::messages::BrokerId(-1)).with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(topic_name("t1"))
                    .with_partitions(vec![OffsetForLeaderPartition::default().with_partition(0).with_leader_epoch(0)]),
            ]),
        );
        r.topics[0].partitions[0].error_code
    };
    assert_eq!(epochs(&mut alice), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(epochs(&mut admin), 0);
    drop(alice);
    drop(admin);
    drop(broker);
    assert_no_panic(dir.path());
}

#[test]
fn offset_fetch_delete_and_authorized_operations_follow_acls() {
    use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
    use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
    use kafka_protocol::messages::offset_fetch_request::{OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics};
    use kafka_protocol::messages::{
        DescribeClusterRequest, DescribeGroupsRequest, GroupId, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
    };
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    const DELETE: i8 = 6;
    const OMITTED: i32 = i32::MIN;
    let bits = |ops: &[i8]| ops.iter().fold(0i32, |b, op| b | (1 << op));
    // Kafka's supported operations: topic read, write, create, delete, alter,
    // describe, describe/alter configs; cluster create, alter, describe, cluster
    // action, describe/alter configs, idempotent write; group read, delete, describe.
    let all_topic = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
    let all_cluster = bits(&[5, 7, 8, 9, 10, 11, 12]);

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    create_topic(&mut admin, "t1");
    create_topic(&mut admin, "t2");
    let commit = OffsetCommitRequest::default().with_group_id(GroupId(sb("g1"))).with_generation_id_or_member_epoch(-1).with_topics(
        [("t1", 5), ("t2", 6)]
            .iter()
            .map(|(t, o)| {
                OffsetCommitRequestTopic::default()
                    .with_name(topic_name(t))
                    .with_partitions(vec![OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(*o)])
            })
            .collect(),
    );
    let r = admin.call(8, &commit);
    assert!(r.topics.iter().all(|t| t.partitions[0].error_code == 0), "{r:?}");
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                creation(TOPIC, "t1", LITERAL, "User:alice", READ, ALLOW),
                creation(GROUP, "g1", LITERAL, "User:alice", READ, ALLOW),
                creation(GROUP, "g1", LITERAL, "User:alice", DELETE, ALLOW),
            ]
        ),
        vec![0, 0, 0]
    );
    let mut alice = login(&broker, "alice");

    // OffsetFetch v7 by name: t2 is refused per partition, t1 answered.
    let named = |ts: &[&str]| {
        Some(
            ts.iter()
                .map(|t| OffsetFetchRequestTopic::default().with_name(topic_name(t)).with_partition_indexes(vec![0]))
                .collect(),
        )
    };
    let by_topic = |r: &kafka_protocol::messages::OffsetFetchResponse| {
        let mut v: Vec<(String, i16, i64)> = r
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.partitions[0].error_code, t.partitions[0].committed_offset))
            .collect();
        v.sort();
        v
    };
    let req = OffsetFetchRequest::default().with_group_id(GroupId(sb("g1"))).with_topics(named(&["t1", "t2"]));
    let r = alice.call(7, &req);
    assert_eq!(r.error_code, 0);
    assert_eq!(by_topic(&r), vec![("t1".to_string(), 0, 5), ("t2".to_string(), TOPIC_AUTHORIZATION_FAILED, -1)]);
    // v1 (no top-level error) the same; all topics: t2 is hidden.
    assert_eq!(by_topic(&alice.call(1, &req)), vec![("t1".to_string(), 0, 5), ("t2".to_string(), TOPIC_AUTHORIZATION_FAILED, -1)]);
    let all = OffsetFetchRequest::default().with_group_id(GroupId(sb("g1"))).with_topics(None);
    assert_eq!(by_topic(&alice.call(7, &all)), vec![("t1".to_string(), 0, 5)]);
    assert_eq!(by_topic(&admin.call(7, &all)), vec![("t1".to_string(), 0, 5), ("t2".to_string(), 0, 6)]);
    // v8 (groups): per partition too.
    let v8 = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default().with_group_id(GroupId(sb("g1"))).with_topics(
        Some(
            ["t1", "t2"]
                .iter()
                .map(|t| OffsetFetchRequestTopics::default().with_name(topic_name(t)).with_partition_indexes(vec![0]))
                .collect(),
        ),
    )]);
    let r = alice.call(8, &v8);
    let mut got: Vec<(String, i16, i64)> = r.groups[0]
        .topics
        .iter()
        .map(|t| (t.name.to_string(), t.partitions[0].error_code, t.partitions[0].committed_offset))
        .collect();
    got.sort();
    assert_eq!((r.groups[0].error_code, got), (0, vec![("t1".to_string(), 0, 5), ("t2".to_string(), TOPIC_AUTHORIZATION_FAILED, -1)]));

    // OffsetDelete: TOPIC READ per topic; unknown topics answer UNKNOWN_TOPIC_OR_PARTITION.
    let delete = |c: &mut Client, ts: &[&str]| {
        let r = c.call(
            0,
            &OffsetDeleteRequest::default().with_group_id(GroupId(sb("g1"))).with_topics(
                ts.iter()
                    .map(|t| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(vec![OffsetDeleteRequestPartition::default().with_partition_index(0)])
                    })
                    .collect(),
            ),
        );
        assert_eq!(r.error_code, 0, "{r:?}");
        r.topics.iter().map(|t| (t.name.to_string(), t.partitions[0].error_code)).collect::<Vec<_>>()
    };
    assert_eq!(
        delete(&mut alice, &["t1", "t2", "nope"]),
        vec![("t1".to_string(), 0), ("t2".to_string(), TOPIC_AUTHORIZATION_FAILED), ("nope".to_string(), TOPIC_AUTHORIZATION_FAILED)]
    );
    assert_eq!(delete(&mut admin, &["nope"]), vec![("nope".to_string(), UNKNOWN_TOPIC_OR_PARTITION)]);
    assert_eq!(by_topic(&admin.call(7, &all)), vec![("t2".to_string(), 0, 6)], "only t1's offset was deleted");

    // Authorized operations: computed from the ACLs, MIN when not asked for.
    let metadata = |c: &mut Client, include: bool| {
        c.call(
            10,
            &MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name("t1")))]))
                .with_include_cluster_authorized_operations(include)
                .with_include_topic_authorized_operations(include),
        )
    };
    let r = metadata(&mut alice, true);
    assert_eq!((r.topics[0].topic_authorized_operations, r.cluster_authorized_operations), (bits(&[READ, 8]), 0));
    let r = metadata(&mut admin, true);
    assert_eq!((r.topics[0].topic_authorized_operations, r.cluster_authorized_operations), (all_topic, all_cluster));
    let r = metadata(&mut alice, false);
    assert_eq!((r.topics[0].topic_authorized_operations, r.cluster_authorized_operations), (OMITTED, OMITTED));
    let groups = |c: &mut Client, include: bool| {
        let r = c.call(
            5,
            &DescribeGroupsRequest::default().with_groups(vec![GroupId(sb("g1"))]).with_include_authorized_operations(include),
        );
        (r.groups[0].error_code, r.groups[0].authorized_operations)
    };
    assert_eq!(groups(&mut alice, true), (0, bits(&[READ, DELETE, 8])));
    assert_eq!(groups(&mut alice, false), (0, OMITTED));
    let cluster = |c: &mut Client| {
        c.call(0, &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true)).cluster_authorized_operations
    };
    assert_eq!(cluster(&mut alice), 0);
    assert_eq!(cluster(&mut admin), all_cluster);
    assert_eq!(create_acls(&mut admin, vec![creation(CLUSTER, "kafka-cluster", LITERAL, "User:alice", 8, ALLOW)]), vec![0]);
    assert_eq!(cluster(&mut alice), bits(&[8]));
    assert_eq!(metadata(&mut alice, true).cluster_authorized_operations, bits(&[8]));
    drop(alice);
    drop(admin);
    drop(broker);
    assert_no_panic(dir.path());
}

#[test]
fn transactional_ids_are_authorized() {
    use kafka_protocol::messages::{EndTxnRequest, FindCoordinatorRequest, InitProducerIdRequest, ProducerId, TransactionalId};
    const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    const TRANSACTIONAL_ID: i8 = 5;
    const DESCRIBE: i8 = 8;

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path());
    let mut admin = login(&broker, "admin");
    create_topic(&mut admin, "tt");
    let mut alice = login(&broker, "alice");
    let init = |c: &mut Client, id: &str| {
        let r = c.call(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(sb(id))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        (r.error_code, r.producer_id.0, r.producer_epoch)
    };
    let find = |c: &mut Client, id: &str| {
        c.call(4, &FindCoordinatorRequest::default().with_key_type(1).with_coordinator_keys(vec![sb(id)])).coordinators[0].error_code
    };
    assert_eq!(find(&mut alice, "tx-alice"), TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    assert_eq!(init(&mut alice, "tx-alice").0, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let (code, pid, epoch) = init(&mut admin, "tx-admin");
    assert_eq!(code, 0, "a super user may");
    assert_eq!(
        create_acls(
            &mut admin,
            vec![
                creation(TRANSACTIONAL_ID, "tx-alice", LITERAL, "User:alice", WRITE, ALLOW),
                creation(TOPIC, "tt", LITERAL, "User:alice", WRITE, ALLOW),
            ]
        ),
        vec![0, 0]
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while init(&mut alice, "tx-alice").0 != 0 {
        assert!(Instant::now() < deadline, "the ACL never took effect");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(find(&mut alice, "tx-alice"), 0, "WRITE implies DESCRIBE");
    assert_eq!(find(&mut alice, "tx-admin"), TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    let end = |c: &mut Client, id: &str| {
        c.call(
            3,
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(sb(id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(true),
        )
        .error_code
    };
    assert_eq!(end(&mut alice, "tx-admin"), TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "another producer's id");
    // A produce naming a transactional id alice may not write is refused for every partition.
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(sb("tx-admin"))))
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![TopicProduceData::default().with_name(topic_name("tt")).with_partition_data(vec![
            PartitionProduceData::default().with_index(0).with_records(Some(encode_batch(&sample_records("x", 1)))),
        ])]);
    let r = alice.call(9, &req);
    assert_eq!(r.responses[0].partition_responses[0].error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    assert_eq!(create_acls(&mut admin, vec![creation(TRANSACTIONAL_ID, "tx-admin", LITERAL, "User:alice", DESCRIBE, ALLOW)]), vec![0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while find(&mut alice, "tx-admin") != 0 {
        assert!(Instant::now() < deadline, "the DESCRIBE ACL never took effect");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(end(&mut alice, "tx-admin"), TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "DESCRIBE does not allow WRITE");
    drop(alice);
    drop(admin);
    drop(broker);
    assert_no_panic(dir.path());
}
