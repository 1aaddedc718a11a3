//! CreateTopics (19): creation, duplicates, invalid arguments and validate_only at every version.

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest};
use protocol_tests::*;

fn topic(name: &str, partitions: i32, replication_factor: i16) -> CreatableTopic {
    CreatableTopic::default()
        .with_name(topic_name(name))
        .with_num_partitions(partitions)
        .with_replication_factor(replication_factor)
}

fn create(
    client: &mut Client,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> Vec<CreatableTopicResult> {
    let n = topics.len();
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(topics);
    let resp = client.call(version, &req);
    assert_eq!(
        resp.topics.len(),
        n,
        "CreateTopics v{version}: one result per topic"
    );
    resp.topics
}

fn create_one(client: &mut Client, version: i16, t: CreatableTopic) -> CreatableTopicResult {
    let name = t.name.clone();
    let r = create(client, version, vec![t], false).remove(0);
    assert_eq!(r.name, name, "CreateTopics v{version}: result name");
    r
}

#[test]
fn every_version_creates_topics() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::CreateTopics) {
        let ctx = format!("CreateTopics v{version}");
        let name = format!("created-{version}");
        let r = create_one(&mut client, version, topic(&name, 3, 1));
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: error ({:?})",
            r.error_message
        );
        if version >= 5 {
            assert_eq!(r.num_partitions, 3, "{ctx}: num_partitions in result");
            assert_eq!(
                r.replication_factor, 1,
                "{ctx}: replication_factor in result"
            );
            assert_eq!(
                r.topic_config_error_code,
                code::NONE,
                "{ctx}: topic_config_error_code"
            );
        }
        let meta = client.topic_metadata(&name);
        assert_eq!(
            meta.error_code,
            code::NONE,
            "{ctx}: metadata of created topic"
        );
        assert_eq!(meta.partitions.len(), 3, "{ctx}: partitions in metadata");
        if version >= 7 {
            assert!(!r.topic_id.is_nil(), "{ctx}: topic id");
            assert_eq!(
                r.topic_id, meta.topic_id,
                "{ctx}: topic id equals Metadata's"
            );
        }
        // A new topic is empty.
        assert_eq!(
            client.log_end_offset(&name, 2),
            0,
            "{ctx}: log end offset of a new partition"
        );
    }
}

#[test]
fn every_version_rejects_duplicates() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("dup", 2);
    let id = client.topic_id("dup");
    for version in versions(ApiKey::CreateTopics) {
        let r = create_one(&mut client, version, topic("dup", 5, 1));
        assert_eq!(
            r.error_code,
            code::TOPIC_ALREADY_EXISTS,
            "CreateTopics v{version}: duplicate"
        );
    }
    let meta = client.topic_metadata("dup");
    assert_eq!(
        (meta.topic_id, meta.partitions.len()),
        (id, 2),
        "existing topic unchanged"
    );
    // The same name twice in one request: Kafka answers INVALID_REQUEST for that name and creates nothing.
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![topic("twice", 1, 1), topic("twice", 1, 1)]);
    let results = client.call(7, &req).topics;
    assert!(
        !results.is_empty(),
        "same name twice in one request: no result"
    );
    assert!(
        results
            .iter()
            .all(|r| r.error_code == code::INVALID_REQUEST),
        "same name twice in one request: {results:?}"
    );
    assert_eq!(
        client.topic_metadata("twice").error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "twice must not exist"
    );
}

#[test]
fn every_version_rejects_invalid_partition_counts() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::CreateTopics) {
        for partitions in [0, -2] {
            let name = format!("badparts-{version}{partitions}");
            let r = create_one(&mut client, version, topic(&name, partitions, 1));
            assert_eq!(
                r.error_code,
                code::INVALID_PARTITIONS,
                "CreateTopics v{version}: {partitions} partitions"
            );
            assert_eq!(
                client.topic_metadata(&name).error_code,
                code::UNKNOWN_TOPIC_OR_PARTITION,
                "{name} must not exist"
            );
        }
    }
}

