//! Three broker processes forming a cluster (docs/cluster.md §3, §15): every broker lists
//! every broker, topics are assigned by the controller and materialised on every broker
//! with the same id, a partition is served by its leader only, and the cluster survives a
//! broker restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, MetadataResponse,
};
use protocol_tests::cluster::Cluster;
use protocol_tests::*;

const NOT_LEADER_OR_FOLLOWER: i16 = 6;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Polls broker `node`'s Metadata for `topics` until `done` holds (panics after TIMEOUT).
fn wait_on(cluster: &Cluster, node: i32, topics: Option<&[&str]>, what: &str, done: impl Fn(&MetadataResponse) -> bool) -> MetadataResponse {
    let deadline = Instant::now() + TIMEOUT;
    let mut client = cluster.client(node);
    loop {
        let m = client.metadata(topics);
        if done(&m) {
            return m;
        }
        if Instant::now() > deadline {
            panic!("broker {node}: {what}: not within {TIMEOUT:?}; last: {m:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn create(client: &mut Client, name: &str, partitions: i32, rf: i16) -> CreateTopicsResponse {
    let req = CreateTopicsRequest::default().with_timeout_ms(20_000).with_topics(vec![CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(rf)]);
    client.call(7, &req)
}

/// (replicas, leader, leader epoch) per partition of `name` in `m`, by partition index.
fn layout(m: &MetadataResponse, name: &str) -> Option<BTreeMap<i32, (Vec<i32>, i32)>> {
    let t = m.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name))?;
    if t.error_code != code::NONE {
        return None;
    }
    Some(
        t.partitions
            .iter()
            .map(|p| (p.partition_index, (p.replica_nodes.iter().map(|b| b.0).collect(), p.leader_id.0)))
            .collect(),
    )
}

fn topic_id_in(m: &MetadataResponse, name: &str) -> Option<Uuid> {
    m.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == name)).map(|t| t.topic_id)
}

