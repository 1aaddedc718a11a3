//! The records inside a magic-2 batch: a bounds-checked walk over every record,
//! through a streaming decompressor for compressed batches.
//!
//! The walk checks what Kafka's `DefaultRecordBatch`/`DefaultRecord` readers and its
//! log validator check, and a little more so that nothing stored can make a consumer
//! fail: the declared record count equals the records present, record `i` has offset
//! delta `i`, each record's length matches its fields (varints, key and value lengths
//! ≥ -1, header count and header key lengths ≥ 0), nothing follows the last record,
//! and `baseTimestamp + timestampDelta` does not overflow. Record bodies are skipped,
//! never copied: an uncompressed batch is walked in place without allocating, a
//! compressed one through a small buffer fed by the decoder, and a decoder that
//! produces more than the caller's bound is stopped (a decompression bomb).
//!
//! Codecs: gzip (possibly several members), snappy (raw, as librdkafka sends it, or
//! the xerial/snappy-java framing the Java client sends), LZ4 frames and zstd (the
//! libzstd that RocksDB already links, through `zstd-sys`).

use std::io::{self, Read};

use super::batch::{BatchError, BatchHeader, HEADER_LEN};

/// What the walk learns about one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Position of the record in the batch (equal to its offset delta).
    pub index: i32,
    /// The record's timestamp (base timestamp plus its delta).
    pub timestamp: i64,
    /// Length of the key, -1 for a null key.
    pub key_len: i32,
    /// The record's offset delta (equal to `index` except in a compacted batch).
    pub offset_delta: i32,
}

/// What the walk learns about the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkSummary {
    /// Records walked (equal to the declared count when the walk succeeds).
    pub records: i32,
    /// Largest record timestamp, -1 when every record has timestamp -1 or less.
    pub max_timestamp: i64,
    /// Bytes of record data walked (after decompression).
    pub uncompressed_bytes: u64,
}

/// Walks every record of `batch` (one whole stored or produced batch whose header is
/// `header`), calling `visit` for each. `max_uncompressed` bounds the bytes a
/// compressed batch may expand to. Errors name the first problem found.
pub fn walk(
    batch: &[u8],
    header: &BatchHeader,
    max_uncompressed: u64,
    visit: impl FnMut(&RecordMeta),
) -> Result<WalkSummary, BatchError> {
    walk_with(batch, header, max_uncompressed, false, visit)
}

/// [`walk`] for a batch the broker stored, which log compaction may have left with
/// gaps: offset deltas need only increase and stay within the batch's last offset
/// delta, and the record count may be smaller than the offset range (even 0).
pub fn walk_stored(
    batch: &[u8],
    header: &BatchHeader,
    max_uncompressed: u64,
    visit: impl FnMut(&RecordMeta),
) -> Result<WalkSummary, BatchError> {
    walk_with(batch, header, max_uncompressed, true, visit)
}

fn walk_with(
    batch: &[u8],
    header: &BatchHeader,
    max_uncompressed: u64,
    gaps: bool,
    mut visit: impl FnMut(&RecordMeta),
) -> Result<WalkSummary, BatchError> {
    let end = header.total_len().min(batch.len());
    let payload = batch.get(HEADER_LEN..end).unwrap_or(&[]);
    let codec = header.compression();
    match codec {
        0 => walk_source(&mut SliceSource::new(payload), header, gaps, &mut visit),
        1 => {
            let decoder = flate2::read::MultiGzDecoder::new(payload);
            walk_source(&mut ReadSource::new(decoder, codec, max_uncompressed), header, gaps, &mut visit)
        }
        2 => {
            if payload.starts_with(XERIAL_MAGIC) {
                let reader = XerialSnappy::new(payload)?;
                walk_source(&mut ReadSource::new(reader, codec, max_uncompressed), header, gaps, &mut visit)
            } else {
                let len = snap::raw::decompress_len(payload).map_err(|e| decompression(codec, e))?;
                check_snappy_len(len, payload.len(), max_uncompressed)?;
                let mut out = vec![0u8; len];
                snap::raw::Decoder::new().decompress(payload, &mut out).map_err(|e| decompression(codec, e))?;
                walk_source(&mut SliceSource::new(&out), header, gaps, &mut visit)
            }
        }
        3 => {
            let decoder = lz4_flex::frame::FrameDecoder::new(payload);
            walk_source(&mut ReadSource::new(decoder, codec, max_uncompressed), header, gaps, &mut visit)
        }
        4 => {
            let decoder = ZstdReader::new(payload)?;
            walk_source(&mut ReadSource::new(decoder, codec, max_uncompressed), header, gaps, &mut visit)
        }
        other => Err(BatchError::UnknownCodec(other)),
    }
}

