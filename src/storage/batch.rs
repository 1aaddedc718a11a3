//! Record batch (magic v2) framing: validation and the two in-place rewrites the
//! broker makes (base offset and partition leader epoch). Records are walked (see
//! [`super::records`]) to validate them but never re-encoded; both rewritten fields
//! lie outside the CRC-covered range.

use bytes::{Bytes, BytesMut};

use super::records;

/// Size of the v2 batch header up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` counts: base offset (8) and the length itself (4).
pub const LOG_OVERHEAD: usize = 12;
const CRC_START: usize = 21;

/// Why a record batch was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// The produce request carried no records.
    #[error("no records")]
    Empty,
    /// The bytes end before the batch header or the length it declares.
    #[error("batch truncated: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the header says the batch has.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// The batch length field is negative or smaller than a header.
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    /// Only magic 2 batches are accepted.
    #[error("unsupported magic {0}")]
    UnsupportedMagic(i8),
    /// The CRC-32C over attributes..end does not match the header.
    #[error("crc mismatch: header {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC in the header.
        stored: u32,
        /// CRC computed over the bytes.
        computed: u32,
    },
    /// Record count and last offset delta disagree, or the count is not positive.
    #[error("record count {count} does not match last offset delta {last_offset_delta}")]
    InvalidRecordCount {
        /// Records the header declares.
        count: i32,
        /// The header's last offset delta.
        last_offset_delta: i32,
    },
    /// The compression codec id is not one Kafka defines (5, 6 and 7 fit the bits).
    #[error("unknown compression codec id {0}")]
    UnknownCodec(i16),
    /// A client sent a control batch; only the broker writes those.
    #[error("clients are not allowed to write control batches")]
    ControlBatch,
    /// A transactional batch without a producer id (a transaction needs one).
    #[error("transactional batch without a producer id")]
    TransactionalBatch,
    /// The batches of one partition mix transactional and other batches, or several
    /// producers (a transaction is checked once per partition of a produce).
    #[error("transactional batches of one produce must all belong to one producer")]
    MixedTransactionalBatches,
    /// The compressed records do not decode.
    #[error("cannot decompress records (codec {codec}): {reason}")]
    Decompression {
        /// Codec id from the attributes.
        codec: i16,
        /// What the decoder said.
        reason: String,
    },
    /// The compressed records expand beyond the bound (a decompression bomb).
    #[error("records decompress to more than {limit} bytes")]
    DecompressedTooLarge {
        /// The bound, in decompressed bytes.
        limit: u64,
    },
    /// The records end before the declared record count.
    #[error("batch declares {declared} records but holds {found}")]
    RecordCountMismatch {
        /// Records the header declares.
        declared: i32,
        /// Complete records present.
        found: i32,
    },
    /// Bytes follow the last declared record.
    #[error("bytes remain after the {declared} declared records")]
    TrailingBytes {
        /// Records the header declares.
        declared: i32,
    },
    /// A record's fields do not parse or disagree with its length.
    #[error("record {index} is invalid: {reason}")]
    InvalidRecord {
        /// Position of the record in the batch.
        index: i32,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Record `index` does not carry offset delta `index`.
    #[error("record {index} has offset delta {delta}")]
    OffsetDelta {
        /// Position of the record in the batch.
        index: i32,
        /// The offset delta it carries.
        delta: i64,
    },
    /// The batch's base timestamp plus a record's delta overflows.
    #[error("record {index}: timestamp overflows")]
    TimestampOverflow {
        /// Position of the record in the batch.
        index: i32,
    },
}

/// Kafka's default `max.message.bytes`, used when no topic setting is at hand.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// How far the records of a batch may expand when decompressed, as a multiple of the
/// topic's `max.message.bytes` (with that at least 1 MiB). Real data compresses far
/// less; more is treated as a decompression bomb.
pub const MAX_EXPANSION: u64 = 64;

