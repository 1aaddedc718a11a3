//! CreatePartitions (37): increase, decrease/same count, unknown topic, validate_only at every version.

use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest};
use protocol_tests::*;

fn create_partitions(
    client: &mut Client,
    version: i16,
    topic: &str,
    count: i32,
    validate_only: bool,
) -> CreatePartitionsTopicResult {
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(count)
            .with_assignments(None)]);
    let resp = client.call(version, &req);
    assert_eq!(
        resp.results.len(),
        1,
        "CreatePartitions v{version}: results"
    );
    let r = resp.results[0].clone();
    assert_eq!(
        r.name.0.as_str(),
        topic,
        "CreatePartitions v{version}: result name"
    );
    r
}

fn partition_count(client: &mut Client, topic: &str) -> usize {
    client.topic_metadata(topic).partitions.len()
}

#[test]
fn every_version_increases_the_partition_count() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::CreatePartitions) {
        let ctx = format!("CreatePartitions v{version}");
        let topic = format!("grow-{version}");
        let id = client.create_topic(&topic, 1);
        client.produce_ok(&topic, 0, encode_batch(&sample_records("before", 2)));
        let r = create_partitions(&mut client, version, &topic, 3, false);
        assert_eq!(
            r.error_code,
            code::NONE,
            "{ctx}: 1 -> 3 ({:?})",
            r.error_message
        );
        assert_eq!(
            partition_count(&mut client, &topic),
            3,
            "{ctx}: partitions in metadata"
        );
        assert_eq!(client.topic_id(&topic), id, "{ctx}: topic id unchanged");
        // Existing data stays; new partitions are empty and writable.
        assert_eq!(
            client.log_end_offset(&topic, 0),
            2,
            "{ctx}: partition 0 keeps its data"
        );
        assert_eq!(
            client.log_end_offset(&topic, 2),
            0,
            "{ctx}: new partition is empty"
        );
        let records = sample_records("new", 3);
        assert_eq!(
            client.produce_ok(&topic, 2, encode_batch(&records)),
            0,
            "{ctx}: produce to new partition"
        );
        assert_records_eq(
            &decode_records(&client.fetch(&topic, 2, 0).records),
            &records,
            0,
            &ctx,
        );
    }
}

#[test]
fn every_version_rejects_decrease_and_same_count() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("fixed", 3);
    for version in versions(ApiKey::CreatePartitions) {
        for count in [1, 2, 3, 0, -1] {
            let r = create_partitions(&mut client, version, "fixed", count, false);
            assert_eq!(
                r.error_code,
                code::INVALID_PARTITIONS,
                "CreatePartitions v{version}: 3 -> {count}"
            );
        }
    }
    assert_eq!(partition_count(&mut client, "fixed"), 3);
}

#[test]
fn every_version_unknown_topic() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::CreatePartitions) {
        let r = create_partitions(&mut client, version, "ghost", 4, false);
        assert_eq!(
            r.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "CreatePartitions v{version}: unknown topic"
        );
    }
    assert_eq!(
        client.topic_metadata("ghost").error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "ghost must not be created"
    );
}

#[test]
fn every_version_validate_only_changes_nothing() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("dry", 2);
    for version in versions(ApiKey::CreatePartitions) {
        let r = create_partitions(&mut client, version, "dry", 5, true);
        assert_eq!(
            r.error_code,
            code::NONE,
            "CreatePartitions v{version} validate_only 2 -> 5"
        );
        let r = create_partitions(&mut client, version, "dry", 1, true);
        assert_eq!(
            r.error_code,
            code::INVALID_PARTITIONS,
            "CreatePartitions v{version} validate_only 2 -> 1"
        );
        assert_eq!(
            partition_count(&mut client, "dry"),
            2,
            "CreatePartitions v{version}: validate_only changed the count"
        );
    }
}

#[test]
fn increase_survives_restart() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("grown", 1);
    assert_eq!(
        create_partitions(&mut client, 3, "grown", 4, false).error_code,
        code::NONE
    );
    client.produce_ok("grown", 3, encode_batch(&sample_records("p3", 2)));
    drop(client);
    broker.restart();
    let mut client = broker.client();
    assert_eq!(
        partition_count(&mut client, "grown"),
        4,
        "partition count after restart"
    );
    assert_eq!(
        client.log_end_offset("grown", 3),
        2,
        "partition 3 data after restart"
    );
}
