//! Log compaction (issue 13): a `cleanup.policy=compact` topic keeps the latest record
//! per key. 1000 updates over 50 keys, ten of them then deleted with tombstones; once
//! the cleaner has run (every 100 ms here) a fetch from offset 0 returns exactly one
//! record per live key — its latest value, at its original offset — and no deleted
//! key once `delete.retention.ms` has passed; offsets strictly increase, the log end
//! does not move and produce continues at the same offsets.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::CreateTopicsRequest;
use protocol_tests::*;

/// The sum of a metric's samples on the broker's /metrics.
fn metric(port: u16, name: &str) -> f64 {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return 0.0 };
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// (offset, key, value) of every record fetched from offset 0.
fn read_all(client: &mut Client, topic: &str) -> Vec<(i64, String, Option<String>)> {
    let data = client.fetch(topic, 0, 0);
    assert_eq!(data.error_code, code::NONE, "fetch from 0");
    decode_records(&data.records)
        .into_iter()
        .map(|r| {
            let text = |b: &bytes::Bytes| String::from_utf8(b.to_vec()).unwrap();
            (r.offset, r.key.as_ref().map(text).expect("a key"), r.value.as_ref().map(text))
        })
        .collect()
}

#[test]
fn compacted_topic_keeps_the_latest_value_per_key_at_its_offset() {
    let metrics_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: vec![
            "--log-cleaner-backoff-ms".into(),
            "100".into(),
            "--metrics-listener".into(),
            format!("127.0.0.1:{metrics_port}"),
        ],
        ..Default::default()
    });
    let mut client = broker.client();
    let config = |k: &str, v: &str| CreatableTopicConfig::default().with_name(sb(k)).with_value(Some(sb(v)));
    let req = CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![CreatableTopic::default()
        .with_name(topic_name("state"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![config("cleanup.policy", "compact"), config("delete.retention.ms", "500"), config("min.cleanable.dirty.ratio", "0.01")])]);
    let resp = client.call(7, &req);
    assert_eq!(resp.topics[0].error_code, code::NONE);

    // 1000 updates over 50 keys in batches of 20, then tombstones for keys 0..10.
    let mut expected: BTreeMap<String, (i64, String)> = BTreeMap::new();
    let mut offset = 0i64;
    let ts = now_ms();
    for b in 0..50 {
        let mut records = Vec::new();
        for i in 0..20 {
            let n = b * 20 + i;
            let key = format!("key-{}", (n * 7) % 50);
            let value = format!("value-{n}");
            records.push(record(Some(key.as_bytes()), Some(value.as_bytes()), &[], ts));
            expected.insert(key, (offset, value));
            offset += 1;
        }
        assert_eq!(client.produce_ok("state", 0, encode_batch(&records)), offset - 20);
    }
    let tombstones: Vec<_> = (0..10).map(|k| record(Some(format!("key-{k}").as_bytes()), None, &[], ts)).collect();
    assert_eq!(client.produce_ok("state", 0, encode_batch(&tombstones)), 1000);
    for k in 0..10 {
        expected.remove(&format!("key-{k}"));
    }
    // The newest batch is the active tail, never cleaned: a key of its own.
    let tail = record(Some(b"tail"), Some(b"t"), &[], ts);
    assert_eq!(client.produce_ok("state", 0, encode_batch(&[tail])), 1010);
    expected.insert("tail".into(), (1010, "t".into()));
    let log_end = client.log_end_offset("state", 0);
    assert_eq!(log_end, 1011);

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = read_all(&mut client, "state");
    while seen.len() != expected.len() {
        assert!(Instant::now() < deadline, "not compacted within 30 s: {} records\n{}", seen.len(), broker.log_tail());
        std::thread::sleep(Duration::from_millis(50));
        seen = read_all(&mut client, "state");
    }
    assert!(metric(metrics_port, "fluxo_cleaner_runs_total") >= 2.0, "a cleaning, then one after the tombstones' horizon");
    assert!(metric(metrics_port, "fluxo_cleaner_removed_records_total") >= 960.0);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "offsets strictly increase");
    let got: BTreeMap<String, (i64, String)> =
        seen.iter().map(|(o, k, v)| (k.clone(), (*o, v.clone().expect("no tombstone left")))).collect();
    assert_eq!(got.len(), seen.len(), "one record per key");
    assert_eq!(got, expected, "the latest value of every live key at its original offset, no deleted key");
    assert_eq!(client.log_end_offset("state", 0), log_end, "the log end does not move");

    // Produce continues at the same offsets; a fetch from inside a compacted range finds
    // the next record.
    let more = record(Some(b"key-3"), Some(b"back"), &[], now_ms());
    assert_eq!(client.produce_ok("state", 0, encode_batch(&[more])), 1011);
    let seen = read_all(&mut client, "state");
    assert_eq!(seen.last().unwrap(), &(1011, "key-3".to_string(), Some("back".to_string())));
    let first_kept = seen[0].0;
    assert!(first_kept > 0, "the first records were superseded");
    let data = client.fetch("state", 0, 1);
    assert_eq!(decode_records(&data.records).first().map(|r| r.offset), Some(first_kept));
    broker.assert_no_panic("compaction");
}