#[test]
fn every_broker_lists_every_broker_with_its_own_port_and_the_same_controller() {
    let mut cluster = Cluster::start(3);
    cluster.wait_for_brokers(TIMEOUT);
    let ports: BTreeMap<i32, i32> = (1..=3).map(|n| (n, cluster.broker(n).port() as i32)).collect();
    let mut controllers = BTreeSet::new();
    for node in 1..=3 {
        let m = wait_on(&cluster, node, None, "3 brokers and a controller", |m| m.brokers.len() == 3 && m.controller_id.0 > 0);
        let listed: BTreeMap<i32, i32> = m.brokers.iter().map(|b| (b.node_id.0, b.port)).collect();
        assert_eq!(listed, ports, "broker {node}: brokers and their ports");
        assert!(m.brokers.iter().all(|b| b.host.as_str() == "127.0.0.1" || b.host.as_str() == "localhost"), "{m:?}");
        controllers.insert(m.controller_id.0);
        let d: DescribeClusterResponse = cluster.client(node).call(0, &DescribeClusterRequest::default());
        assert_eq!(d.error_code, code::NONE);
        let described: BTreeMap<i32, i32> = d.brokers.iter().map(|b| (b.broker_id.0, b.port)).collect();
        assert_eq!(described, ports, "broker {node}: DescribeCluster brokers");
        assert!((1..=3).contains(&d.controller_id.0), "DescribeCluster controller {}", d.controller_id.0);
    }
    assert_eq!(controllers.len(), 1, "every broker names the same controller: {controllers:?}");
    // One cluster id for the whole cluster: each data directory makes its own, and the
    // first claim committed through the controller wins on every broker.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let ids: BTreeSet<String> =
            (1..=3).map(|n| cluster.client(n).metadata(None).cluster_id.map(|c| c.to_string()).unwrap_or_default()).collect();
        if ids.len() == 1 && !ids.contains("") {
            break;
        }
        assert!(Instant::now() < deadline, "brokers report different cluster ids: {ids:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn topics_are_assigned_over_the_brokers_and_served_by_their_leader() {
    let cluster = Cluster::start(3);
    cluster.wait_for_brokers(TIMEOUT);
    // Created on broker 2, whichever broker is the controller.
    let resp = create(&mut cluster.client(2), "spread", 6, 3);
    let t = &resp.topics[0];
    assert_eq!(t.error_code, code::NONE, "{:?}", t.error_message);
    assert_eq!((t.num_partitions, t.replication_factor), (6, 3));
    let id = t.topic_id;
    assert!(!id.is_nil());

    let too_many = create(&mut cluster.client(1), "too-many", 1, 4);
    assert_eq!(too_many.topics[0].error_code, code::INVALID_REPLICATION_FACTOR, "{:?}", too_many.topics[0].error_message);
    let again = create(&mut cluster.client(3), "spread", 1, 1);
    assert_eq!(again.topics[0].error_code, code::TOPIC_ALREADY_EXISTS);

    let mut first: Option<BTreeMap<i32, (Vec<i32>, i32)>> = None;
    for node in 1..=3 {
        let m = wait_on(&cluster, node, Some(&["spread"]), "topic materialised", |m| {
            layout(m, "spread").is_some_and(|l| l.len() == 6)
        });
        assert_eq!(topic_id_in(&m, "spread"), Some(id), "broker {node}: the controller's topic id");
        let l = layout(&m, "spread").unwrap();
        match &first {
            None => first = Some(l.clone()),
            Some(f) => assert_eq!(&l, f, "broker {node}: same assignment everywhere"),
        }
        let missing = wait_on(&cluster, node, Some(&["too-many"]), "no too-many", |_| true);
        assert_eq!(missing.topics[0].error_code, code::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let l = first.unwrap();
    let mut leaders: BTreeMap<i32, usize> = BTreeMap::new();
    for (p, (replicas, leader)) in &l {
        let distinct: BTreeSet<_> = replicas.iter().collect();
        assert_eq!(distinct.len(), 3, "partition {p}: 3 distinct replicas {replicas:?}");
        assert!(replicas.iter().all(|r| (1..=3).contains(r)));
        assert_eq!(*leader, replicas[0], "partition {p}: leader is the preferred replica");
        *leaders.entry(*leader).or_default() += 1;
    }
    assert_eq!(leaders, BTreeMap::from([(1, 2), (2, 2), (3, 2)]), "leaders spread 2/2/2");

    // Produce to partition 0's leader, fetch it back byte for byte; the others refuse it.
    let leader = l[&0].1;
    let records = sample_records("cluster", 4);
    let batch = encode_batch(&records);
    let mut on_leader = cluster.client(leader);
    assert_eq!(on_leader.produce_ok("spread", 0, batch.clone()), 0);
    assert_eq!(on_leader.produce_ok("spread", 0, batch.clone()), 4);
    let fetched = on_leader.fetch("spread", 0, 0);
    assert_eq!(fetched.error_code, code::NONE);
    assert_eq!(fetched.high_watermark, 8);
    let bytes = fetched.records.clone().unwrap();
    let batches = raw_batches(&bytes);
    assert_eq!(batches.len(), 2);
    assert_batch_bytes_eq(&batches[0], &batch, 0, "first batch");
    assert_batch_bytes_eq(&batches[1], &batch, 4, "second batch");
    assert_records_eq(&decode_records(&Some(batches[0].clone())), &records, 0, "fetched records");
    for other in (1..=3).filter(|n| *n != leader) {
        let mut c = cluster.client(other);
        let p = c.produce("spread", 0, batch.clone());
        assert_eq!(p.error_code, NOT_LEADER_OR_FOLLOWER, "produce on broker {other}");
        assert_eq!(c.fetch("spread", 0, 0).error_code, NOT_LEADER_OR_FOLLOWER, "fetch on broker {other}");
        assert_eq!(c.list_offset("spread", 0, -1).0, NOT_LEADER_OR_FOLLOWER, "list offsets on broker {other}");
    }
    // Nothing reached the leader from the refused produces.
    assert_eq!(on_leader.log_end_offset("spread", 0), 8);

    // DeleteTopics on a broker: gone everywhere.
    let req = DeleteTopicsRequest::default().with_timeout_ms(20_000).with_topics(vec![DeleteTopicState::default().with_topic_id(id)]);
    let deleted: DeleteTopicsResponse = cluster.client(3).call(6, &req);
    assert_eq!(deleted.responses[0].error_code, code::NONE, "{:?}", deleted.responses[0].error_message);
    for node in 1..=3 {
        wait_on(&cluster, node, Some(&["spread"]), "topic deleted", |m| {
            m.topics[0].error_code == code::UNKNOWN_TOPIC_OR_PARTITION
        });
    }
}

#[test]
fn a_restarted_broker_finds_the_brokers_topics_and_its_data() {
    let mut cluster = Cluster::start(3);
    cluster.wait_for_brokers(TIMEOUT);
    let resp = create(&mut cluster.client(1), "kept", 3, 3);
    assert_eq!(resp.topics[0].error_code, code::NONE, "{:?}", resp.topics[0].error_message);
    let id = resp.topics[0].topic_id;
    let m = wait_on(&cluster, 1, Some(&["kept"]), "topic", |m| layout(m, "kept").is_some());
    let leader = layout(&m, "kept").unwrap()[&0].1;
    // The leader serves the topic once it has materialised it (Metadata lists it then).
    wait_on(&cluster, leader, Some(&["kept"]), "topic on its leader", |m| layout(m, "kept").is_some());
    let batch = encode_batch(&sample_records("kept", 3));
    assert_eq!(cluster.client(leader).produce_ok("kept", 0, batch.clone()), 0);

    let status = cluster.broker(leader).stop();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    cluster.broker(leader).start_again();
    cluster.wait_for_brokers(TIMEOUT);
    let m = wait_on(&cluster, leader, Some(&["kept"]), "3 brokers and the topic after restart", |m| {
        m.brokers.len() == 3 && layout(m, "kept").is_some_and(|l| l.len() == 3)
    });
    assert_eq!(topic_id_in(&m, "kept"), Some(id), "same topic id after restart");
    let fetched = cluster.client(leader).fetch("kept", 0, 0);
    assert_eq!(fetched.error_code, code::NONE);
    let batches = raw_batches(&fetched.records.clone().unwrap());
    assert_eq!(batches.len(), 1);
    assert_batch_bytes_eq(&batches[0], &batch, 0, "data after restart");
    for node in 1..=3 {
        wait_on(&cluster, node, Some(&["kept"]), "3 brokers everywhere", |m| m.brokers.len() == 3 && layout(m, "kept").is_some());
    }
}