fn decompression(codec: i16, e: impl std::fmt::Display) -> BatchError {
    BatchError::Decompression { codec, reason: e.to_string() }
}

/// Snappy expands at most ~21× (a 3-byte copy of 64 bytes): a block claiming more is
/// corrupt, and one beyond the bound is a bomb; either is refused before allocating.
fn check_snappy_len(len: usize, compressed: usize, max_uncompressed: u64) -> Result<(), BatchError> {
    if len as u64 > max_uncompressed {
        return Err(BatchError::DecompressedTooLarge { limit: max_uncompressed });
    }
    if len > compressed.saturating_mul(22).saturating_add(64) {
        return Err(BatchError::Decompression { codec: 2, reason: format!("snappy block claims {len} bytes") });
    }
    Ok(())
}

/// Where the walk reads record bytes from.
trait Source {
    /// The next byte, None at the end of the records.
    fn byte(&mut self) -> Result<Option<u8>, BatchError>;
    /// Skips `n` bytes; false if the records end first.
    fn skip(&mut self, n: u64) -> Result<bool, BatchError>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
}

/// An uncompressed payload, walked in place.
struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    fn new(buf: &'a [u8]) -> Self {
        SliceSource { buf, pos: 0 }
    }
}

impl Source for SliceSource<'_> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        let b = self.buf.get(self.pos).copied();
        self.pos += b.is_some() as usize;
        Ok(b)
    }

    #[inline]
    fn skip(&mut self, n: u64) -> Result<bool, BatchError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            self.pos = self.buf.len();
            return Ok(false);
        }
        self.pos += n as usize;
        Ok(true)
    }

    #[inline]
    fn position(&self) -> u64 {
        self.pos as u64
    }
}

/// Bytes read through a decoder into a small buffer, with a bound on the total.
struct ReadSource<R> {
    reader: R,
    codec: i16,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    /// Bytes produced by the decoder so far.
    produced: u64,
    limit: u64,
}

const READ_BUFFER: usize = 16 * 1024;

impl<R: Read> ReadSource<R> {
    fn new(reader: R, codec: i16, limit: u64) -> Self {
        ReadSource { reader, codec, buf: vec![0u8; READ_BUFFER].into_boxed_slice(), pos: 0, filled: 0, produced: 0, limit }
    }

    /// Refills the buffer; false at the end of the stream.
    fn fill(&mut self) -> Result<bool, BatchError> {
        let n = loop {
            match self.reader.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(decompression(self.codec, e)),
            }
        };
        self.produced += n as u64;
        if self.produced > self.limit {
            return Err(BatchError::DecompressedTooLarge { limit: self.limit });
        }
        self.pos = 0;
        self.filled = n;
        Ok(n > 0)
    }
}

impl<R: Read> Source for ReadSource<R> {
    #[inline]
    fn byte(&mut self) -> Result<Option<u8>, BatchError> {
        if self.pos == self.filled && !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    fn skip(&mut self, mut n: u64) -> Result<bool, BatchError> {
        loop {
            let here = ((self.filled - self.pos) as u64).min(n);
            self.pos += here as usize;
            n -= here;
            if n == 0 {
                return Ok(true);
            }
            if !self.fill()? {
                return Ok(false);
            }
        }
    }

    #[inline]
    fn position(&self) -> u64 {
        self.produced - (self.filled - self.pos) as u64
    }
}

/// Reads a zigzag varint of at most `max_bytes` bytes. `Ok(None)` at a clean end of
/// the source before the first byte; `Err(())` for a truncated or overlong varint.
#[inline]
fn read_varlong<S: Source>(src: &mut S, max_bytes: u32) -> Result<Option<Result<i64, &'static str>>, BatchError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let Some(byte) = src.byte()? else {
            return Ok(if i == 0 { None } else { Some(Err("record data ends inside a varint")) });
        };
        value |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some(Ok(((value >> 1) as i64) ^ -((value & 1) as i64))));
        }
    }
    Ok(Some(Err("varint is too long")))
}

