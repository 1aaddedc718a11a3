//! Retention (`retention.ms`, `retention.bytes`) enforced by the broker's background task
//! (`--log-retention-check-interval-ms 200`): which offsets remain (whole virtual segments
//! of `segment.bytes` go, the newest stay byte for byte), what Fetch and ListOffsets answer
//! below the new log start, and the data directory shrinking once data is deleted.

use std::path::Path;

use bytes::Bytes;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{CreateTopicsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::records::Record;
use protocol_tests::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn broker() -> BrokerProcess {
    BrokerProcess::start_with(BrokerOptions {
        extra_args: vec!["--log-retention-check-interval-ms".into(), "200".into()],
        ..BrokerOptions::default()
    })
}

fn create_with_configs(client: &mut Client, name: &str, configs: &[(&str, String)]) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(1)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            )]);
    let resp = client.call(7, &req);
    assert_eq!(resp.topics[0].error_code, code::NONE, "create {name}: {:?}", resp.topics[0].error_message);
}

fn set_config(client: &mut Client, topic: &str, key: &str, value: &str) {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(sb(topic))
        .with_configs(vec![AlterableConfig::default()
            .with_name(sb(key))
            .with_config_operation(0)
            .with_value(Some(sb(value)))])]);
    let resp = client.call(1, &req);
    assert_eq!(resp.responses[0].error_code, code::NONE, "set {key}={value} on {topic}");
}

/// One batch of three records tagged `tag` (same-length tags give same-size batches) whose
/// timestamps start at `timestamp`.
fn batch_at(tag: &str, timestamp: i64) -> Bytes {
    let records: Vec<Record> = sample_records(tag, 3)
        .into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            r.timestamp = timestamp + i as i64;
            r
        })
        .collect();
    encode_batch(&records)
}

/// Polls ListOffsets EARLIEST until it is `expected`, failing after a deadline.
fn wait_for_log_start(client: &mut Client, topic: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (err, start, _) = client.list_offset(topic, 0, -2);
        assert_eq!(err, code::NONE, "ListOffsets earliest of {topic}");
        if start == expected {
            return;
        }
        assert!(start < expected, "{topic}: log start {start} went past {expected}");
        assert!(Instant::now() < deadline, "{topic}: log start still {start}, expected {expected}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts that the log holds exactly `batches` from `first_offset` on, byte for byte
/// (three records each), and that fetching below it is OFFSET_OUT_OF_RANGE.
fn assert_remaining(client: &mut Client, topic: &str, first_offset: i64, batches: &[Bytes]) {
    let below = client.fetch(topic, 0, first_offset - 1);
    assert_eq!(below.error_code, code::OFFSET_OUT_OF_RANGE, "{topic}: fetch below the log start");
    assert_eq!(below.log_start_offset, first_offset, "{topic}: log start in the error answer");
    let zero = client.fetch(topic, 0, 0);
    assert_eq!(zero.error_code, code::OFFSET_OUT_OF_RANGE, "{topic}: fetch at 0");
    let data = client.fetch(topic, 0, first_offset);
    assert_eq!(data.error_code, code::NONE, "{topic}: fetch at the log start");
    assert_eq!(data.log_start_offset, first_offset);
    let records = data.records.clone().expect("records");
    let fetched = raw_batches(&records);
    assert_eq!(fetched.len(), batches.len(), "{topic}: batches left");
    for (i, (got, produced)) in fetched.iter().zip(batches).enumerate() {
        assert_batch_bytes_eq(got, produced, first_offset + 3 * i as i64, &format!("{topic} batch {i}"));
    }
    assert_eq!(client.log_end_offset(topic, 0), first_offset + 3 * batches.len() as i64);
}

#[test]
fn retention_ms_deletes_whole_expired_segments_and_keeps_the_newest() {
    let broker = broker();
    let mut client = broker.client();
    let now = now_ms();
    let old = now - HOUR;
    // Six same-size batches; segment.bytes holds two: [o0 o1] [o2 n3] [n4 n5].
    let batches: Vec<Bytes> = (0..6)
        .map(|i| batch_at(&format!("b{i}"), if i < 3 { old + i * 10 } else { now + i * 10 }))
        .collect();
    let size = batches[0].len();
    assert!(batches.iter().all(|b| b.len() == size));
    let topic = "ret-time";
    create_with_configs(
        &mut client,
        topic,
        &[("retention.ms", (10 * MINUTE).to_string()), ("segment.bytes", (2 * size).to_string())],
    );
    for (i, b) in batches.iter().enumerate() {
        assert_eq!(client.produce_ok(topic, 0, b.clone()), 3 * i as i64);
    }
    // The first segment is wholly older than retention.ms; the second has a new batch,
    // so its old batch stays with it.
    wait_for_log_start(&mut client, topic, 6);
    assert_remaining(&mut client, topic, 6, &batches[2..]);
    // ListOffsets by timestamp answers from the new start.
    let (err, offset, ts) = client.list_offset(topic, 0, old - 1);
    assert_eq!((err, offset, ts), (code::NONE, 6, old + 20), "first offset at or after an old timestamp");
    let (err, offset, ts) = client.list_offset(topic, 0, now + 40);
    assert_eq!((err, offset, ts), (code::NONE, 12, now + 40));
    let (err, offset, ts) = client.list_offset(topic, 0, -3);
    assert_eq!((err, offset, ts), (code::NONE, 17, now + 52), "max timestamp");
    // The next passes leave the rest alone.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(client.list_offset(topic, 0, -2).1, 6);
    assert!(broker.log().contains("retention moved the log start offset of ret-time-0 from 0 to 6"), "an info line");
    broker.assert_no_panic("retention by time");
}

#[test]
fn retention_bytes_keeps_at_least_that_many_bytes_in_whole_segments() {
    let broker = broker();
    let mut client = broker.client();
    let now = now_ms();
    let batches: Vec<Bytes> = (0..6).map(|i| batch_at(&format!("s{i}"), now + i)).collect();
    let size = batches[0].len();
    let topic = "ret-size";
    // One batch per segment; keep at least 2.5 batches: three must stay.
    create_with_configs(
        &mut client,
        topic,
        &[("retention.bytes", (5 * size / 2).to_string()), ("segment.bytes", size.to_string())],
    );
    for b in &batches {
        client.produce_ok(topic, 0, b.clone());
    }
    wait_for_log_start(&mut client, topic, 9);
    assert_remaining(&mut client, topic, 9, &batches[3..]);
    // A new batch makes the oldest remaining segment go.
    let more = batch_at("s6", now + 6);
    client.produce_ok(topic, 0, more.clone());
    wait_for_log_start(&mut client, topic, 12);
    let mut rest = batches[4..].to_vec();
    rest.push(more);
    assert_remaining(&mut client, topic, 12, &rest);
    broker.assert_no_panic("retention by size");
}

#[test]
fn topics_without_delete_in_cleanup_policy_keep_everything() {
    let broker = broker();
    let mut client = broker.client();
    let old = now_ms() - HOUR;
    let topic = "ret-compact";
    create_with_configs(
        &mut client,
        topic,
        &[("cleanup.policy", "compact".into()), ("retention.ms", "1000".into()), ("segment.bytes", "1".into())],
    );
    for i in 0..3 {
        client.produce_ok(topic, 0, batch_at(&format!("c{i}"), old));
    }
    // A delete topic alongside, as the witness that passes ran.
    let witness = "ret-witness";
    create_with_configs(&mut client, witness, &[("retention.ms", "1000".into()), ("segment.bytes", "1".into())]);
    client.produce_ok(witness, 0, batch_at("w0", old));
    wait_for_log_start(&mut client, witness, 3);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(client.list_offset(topic, 0, -2).1, 0, "compacted topic untouched");
}

fn dir_size(path: &Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            total += if meta.is_dir() { dir_size(&e.path()) } else { meta.len() };
        }
    }
    total
}