/// The decompressed-size bound for a topic whose `max.message.bytes` is `max_message_bytes`.
pub fn max_uncompressed(max_message_bytes: usize) -> u64 {
    (max_message_bytes.max(1 << 20) as u64).saturating_mul(MAX_EXPANSION)
}

/// The fields of a v2 batch header that the broker looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record.
    pub base_offset: i64,
    /// Length of the batch after the length field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker.
    pub partition_leader_epoch: i32,
    /// Format magic (2).
    pub magic: i8,
    /// CRC-32C of attributes..end.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records.
    pub record_count: i32,
}

impl BatchHeader {
    /// Reads the header from the start of `buf` (no CRC check).
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated { needed: HEADER_LEN, available: buf.len() });
        }
        let i64_at = |o: usize| i64::from_be_bytes(buf[o..o + 8].try_into().unwrap());
        let i32_at = |o: usize| i32::from_be_bytes(buf[o..o + 4].try_into().unwrap());
        let i16_at = |o: usize| i16::from_be_bytes(buf[o..o + 2].try_into().unwrap());
        Ok(BatchHeader {
            base_offset: i64_at(0),
            batch_length: i32_at(8),
            partition_leader_epoch: i32_at(12),
            magic: buf[16] as i8,
            crc: i32_at(17) as u32,
            attributes: i16_at(21),
            last_offset_delta: i32_at(23),
            base_timestamp: i64_at(27),
            max_timestamp: i64_at(35),
            producer_id: i64_at(43),
            producer_epoch: i16_at(51),
            base_sequence: i32_at(53),
            record_count: i32_at(57),
        })
    }

    /// Total bytes of the batch including the offset and length fields.
    pub fn total_len(&self) -> usize {
        (self.batch_length.max(0) as usize).saturating_add(LOG_OVERHEAD)
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Sequence of the last record (sequences wrap at i32::MAX).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return -1;
        }
        ((self.base_sequence as i64 + self.last_offset_delta as i64) % (i32::MAX as i64 + 1)) as i32
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }

    /// True when the batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & 0x10 != 0
    }

    /// True for a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & 0x20 != 0
    }

    /// True when the producer asked for idempotence.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
}

/// Splits the records of one partition of a produce request into validated batches
/// (framing and every record), for a topic with the default `max.message.bytes`.
pub fn split_and_validate(records: Bytes) -> Result<Vec<(BatchHeader, BytesMut)>, BatchError> {
    split_and_validate_for(records, DEFAULT_MAX_MESSAGE_BYTES)
}

/// Splits the records of one partition of a produce request into validated batches:
/// framing, CRC, codec, control and transactional bits, then every record (see
/// [`validate_records`]); `max_message_bytes` is the topic's setting, which bounds
/// how far compressed records may expand.
pub fn split_and_validate_for(records: Bytes, max_message_bytes: usize) -> Result<Vec<(BatchHeader, BytesMut)>, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Empty);
    }
    let limit = max_uncompressed(max_message_bytes);
    let mut out = Vec::with_capacity(1);
    let mut rest = records;
    while !rest.is_empty() {
        let mut header = validate(&rest)?;
        let max_timestamp = validate_records(&rest[..header.total_len()], &header, limit)?;
        let mut batch = BytesMut::from(rest.split_to(header.total_len()));
        // As Kafka does, a CreateTime batch's max timestamp is the largest record
        // timestamp (clients always send that; the header is set right if not).
        if header.attributes & 0x08 == 0 && header.max_timestamp != max_timestamp {
            batch[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
            let crc = crc32c::crc32c(&batch[CRC_START..]);
            batch[17..21].copy_from_slice(&crc.to_be_bytes());
            header = BatchHeader::parse(&batch)?;
        }
        out.push((header, batch));
    }
    Ok(out)
}

