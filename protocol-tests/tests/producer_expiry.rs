//! Idempotent producer state expiry (issue 11, item 8; Kafka's `producer.id.expiration.ms`,
//! KIP-854): once a producer has not appended for the expiration time the broker forgets it —
//! the `fluxo_producer_ids` gauge drops, a retry of its last batch is no longer answered as a
//! duplicate but appended (Kafka >= 2.5 accepts any sequence from a producer it has no state
//! for), sequence 0 starts it afresh, sequences are checked again from there, and everything
//! produced before is still read back at its offsets.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::records::Record;
use protocol_tests::*;

/// The value of an unlabelled gauge on the broker's /metrics.
fn gauge(port: u16, name: &str) -> Option<i64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn idle_producer_state_expires_and_the_producer_starts_afresh() {
    let metrics_port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: vec![
            "--producer-id-expiration-ms".into(),
            "1000".into(),
            "--producer-id-expiration-check-interval-ms".into(),
            "200".into(),
            "--metrics-listener".into(),
            format!("127.0.0.1:{metrics_port}"),
        ],
        ..Default::default()
    });
    let mut client = broker.client();
    client.create_topic("expiring", 2);
    let (pid, epoch) = client.init_producer_id();
    let first = sample_records("first", 3);
    let second = sample_records("second", 2);
    let batch = |records: &[Record], seq| encode_idempotent_batch(records, pid, epoch, seq);
    for p in 0..2 {
        assert_eq!(client.produce_ok("expiring", p, batch(&first, 0)), 0);
        assert_eq!(client.produce_ok("expiring", p, batch(&second, 3)), 3);
    }
    // While the state is fresh, a retry is a duplicate: answered with its offset, not appended.
    assert_eq!(client.produce_ok("expiring", 0, batch(&second, 3)), 3, "retry before expiry");
    assert_eq!(client.log_end_offset("expiring", 0), 5);
    let held = gauge(metrics_port, "fluxo_producer_ids");
    assert!(held.is_some_and(|n| n >= 1), "producer states before expiry: {held:?}");

    let deadline = Instant::now() + Duration::from_secs(30);
    while gauge(metrics_port, "fluxo_producer_ids") != Some(0) {
        assert!(Instant::now() < deadline, "producer state did not expire within 30 s\n{}", broker.log_tail());
        std::thread::sleep(Duration::from_millis(50));
    }

    // Partition 0: the retry of the last batch is now a new batch at the log end.
    assert_eq!(client.produce_ok("expiring", 0, batch(&second, 3)), 5, "retry after expiry is appended");
    // Sequences are checked again from the batch that restarted the state.
    let third = sample_records("third", 1);
    assert_eq!(client.produce_ok("expiring", 0, batch(&third, 5)), 7);
    let gap = client.produce("expiring", 0, batch(&third, 9));
    assert_eq!(gap.error_code, code::OUT_OF_ORDER_SEQUENCE_NUMBER, "gap after the restart");
    // Partition 1: sequence 0 starts the producer afresh.
    assert_eq!(client.produce_ok("expiring", 1, batch(&third, 0)), 5, "sequence 0 after expiry");
    assert_eq!(gauge(metrics_port, "fluxo_producer_ids"), Some(2), "both partitions know the producer again");

    // What was produced before the expiry reads back unchanged at its offsets.
    for (p, expected) in [(0, vec![(0, 3), (3, 2), (5, 2), (7, 1)]), (1, vec![(0, 3), (3, 2), (5, 1)])] {
        let data = client.fetch("expiring", p, 0);
        assert_eq!(data.error_code, code::NONE);
        assert_eq!(batch_summary(&data.records), expected, "partition {p} batches");
        let records = decode_records(&data.records);
        assert_records_eq(&records[..3], &first, 0, &format!("partition {p} first batch"));
        assert_records_eq(&records[3..5], &second, 3, &format!("partition {p} second batch"));
    }
}
