//! Fetch (1): data, offsets and watermarks at every version, topic ids (v13+), errors, long polling.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, FetchResponse};
use kafka_protocol::records::Record;
use protocol_tests::*;

/// Creates `topic` (1 partition) and produces three batches of 2, 3 and 1 records; returns (id, batches, records).
fn setup(client: &mut Client, topic: &str) -> (Uuid, Vec<Bytes>, Vec<Vec<Record>>) {
    let id = client.create_topic(topic, 1);
    let records: Vec<_> = [2, 3, 1]
        .iter()
        .enumerate()
        .map(|(i, n)| sample_records(&format!("{topic}{i}"), *n))
        .collect();
    let batches: Vec<_> = records.iter().map(|r| encode_batch(r)).collect();
    let mut next = 0;
    for (b, r) in batches.iter().zip(&records) {
        assert_eq!(
            client.produce_ok(topic, 0, b.clone()),
            next,
            "setup produce"
        );
        next += r.len() as i64;
    }
    (id, batches, records)
}

fn fetch(
    client: &mut Client,
    version: i16,
    topic: &str,
    id: Uuid,
    offset: i64,
) -> (FetchResponse, PartitionData) {
    let resp = client.call(version, &fetch_request(version, topic, id, 0, offset, 0, 0));
    let p = single_fetch_partition(&resp, &format!("Fetch v{version} @{offset}"));
    (resp, p)
}

#[test]
fn every_version_returns_produced_batches_and_watermarks() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let (id, batches, records) = setup(&mut client, "fetch");
    for version in versions(ApiKey::Fetch) {
        let ctx = format!("Fetch v{version}");
        let (resp, p) = fetch(&mut client, version, "fetch", id, 0);
        if version >= 13 {
            assert_eq!(
                resp.responses[0].topic_id, id,
                "{ctx}: topic id in response"
            );
        } else {
            assert_eq!(
                resp.responses[0].topic.0.as_str(),
                "fetch",
                "{ctx}: topic name in response"
            );
        }
        if version >= 7 {
            assert_eq!(
                resp.session_id, 0,
                "{ctx}: session id of a sessionless fetch"
            );
        }
        assert_eq!(p.partition_index, 0, "{ctx}: partition index");
        assert_eq!(p.error_code, code::NONE, "{ctx}: error");
        assert_eq!(p.high_watermark, 6, "{ctx}: high watermark");
        assert_eq!(p.last_stable_offset, 6, "{ctx}: last stable offset");
        if version >= 5 {
            assert_eq!(p.log_start_offset, 0, "{ctx}: log start offset");
        }
        if version >= 11 {
            assert_eq!(
                p.preferred_read_replica,
                BrokerId(-1),
                "{ctx}: preferred read replica"
            );
        }
        assert!(
            p.aborted_transactions.as_ref().is_none_or(|a| a.is_empty()),
            "{ctx}: aborted transactions"
        );
        let fetched = raw_batches(p.records.as_ref().expect("records"));
        assert_eq!(fetched.len(), 3, "{ctx}: batches");
        for (i, base) in [0, 2, 5].into_iter().enumerate() {
            assert_batch_bytes_eq(&fetched[i], &batches[i], base, &format!("{ctx} batch {i}"));
        }
        let all: Vec<_> = records.concat();
        assert_records_eq(&decode_records(&p.records), &all, 0, &ctx);
    }
}

#[test]
fn every_version_fetch_from_the_middle_returns_the_containing_batch() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let (id, batches, _) = setup(&mut client, "mid");
    for version in versions(ApiKey::Fetch) {
        for (offset, first_base) in [(1, 0), (3, 2), (4, 2), (5, 5)] {
            let ctx = format!("Fetch v{version} @{offset}");
            let (_, p) = fetch(&mut client, version, "mid", id, offset);
            assert_eq!(p.error_code, code::NONE, "{ctx}: error");
            let summary = batch_summary(&p.records);
            assert!(!summary.is_empty(), "{ctx}: no batch returned");
            assert_eq!(
                summary[0].0, first_base,
                "{ctx}: base offset of the first batch (must contain {offset}); got {summary:?}"
            );
            let i = [0, 2, 5].iter().position(|b| *b == first_base).unwrap();
            assert_batch_bytes_eq(
                &raw_batches(p.records.as_ref().unwrap())[0],
                &batches[i],
                first_base,
                &ctx,
            );
            assert_eq!(
                summary.last().unwrap().0 + summary.last().unwrap().1 as i64,
                6,
                "{ctx}: batches up to the log end; got {summary:?}"
            );
        }
    }
}

#[test]
fn every_version_at_log_end_is_empty_and_beyond_is_out_of_range() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let (id, _, _) = setup(&mut client, "end");
    for version in versions(ApiKey::Fetch) {
        let (_, p) = fetch(&mut client, version, "end", id, 6);
        assert_eq!(p.error_code, code::NONE, "Fetch v{version} @log end: error");
        assert!(
            p.records.as_ref().is_none_or(|r| r.is_empty()),
            "Fetch v{version} @log end: records {:?}",
            p.records
        );
        assert_eq!(
            p.high_watermark, 6,
            "Fetch v{version} @log end: high watermark"
        );
        for offset in [7, 1000] {
            let (_, p) = fetch(&mut client, version, "end", id, offset);
            assert_eq!(
                p.error_code,
                code::OFFSET_OUT_OF_RANGE,
                "Fetch v{version} @{offset} beyond log end 6"
            );
            assert!(
                p.records.as_ref().is_none_or(|r| r.is_empty()),
                "Fetch v{version} @{offset}: records"
            );
        }
    }
}