/// Checks what a client may not send (unknown codec, control batches, transactional
/// batches without a producer id) and walks every record of a batch that passed [`validate`]; returns the
/// largest record timestamp. `max_uncompressed` bounds decompressed bytes.
pub fn validate_records(batch: &[u8], header: &BatchHeader, max_uncompressed: u64) -> Result<i64, BatchError> {
    if header.compression() > 4 {
        return Err(BatchError::UnknownCodec(header.compression()));
    }
    if header.is_control() {
        return Err(BatchError::ControlBatch);
    }
    if header.is_transactional() && !header.has_producer_id() {
        return Err(BatchError::TransactionalBatch);
    }
    Ok(records::walk(batch, header, max_uncompressed, |_| {})?.max_timestamp)
}

/// Validates the batch at the start of `buf`: magic, length, record count and CRC.
pub fn validate(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    // As a producer sends it: one record per offset of its range.
    validate_frame(buf, |h| h.record_count > 0 && h.record_count - 1 == h.last_offset_delta)
}

/// Magic, length, CRC, and a record count `count_ok` accepts (with a non-negative
/// last offset delta).
fn validate_frame(buf: &[u8], count_ok: impl Fn(&BatchHeader) -> bool) -> Result<BatchHeader, BatchError> {
    if buf.len() < 17 {
        return Err(BatchError::Truncated { needed: HEADER_LEN, available: buf.len() });
    }
    let magic = buf[16] as i8;
    if magic != 2 {
        return Err(BatchError::UnsupportedMagic(magic));
    }
    let header = BatchHeader::parse(buf)?;
    if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
        return Err(BatchError::InvalidLength(header.batch_length));
    }
    if header.total_len() > buf.len() {
        return Err(BatchError::Truncated { needed: header.total_len(), available: buf.len() });
    }
    if header.last_offset_delta < 0 || !count_ok(&header) {
        return Err(BatchError::InvalidRecordCount { count: header.record_count, last_offset_delta: header.last_offset_delta });
    }
    let computed = crc32c::crc32c(&buf[CRC_START..header.total_len()]);
    if computed != header.crc {
        return Err(BatchError::CrcMismatch { stored: header.crc, computed });
    }
    Ok(header)
}

