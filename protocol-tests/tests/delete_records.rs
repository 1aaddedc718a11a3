//! DeleteRecords (21): moving the log start offset at every version, what ListOffsets and
//! Fetch see afterwards, and the error paths.

use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_records_response::DeleteRecordsPartitionResult;
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest};
use protocol_tests::*;

fn delete(
    client: &mut Client,
    version: i16,
    topic: &str,
    partitions: &[(i32, i64)],
) -> Vec<DeleteRecordsPartitionResult> {
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, o)| {
                        DeleteRecordsPartition::default()
                            .with_partition_index(p)
                            .with_offset(o)
                    })
                    .collect(),
            )]);
    let resp = client.call(version, &request);
    assert_eq!(resp.throttle_time_ms, 0);
    assert_eq!(resp.topics.len(), 1, "DeleteRecords v{version}: one topic");
    assert_eq!(
        resp.topics[0].name.0.as_str(),
        topic,
        "DeleteRecords v{version}: topic echoed"
    );
    let results = resp.topics[0].partitions.clone();
    let indexes: Vec<i32> = results.iter().map(|r| r.partition_index).collect();
    assert_eq!(
        indexes,
        partitions.iter().map(|p| p.0).collect::<Vec<_>>(),
        "DeleteRecords v{version}: partitions echoed"
    );
    results
}

/// Three batches of three records: offsets 0..=8.
fn fill(client: &mut Client, topic: &str, partition: i32) {
    for b in 0..3 {
        client.produce_ok(
            topic,
            partition,
            encode_batch(&sample_records(&format!("b{b}"), 3)),
        );
    }
}

#[test]
fn every_version_moves_the_log_start() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::DeleteRecords) {
        let ctx = format!("DeleteRecords v{version}");
        let topic = format!("dr-{version}");
        client.create_topic(&topic, 2);
        fill(&mut client, &topic, 0);
        fill(&mut client, &topic, 1);

        // Mid-batch on p0, a batch boundary on p1.
        let r = delete(&mut client, version, &topic, &[(0, 4), (1, 3)]);
        assert_eq!(
            (r[0].error_code, r[0].low_watermark),
            (code::NONE, 4),
            "{ctx}: p0 low watermark"
        );
        assert_eq!(
            (r[1].error_code, r[1].low_watermark),
            (code::NONE, 3),
            "{ctx}: p1 low watermark"
        );
        assert_eq!(
            client.list_offset(&topic, 0, -2).1,
            4,
            "{ctx}: ListOffsets earliest"
        );
        assert_eq!(
            client.log_end_offset(&topic, 0),
            9,
            "{ctx}: log end unchanged"
        );

        let below = client.fetch(&topic, 0, 3);
        assert_eq!(
            below.error_code,
            code::OFFSET_OUT_OF_RANGE,
            "{ctx}: fetch below the log start"
        );
        let at = client.fetch(&topic, 0, 4);
        assert_eq!(at.error_code, code::NONE, "{ctx}: fetch at the log start");
        assert_eq!(at.log_start_offset, 4, "{ctx}: fetch reports the log start");
        let offsets: Vec<i64> = decode_records(&at.records)
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets.last(), Some(&8), "{ctx}: fetched up to the end");
        assert!(
            offsets.contains(&4),
            "{ctx}: offset 4 is still there: {offsets:?}"
        );

        // Lower than the log start: nothing changes.
        let r = delete(&mut client, version, &topic, &[(0, 1)]);
        assert_eq!(
            (r[0].error_code, r[0].low_watermark),
            (code::NONE, 4),
            "{ctx}: never backwards"
        );

        // -1: everything up to the high watermark.
        let r = delete(&mut client, version, &topic, &[(0, -1)]);
        assert_eq!(
            (r[0].error_code, r[0].low_watermark),
            (code::NONE, 9),
            "{ctx}: -1 deletes up to the high watermark"
        );
        assert_eq!(
            client.list_offset(&topic, 0, -2).1,
            9,
            "{ctx}: earliest after deleting everything"
        );
        let empty = client.fetch(&topic, 0, 9);
        assert_eq!(empty.error_code, code::NONE, "{ctx}: fetch at the end");
        assert!(
            decode_records(&empty.records).is_empty(),
            "{ctx}: nothing left"
        );
        // The partition keeps working.
        assert_eq!(
            client.produce_ok(&topic, 0, encode_batch(&sample_records("after", 2))),
            9,
            "{ctx}: produce after"
        );
    }
}

#[test]
fn every_version_reports_errors_per_partition() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("dr-err", 1);
    fill(&mut client, "dr-err", 0);
    for version in versions(ApiKey::DeleteRecords) {
        let ctx = format!("DeleteRecords v{version}");
        let r = delete(&mut client, version, "dr-err", &[(0, 10), (0, -2), (5, 1)]);
        assert_eq!(
            (r[0].error_code, r[0].low_watermark),
            (code::OFFSET_OUT_OF_RANGE, -1),
            "{ctx}: beyond the high watermark"
        );
        assert_eq!(
            (r[1].error_code, r[1].low_watermark),
            (code::OFFSET_OUT_OF_RANGE, -1),
            "{ctx}: negative offset"
        );
        assert_eq!(
            (r[2].error_code, r[2].low_watermark),
            (code::UNKNOWN_TOPIC_OR_PARTITION, -1),
            "{ctx}: unknown partition"
        );
        let r = delete(&mut client, version, "dr-missing", &[(0, 1)]);
        assert_eq!(
            r[0].error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: unknown topic"
        );
        assert_eq!(
            client.list_offset("dr-err", 0, -2).1,
            0,
            "{ctx}: nothing deleted"
        );
    }
}

#[test]
fn the_log_start_survives_a_restart() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("dr-restart", 1);
    fill(&mut client, "dr-restart", 0);
    let r = delete(
        &mut client,
        max_version(ApiKey::DeleteRecords),
        "dr-restart",
        &[(0, 6)],
    );
    assert_eq!(r[0].low_watermark, 6);
    broker.restart();
    let mut client = broker.client();
    assert_eq!(
        client.list_offset("dr-restart", 0, -2).1,
        6,
        "earliest after restart"
    );
    assert_eq!(
        client.fetch("dr-restart", 0, 5).error_code,
        code::OFFSET_OUT_OF_RANGE,
        "below the log start after restart"
    );
}
