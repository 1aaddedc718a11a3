//! Metadata (3): brokers, topics, partitions and topic ids at every version; auto-creation.

use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, BrokerId, MetadataRequest, MetadataResponse};
use protocol_tests::*;

/// A Metadata request for `topics` (None = all topics) valid at `version`.
fn request(version: i16, topics: Option<&[&str]>, allow_auto_create: bool) -> MetadataRequest {
    let topics = match topics {
        Some(ts) => Some(
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect(),
        ),
        None if version == 0 => Some(vec![]), // v0: an empty array means all topics
        None => None,
    };
    MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(allow_auto_create || version < 4)
}

fn assert_broker_list(resp: &MetadataResponse, broker: &BrokerProcess, version: i16) {
    let brokers: Vec<(i32, String, i32)> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.host.to_string(), b.port))
        .collect();
    assert_eq!(
        brokers,
        vec![(1, "127.0.0.1".to_string(), broker.port() as i32)],
        "Metadata v{version}: brokers"
    );
    if version >= 1 {
        assert_eq!(
            resp.controller_id,
            BrokerId(1),
            "Metadata v{version}: controller id"
        );
    }
    if version >= 2 {
        let id = resp
            .cluster_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default();
        assert!(
            !id.is_empty(),
            "Metadata v{version}: cluster id is empty/null"
        );
    }
}

#[test]
fn every_version_describes_broker_topic_and_partitions() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("meta-topic", 3);
    client.create_topic("other-topic", 1);
    for version in versions(ApiKey::Metadata) {
        let ctx = format!("Metadata v{version}");
        let resp = client.call(version, &request(version, Some(&["meta-topic"]), false));
        assert_broker_list(&resp, &broker, version);
        assert_eq!(resp.topics.len(), 1, "{ctx}: topics");
        let t = &resp.topics[0];
        assert_eq!(t.error_code, code::NONE, "{ctx}: topic error");
        assert_eq!(
            t.name.as_ref().map(|n| n.0.to_string()),
            Some("meta-topic".to_string()),
            "{ctx}: topic name"
        );
        if version >= 10 {
            assert_eq!(
                t.topic_id, id,
                "{ctx}: topic id equals the one CreateTopics returned"
            );
        }
        assert!(!t.is_internal, "{ctx}: is_internal");
        let mut partitions: Vec<_> = t.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition_index);
        assert_eq!(
            partitions
                .iter()
                .map(|p| p.partition_index)
                .collect::<Vec<_>>(),
            vec![0, 1, 2],
            "{ctx}: partitions"
        );
        for p in partitions {
            assert_eq!(
                p.error_code,
                code::NONE,
                "{ctx}: partition {} error",
                p.partition_index
            );
            assert_eq!(
                p.leader_id,
                BrokerId(1),
                "{ctx}: partition {} leader",
                p.partition_index
            );
            assert_eq!(
                p.replica_nodes,
                vec![BrokerId(1)],
                "{ctx}: partition {} replicas",
                p.partition_index
            );
            assert_eq!(
                p.isr_nodes,
                vec![BrokerId(1)],
                "{ctx}: partition {} isr",
                p.partition_index
            );
            if version >= 5 {
                assert!(
                    p.offline_replicas.is_empty(),
                    "{ctx}: partition {} offline replicas",
                    p.partition_index
                );
            }
            if version >= 7 {
                assert!(
                    p.leader_epoch >= 0,
                    "{ctx}: partition {} leader epoch {}",
                    p.partition_index,
                    p.leader_epoch
                );
            }
        }
        if version >= 13 {
            assert_eq!(resp.error_code, code::NONE, "{ctx}: top-level error");
        }
    }
}

#[test]
fn every_version_lists_all_topics() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("all-a", 1);
    client.create_topic("all-b", 2);
    for version in versions(ApiKey::Metadata) {
        let resp = client.call(version, &request(version, None, false));
        assert_broker_list(&resp, &broker, version);
        let mut names: Vec<(String, usize)> = resp
            .topics
            .iter()
            .map(|t| (t.name.as_ref().unwrap().0.to_string(), t.partitions.len()))
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![("all-a".into(), 1), ("all-b".into(), 2)],
            "Metadata v{version}: all topics"
        );
    }
}

#[test]
fn every_version_reports_unknown_topic_when_auto_create_is_off() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::Metadata) {
        let name = format!("missing-{version}");
        // Clients below v4 implicitly ask for auto-creation; at v4+ ask explicitly: the broker must still refuse.
        let resp = client.call(version, &request(version, Some(&[&name]), true));
        assert_eq!(resp.topics.len(), 1, "Metadata v{version}: topics");
        assert_eq!(
            resp.topics[0].error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "Metadata v{version}: unknown topic error"
        );
        assert!(
            resp.topics[0].partitions.is_empty(),
            "Metadata v{version}: partitions of unknown topic"
        );
    }
    let all = client.metadata(None);
    assert!(
        all.topics.is_empty(),
        "no topic may have been created: {:?}",
        all.topics
    );
}

/// Polls Metadata until `name` exists without error (auto-creation may first answer LEADER_NOT_AVAILABLE).
fn wait_for_topic(client: &mut Client, name: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = client.topic_metadata(name);
        if t.error_code == code::NONE {
            return t.partitions.len();
        }
        assert!(
            t.error_code == code::LEADER_NOT_AVAILABLE && Instant::now() < deadline,
            "auto-created topic {name}: error {}",
            t.error_code
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_version_auto_creates_when_enabled() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        auto_create_topics: true,
        num_partitions: 2,
        ..Default::default()
    });
    let mut client = broker.client();
    for version in versions(ApiKey::Metadata) {
        let name = format!("auto-{version}");
        let resp = client.call(version, &request(version, Some(&[&name]), true));
        let err = resp.topics[0].error_code;
        assert!(
            err == code::NONE || err == code::LEADER_NOT_AVAILABLE,
            "Metadata v{version}: auto-create of {name} answered error {err}"
        );
        assert_eq!(
            wait_for_topic(&mut client, &name),
            2,
            "Metadata v{version}: partitions of auto-created topic"
        );
    }
    // At v4+ allow_auto_topic_creation=false must be honoured even when the broker allows it.
    for version in 4..=max_version(ApiKey::Metadata) {
        let name = format!("no-auto-{version}");
        let resp = client.call(version, &request(version, Some(&[&name]), false));
        assert_eq!(
            resp.topics[0].error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "Metadata v{version}: allow_auto_topic_creation=false"
        );
        assert_eq!(
            client.topic_metadata(&name).error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{name} must not exist"
        );
    }
}

#[test]
fn topic_ids_are_distinct_and_stable_across_restart() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    let a = client.create_topic("stable-a", 1);
    let b = client.create_topic("stable-b", 4);
    assert_ne!(a, b, "two topics share a topic id");
    assert_eq!(client.topic_id("stable-a"), a);
    drop(client);
    broker.restart();
    let mut client = broker.client();
    for version in 10..=max_version(ApiKey::Metadata) {
        let resp = client.call(
            version,
            &request(version, Some(&["stable-a", "stable-b"]), false),
        );
        let mut ids: Vec<_> = resp
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().unwrap().0.to_string(),
                    t.topic_id,
                    t.partitions.len(),
                )
            })
            .collect();
        ids.sort();
        assert_eq!(
            ids,
            vec![
                ("stable-a".to_string(), a, 1),
                ("stable-b".to_string(), b, 4)
            ],
            "Metadata v{version} after restart: (name, id, partitions)"
        );
        assert_broker_list(&resp, &broker, version);
    }
}
