//! Produce (0) batch validation: poison batches (undecodable compressed payloads, unknown
//! codecs, control and transactional batches, record counts that lie, bad offset deltas,
//! lying record lengths, trailing bytes) are refused with Kafka's error code and leave
//! the log untouched; valid batches produced after them read back byte for byte, and
//! ListOffsets by timestamp finds records inside a compressed batch.

use std::io::Write;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchEncoder, RecordEncodeOptions};
use protocol_tests::*;

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push(u as u8 | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// One encoded record: attributes 0, the deltas, key, value, no headers.
fn raw_record(offset_delta: i64, ts_delta: i64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut body = vec![0u8];
    varint(&mut body, ts_delta);
    varint(&mut body, offset_delta);
    varint(&mut body, key.len() as i64);
    body.extend_from_slice(key);
    varint(&mut body, value.len() as i64);
    body.extend_from_slice(value);
    varint(&mut body, 0);
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend(body);
    out
}

/// A magic-2 batch with the given header fields around `payload`, CRC correct.
fn raw_batch(attributes: i16, count: i32, last_delta: i32, ts: i64, payload: &[u8]) -> Bytes {
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&last_delta.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Every poison kind with the error code Kafka answers for it.
fn poison_cases(ts: i64) -> Vec<(&'static str, Bytes, i16)> {
    let one = raw_record(0, 0, b"k", b"v");
    let garbage = b"this payload was never compressed by anything at all".repeat(2);
    let mut two_bad_delta = one.clone();
    two_bad_delta.extend(raw_record(7, 0, b"k", b"v"));
    let mut longer = one.clone();
    longer[0] += 2 * 3; // the record claims 3 bytes more than its fields
    longer.extend_from_slice(&[0, 0, 0]);
    let mut huge_first = Vec::new();
    varint(&mut huge_first, i32::MAX as i64); // the first record claims 2^31-1 bytes
    huge_first.extend_from_slice(&one[1..]);
    let mut trailing = one.clone();
    trailing.extend_from_slice(&[0, 0, 0, 0]);
    vec![
        ("garbage gzip payload", raw_batch(1, 1, 0, ts, &garbage), code::CORRUPT_MESSAGE),
        ("garbage snappy payload", raw_batch(2, 1, 0, ts, &garbage), code::CORRUPT_MESSAGE),
        ("garbage lz4 payload", raw_batch(3, 1, 0, ts, &garbage), code::CORRUPT_MESSAGE),
        ("garbage zstd payload", raw_batch(4, 1, 0, ts, &garbage), code::CORRUPT_MESSAGE),
        ("truncated gzip payload", raw_batch(1, 1, 0, ts, &gzip(&one)[..15]), code::CORRUPT_MESSAGE),
        ("codec 5", raw_batch(5, 1, 0, ts, &one), code::INVALID_RECORD),
        ("codec 6", raw_batch(6, 1, 0, ts, &one), code::INVALID_RECORD),
        ("codec 7", raw_batch(7, 1, 0, ts, &one), code::INVALID_RECORD),
        ("control batch", raw_batch(0x20, 1, 0, ts, &one), code::INVALID_RECORD),
        ("transactional batch without a producer id", raw_batch(0x10, 1, 0, ts, &one), code::INVALID_RECORD),
        ("header-only batch claiming 2^31-1 records", raw_batch(0, i32::MAX, i32::MAX - 1, ts, &[]), code::INVALID_RECORD),
        ("gzip batch claiming 2^31-1 records", raw_batch(1, i32::MAX, i32::MAX - 1, ts, &gzip(&one)), code::INVALID_RECORD),
        ("more records declared than present", raw_batch(0, 2, 1, ts, &one), code::INVALID_RECORD),
        ("offset delta 7 for record 1", raw_batch(0, 2, 1, ts, &two_bad_delta), code::INVALID_RECORD),
        ("record length longer than its fields", raw_batch(0, 1, 0, ts, &longer), code::INVALID_RECORD),
        ("first record claims 2^31-1 bytes", raw_batch(0, 1, 0, ts, &huge_first), code::INVALID_RECORD),
        ("trailing bytes after the last record", raw_batch(0, 1, 0, ts, &trailing), code::INVALID_RECORD),
        ("trailing bytes inside gzip", raw_batch(1, 1, 0, ts, &gzip(&trailing)), code::INVALID_RECORD),
    ]
}

#[test]
fn poison_batches_are_refused_and_the_log_does_not_move() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("poison", 1);
    let ts = now_ms() - 10_000;
    for (what, batch, expected) in poison_cases(ts) {
        let p = client.produce("poison", 0, batch);
        assert_eq!(p.error_code, expected, "{what}: error code ({:?})", p.error_message);
        assert_eq!(p.base_offset, -1, "{what}: base offset");
        assert_eq!(client.log_end_offset("poison", 0), 0, "{what}: log end offset must not move");
    }
    // A valid batch after all of them lands at offset 0 and reads back byte for byte.
    let records = sample_records("after-poison", 4);
    let valid = encode_batch(&records);
    assert_eq!(client.produce_ok("poison", 0, valid.clone()), 0);
    assert_eq!(client.log_end_offset("poison", 0), 4);
    let data = client.fetch("poison", 0, 0);
    let fetched = raw_batches(data.records.as_ref().unwrap());
    assert_eq!(fetched.len(), 1, "only the valid batch is stored");
    assert_batch_bytes_eq(&fetched[0], &valid, 0, "valid batch after poison");
    assert_records_eq(&decode_records(&data.records), &records, 0, "valid batch after poison");
    broker_still_serves(&mut client);
}

fn broker_still_serves(client: &mut Client) {
    client.create_topic("alive", 1);
    assert_eq!(client.produce_ok("alive", 0, encode_batch(&sample_records("alive", 1))), 0);
}

/// Kafka-protocol's encoder with a real gzip compressor.
fn encode_gzip_batch(records: &[kafka_protocol::records::Record]) -> Bytes {
    let records: Vec<_> = records
        .iter()
        .enumerate()
        // Sequences as the encoder expects for one batch (see produce.rs).
        .map(|(i, r)| kafka_protocol::records::Record { offset: i as i64, sequence: i as i32 - 1, ..r.clone() })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions { version: 2, compression: Compression::Gzip };
    let compressor = |plain: &mut BytesMut, out: &mut BytesMut, _: Compression| -> anyhow::Result<()> {
        out.extend_from_slice(&gzip(plain));
        Ok(())
    };
    RecordBatchEncoder::encode_with_custom_compression(&mut buf, &records, &options, Some(compressor)).unwrap();
    buf.freeze()
}

#[test]
fn list_offsets_by_timestamp_finds_records_inside_compressed_batches() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("ts", 1);
    let t0 = now_ms() - 60_000;
    let rec = |ts: i64, v: &str| record(Some(b"k"), Some(v.as_bytes()), &[], ts);
    let plain = vec![rec(t0, "a"), rec(t0 + 1, "b")];
    let zipped = vec![rec(t0 + 100, "c"), rec(t0 + 500, "d"), rec(t0 + 200, "e")];
    client.produce_ok("ts", 0, encode_batch(&plain));
    let gz = encode_gzip_batch(&zipped);
    assert_eq!(raw_batches(&gz).len(), 1, "one gzip batch");
    assert_eq!(client.produce_ok("ts", 0, gz.clone()), 2);
    let data = client.fetch("ts", 0, 2);
    assert_batch_bytes_eq(&raw_batches(data.records.as_ref().unwrap())[0], &gz, 2, "gzip batch");
    for (query, offset, found_ts) in [
        (t0, 0, t0),
        (t0 + 1, 1, t0 + 1),
        (t0 + 2, 2, t0 + 100),
        (t0 + 150, 3, t0 + 500),
        (t0 + 500, 3, t0 + 500),
    ] {
        let (err, o, t) = client.list_offset("ts", 0, query);
        assert_eq!((err, o, t), (code::NONE, offset, found_ts), "ListOffsets ts={query} (t0+{})", query - t0);
    }
    assert_eq!(client.list_offset("ts", 0, t0 + 501), (code::NONE, -1, -1), "after every record");
    assert_eq!(client.list_offset("ts", 0, -3), (code::NONE, 3, t0 + 500), "max timestamp");
}
