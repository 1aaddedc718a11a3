//! A reader of RocksDB's write-ahead log files, used only after RocksDB refused to
//! replay one: it finds where the file is damaged and what the whole file (the
//! parts after the damage included) says each partition's log end was, so that
//! recovery can name the offsets it had to give up.
//!
//! The format (RocksDB's `db/log_format.h`): 32 KiB blocks of fragments, each
//! `[masked crc32c (4, LE)] [length (2, LE)] [type (1)] [payload]`; the crc covers
//! the type byte and the payload. Full/first/middle/last fragments carry write
//! batches: `[sequence (8)] [count (4)]` then tagged records (`cf id` varint, key
//! and value as varint-prefixed strings). The broker's appends put batches under
//! 8-byte keys in a partition column family and, in the same write batch, the
//! partition's metadata (`p/<topic id><partition>` → log start, log end, epoch)
//! in the meta column family: the log ends claimed are read from the latter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use super::keys;

const BLOCK_SIZE: usize = 32 * 1024;
const HEADER_SIZE: usize = 7;
const RECYCLABLE_HEADER_SIZE: usize = 11;
const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// What scanning the write-ahead log files found.
#[derive(Debug, Default, Clone)]
pub struct WalScan {
    /// The first damage found, if any.
    pub damage: Option<WalDamage>,
    /// Highest log end offset each partition's metadata claims anywhere in the files
    /// (damaged region and what follows it included).
    pub claimed_log_end: HashMap<(Uuid, i32), i64>,
}

/// Where a write-ahead log file is damaged.
#[derive(Debug, Clone)]
pub struct WalDamage {
    /// The file.
    pub file: PathBuf,
    /// Byte offset of the first bad fragment.
    pub offset: u64,
    /// What is wrong there.
    pub what: String,
    /// The file ends inside a record: whatever followed it is gone, and cannot be counted.
    pub torn_tail: bool,
}

/// Every WAL file (`NNNNNN.log`) in `dir`, oldest first.
pub fn wal_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let number = name.strip_suffix(".log")?.parse::<u64>().ok()?;
            Some((number, e.path()))
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// Scans `files` in order (one column family numbering across them).
pub fn scan(files: &[PathBuf]) -> WalScan {
    let mut state = ScanState::default();
    for file in files {
        match std::fs::read(file) {
            Ok(bytes) => state.scan_file(file, &bytes),
            Err(e) => state.damage(file, 0, format!("cannot read: {e}"), false),
        }
    }
    WalScan { damage: state.damage, claimed_log_end: state.claimed }
}

#[derive(Default)]
struct ScanState {
    damage: Option<WalDamage>,
    claimed: HashMap<(Uuid, i32), i64>,
    /// Partition column family id → partition, learnt from write batches that put
    /// both a batch and the partition's metadata.
    cf_partition: HashMap<u32, (Uuid, i32)>,
}

impl ScanState {
    fn damage(&mut self, file: &Path, offset: usize, what: String, torn_tail: bool) {
        if self.damage.is_none() {
            self.damage = Some(WalDamage { file: file.to_owned(), offset: offset as u64, what, torn_tail });
        }
    }

    fn claim(&mut self, partition: (Uuid, i32), log_end: i64) {
        let entry = self.claimed.entry(partition).or_insert(log_end);
        *entry = (*entry).max(log_end);
    }

    fn scan_file(&mut self, file: &Path, bytes: &[u8]) {
        let mut pos = 0;
        // The record being reassembled from fragments, and where it started.
        let mut record: Option<(usize, Vec<u8>)> = None;
        while pos < bytes.len() {
            let left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE;
            if left_in_block < HEADER_SIZE {
                pos += left_in_block; // zero trailer
                continue;
            }
            let Some(header) = bytes.get(pos..pos + HEADER_SIZE) else {
                self.damage(file, pos, "truncated fragment header".into(), true);
                break;
            };
            let kind = header[6];
            let length = u16::from_le_bytes([header[4], header[5]]) as usize;
            if kind == 0 && length == 0 && header[..4] == [0, 0, 0, 0] {
                // Preallocated or padding space: nothing more in this block.
                pos += left_in_block;
                continue;
            }
            let header_size = header_size(kind);
            let end = pos + header_size + length;
            if header_size + length > left_in_block {
                self.damage(file, pos, format!("fragment length {length} runs past its block"), false);
                record = None;
                pos = resync(bytes, pos + 1);
                continue;
            }
            let Some(body) = bytes.get(pos + 4..end) else {
                self.damage(file, pos, "file ends inside a fragment".into(), true);
                if let Some((_, mut partial)) = record.take() {
                    partial.extend_from_slice(bytes.get(pos + header_size..).unwrap_or_default());
                    self.write_batch(&partial, true);
                } else if matches!(kind, 1 | 2 | 5 | 6) {
                    self.write_batch(bytes.get(pos + header_size..).unwrap_or_default(), true);
                }
                break;
            };
            if !checksum_ok(header, body) {
                self.damage(file, pos, "fragment checksum mismatch".into(), false);
                record = None;
                pos = resync(bytes, pos + 1);
                continue;
            }
            let payload = &bytes[pos + header_size..end];
            match kind {
                1 | 5 => {
                    record = None;
                    self.write_batch(payload, false);
                }
                2 | 6 => record = Some((pos, payload.to_vec())),
                3 | 7 => {
                    if let Some((_, r)) = record.as_mut() {
                        r.extend_from_slice(payload);
                    }
                }
                4 | 8 => {
                    if let Some((_, mut r)) = record.take() {
                        r.extend_from_slice(payload);
                        self.write_batch(&r, false);
                    }
                }
                _ => {} // metadata fragments (compression, timestamp sizes, predecessor info)
            }
            pos = end;
        }
        if let Some((start, partial)) = record {
            self.damage(file, start, "file ends inside a fragmented record".into(), true);
            self.write_batch(&partial, true);
        }
    }

