//! OffsetForLeaderEpoch (23) at every advertised version: the end offset of the
//! current epoch is the log end, undefined epochs answer -1/-1, `current_leader_epoch`
//! is fenced, unknown topics and partitions are refused, and the answers survive a
//! restart.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::{ApiKey, BrokerId, OffsetForLeaderEpochRequest};
use protocol_tests::*;

/// One partition's answer to a request for `leader_epoch` of `topic`/`partition`.
fn end_offset(
    client: &mut Client,
    version: i16,
    replica_id: i32,
    topic: &str,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> EpochEndOffset {
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(replica_id))
        .with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current_leader_epoch)
                .with_leader_epoch(leader_epoch)])]);
    let resp = client.call(version, &request);
    let ctx = format!("OffsetForLeaderEpoch v{version} {topic}/{partition}");
    assert_eq!(resp.throttle_time_ms, 0, "{ctx}: throttle time");
    assert_eq!(resp.topics.len(), 1, "{ctx}: topics");
    assert_eq!(resp.topics[0].topic.0.as_str(), topic, "{ctx}: topic name");
    assert_eq!(resp.topics[0].partitions.len(), 1, "{ctx}: partitions");
    let p = resp.topics[0].partitions[0].clone();
    assert_eq!(p.partition, partition, "{ctx}: partition index");
    p
}

fn answer(p: &EpochEndOffset) -> (i16, i32, i64) {
    (p.error_code, p.leader_epoch, p.end_offset)
}

/// Creates `topic` with two partitions and writes 6 records in 3 batches to partition 0.
fn setup(client: &mut Client, topic: &str) {
    client.create_topic(topic, 2);
    for (i, n) in [2, 3, 1].into_iter().enumerate() {
        client.produce_ok(topic, 0, encode_batch(&sample_records(&format!("b{i}"), n)));
    }
}

/// The answers every version must give for the topic `setup` wrote.
fn assert_answers(client: &mut Client, topic: &str, context: &str) {
    for version in versions(ApiKey::OffsetForLeaderEpoch) {
        // v3 added replica_id: a consumer (-1), a debugging tool (-2) and a broker get the same answers.
        let replica_ids: &[i32] = if version >= 3 { &[-1, -2, 1] } else { &[-1] };
        for &replica in replica_ids {
            let ctx = format!("{context}: v{version} replica_id {replica}");
            let mut ask = |partition, current, epoch| answer(&end_offset(client, version, replica, topic, partition, current, epoch));
            // The current epoch (0) ends at the log end, with or without the client's view of it.
            assert_eq!(ask(0, -1, 0), (code::NONE, 0, 6), "{ctx}: epoch 0 of partition 0");
            assert_eq!(ask(0, 0, 0), (code::NONE, 0, 6), "{ctx}: epoch 0, current epoch 0");
            assert_eq!(ask(1, 0, 0), (code::NONE, 0, 0), "{ctx}: epoch 0 of the empty partition 1");
            // Undefined: epoch -1, and an epoch newer than any the partition had.
            assert_eq!(ask(0, -1, -1), (code::NONE, -1, -1), "{ctx}: epoch -1");
            assert_eq!(ask(0, -1, 3), (code::NONE, -1, -1), "{ctx}: epoch 3 (never existed)");
            // The client's current epoch is checked first.
            let unknown = ResponseError::UnknownLeaderEpoch.code();
            assert_eq!(ask(0, 1, 0), (unknown, -1, -1), "{ctx}: current_leader_epoch 1 is newer than the leader's");
            let fenced = ResponseError::FencedLeaderEpoch.code();
            assert_eq!(ask(0, -2, 0), (fenced, -1, -1), "{ctx}: current_leader_epoch -2 is older than the leader's");
            let unknown_partition = ResponseError::UnknownTopicOrPartition.code();
            assert_eq!(ask(2, -1, 0), (unknown_partition, -1, -1), "{ctx}: partition 2 does not exist");
            let p = end_offset(client, version, replica, "no-such-topic", 0, -1, 0);
            assert_eq!(answer(&p), (unknown_partition, -1, -1), "{ctx}: unknown topic");
        }
    }
}

#[test]
fn every_version_answers_the_end_of_the_epoch_and_fences_stale_epochs() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    setup(&mut client, "ole");
    assert_answers(&mut client, "ole", "before restart");
    // The epoch history is kept with the data: the same answers after a restart.
    broker.restart();
    let mut client = broker.client();
    assert_answers(&mut client, "ole", "after restart");
    // The current epoch keeps following the log end.
    client.produce_ok("ole", 0, encode_batch(&sample_records("after", 4)));
    let p = end_offset(&mut client, max_version(ApiKey::OffsetForLeaderEpoch), -1, "ole", 0, 0, 0);
    assert_eq!(answer(&p), (code::NONE, 0, 10), "epoch 0 after 4 more records");
}

#[test]
fn several_topics_and_partitions_in_one_request_are_answered_in_order() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    setup(&mut client, "ole-a");
    client.create_topic("ole-b", 1);
    client.produce_ok("ole-b", 0, encode_batch(&sample_records("b", 9)));
    let partition = |index, epoch| {
        OffsetForLeaderPartition::default().with_partition(index).with_current_leader_epoch(-1).with_leader_epoch(epoch)
    };
    let request = OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
        OffsetForLeaderTopic::default().with_topic(topic_name("ole-a")).with_partitions(vec![partition(1, 0), partition(0, 0), partition(7, 0)]),
        OffsetForLeaderTopic::default().with_topic(topic_name("ole-b")).with_partitions(vec![partition(0, 0)]),
    ]);
    for version in versions(ApiKey::OffsetForLeaderEpoch) {
        let resp = client.call(version, &request);
        let got: Vec<(String, i32, (i16, i32, i64))> = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic.0.to_string(), p.partition, answer(p))))
            .collect();
        let unknown = ResponseError::UnknownTopicOrPartition.code();
        assert_eq!(
            got,
            vec![
                ("ole-a".to_string(), 1, (code::NONE, 0, 0)),
                ("ole-a".to_string(), 0, (code::NONE, 0, 6)),
                ("ole-a".to_string(), 7, (unknown, -1, -1)),
                ("ole-b".to_string(), 0, (code::NONE, 0, 9)),
            ],
            "v{version}"
        );
    }
}