/// The record-level walk shared by every source.
fn walk_source<S: Source>(
    src: &mut S,
    header: &BatchHeader,
    gaps: bool,
    visit: &mut impl FnMut(&RecordMeta),
) -> Result<WalkSummary, BatchError> {
    let declared = header.record_count;
    let mut max_timestamp = -1i64;
    let mut previous_delta = -1i64;
    for index in 0..declared {
        let invalid = |reason: &'static str| BatchError::InvalidRecord { index, reason };
        // Reads one varint field of the record, which must not run past its end.
        macro_rules! field {
            ($bytes:expr, $end:expr) => {
                match read_varlong(src, $bytes)? {
                    Some(Ok(v)) if src.position() <= $end => v,
                    Some(Ok(_)) => return Err(invalid("record fields run past its length")),
                    Some(Err(reason)) => return Err(invalid(reason)),
                    None => return Err(invalid("record data ends inside a record")),
                }
            };
        }
        let length = match read_varlong(src, 5)? {
            None => return Err(BatchError::RecordCountMismatch { declared, found: index }),
            Some(Err(reason)) => return Err(invalid(reason)),
            Some(Ok(v)) if v < 0 || v > i32::MAX as i64 => return Err(invalid("negative record length")),
            Some(Ok(v)) => v as u64,
        };
        let start = src.position();
        let end = start + length;
        // Attributes (one byte, unused in v2).
        match src.byte()? {
            Some(_) if src.position() <= end => {}
            Some(_) => return Err(invalid("record fields run past its length")),
            None => return Err(invalid("record data ends inside a record")),
        }
        let timestamp_delta = field!(10, end);
        let offset_delta = field!(5, end);
        let in_order = if gaps {
            offset_delta > previous_delta && offset_delta <= header.last_offset_delta as i64
        } else {
            offset_delta == index as i64
        };
        if !in_order {
            return Err(BatchError::OffsetDelta { index, delta: offset_delta });
        }
        previous_delta = offset_delta;
        let timestamp = header.base_timestamp.checked_add(timestamp_delta).ok_or(BatchError::TimestampOverflow { index })?;
        max_timestamp = max_timestamp.max(timestamp);
        let key_len = field!(5, end);
        skip_bytes(src, key_len, end, index, "key length below -1")?;
        let value_len = field!(5, end);
        skip_bytes(src, value_len, end, index, "value length below -1")?;
        let headers = field!(5, end);
        if headers < 0 {
            return Err(invalid("negative header count"));
        }
        for _ in 0..headers {
            // Each header takes at least two bytes, so the record length bounds this loop.
            let key_len = field!(5, end);
            if key_len < 0 {
                return Err(invalid("negative header key length"));
            }
            skip_bytes(src, key_len, end, index, "")?;
            let value_len = field!(5, end);
            skip_bytes(src, value_len, end, index, "header value length below -1")?;
        }
        if src.position() != end {
            return Err(invalid("record length does not match its fields"));
        }
        visit(&RecordMeta { index, timestamp, key_len: key_len as i32, offset_delta: offset_delta as i32 });
    }
    if src.byte()?.is_some() {
        return Err(BatchError::TrailingBytes { declared });
    }
    Ok(WalkSummary { records: declared, max_timestamp, uncompressed_bytes: src.position() })
}

/// Skips a length-prefixed field of `len` bytes (-1 is null) inside a record ending at `end`.
#[inline]
fn skip_bytes<S: Source>(src: &mut S, len: i64, end: u64, index: i32, below_minus_one: &'static str) -> Result<(), BatchError> {
    if len < -1 {
        return Err(BatchError::InvalidRecord { index, reason: below_minus_one });
    }
    if len <= 0 {
        return Ok(());
    }
    if src.position() + len as u64 > end {
        return Err(BatchError::InvalidRecord { index, reason: "record fields run past its length" });
    }
    if !src.skip(len as u64)? {
        return Err(BatchError::InvalidRecord { index, reason: "record data ends inside a record" });
    }
    Ok(())
}

/// The xerial (snappy-java) stream header: magic, then version and compatible version.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_LEN: usize = 16;

/// Decodes the xerial framing: a 16-byte header, then blocks of a 4-byte big-endian
/// compressed length and a raw snappy block.
struct XerialSnappy<'a> {
    input: &'a [u8],
    pos: usize,
    block: Vec<u8>,
    block_pos: usize,
}

