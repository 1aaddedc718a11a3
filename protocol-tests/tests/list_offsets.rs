//! ListOffsets (2): earliest, latest, max timestamp (v7+) and by timestamp, at every version.

use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse;
use kafka_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest};
use protocol_tests::*;

fn request(topic: &str, partition: i32, timestamp: i64, isolation_level: i8) -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation_level)
        .with_timeout_ms(0)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(timestamp)])])
}

fn list(
    client: &mut Client,
    version: i16,
    topic: &str,
    partition: i32,
    timestamp: i64,
) -> ListOffsetsPartitionResponse {
    let resp = client.call(version, &request(topic, partition, timestamp, 0));
    let ctx = format!("ListOffsets v{version} {topic}/{partition} ts={timestamp}");
    assert_eq!(resp.topics.len(), 1, "{ctx}: topics");
    assert_eq!(resp.topics[0].name.0.as_str(), topic, "{ctx}: topic name");
    assert_eq!(resp.topics[0].partitions.len(), 1, "{ctx}: partitions");
    let p = resp.topics[0].partitions[0].clone();
    assert_eq!(p.partition_index, partition, "{ctx}: partition index");
    p
}

/// Produces 6 records in 3 batches; record timestamps t0, t0+1 | t0+1000, t0+5000, t0+1002 | t0+2000.
fn setup(client: &mut Client, topic: &str) -> i64 {
    client.create_topic(topic, 1);
    let t0 = now_ms() - 60_000;
    let rec = |ts: i64| record(Some(b"k"), Some(format!("v{ts}").as_bytes()), &[], ts);
    for batch in [
        vec![rec(t0), rec(t0 + 1)],
        vec![rec(t0 + 1000), rec(t0 + 5000), rec(t0 + 1002)],
        vec![rec(t0 + 2000)],
    ] {
        client.produce_ok(topic, 0, encode_batch(&batch));
    }
    t0
}

#[test]
fn every_version_earliest_and_latest() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    setup(&mut client, "lo");
    client.create_topic("empty", 1);
    for version in versions(ApiKey::ListOffsets) {
        for (topic, earliest, latest) in [("lo", 0, 6), ("empty", 0, 0)] {
            let ctx = format!("ListOffsets v{version} {topic}");
            let p = list(&mut client, version, topic, 0, -2);
            assert_eq!(
                (p.error_code, p.offset),
                (code::NONE, earliest),
                "{ctx}: earliest (-2) (error, offset)"
            );
            let p = list(&mut client, version, topic, 0, -1);
            assert_eq!(
                (p.error_code, p.offset),
                (code::NONE, latest),
                "{ctx}: latest (-1) (error, offset)"
            );
            if version >= 4 {
                assert!(
                    p.leader_epoch >= -1,
                    "{ctx}: leader epoch {}",
                    p.leader_epoch
                );
            }
        }
    }
}

#[test]
fn every_version_read_committed_latest_is_the_last_stable_offset() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    setup(&mut client, "lso");
    for version in 2..=max_version(ApiKey::ListOffsets) {
        let resp = client.call(version, &request("lso", 0, -1, 1));
        let p = &resp.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.offset),
            (code::NONE, 6),
            "ListOffsets v{version} read_committed latest"
        );
    }
}

#[test]
fn every_version_by_timestamp_finds_first_record_at_or_after() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let t0 = setup(&mut client, "ts");
    // (target timestamp, expected offset, expected timestamp): the first offset whose timestamp >= target.
    let cases = [
        (t0 - 100, 0, t0),
        (t0, 0, t0),
        (t0 + 1, 1, t0 + 1),
        (t0 + 2, 2, t0 + 1000),
        (t0 + 1000, 2, t0 + 1000),
        (t0 + 1001, 3, t0 + 5000),
        (t0 + 2000, 3, t0 + 5000),
        (t0 + 5000, 3, t0 + 5000),
        (t0 + 5001, -1, -1),
    ];
    for version in versions(ApiKey::ListOffsets) {
        for (target, offset, timestamp) in cases {
            let p = list(&mut client, version, "ts", 0, target);
            assert_eq!(
                (p.error_code, p.offset, p.timestamp),
                (code::NONE, offset, timestamp),
                "ListOffsets v{version} at t0{:+}: (error, offset, timestamp)",
                target - t0
            );
        }
    }
}

#[test]
fn max_timestamp_from_v7() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let t0 = setup(&mut client, "maxts");
    for version in 7..=max_version(ApiKey::ListOffsets) {
        let p = list(&mut client, version, "maxts", 0, -3);
        assert_eq!(
            (p.error_code, p.offset, p.timestamp),
            (code::NONE, 3, t0 + 5000),
            "ListOffsets v{version} max timestamp (-3): (error, offset, timestamp) of the record with the largest timestamp"
        );
    }
}

#[test]
fn every_version_unknown_topic_and_partition() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("one", 1);
    for version in versions(ApiKey::ListOffsets) {
        let p = list(&mut client, version, "nope", 0, -1);
        assert_eq!(
            p.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "ListOffsets v{version}: unknown topic"
        );
        let p = list(&mut client, version, "one", 1, -1);
        assert_eq!(
            p.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "ListOffsets v{version}: unknown partition"
        );
    }
}
