//! Partition limits (issue 11, item 9): `max_partitions_per_request` refuses a CreateTopics or
//! CreatePartitions creating too many partitions at once (INVALID_PARTITIONS), `max_partitions`
//! one taking the broker past its total (POLICY_VIOLATION), validate_only and auto-creation
//! included; a refused topic is not created, a refused growth leaves the count unchanged.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{CreatePartitionsRequest, CreateTopicsRequest, MetadataRequest};
use kafka_protocol::protocol::StrBytes;
use protocol_tests::*;

const POLICY_VIOLATION: i16 = 44;

fn broker() -> BrokerProcess {
    BrokerProcess::start_with(BrokerOptions {
        auto_create_topics: true,
        extra_args: ["--max-partitions-per-request", "10", "--max-partitions", "25"].map(String::from).to_vec(),
        ..Default::default()
    })
}

fn create(client: &mut Client, topics: &[(&str, i32)], validate_only: bool) -> Vec<CreatableTopicResult> {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(
            topics
                .iter()
                .map(|(name, n)| {
                    CreatableTopic::default().with_name(topic_name(name)).with_num_partitions(*n).with_replication_factor(1)
                })
                .collect(),
        );
    let resp = client.call(7, &req);
    assert_eq!(resp.topics.len(), topics.len(), "one result per topic");
    resp.topics
}

fn grow(client: &mut Client, topic: &str, count: i32, validate_only: bool) -> CreatePartitionsTopicResult {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(vec![CreatePartitionsTopic::default().with_name(topic_name(topic)).with_count(count).with_assignments(None)]);
    client.call(3, &req).results.remove(0)
}

/// Asserts the error code and that the message names the limit.
fn assert_refused(code: i16, message: &Option<StrBytes>, expected: i16, limit: &str, context: &str) {
    assert_eq!(code, expected, "{context}: error code ({message:?})");
    let message = message.as_ref().map(|m| m.to_string()).unwrap_or_default();
    assert!(message.contains(limit), "{context}: message {message:?} names {limit}");
}

fn partitions(client: &mut Client, topic: &str) -> Option<usize> {
    let t = client.topic_metadata(topic);
    (t.error_code == code::NONE).then_some(t.partitions.len())
}

fn assert_absent(client: &mut Client, topic: &str) {
    assert_eq!(client.topic_metadata(topic).error_code, code::UNKNOWN_TOPIC_OR_PARTITION, "{topic} must not exist");
}

#[test]
fn create_topics_over_the_per_request_limit_is_invalid_partitions() {
    let broker = broker();
    let mut client = broker.client();
    let r = create(&mut client, &[("big", 11)], false);
    assert_refused(r[0].error_code, &r[0].error_message, code::INVALID_PARTITIONS, "max_partitions_per_request", "11 in one request");
    assert_absent(&mut client, "big");
    // The limit is on the request: the second topic would take it to 12.
    let r = create(&mut client, &[("first", 6), ("second", 6)], false);
    assert_eq!(r[0].error_code, code::NONE, "first: {:?}", r[0].error_message);
    assert_refused(r[1].error_code, &r[1].error_message, code::INVALID_PARTITIONS, "max_partitions_per_request", "12 in one request");
    assert_eq!(partitions(&mut client, "first"), Some(6));
    assert_absent(&mut client, "second");
    // validate_only honours it and creates nothing either way.
    let r = create(&mut client, &[("big", 11)], true);
    assert_refused(r[0].error_code, &r[0].error_message, code::INVALID_PARTITIONS, "max_partitions_per_request", "validate_only 11");
    let r = create(&mut client, &[("c", 5), ("d", 5)], true);
    assert_eq!((r[0].error_code, r[1].error_code), (code::NONE, code::NONE), "validate_only 10: {r:?}");
    assert_absent(&mut client, "big");
    assert_absent(&mut client, "c");
    assert_absent(&mut client, "d");
    // Exactly the limit is fine.
    let r = create(&mut client, &[("ten", 10)], false);
    assert_eq!(r[0].error_code, code::NONE, "{:?}", r[0].error_message);
    assert_eq!(partitions(&mut client, "ten"), Some(10));
}

#[test]
fn partitions_past_the_broker_limit_are_a_policy_violation() {
    let broker = broker();
    let mut client = broker.client();
    for (name, n) in [("a", 10), ("b", 10)] {
        let r = create(&mut client, &[(name, n)], false);
        assert_eq!(r[0].error_code, code::NONE, "{name}: {:?}", r[0].error_message);
    }
    // 20 held: 6 more would be 26 > 25.
    let r = create(&mut client, &[("c", 6)], false);
    assert_refused(r[0].error_code, &r[0].error_message, POLICY_VIOLATION, "max_partitions", "26 in all");
    assert_absent(&mut client, "c");
    let r = create(&mut client, &[("c", 6)], true);
    assert_refused(r[0].error_code, &r[0].error_message, POLICY_VIOLATION, "max_partitions", "validate_only 26 in all");
    // validate_only counts the request's earlier topics: 20 + 3 + 3 > 25.
    let r = create(&mut client, &[("c", 3), ("d", 3)], true);
    assert_eq!(r[0].error_code, code::NONE, "validate_only 23: {:?}", r[0].error_message);
    assert_refused(r[1].error_code, &r[1].error_message, POLICY_VIOLATION, "max_partitions", "validate_only 26 in all");
    assert_absent(&mut client, "c");

    // CreatePartitions: 11 more in one request, then 6 more in all (26), both refused.
    let r = grow(&mut client, "a", 21, false);
    assert_refused(r.error_code, &r.error_message, code::INVALID_PARTITIONS, "max_partitions_per_request", "grow by 11");
    let r = grow(&mut client, "a", 16, false);
    assert_refused(r.error_code, &r.error_message, POLICY_VIOLATION, "max_partitions", "grow to 26 in all");
    let r = grow(&mut client, "a", 16, true);
    assert_refused(r.error_code, &r.error_message, POLICY_VIOLATION, "max_partitions", "validate_only grow to 26 in all");
    assert_eq!(partitions(&mut client, "a"), Some(10), "refused growth changes nothing");
    let r = grow(&mut client, "a", 15, false);
    assert_eq!(r.error_code, code::NONE, "grow to exactly 25 in all: {:?}", r.error_message);
    assert_eq!(partitions(&mut client, "a"), Some(15));

    // Auto-creation (Metadata) is refused too once the broker is full.
    let req = MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic_name("auto")))]))
        .with_allow_auto_topic_creation(true);
    let resp = client.call(12, &req);
    assert_eq!(resp.topics[0].error_code, POLICY_VIOLATION, "auto-create past max_partitions");
    assert_absent(&mut client, "auto");
}
