//! Record walking, validation and re-encoding tests.

use std::io::Write;

use bytes::BytesMut;

use super::*;
use crate::storage::batch::{self, split_and_validate, validate_records, LOG_OVERHEAD};

/// Appends `v` as a zigzag varint.
pub fn varint(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push(u as u8 | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn bytes_field(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        Some(b) => {
            varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
        None => varint(out, -1),
    }
}

/// One encoded record (length prefix included).
pub fn record(offset_delta: i64, ts_delta: i64, key: Option<&[u8]>, value: Option<&[u8]>, headers: &[(&[u8], Option<&[u8]>)]) -> Vec<u8> {
    let mut body = vec![0u8];
    varint(&mut body, ts_delta);
    varint(&mut body, offset_delta);
    bytes_field(&mut body, key);
    bytes_field(&mut body, value);
    varint(&mut body, headers.len() as i64);
    for (k, v) in headers {
        bytes_field(&mut body, Some(k));
        bytes_field(&mut body, *v);
    }
    let mut out = Vec::new();
    varint(&mut out, body.len() as i64);
    out.extend_from_slice(&body);
    out
}

/// A batch around `payload` with the given header fields, CRC set.
pub fn build(attributes: i16, count: i32, last_delta: i32, base_ts: i64, max_ts: i64, payload: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&[2]);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&last_delta.to_be_bytes());
    b.extend_from_slice(&base_ts.to_be_bytes());
    b.extend_from_slice(&max_ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Codecs to build: 0-4 as Kafka numbers them, 5 = snappy in the xerial framing.
pub const XERIAL: u8 = 5;

/// `raw` compressed with `codec` (see [`XERIAL`]).
pub fn compress(codec: u8, raw: &[u8]) -> Vec<u8> {
    match codec {
        0 => raw.to_vec(),
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        2 => snap::raw::Encoder::new().compress_vec(raw).unwrap(),
        3 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(raw).unwrap();
            e.finish().unwrap()
        }
        4 => zstd_compress(raw, 3),
        XERIAL => {
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            for chunk in raw.chunks(32 * 1024) {
                let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        _ => unreachable!(),
    }
}

fn attributes(codec: u8) -> i16 {
    if codec == XERIAL {
        2
    } else {
        codec as i16
    }
}

/// Five varied records (null key, null value, headers, a 40 KiB value that spans
/// decoder buffers and xerial blocks, a negative timestamp delta).
pub fn sample_records() -> (Vec<u8>, i32, i64) {
    let big = vec![b'x'; 40 * 1024];
    let mut raw = Vec::new();
    raw.extend(record(0, 0, Some(b"k0"), Some(b"v0"), &[]));
    raw.extend(record(1, 5, None, Some(b"v1"), &[(b"h", Some(b"1")), (b"n", None)]));
    raw.extend(record(2, -3, Some(b"k2"), None, &[]));
    raw.extend(record(3, 9, Some(b"k3"), Some(&big), &[(b"", Some(b""))]));
    raw.extend(record(4, 2, Some(b""), Some(b""), &[]));
    (raw, 5, 9)
}

fn first_error(b: &BytesMut) -> BatchError {
    split_and_validate(b.clone().freeze()).expect_err("batch must be refused")
}

#[test]
fn valid_batches_of_every_codec_are_accepted_unchanged() {
    let (raw, count, max_delta) = sample_records();
    for codec in [0, 1, 2, 3, 4, XERIAL] {
        let b = build(attributes(codec), count, count - 1, 1000, 1000 + max_delta, &compress(codec, &raw));
        let parts = split_and_validate(b.clone().freeze()).unwrap_or_else(|e| panic!("codec {codec}: {e}"));
        assert_eq!(parts.len(), 1);
        assert_eq!(&parts[0].1[..], &b[..], "codec {codec}: stored bytes are the client's");
        let ts = batch::record_timestamps(&b).expect("walkable");
        assert_eq!(ts, vec![(0, 1000), (1, 1005), (2, 997), (3, 1009), (4, 1002)], "codec {codec}");
        assert_eq!(batch::keyless_records(&b), Some(vec![1]), "codec {codec}");
    }
}

#[test]
fn garbage_compressed_payloads_are_corrupt() {
    let garbage = b"this is not a compressed payload, only some text bytes".repeat(3);
    for codec in [1i16, 2, 3, 4] {
        let b = build(codec, 1, 0, 1000, 1000, &garbage);
        match first_error(&b) {
            BatchError::Decompression { codec: c, .. } => assert_eq!(c, codec),
            other => panic!("codec {codec}: {other:?}"),
        }
    }
    // The xerial header with a garbage block.
    let mut xerial = compress(XERIAL, b"");
    xerial.extend_from_slice(&(garbage.len() as u32).to_be_bytes());
    xerial.extend_from_slice(&garbage);
    assert!(matches!(first_error(&build(2, 1, 0, 1000, 1000, &xerial)), BatchError::Decompression { codec: 2, .. }));
    // A valid stream cut short.
    let (raw, count, max_delta) = sample_records();
    for codec in [1, 3, 4, XERIAL] {
        let mut z = compress(codec, &raw);
        z.truncate(z.len() - 7);
        let e = first_error(&build(attributes(codec), count, count - 1, 1000, 1000 + max_delta, &z));
        assert!(matches!(e, BatchError::Decompression { .. }), "codec {codec}: {e:?}");
    }
}

#[test]
fn unknown_codecs_control_and_transactional_batches_are_refused() {
    let raw = record(0, 0, Some(b"k"), Some(b"v"), &[]);
    for codec in [5i16, 6, 7] {
        assert_eq!(first_error(&build(codec, 1, 0, 1000, 1000, &raw)), BatchError::UnknownCodec(codec));
    }
    assert_eq!(first_error(&build(0x20, 1, 0, 1000, 1000, &raw)), BatchError::ControlBatch);
    assert_eq!(first_error(&build(0x10, 1, 0, 1000, 1000, &raw)), BatchError::TransactionalBatch);
}

#[test]
fn record_count_must_match_the_records_for_every_codec() {
    // A header-only batch claiming 2^31-1 records.
    let b = build(0, i32::MAX, i32::MAX - 1, 1000, 1000, &[]);
    assert_eq!(first_error(&b), BatchError::RecordCountMismatch { declared: i32::MAX, found: 0 });
    let (raw, count, max_delta) = sample_records();
    for codec in [0, 1, 2, 3, 4, XERIAL] {
        let payload = compress(codec, &raw);
        let b = build(attributes(codec), count + 1, count, 1000, 1000 + max_delta, &payload);
        assert_eq!(first_error(&b), BatchError::RecordCountMismatch { declared: count + 1, found: count }, "codec {codec}");
        let b = build(attributes(codec), i32::MAX, i32::MAX - 1, 1000, 1000, &compress(codec, &[]));
        assert_eq!(first_error(&b), BatchError::RecordCountMismatch { declared: i32::MAX, found: 0 }, "codec {codec}");
        let b = build(attributes(codec), count - 1, count - 2, 1000, 1000 + max_delta, &payload);
        assert_eq!(first_error(&b), BatchError::TrailingBytes { declared: count - 1 }, "codec {codec}");
        // lastOffsetDelta must be count - 1 whatever the codec.
        let b = build(attributes(codec), count, count + 3, 1000, 1000 + max_delta, &payload);
        assert_eq!(
            first_error(&b),
            BatchError::InvalidRecordCount { count, last_offset_delta: count + 3 },
            "codec {codec}"
        );
    }
}

#[test]
fn offset_deltas_must_be_the_record_index() {
    let mut raw = record(0, 0, None, Some(b"a"), &[]);
    raw.extend(record(5, 0, None, Some(b"b"), &[]));
    for codec in [0, 3] {
        let b = build(attributes(codec), 2, 1, 1000, 1000, &compress(codec, &raw));
        assert_eq!(first_error(&b), BatchError::OffsetDelta { index: 1, delta: 5 });
    }
}

#[test]
fn lying_record_lengths_and_fields_are_refused() {
    let good = record(0, 0, Some(b"key"), Some(b"value"), &[(b"h", Some(b"v"))]);
    let invalid = |payload: &[u8]| first_error(&build(0, 1, 0, 1000, 1000, payload));
    // Length larger than the fields (the record then swallows what follows).
    let mut longer = good.clone();
    longer[0] += 2 * 2;
    longer.extend_from_slice(&[0, 0]);
    assert!(matches!(invalid(&longer), BatchError::InvalidRecord { index: 0, .. }), "{:?}", invalid(&longer));
    // Length smaller than the fields.
    let mut shorter = good.clone();
    shorter[0] -= 2 * 3;
    assert!(matches!(invalid(&shorter), BatchError::InvalidRecord { index: 0, .. }));
    // Length running past the end of the batch.
    let mut past = good.clone();
    past[0] = 0x7e; // 63 bytes
    assert!(matches!(invalid(&past), BatchError::InvalidRecord { index: 0, .. }));
    // A first record claiming 2^31-1 bytes in a tiny batch.
    let mut huge = Vec::new();
    varint(&mut huge, i32::MAX as i64);
    huge.extend_from_slice(&good[1..]);
    assert!(matches!(invalid(&huge), BatchError::InvalidRecord { index: 0, .. }));
    // Key and value lengths below -1, negative header count and header key length.
    for (key, value, headers, hkey) in [(-2i64, 1i64, 0i64, 0i64), (-1, -5, 0, 0), (-1, -1, -1, 0), (-1, -1, 1, -1)] {
        let mut body = vec![0u8, 0, 0];
        varint(&mut body, key);
        varint(&mut body, value);
        if value > 0 {
            body.push(b'v');
        }
        varint(&mut body, headers);
        if headers > 0 {
            varint(&mut body, hkey);
            varint(&mut body, -1);
        }
        let mut rec = Vec::new();
        varint(&mut rec, body.len() as i64);
        rec.extend(body);
        assert!(matches!(invalid(&rec), BatchError::InvalidRecord { index: 0, .. }), "{key} {value} {headers} {hkey}");
    }
    // An overlong varint.
    let mut overlong = vec![0x14u8, 0];
    overlong.extend_from_slice(&[0xff; 11]);
    assert!(matches!(invalid(&overlong), BatchError::InvalidRecord { index: 0, .. }));
}

#[test]
fn trailing_bytes_after_the_last_record_are_refused() {
    let mut raw = record(0, 0, Some(b"k"), Some(b"v"), &[]);
    raw.push(0);
    assert_eq!(first_error(&build(0, 1, 0, 1000, 1000, &raw)), BatchError::TrailingBytes { declared: 1 });
    assert_eq!(first_error(&build(4, 1, 0, 1000, 1000, &compress(4, &raw))), BatchError::TrailingBytes { declared: 1 });
}

#[test]
fn timestamp_overflow_is_refused_and_max_timestamp_is_the_records() {
    let raw = record(0, 1, Some(b"k"), Some(b"v"), &[]);
    assert_eq!(first_error(&build(0, 1, 0, i64::MAX, i64::MAX, &raw)), BatchError::TimestampOverflow { index: 0 });
    // A CreateTime batch whose header max timestamp disagrees is stored with the records' max, as Kafka does.
    let parts = split_and_validate(build(0, 1, 0, 1000, 5, &raw).freeze()).unwrap();
    assert_eq!(parts[0].0.max_timestamp, 1001);
    assert_eq!(batch::validate(&parts[0].1).unwrap().max_timestamp, 1001, "crc still valid");
}

#[test]
fn decompression_bombs_stop_at_the_bound() {
    let zeros = vec![0u8; 4 << 20];
    let raw = record(0, 0, None, Some(&zeros), &[]);
    for codec in [1, 3, 4, XERIAL, 2] {
        let b = build(attributes(codec), 1, 0, 1000, 1000, &compress(codec, &raw));
        let header = batch::validate(&b).unwrap();
        assert_eq!(
            validate_records(&b, &header, 1 << 20),
            Err(BatchError::DecompressedTooLarge { limit: 1 << 20 }),
            "codec {codec}"
        );
        assert!(validate_records(&b, &header, 8 << 20).is_ok(), "codec {codec} within the bound");
    }
}

#[test]
fn poisoned_stored_batches_do_not_panic_list_offsets() {
    use crate::storage::{Store, StoreOptions, TopicStore};
    // The first record claims more bytes than the batch holds (as an older broker stored it).
    let mut raw = Vec::new();
    varint(&mut raw, 500);
    raw.extend_from_slice(&[0, 0, 0, 1, 1]);
    let poisoned = build(0, 3, 2, 1000, 2000, &raw);
    assert_eq!(batch::record_timestamps(&poisoned), None);
    assert_eq!(batch::keyless_records(&poisoned), None);
    // Every prefix and every corruption of a valid batch is walked without panicking.
    let (raw, count, max_delta) = sample_records();
    for codec in [0, 1, 2, 3, 4, XERIAL] {
        let b = build(attributes(codec), count, count - 1, 1000, 1000 + max_delta, &compress(codec, &raw));
        for cut in (HEADER_LEN..b.len()).step_by(97) {
            let _ = batch::record_timestamps(&b[..cut]);
            let mut flipped = b.clone();
            flipped[cut] ^= 0x5a;
            let _ = batch::record_timestamps(&flipped);
            let _ = batch::keyless_records(&flipped);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 4 };
    let store = Store::open(dir.path(), &opts).unwrap();
    let topics = TopicStore::load(store).unwrap();
    let t = topics.create("poison", 1, Default::default()).unwrap();
    let log = t.partition(0).unwrap();
    let header = batch::BatchHeader::parse(&poisoned).unwrap();
    log.append(vec![(header, poisoned.clone())], false).unwrap();
    let good = build(0, 1, 0, 3000, 3000, &record(0, 0, Some(b"k"), Some(b"v"), &[]));
    log.append(split_and_validate(good.freeze()).unwrap(), false).unwrap();
    assert_eq!(log.offset_for_timestamp(1500).unwrap(), Some((0, 2000)), "poisoned batch answered from its header");
    assert_eq!(log.offset_for_timestamp(2500).unwrap(), Some((3, 3000)));
    assert_eq!(log.max_timestamp().unwrap(), Some((3, 3000)));
}
