//! Durability: SIGTERM exits 0, and topics, ids, records and offsets survive restarts.

use bytes::Bytes;
use kafka_protocol::records::Record;
use protocol_tests::*;

#[test]
fn data_survives_restart_byte_for_byte() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("durable", 2);
    let mut produced: Vec<Vec<(Bytes, Vec<Record>)>> = vec![Vec::new(), Vec::new()];
    for i in 0..6 {
        let p = i % 2;
        let records = sample_records(&format!("d{i}"), 1 + i);
        let batch = encode_batch(&records);
        client.produce_ok("durable", p as i32, batch.clone());
        produced[p].push((batch, records));
    }
    let log_end = |batches: &Vec<(Bytes, Vec<Record>)>| {
        batches.iter().map(|(_, r)| r.len() as i64).sum::<i64>()
    };
    assert_eq!(
        (0..2)
            .map(|p| client.log_end_offset("durable", p))
            .collect::<Vec<_>>(),
        vec![9, 12]
    );
    drop(client);

    for round in 1..=2 {
        broker.restart();
        let mut client = broker.client();
        let ctx = format!("after restart #{round}");
        assert_eq!(client.topic_id("durable"), id, "{ctx}: topic id");
        for (p, batches) in produced.iter().enumerate() {
            let end = log_end(batches);
            assert_eq!(
                client.log_end_offset("durable", p as i32),
                end,
                "{ctx}: log end offset of partition {p}"
            );
            assert_eq!(
                client.list_offset("durable", p as i32, -2).1,
                0,
                "{ctx}: earliest offset of partition {p}"
            );
            let data = client.fetch("durable", p as i32, 0);
            assert_eq!(
                data.high_watermark, end,
                "{ctx}: high watermark of partition {p}"
            );
            let fetched = raw_batches(data.records.as_ref().expect("records"));
            assert_eq!(
                fetched.len(),
                batches.len(),
                "{ctx}: batches in partition {p}"
            );
            let mut base = 0;
            for (i, (batch, records)) in batches.iter().enumerate() {
                assert_batch_bytes_eq(
                    &fetched[i],
                    batch,
                    base,
                    &format!("{ctx}: partition {p} batch {i}"),
                );
                base += records.len() as i64;
            }
            let all: Vec<Record> = batches.iter().flat_map(|(_, r)| r.clone()).collect();
            assert_records_eq(
                &decode_records(&data.records),
                &all,
                0,
                &format!("{ctx}: partition {p}"),
            );
        }
        // Appends continue at the log end offset.
        let more = sample_records(&format!("more{round}"), 2);
        let batch = encode_batch(&more);
        assert_eq!(
            client.produce_ok("durable", 0, batch.clone()),
            log_end(&produced[0]),
            "{ctx}: next offset"
        );
        produced[0].push((batch, more));
    }
}

#[test]
fn sigterm_exits_cleanly_with_open_connections() {
    let mut broker = BrokerProcess::start();
    let mut idle = broker.client();
    let mut busy = broker.client();
    busy.create_topic("t", 1);
    let id = busy.topic_id("t");
    // A long poll in flight while the broker is asked to stop.
    busy.send(12, &fetch_request(12, "t", id, 0, 0, 3_000, 1));
    let status = broker.stop();
    assert!(
        status.success(),
        "exit status after SIGTERM with open connections: {status}"
    );
    idle.expect_closed("idle connection at shutdown");
}