#[test]
fn from_v4_minus_one_uses_broker_defaults() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        num_partitions: 3,
        ..Default::default()
    });
    let mut client = broker.client();
    for version in 4..=max_version(ApiKey::CreateTopics) {
        let name = format!("defaults-{version}");
        let r = create_one(&mut client, version, topic(&name, -1, -1));
        assert_eq!(
            r.error_code,
            code::NONE,
            "CreateTopics v{version}: -1/-1 ({:?})",
            r.error_message
        );
        if version >= 5 {
            assert_eq!(
                (r.num_partitions, r.replication_factor),
                (3, 1),
                "CreateTopics v{version}: resolved defaults"
            );
        }
        assert_eq!(
            client.topic_metadata(&name).partitions.len(),
            3,
            "CreateTopics v{version}: --num-partitions default"
        );
    }
}

#[test]
fn every_version_rejects_replication_factor_above_broker_count() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::CreateTopics) {
        let name = format!("rf3-{version}");
        let r = create_one(&mut client, version, topic(&name, 1, 3));
        assert_eq!(
            r.error_code,
            code::INVALID_REPLICATION_FACTOR,
            "CreateTopics v{version}: replication factor 3 with one broker"
        );
        assert_eq!(
            client.topic_metadata(&name).error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{name} must not exist"
        );
    }
}

#[test]
fn every_version_rejects_invalid_names() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let long = "x".repeat(250);
    for version in versions(ApiKey::CreateTopics) {
        for name in ["", ".", "..", "bad name", "bad/name", long.as_str()] {
            let r = create_one(&mut client, version, topic(name, 1, 1));
            assert_eq!(
                r.error_code,
                code::INVALID_TOPIC_EXCEPTION,
                "CreateTopics v{version}: name {name:?}"
            );
        }
    }
    assert!(
        client.metadata(None).topics.is_empty(),
        "no topic may have been created"
    );
}

#[test]
fn every_version_validate_only_creates_nothing() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("exists", 1);
    for version in versions(ApiKey::CreateTopics) {
        let name = format!("validate-{version}");
        let results = create(
            &mut client,
            version,
            vec![
                topic(&name, 2, 1),
                topic("exists", 1, 1),
                topic("bad", 0, 1),
            ],
            true,
        );
        let mut codes: Vec<(String, i16)> = results
            .iter()
            .map(|r| (r.name.0.to_string(), r.error_code))
            .collect();
        codes.sort();
        assert_eq!(
            codes,
            vec![
                ("bad".into(), code::INVALID_PARTITIONS),
                ("exists".into(), code::TOPIC_ALREADY_EXISTS),
                (name.clone(), code::NONE)
            ],
            "CreateTopics v{version} validate_only: per-topic errors"
        );
        if version >= 5 {
            let r = results.iter().find(|r| r.name.0.as_str() == name).unwrap();
            assert_eq!(
                r.num_partitions, 2,
                "CreateTopics v{version} validate_only: num_partitions"
            );
        }
        assert_eq!(
            client.topic_metadata(&name).error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "validate_only must not create {name}"
        );
    }
}

#[test]
fn several_topics_in_one_request_with_configs() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let with_config = topic("cfg", 1, 1).with_configs(vec![
        CreatableTopicConfig::default()
            .with_name(sb("retention.ms"))
            .with_value(Some(sb("123456"))),
        CreatableTopicConfig::default()
            .with_name(sb("cleanup.policy"))
            .with_value(Some(sb("delete"))),
    ]);
    let results = create(
        &mut client,
        7,
        vec![topic("one", 1, 1), with_config, topic("two", 2, 1)],
        false,
    );
    let mut codes: Vec<(String, i16)> = results
        .iter()
        .map(|r| (r.name.0.to_string(), r.error_code))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![("cfg".into(), 0), ("one".into(), 0), ("two".into(), 0)],
        "CreateTopics v7 three topics"
    );
    let cfg = results.iter().find(|r| r.name.0.as_str() == "cfg").unwrap();
    let configs = cfg
        .configs
        .as_ref()
        .expect("v5+ returns the topic's configs");
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .expect("retention.ms in CreateTopics result");
    assert_eq!(
        retention.value.as_deref(),
        Some("123456"),
        "retention.ms as created"
    );
    // An unknown config key is rejected (INVALID_CONFIG = 40) and the topic is not created.
    let bad = topic("badcfg", 1, 1).with_configs(vec![CreatableTopicConfig::default()
        .with_name(sb("no.such.config"))
        .with_value(Some(sb("1")))]);
    let r = create(&mut client, 7, vec![bad], false).remove(0);
    assert_eq!(r.error_code, 40, "unknown config key: INVALID_CONFIG");
    assert_eq!(
        client.topic_metadata("badcfg").error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "badcfg must not exist"
    );
}