impl<'a> XerialSnappy<'a> {
    fn new(input: &'a [u8]) -> Result<Self, BatchError> {
        if input.len() < XERIAL_HEADER_LEN {
            return Err(BatchError::Decompression { codec: 2, reason: "truncated xerial snappy header".into() });
        }
        Ok(XerialSnappy { input, pos: XERIAL_HEADER_LEN, block: Vec::new(), block_pos: 0 })
    }

    fn next_block(&mut self) -> io::Result<bool> {
        let rest = &self.input[self.pos..];
        if rest.is_empty() {
            return Ok(false);
        }
        let corrupt = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        let Some(len_bytes) = rest.get(..4) else { return Err(corrupt("truncated xerial block length".into())) };
        let len = u32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        let Some(chunk) = rest.get(4..4usize.saturating_add(len)) else {
            return Err(corrupt(format!("xerial block of {len} bytes is truncated")));
        };
        let out_len = snap::raw::decompress_len(chunk).map_err(|e| corrupt(e.to_string()))?;
        // The ReadSource bounds the total; this bounds one block's allocation.
        if out_len > chunk.len().saturating_mul(22).saturating_add(64) {
            return Err(corrupt(format!("snappy block claims {out_len} bytes")));
        }
        self.block.resize(out_len, 0);
        snap::raw::Decoder::new().decompress(chunk, &mut self.block).map_err(|e| corrupt(e.to_string()))?;
        self.block_pos = 0;
        self.pos += 4 + len;
        Ok(true)
    }
}

impl Read for XerialSnappy<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.block_pos == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = (self.block.len() - self.block_pos).min(out.len());
        out[..n].copy_from_slice(&self.block[self.block_pos..self.block_pos + n]);
        self.block_pos += n;
        Ok(n)
    }
}

/// A streaming zstd decoder over libzstd (one or more concatenated frames).
struct ZstdReader<'a> {
    ctx: std::ptr::NonNull<zstd_sys::ZSTD_DStream>,
    input: &'a [u8],
    pos: usize,
    /// The last call's return: 0 when it completed (and flushed) a frame.
    last: usize,
}

impl<'a> ZstdReader<'a> {
    fn new(input: &'a [u8]) -> Result<Self, BatchError> {
        // SAFETY: plain constructor; a null result is handled.
        let ctx = unsafe { zstd_sys::ZSTD_createDStream() };
        let ctx = std::ptr::NonNull::new(ctx).ok_or(BatchError::Decompression { codec: 4, reason: "out of memory".into() })?;
        // A fresh stream is ready without ZSTD_initDStream; no frame is complete yet.
        Ok(ZstdReader { ctx, input, pos: 0, last: 1 })
    }
}

impl Read for ZstdReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if self.pos == self.input.len() && self.last == 0 {
                // Every frame is complete and flushed, and no input is left.
                return Ok(0);
            }
            let before = self.pos;
            let mut inb = zstd_sys::ZSTD_inBuffer { src: self.input.as_ptr().cast(), size: self.input.len(), pos: self.pos };
            let mut outb = zstd_sys::ZSTD_outBuffer { dst: out.as_mut_ptr().cast(), size: out.len(), pos: 0 };
            // SAFETY: both buffers point into live slices of the stated sizes; the
            // context is valid until drop.
            let ret = unsafe { zstd_sys::ZSTD_decompressStream(self.ctx.as_ptr(), &mut outb, &mut inb) };
            // SAFETY: pure function of the return code.
            if unsafe { zstd_sys::ZSTD_isError(ret) } != 0 {
                // SAFETY: libzstd returns a static NUL-terminated string.
                let name = unsafe { std::ffi::CStr::from_ptr(zstd_sys::ZSTD_getErrorName(ret)) };
                return Err(io::Error::new(io::ErrorKind::InvalidData, name.to_string_lossy().into_owned()));
            }
            self.pos = inb.pos.min(self.input.len());
            self.last = ret;
            if outb.pos > 0 {
                return Ok(outb.pos);
            }
            if self.pos == self.input.len() {
                return if ret == 0 {
                    Ok(0)
                } else {
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "zstd frame is truncated"))
                };
            }
            if self.pos == before {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "zstd decoder made no progress"));
            }
        }
    }
}

impl Drop for ZstdReader<'_> {
    fn drop(&mut self) {
        // SAFETY: created by ZSTD_createDStream and freed once.
        unsafe {
            zstd_sys::ZSTD_freeDStream(self.ctx.as_ptr());
        }
    }
}