    /// Reads the claims of one write batch; `partial` batches are cut short, so
    /// their last record may be incomplete (a batch's base offset still counts).
    fn write_batch(&mut self, rep: &[u8], partial: bool) {
        let Some(mut rest) = rep.get(12..) else { return };
        let mut pending: Vec<u32> = Vec::new();
        while let Some((&tag, tail)) = rest.split_first() {
            rest = tail;
            let mut cf = 0u32;
            if matches!(tag, 0x4 | 0x5 | 0x6 | 0x8 | 0xE | 0x10 | 0x17) {
                let Some(id) = varint(&mut rest) else { return };
                cf = id;
            }
            match tag {
                // Puts (default or named column family).
                0x1 | 0x5 => {
                    let Some(key) = varstr(&mut rest) else { return };
                    let value = varstr_lenient(&mut rest, partial);
                    if key.len() == 8 {
                        let base = i64::from_be_bytes(key.try_into().unwrap_or_default());
                        pending.push(cf);
                        if let Some(&partition) = self.cf_partition.get(&cf) {
                            let delta = value.and_then(|v| v.get(23..27)).map(|d| i32::from_be_bytes([d[0], d[1], d[2], d[3]]));
                            self.claim(partition, base + delta.unwrap_or(0) as i64 + 1);
                        }
                    } else if let (Some(partition), Some(v)) = (keys::parse_partition_meta(key), value) {
                        if v.len() == 20 {
                            let log_end = i64::from_be_bytes(v[8..16].try_into().unwrap_or_default());
                            self.claim(partition, log_end);
                            for id in pending.drain(..) {
                                self.cf_partition.insert(id, partition);
                            }
                        }
                    }
                    if value.is_none() {
                        return;
                    }
                }
                // Deletions: a deleted partition's claims no longer stand.
                0x0 | 0x4 | 0x7 | 0x8 => {
                    let Some(key) = varstr(&mut rest) else { return };
                    if let Some(partition) = keys::parse_partition_meta(key) {
                        self.claimed.remove(&partition);
                    }
                }
                0xE | 0xF => {
                    let (Some(_), Some(_)) = (varstr(&mut rest), varstr(&mut rest)) else { return };
                    // A partition column family emptied for reuse.
                    self.cf_partition.remove(&cf);
                }
                0x2 | 0x6 | 0x10 | 0x11 | 0x16 | 0x17 => {
                    let (Some(_), Some(_)) = (varstr(&mut rest), varstr(&mut rest)) else { return };
                }
                0x3 | 0xA | 0xB | 0xC | 0x14 => {
                    let Some(_) = varstr(&mut rest) else { return };
                }
                0x9 | 0xD | 0x12 | 0x13 => {}
                _ => return, // not a record kind the broker writes
            }
        }
    }
}

fn header_size(kind: u8) -> usize {
    if (5..=8).contains(&kind) || kind == 11 || kind == 131 {
        RECYCLABLE_HEADER_SIZE
    } else {
        HEADER_SIZE
    }
}

/// Whether a fragment's stored checksum matches: it covers the type byte, the log
/// number (recyclable fragments) and the payload; `body` starts at the length field.
fn checksum_ok(header: &[u8], body: &[u8]) -> bool {
    let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    mask(crc32c::crc32c_append(crc32c::crc32c(&body[2..3]), &body[3..])) == stored
}

/// The first position at or after `from` where an intact data fragment starts
/// (the end of `bytes` if none): reading goes on past damage, to learn what the
/// rest of the file held.
fn resync(bytes: &[u8], from: usize) -> usize {
    for pos in from..bytes.len() {
        let left_in_block = BLOCK_SIZE - pos % BLOCK_SIZE;
        let Some(header) = bytes.get(pos..pos + HEADER_SIZE) else { break };
        let kind = header[6];
        if !(1..=8).contains(&kind) || left_in_block < HEADER_SIZE {
            continue;
        }
        let length = u16::from_le_bytes([header[4], header[5]]) as usize;
        let end = pos + header_size(kind) + length;
        if header_size(kind) + length > left_in_block || end > bytes.len() {
            continue;
        }
        if checksum_ok(header, &bytes[pos + 4..end]) {
            return pos;
        }
    }
    bytes.len()
}

fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

fn varint(bytes: &mut &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= ((b & 0x7f) as u32) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn varstr<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = varint(bytes)? as usize;
    let s = bytes.get(..len)?;
    *bytes = &bytes[len..];
    Some(s)
}

/// A string that may be cut short when the batch is: its available prefix.
fn varstr_lenient<'a>(bytes: &mut &'a [u8], partial: bool) -> Option<&'a [u8]> {
    let before = *bytes;
    match varstr(bytes) {
        Some(s) => Some(s),
        None if partial => {
            let mut rest = before;
            varint(&mut rest)?;
            *bytes = &[];
            Some(rest)
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_matches_rocksdb() {
        // RocksDB's crc32c::Mask: rotate right by 15 and add a constant.
        assert_eq!(mask(0), CRC_MASK_DELTA);
        assert_eq!(mask(1 << 15), 1u32.wrapping_add(CRC_MASK_DELTA));
    }
}
