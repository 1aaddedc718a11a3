//! InitProducerId (22) at every version, and idempotent produce: duplicates and sequence gaps.

use std::collections::HashSet;

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest};
use kafka_protocol::records::RecordBatchDecoder;
use protocol_tests::*;

fn init(client: &mut Client, version: i16) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000);
    let resp = client.call(version, &req);
    assert_eq!(
        resp.error_code,
        code::NONE,
        "InitProducerId v{version}: error"
    );
    assert!(
        resp.producer_id.0 >= 0,
        "InitProducerId v{version}: producer id {}",
        resp.producer_id.0
    );
    assert!(
        resp.producer_epoch >= 0,
        "InitProducerId v{version}: epoch {}",
        resp.producer_epoch
    );
    (resp.producer_id.0, resp.producer_epoch)
}

#[test]
fn every_version_hands_out_distinct_ids_never_reused_after_restart() {
    let mut broker = BrokerProcess::start();
    let mut seen = HashSet::new();
    for round in 0..2 {
        let mut client = broker.client();
        for version in versions(ApiKey::InitProducerId) {
            for _ in 0..3 {
                let (id, _) = init(&mut client, version);
                assert!(
                    seen.insert(id),
                    "InitProducerId v{version} (round {round}): producer id {id} handed out twice"
                );
            }
        }
        drop(client);
        broker.restart();
    }
}

#[test]
fn retried_batch_returns_the_original_offset_without_duplicating() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("idem", 1);
    let (pid, epoch) = client.init_producer_id();
    let first = sample_records("first", 3);
    let b1 = encode_idempotent_batch(&first, pid, epoch, 0);
    assert_eq!(client.produce_ok("idem", 0, b1.clone()), 0, "first batch");
    let retry = client.produce("idem", 0, b1.clone());
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (code::NONE, 0),
        "retry of the first batch: (error, base offset)"
    );
    assert_eq!(
        client.log_end_offset("idem", 0),
        3,
        "log end offset after a retried batch"
    );

    let second = sample_records("second", 2);
    let b2 = encode_idempotent_batch(&second, pid, epoch, 3);
    assert_eq!(client.produce_ok("idem", 0, b2.clone()), 3, "second batch");
    for (what, batch, base) in [("second", &b2, 3), ("first (older)", &b1, 0)] {
        let retry = client.produce("idem", 0, batch.clone());
        assert_eq!(
            (retry.error_code, retry.base_offset),
            (code::NONE, base),
            "retry of the {what} batch: (error, base offset)"
        );
    }
    assert_eq!(client.log_end_offset("idem", 0), 5);

    let data = client.fetch("idem", 0, 0);
    let fetched = raw_batches(data.records.as_ref().unwrap());
    assert_eq!(fetched.len(), 2, "exactly two batches in the log");
    assert_batch_bytes_eq(&fetched[0], &b1, 0, "first idempotent batch");
    assert_batch_bytes_eq(&fetched[1], &b2, 3, "second idempotent batch");
    let info = RecordBatchDecoder::decode_batch_info(&mut data.records.clone().unwrap()).unwrap();
    assert_eq!(
        (
            info[1].producer_id,
            info[1].producer_epoch,
            info[1].base_sequence
        ),
        (pid, epoch, 3),
        "producer fields kept"
    );

    // Another producer's sequence numbers are independent.
    let (pid2, epoch2) = client.init_producer_id();
    assert_ne!(pid, pid2);
    assert_eq!(
        client.produce_ok(
            "idem",
            0,
            encode_idempotent_batch(&sample_records("p2", 1), pid2, epoch2, 0)
        ),
        5
    );
}

#[test]
fn sequence_gap_is_out_of_order() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("gap", 1);
    let (pid, epoch) = client.init_producer_id();
    assert_eq!(
        client.produce_ok(
            "gap",
            0,
            encode_idempotent_batch(&sample_records("a", 2), pid, epoch, 0)
        ),
        0
    );
    for seq in [3, 10, 1000] {
        let p = client.produce(
            "gap",
            0,
            encode_idempotent_batch(&sample_records("gap", 1), pid, epoch, seq),
        );
        assert_eq!(
            p.error_code,
            code::OUT_OF_ORDER_SEQUENCE_NUMBER,
            "sequence {seq} after 0..=1"
        );
        assert_eq!(
            client.log_end_offset("gap", 0),
            2,
            "log end offset after rejected sequence {seq}"
        );
    }
    assert_eq!(
        client.produce_ok(
            "gap",
            0,
            encode_idempotent_batch(&sample_records("b", 1), pid, epoch, 2)
        ),
        2,
        "the expected sequence 2 still works"
    );
}

#[test]
fn duplicate_detection_survives_restart() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("idem-restart", 1);
    let (pid, epoch) = client.init_producer_id();
    let batch = encode_idempotent_batch(&sample_records("r", 4), pid, epoch, 0);
    assert_eq!(client.produce_ok("idem-restart", 0, batch.clone()), 0);
    drop(client);
    broker.restart();
    let mut client = broker.client();
    let retry = client.produce("idem-restart", 0, batch);
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (code::NONE, 0),
        "retry after restart: (error, base offset)"
    );
    assert_eq!(
        client.log_end_offset("idem-restart", 0),
        4,
        "no duplicate after restart"
    );
    let next = encode_idempotent_batch(&sample_records("s", 1), pid, epoch, 4);
    assert_eq!(
        client.produce_ok("idem-restart", 0, next),
        4,
        "next sequence after restart"
    );
}