#[test]
fn altering_retention_ms_on_a_live_topic_deletes_old_data_and_frees_the_disk() {
    let broker = broker();
    let mut client = broker.client();
    let topic = "ret-disk";
    // segment.ms 10 minutes: the new batch, an hour younger, starts a segment of its own.
    create_with_configs(
        &mut client,
        topic,
        &[("segment.bytes", (1 << 20).to_string()), ("segment.ms", (10 * MINUTE).to_string())],
    );
    let old = now_ms() - HOUR;
    // 8 MiB of incompressible old data in 128 KiB batches, then one new batch.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..64 {
        let value: Vec<u8> = (0..128 * 1024)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let r = record(Some(b"k"), Some(&value), &[], old + i);
        client.produce_ok(topic, 0, encode_batch(&[r]));
    }
    let fresh = batch_at("fresh", now_ms());
    client.produce_ok(topic, 0, fresh.clone());
    let before = dir_size(&broker.data_path());
    assert!(before > 8 << 20, "the data is on disk: {before} bytes");
    // Default retention (7 days) keeps it all.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(client.list_offset(topic, 0, -2).1, 0);

    set_config(&mut client, topic, "retention.ms", &(10 * MINUTE).to_string());
    wait_for_log_start(&mut client, topic, 64);
    let data = client.fetch(topic, 0, 64);
    assert_eq!(data.error_code, code::NONE);
    let fetched = raw_batches(&data.records.clone().expect("records"));
    assert_eq!(fetched.len(), 1);
    assert_batch_bytes_eq(&fetched[0], &fresh, 64, "the new batch");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let after = dir_size(&broker.data_path());
        if after < before / 2 {
            break;
        }
        assert!(Instant::now() < deadline, "data dir still {after} bytes (was {before})");
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.assert_no_panic("retention frees the disk");
}