// SAFETY: the decoder context is owned exclusively by this value.
unsafe impl Send for ZstdReader<'_> {}

/// Compresses `data` as one zstd frame (tests and tools build compressed batches with it).
pub fn zstd_compress(data: &[u8], level: i32) -> Vec<u8> {
    // SAFETY: pure function.
    let bound = unsafe { zstd_sys::ZSTD_compressBound(data.len()) };
    let mut out = vec![0u8; bound];
    // SAFETY: `out` has `bound` writable bytes, `data` is a live slice.
    let n = unsafe { zstd_sys::ZSTD_compress(out.as_mut_ptr().cast(), bound, data.as_ptr().cast(), data.len(), level) };
    // SAFETY: pure function of the return code.
    if unsafe { zstd_sys::ZSTD_isError(n) } != 0 {
        return Vec::new();
    }
    out.truncate(n);
    out
}

/// One record of a stored batch, as log compaction needs it: enough to decide whether
/// it stays (offset, key, whether the value is null) and its bytes to copy it into a
/// new batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Offset delta within its batch.
    pub offset_delta: i32,
    /// Timestamp delta as stored (relative to the batch's base timestamp).
    pub timestamp_delta: i64,
    /// Absolute timestamp (base timestamp plus delta).
    pub timestamp: i64,
    /// The key, None for a null key.
    pub key: Option<Vec<u8>>,
    /// True for a tombstone (null value).
    pub value_is_null: bool,
    /// The whole record as stored, length prefix included.
    pub raw: Vec<u8>,
    /// Where, in `raw`, the fields after the timestamp delta start (offset delta,
    /// key, value, headers): what a re-encoding with another base timestamp copies.
    tail_start: usize,
    /// The record's attributes byte (unused by v2, copied as is).
    attributes: u8,
}

/// The record bytes of `batch` after decompression (borrowed when uncompressed),
/// at most `max_uncompressed` of them.
fn payload_bytes<'a>(batch: &'a [u8], header: &BatchHeader, max_uncompressed: u64) -> Result<std::borrow::Cow<'a, [u8]>, BatchError> {
    use std::borrow::Cow;
    let end = header.total_len().min(batch.len());
    let payload = batch.get(HEADER_LEN..end).unwrap_or(&[]);
    let codec = header.compression();
    fn read_all(reader: impl Read, codec: i16, max: u64) -> Result<Vec<u8>, BatchError> {
        let mut out = Vec::new();
        reader.take(max.saturating_add(1)).read_to_end(&mut out).map_err(|e| decompression(codec, e))?;
        if out.len() as u64 > max {
            return Err(BatchError::DecompressedTooLarge { limit: max });
        }
        Ok(out)
    }
    Ok(match codec {
        0 => Cow::Borrowed(payload),
        1 => Cow::Owned(read_all(flate2::read::MultiGzDecoder::new(payload), codec, max_uncompressed)?),
        2 if payload.starts_with(XERIAL_MAGIC) => Cow::Owned(read_all(XerialSnappy::new(payload)?, codec, max_uncompressed)?),
        2 => {
            let len = snap::raw::decompress_len(payload).map_err(|e| decompression(codec, e))?;
            check_snappy_len(len, payload.len(), max_uncompressed)?;
            let mut out = vec![0u8; len];
            snap::raw::Decoder::new().decompress(payload, &mut out).map_err(|e| decompression(codec, e))?;
            Cow::Owned(out)
        }
        3 => Cow::Owned(read_all(lz4_flex::frame::FrameDecoder::new(payload), codec, max_uncompressed)?),
        4 => Cow::Owned(read_all(ZstdReader::new(payload)?, codec, max_uncompressed)?),
        other => return Err(BatchError::UnknownCodec(other)),
    })
}