/// Rewrites the base offset and partition leader epoch in place (outside the CRC range).
pub fn assign(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Base offset and last offset of a stored batch (whose header is trusted).
pub fn offsets_of(stored: &[u8]) -> (i64, i64) {
    let base = i64::from_be_bytes(stored[0..8].try_into().unwrap());
    let delta = i32::from_be_bytes(stored[23..27].try_into().unwrap());
    (base, base + delta as i64)
}

/// Offsets and timestamps of the records of a stored batch, in order; None if its
/// records cannot be walked (data written by an older broker may be anything).
pub fn record_timestamps(stored: &[u8]) -> Option<Vec<(i64, i64)>> {
    let header = BatchHeader::parse(stored).ok()?;
    let mut out = Vec::with_capacity(header.record_count.clamp(0, 1024) as usize);
    let limit = max_uncompressed(DEFAULT_MAX_MESSAGE_BYTES.max(stored.len()));
    records::walk_stored(stored, &header, limit, |r| out.push((header.base_offset + r.offset_delta as i64, r.timestamp))).ok()?;
    Some(out)
}

/// Indexes (within the batch) of the records that have no key, or None if the
/// batch's records cannot be walked.
pub fn keyless_records(stored: &[u8]) -> Option<Vec<i32>> {
    let header = BatchHeader::parse(stored).ok()?;
    let mut out = Vec::new();
    let limit = max_uncompressed(DEFAULT_MAX_MESSAGE_BYTES.max(stored.len()));
    records::walk(stored, &header, limit, |r| {
        if r.key_len < 0 {
            out.push(r.index)
        }
    })
    .ok()?;
    Some(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An uncompressed batch of `count` records with 1-byte values, CRC set.
    pub fn sample_batch(count: i32, producer_id: i64, base_sequence: i32) -> BytesMut {
        let mut records = Vec::new();
        for i in 0..count {
            // length, attributes, timestampDelta, offsetDelta, keyLen(-1), valueLen(1), value, headers(0)
            let body = [0u8, (i * 2) as u8, (i * 2) as u8, 1, 2, b'a' + i as u8, 0];
            records.push(body.len() as u8 * 2);
            records.extend_from_slice(&body);
        }
        let mut b = BytesMut::new();
        b.extend_from_slice(&0i64.to_be_bytes());
        b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&[2]);
        b.extend_from_slice(&0u32.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(count - 1).to_be_bytes());
        b.extend_from_slice(&1000i64.to_be_bytes());
        b.extend_from_slice(&(1000i64 + count as i64 - 1).to_be_bytes());
        b.extend_from_slice(&producer_id.to_be_bytes());
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&base_sequence.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(&records);
        let crc = crc32c::crc32c(&b[CRC_START..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    #[test]
    fn valid_batch_passes_and_assign_keeps_crc() {
        let mut b = sample_batch(3, -1, -1);
        let h = validate(&b).unwrap();
        assert_eq!(h.record_count, 3);
        assign(&mut b, 42, 7);
        let h2 = validate(&b).unwrap();
        assert_eq!((h2.base_offset, h2.partition_leader_epoch), (42, 7));
        assert_eq!(offsets_of(&b), (42, 44));
    }

    #[test]
    fn corrupt_crc_is_rejected() {
        let mut b = sample_batch(2, -1, -1);
        let last = b.len() - 1;
        b[last] ^= 0xff;
        assert!(matches!(validate(&b), Err(BatchError::CrcMismatch { .. })));
    }

    #[test]
    fn truncated_and_bad_magic_are_rejected() {
        let b = sample_batch(2, -1, -1);
        assert!(matches!(validate(&b[..b.len() - 1]), Err(BatchError::Truncated { .. })));
        assert!(matches!(validate(&b[..10]), Err(BatchError::Truncated { .. })));
        let mut m = b.clone();
        m[16] = 1;
        assert_eq!(validate(&m), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn several_batches_split() {
        let mut both = sample_batch(2, -1, -1);
        both.extend_from_slice(&sample_batch(1, -1, -1));
        let parts = split_and_validate(both.freeze()).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1].0.record_count, 1);
    }

    #[test]
    fn keyless_records_are_found() {
        assert_eq!(keyless_records(&sample_batch(3, -1, -1)), Some(vec![0, 1, 2]));
        let mut compressed = sample_batch(1, -1, -1);
        compressed[22] = 1; // attributes: gzip
        assert_eq!(keyless_records(&compressed), None);
    }

    #[test]
    fn record_timestamps_walks_records() {
        let mut b = sample_batch(3, -1, -1);
        assign(&mut b, 10, 0);
        assert_eq!(record_timestamps(&b).unwrap(), vec![(10, 1000), (11, 1001), (12, 1002)]);
    }

    #[test]
    fn sequences_wrap() {
        let mut b = sample_batch(3, 5, i32::MAX - 1);
        let h = validate(&b).unwrap();
        assert_eq!(h.last_sequence(), 0);
        assign(&mut b, 0, 0);
    }
}

/// Total records in a run of stored batches (headers only).
pub fn count_records(mut batches: &[u8]) -> u64 {
    let mut total = 0u64;
    while batches.len() >= HEADER_LEN {
        let len = LOG_OVERHEAD + i32::from_be_bytes(batches[8..12].try_into().unwrap()).max(0) as usize;
        total += i32::from_be_bytes(batches[57..61].try_into().unwrap()).max(0) as u64;
        batches = &batches[len.min(batches.len())..];
    }
    total
}

/// Stamps a batch with the broker's clock (LogAppendTime topics): sets the
/// timestamp-type bit and the max timestamp, then recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 0x08;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let len = LOG_OVERHEAD + i32::from_be_bytes(batch[8..12].try_into().unwrap()) as usize;
    let crc = crc32c::crc32c(&batch[CRC_START..len]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Attribute bit of a batch whose base timestamp is the delete horizon that log
/// compaction stamped on it (KIP-534): its tombstones go once the horizon has passed.
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

/// [`validate`] for a batch as the broker stores it, which log compaction may have
/// left with fewer records than its offset range (even none, a producer's last
/// batch): the record count must lie in `0..=lastOffsetDelta + 1`.
pub fn validate_stored(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_frame(buf, |h| h.record_count >= 0 && h.record_count as i64 <= h.last_offset_delta as i64 + 1)
}

/// [`split_and_validate_for`] for stored (possibly compacted) batches: framing, CRC and
/// every record, offset gaps allowed (see [`records::walk_stored`]).
pub fn split_and_validate_stored(records: Bytes, max_message_bytes: usize) -> Result<Vec<(BatchHeader, BytesMut)>, BatchError> {
    let limit = max_uncompressed(max_message_bytes);
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let header = validate_stored(&rest)?;
        if header.compression() > 4 {
            return Err(BatchError::UnknownCodec(header.compression()));
        }
        records::walk_stored(&rest[..header.total_len()], &header, limit, |_| {})?;
        out.push((header, BytesMut::from(rest.split_to(header.total_len()))));
    }
    Ok(out)
}

/// Attributes of a control batch: transactional and control bits, no compression.
const CONTROL_ATTRIBUTES: i16 = 0x10 | 0x20;

/// Builds a transaction marker: a control batch of one record whose key is Kafka's
/// `ControlRecordType` (version 0, type 0 = ABORT, 1 = COMMIT) and whose value is the
/// `EndTransactionMarker` (version 0, coordinator epoch), written by the broker (never
/// accepted from a client) into each partition of a transaction when it ends.
pub fn control_batch(producer_id: i64, producer_epoch: i16, commit: bool, coordinator_epoch: i32, timestamp: i64) -> (BatchHeader, BytesMut) {
    let key = [0u8, 0, 0, commit as u8];
    let mut value = [0u8; 6];
    value[2..6].copy_from_slice(&coordinator_epoch.to_be_bytes());
    // Record: attributes, timestamp delta 0, offset delta 0, key, value, 0 headers.
    let mut record = vec![0u8, 0, 0];
    record.push((key.len() as u8) << 1);
    record.extend_from_slice(&key);
    record.push((value.len() as u8) << 1);
    record.extend_from_slice(&value);
    record.push(0);
    let mut b = BytesMut::with_capacity(HEADER_LEN + 1 + record.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + 1 + record.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&[2]);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&CONTROL_ATTRIBUTES.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&[(record.len() as u8) << 1]);
    b.extend_from_slice(&record);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let header = BatchHeader::parse(&b).expect("a whole header was written");
    (header, b)
}

/// Whether a stored control batch is a COMMIT marker (None: not a control batch, or
/// its key is not a `ControlRecordType`).
pub fn marker_is_commit(stored: &[u8]) -> Option<bool> {
    let header = BatchHeader::parse(stored).ok()?;
    if !header.is_control() || header.compression() != 0 {
        return None;
    }
    // length, attributes, timestamp delta, offset delta, key length (all one byte here).
    let key = stored.get(HEADER_LEN + 5..HEADER_LEN + 9)?;
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod control_tests {
    use super::*;

    #[test]
    fn control_batches_are_valid_frames_with_one_record_and_are_refused_from_clients() {
        for commit in [false, true] {
            let (header, bytes) = control_batch(42, 3, commit, 7, 1_000);
            assert_eq!(validate(&bytes).unwrap(), header);
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch, header.record_count), (42, 3, 1));
            assert_eq!(marker_is_commit(&bytes), Some(commit));
            let walked = records::walk(&bytes, &header, 1 << 20, |r| assert_eq!(r.key_len, 4)).unwrap();
            assert_eq!(walked.records, 1);
            assert_eq!(validate_records(&bytes, &header, 1 << 20), Err(BatchError::ControlBatch));
        }
    }
}