#[test]
fn every_version_reports_unknown_topics_and_partitions() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("known", 1);
    for version in versions(ApiKey::Fetch) {
        let ctx = format!("Fetch v{version}");
        let (name, topic_id, want) = if version >= 13 {
            ("", Uuid::new_v4(), code::UNKNOWN_TOPIC_ID)
        } else {
            (
                "no-such-topic",
                Uuid::nil(),
                code::UNKNOWN_TOPIC_OR_PARTITION,
            )
        };
        let resp = client.call(version, &fetch_request(version, name, topic_id, 0, 0, 0, 0));
        let p = single_fetch_partition(&resp, &ctx);
        assert_eq!(p.error_code, want, "{ctx}: unknown topic");
        let resp = client.call(version, &fetch_request(version, "known", id, 3, 0, 0, 0));
        let p = single_fetch_partition(&resp, &ctx);
        assert_eq!(
            p.error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: unknown partition 3"
        );
    }
}

#[test]
fn every_version_long_poll_returns_when_data_arrives() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::Fetch) {
        let topic = format!("poll-{version}");
        let id = client.create_topic(&topic, 1);
        let (sent_tx, sent_rx) = mpsc::channel();
        let mut poller = broker.client();
        let req = fetch_request(version, &topic, id, 0, 0, 5000, 1);
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let correlation_id = poller.send(version, &req);
            sent_tx.send(()).unwrap();
            let resp = poller.receive::<FetchRequest>(version, correlation_id);
            (resp, start.elapsed())
        });
        sent_rx.recv().unwrap();
        let records = sample_records(&topic, 3);
        client.produce_ok(&topic, 0, encode_batch(&records));
        let (resp, elapsed) = handle.join().unwrap();
        let ctx = format!("Fetch v{version} long poll");
        let p = single_fetch_partition(&resp, &ctx);
        assert_eq!(p.error_code, code::NONE, "{ctx}: error");
        assert_records_eq(&decode_records(&p.records), &records, 0, &ctx);
        assert_eq!(p.high_watermark, 3, "{ctx}: high watermark");
        assert!(
            elapsed < Duration::from_millis(4000),
            "{ctx}: returned after {elapsed:?}, max_wait_ms was 5000"
        );
    }
}

#[test]
fn empty_fetch_waits_for_max_wait() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("idle", 1);
    for version in [4, 12, max_version(ApiKey::Fetch)] {
        let start = Instant::now();
        let resp = client.call(version, &fetch_request(version, "idle", id, 0, 0, 300, 1));
        let elapsed = start.elapsed();
        let p = single_fetch_partition(&resp, &format!("Fetch v{version} idle"));
        assert_eq!(p.error_code, code::NONE, "Fetch v{version} idle: error");
        assert!(
            p.records.as_ref().is_none_or(|r| r.is_empty()),
            "Fetch v{version} idle: records"
        );
        assert!(elapsed >= Duration::from_millis(250), "Fetch v{version}: min_bytes=1 on an empty log returned after {elapsed:?} < max_wait_ms 300");
    }
}

#[test]
fn size_limits_still_return_one_whole_batch() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let (id, batches, _) = setup(&mut client, "limits");
    for version in versions(ApiKey::Fetch) {
        let ctx = format!("Fetch v{version} with 1-byte limits");
        let mut req = fetch_request(version, "limits", id, 0, 2, 0, 0);
        req.max_bytes = 1;
        req.topics[0].partitions[0].partition_max_bytes = 1;
        let p = single_fetch_partition(&client.call(version, &req), &ctx);
        assert_eq!(p.error_code, code::NONE, "{ctx}: error");
        let fetched = raw_batches(p.records.as_ref().expect("records"));
        assert!(
            !fetched.is_empty(),
            "{ctx}: the first batch must be returned whole even if over the limit (KIP-74)"
        );
        assert_batch_bytes_eq(&fetched[0], &batches[1], 2, &ctx);
    }
}

#[test]
fn several_partitions_in_one_request() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("multi", 3);
    let records: Vec<_> = (0..3)
        .map(|p| sample_records(&format!("multi{p}"), p + 1))
        .collect();
    for (p, r) in records.iter().enumerate() {
        client.produce_ok("multi", p as i32, encode_batch(r));
    }
    for version in versions(ApiKey::Fetch) {
        let mut req = fetch_request(version, "multi", id, 0, 0, 0, 0);
        for p in 1..3 {
            let extra = fetch_request(version, "multi", id, p, 0, 0, 0);
            req.topics[0]
                .partitions
                .push(extra.topics[0].partitions[0].clone());
        }
        let resp = client.call(version, &req);
        assert_eq!(resp.responses.len(), 1, "Fetch v{version}: topics");
        let mut parts = resp.responses[0].partitions.clone();
        parts.sort_by_key(|p| p.partition_index);
        assert_eq!(
            parts.iter().map(|p| p.partition_index).collect::<Vec<_>>(),
            vec![0, 1, 2],
            "Fetch v{version}: partitions"
        );
        for (p, data) in parts.iter().enumerate() {
            let ctx = format!("Fetch v{version} partition {p}");
            assert_eq!(data.error_code, code::NONE, "{ctx}: error");
            assert_eq!(data.high_watermark, p as i64 + 1, "{ctx}: high watermark");
            assert_records_eq(&decode_records(&data.records), &records[p], 0, &ctx);
        }
    }
}