/// Every record of a stored batch (compacted ones included, see [`walk_stored`]), in
/// order. The records are validated first with the same bounded walk, so the parse
/// that follows meets only well-formed bytes.
pub fn stored_records(batch: &[u8], header: &BatchHeader, max_uncompressed: u64) -> Result<Vec<StoredRecord>, BatchError> {
    let payload = payload_bytes(batch, header, max_uncompressed)?;
    walk_source(&mut SliceSource::new(&payload), header, true, &mut |_| {})?;
    let mut src = SliceSource::new(&payload);
    let mut out = Vec::with_capacity(header.record_count.clamp(0, 4096) as usize);
    for index in 0..header.record_count.max(0) {
        let next = |src: &mut SliceSource<'_>| match read_varlong(src, 10) {
            Ok(Some(Ok(v))) => Ok(v),
            _ => Err(BatchError::InvalidRecord { index, reason: "record changed under the walk" }),
        };
        let start = src.pos;
        let length = next(&mut src)? as usize;
        let end = src.pos + length;
        let attributes = payload[src.pos];
        src.pos += 1;
        let timestamp_delta = next(&mut src)?;
        let tail_start = src.pos - start;
        let offset_delta = next(&mut src)? as i32;
        let key_len = next(&mut src)?;
        let key = (key_len >= 0).then(|| payload[src.pos..src.pos + key_len as usize].to_vec());
        src.pos += key_len.max(0) as usize;
        let value_is_null = next(&mut src)? < 0;
        out.push(StoredRecord {
            offset_delta,
            timestamp_delta,
            timestamp: header.base_timestamp.saturating_add(timestamp_delta),
            key,
            value_is_null,
            raw: payload[start..end].to_vec(),
            tail_start,
            attributes,
        });
        src.pos = end;
    }
    Ok(out)
}

/// Header fields of a batch built by [`encode_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSpec {
    /// Base offset (kept from the original batch).
    pub base_offset: i64,
    /// Partition leader epoch.
    pub partition_leader_epoch: i32,
    /// Attributes; the codec bits say how the records are to be compressed.
    pub attributes: i16,
    /// Last offset delta (kept from the original batch, so its offset range stays).
    pub last_offset_delta: i32,
    /// Base timestamp: record timestamp deltas are re-encoded relative to it.
    pub base_timestamp: i64,
    /// Max timestamp.
    pub max_timestamp: i64,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// Base sequence (kept, so the batch's last sequence stays).
    pub base_sequence: i32,
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push(u as u8 | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

/// Builds a batch from `records` (taken from batches read with [`stored_records`]),
/// each at its own offset delta and timestamp, with a fresh CRC. gzip and zstd
/// batches stay compressed with their codec; snappy and LZ4 ones are written
/// uncompressed (their framings vary between clients, and an uncompressed batch is
/// read by every one); no records gives an empty batch, header only.
pub fn encode_batch(spec: &BatchSpec, records: &[&StoredRecord]) -> bytes::BytesMut {
    let mut raw = Vec::with_capacity(records.iter().map(|r| r.raw.len() + 2).sum());
    for record in records {
        let delta = record.timestamp.saturating_sub(spec.base_timestamp);
        if delta == record.timestamp_delta {
            raw.extend_from_slice(&record.raw);
            continue;
        }
        // The length prefix, attributes and timestamp delta change; the rest is copied.
        let tail = &record.raw[record.tail_start..];
        let mut body = Vec::with_capacity(tail.len() + 11);
        body.push(record.attributes);
        put_varlong(&mut body, delta);
        body.extend_from_slice(tail);
        put_varlong(&mut raw, body.len() as i64);
        raw.extend_from_slice(&body);
    }
    let mut attributes = spec.attributes;
    let payload = match attributes & 0x07 {
        _ if records.is_empty() => {
            attributes &= !0x07;
            raw
        }
        1 => {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            match e.write_all(&raw).and_then(|_| e.finish()) {
                Ok(c) => c,
                Err(_) => {
                    attributes &= !0x07;
                    raw
                }
            }
        }
        4 => match zstd_compress(&raw, 3) {
            c if c.is_empty() => {
                attributes &= !0x07;
                raw
            }
            c => c,
        },
        _ => {
            attributes &= !0x07;
            raw
        }
    };
    let mut b = bytes::BytesMut::with_capacity(HEADER_LEN + payload.len());
    b.extend_from_slice(&spec.base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - super::batch::LOG_OVERHEAD + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&spec.partition_leader_epoch.to_be_bytes());
    b.extend_from_slice(&[2]);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&spec.last_offset_delta.to_be_bytes());
    b.extend_from_slice(&spec.base_timestamp.to_be_bytes());
    b.extend_from_slice(&spec.max_timestamp.to_be_bytes());
    b.extend_from_slice(&spec.producer_id.to_be_bytes());
    b.extend_from_slice(&spec.producer_epoch.to_be_bytes());
    b.extend_from_slice(&spec.base_sequence.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

#[cfg(test)]
pub(crate) mod tests;
