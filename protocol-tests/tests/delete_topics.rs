//! DeleteTopics (20): by name at every version, by topic id at v6, unknown topics, re-creation.

use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest};
use protocol_tests::*;

/// Deletes one topic by name (`topic_names` below v6, `topics` at v6).
fn delete_by_name(client: &mut Client, version: i16, name: &str) -> DeletableTopicResult {
    let req = DeleteTopicsRequest::default().with_timeout_ms(10_000);
    let req = if version >= 6 {
        req.with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(name)))
        ])
    } else {
        req.with_topic_names(vec![topic_name(name)])
    };
    let resp = client.call(version, &req);
    assert_eq!(
        resp.responses.len(),
        1,
        "DeleteTopics v{version} {name}: results"
    );
    let r = resp.responses[0].clone();
    assert_eq!(
        r.name.as_ref().map(|n| n.0.as_str()),
        Some(name),
        "DeleteTopics v{version}: result name in {r:?}"
    );
    r
}

fn delete_by_id(client: &mut Client, id: Uuid) -> DeletableTopicResult {
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![DeleteTopicState::default()
            .with_name(None)
            .with_topic_id(id)]);
    let resp = client.call(6, &req);
    assert_eq!(resp.responses.len(), 1, "DeleteTopics v6 by id: results");
    let r = resp.responses[0].clone();
    assert_eq!(r.topic_id, id, "DeleteTopics v6 by id: result topic id");
    r
}

#[test]
fn every_version_deletes_by_name() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::DeleteTopics) {
        let ctx = format!("DeleteTopics v{version}");
        let name = format!("del-{version}");
        let id = client.create_topic(&name, 2);
        client.produce_ok(&name, 0, encode_batch(&sample_records("d", 2)));
        let r = delete_by_name(&mut client, version, &name);
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: error ({:?})",
            r.error_message
        );
        if version >= 6 {
            assert_eq!(r.topic_id, id, "{ctx}: topic id of the deleted topic");
        }
        assert_eq!(
            client.topic_metadata(&name).error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: metadata after delete"
        );
        assert_eq!(
            client
                .produce(&name, 0, encode_batch(&sample_records("d", 1)))
                .error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: produce after delete"
        );
        let r = delete_by_name(&mut client, version, &name);
        assert_eq!(
            r.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: deleting it again"
        );
    }
    assert!(
        client.metadata(None).topics.is_empty(),
        "all topics deleted"
    );
}

#[test]
fn v6_deletes_by_topic_id() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("by-id", 1);
    let keep = client.create_topic("keep", 1);
    let r = delete_by_id(&mut client, id);
    assert_eq!(
        r.error_code,
        code::NONE,
        "DeleteTopics v6 by id ({:?})",
        r.error_message
    );
    assert_eq!(
        r.name.as_ref().map(|n| n.0.as_str()),
        Some("by-id"),
        "DeleteTopics v6 by id: name of the deleted topic"
    );
    assert_eq!(
        client.topic_metadata("by-id").error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "metadata after delete by id"
    );
    assert_eq!(client.topic_id("keep"), keep, "other topic untouched");
    let r = delete_by_id(&mut client, id);
    assert_eq!(
        r.error_code,
        code::UNKNOWN_TOPIC_ID,
        "DeleteTopics v6: deleted id again"
    );
    let r = delete_by_id(&mut client, Uuid::new_v4());
    assert_eq!(
        r.error_code,
        code::UNKNOWN_TOPIC_ID,
        "DeleteTopics v6: random id"
    );
}

#[test]
fn every_version_unknown_name() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::DeleteTopics) {
        let r = delete_by_name(&mut client, version, "never-created");
        assert_eq!(
            r.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "DeleteTopics v{version}: unknown topic"
        );
    }
}

#[test]
fn recreated_topic_is_new_and_empty() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    let old = client.create_topic("phoenix", 1);
    client.produce_ok("phoenix", 0, encode_batch(&sample_records("old", 5)));
    assert_eq!(
        delete_by_name(&mut client, 6, "phoenix").error_code,
        code::NONE
    );
    let new = client.create_topic("phoenix", 2);
    assert_ne!(old, new, "re-created topic must get a new topic id");
    assert_eq!(
        client.log_end_offset("phoenix", 0),
        0,
        "re-created topic starts empty"
    );
    let data = client.fetch("phoenix", 0, 0);
    assert!(
        decode_records(&data.records).is_empty(),
        "no old records in the re-created topic"
    );
    let records = sample_records("new", 2);
    assert_eq!(client.produce_ok("phoenix", 0, encode_batch(&records)), 0);
    drop(client);
    // Neither the old topic nor its data come back after a restart.
    broker.restart();
    let mut client = broker.client();
    assert_eq!(client.topic_id("phoenix"), new, "topic id after restart");
    assert_eq!(client.topic_metadata("phoenix").partitions.len(), 2);
    assert_eq!(
        client.log_end_offset("phoenix", 0),
        2,
        "log end offset after restart"
    );
    assert_records_eq(
        &decode_records(&client.fetch("phoenix", 0, 0).records),
        &records,
        0,
        "re-created topic after restart",
    );
}

#[test]
fn several_topics_in_one_request() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("a", 1);
    client.create_topic("b", 1);
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(vec![
            topic_name("a"),
            topic_name("missing"),
            topic_name("b"),
        ]);
    let resp = client.call(5, &req);
    let mut got: Vec<(String, i16)> = resp
        .responses
        .iter()
        .map(|r| (r.name.as_ref().unwrap().0.to_string(), r.error_code))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            ("a".into(), 0),
            ("b".into(), 0),
            ("missing".into(), code::UNKNOWN_TOPIC_OR_PARTITION)
        ],
        "DeleteTopics v5"
    );
    assert!(client.metadata(None).topics.is_empty());
}
