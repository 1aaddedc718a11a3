//! Idempotent producer state of one partition: per producer id, its epoch and the
//! last five batches it wrote, so a retried batch is recognised and answered with
//! its original offset, and a gap in sequences is refused.
//!
//! A producer's state expires when its last append is older than
//! `producer_id_expiration_ms` (Kafka's `producer.id.expiration.ms`, KIP-854). Kafka
//! compares the batch's own (client) timestamp; Fluxo records the broker's clock at
//! the append instead, so a producer with a skewed clock can neither keep its state
//! forever nor lose it at once. After expiry the producer is unknown again, and its
//! next batch is treated as Kafka ≥ 2.5 treats an unknown producer: accepted with any
//! sequence (UNKNOWN_PRODUCER_ID is no longer returned since KIP-360), starting fresh
//! state.

use std::collections::HashMap;

use super::batch::BatchHeader;
use crate::error::StorageError;

/// How many recent batches are remembered per producer (the Java client keeps at
/// most five requests in flight).
pub const BATCHES_KEPT: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchMeta {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset the batch was written at.
    pub base_offset: i64,
}

/// What the log knows of one producer. Compact: the recent batches live inline (no
/// heap allocation of their own), 96 bytes in all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    /// Most recent batches, oldest first; only the first `len` are meaningful.
    recent: [BatchMeta; BATCHES_KEPT],
    /// Broker wall-clock time of the last append, in ms since the epoch.
    pub last_append_ms: i64,
    /// Current epoch.
    pub epoch: i16,
    len: u8,
}

/// When producer states expire: those whose last append is `expiration_ms` or more
/// before `now_ms` (Kafka's rule, `>=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    /// The current time, ms since the epoch.
    pub now_ms: i64,
    /// `producer_id_expiration_ms`.
    pub expiration_ms: i64,
}

impl Expiry {
    /// The expiry rule at the current wall-clock time.
    pub fn now(expiration_ms: i64) -> Expiry {
        Expiry { now_ms: now_ms(), expiration_ms }
    }

    /// Whether this entry has expired.
    pub fn is_expired(&self, entry: &ProducerEntry) -> bool {
        self.now_ms.saturating_sub(entry.last_append_ms) >= self.expiration_ms
    }
}

/// The broker's wall clock in ms since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The result of checking a batch against the producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// A new batch to append.
    Append,
    /// A retry of a batch already in the log at this base offset.
    Duplicate(i64),
}

/// All producers of one partition. Entries are boxed: a hash table slot holds only
/// the id and a pointer, so the table's spare capacity costs 16 bytes a slot, not 104.
#[derive(Debug, Default)]
pub struct ProducerStates {
    entries: HashMap<i64, Box<ProducerEntry>>,
}

impl ProducerStates {
    /// Rebuilds the state from persisted entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        ProducerStates { entries: entries.into_iter().map(|(pid, e)| (pid, Box::new(e))).collect() }
    }

    /// Every producer with its state.
    pub fn iter(&self) -> impl Iterator<Item = (i64, &ProducerEntry)> {
        self.entries.iter().map(|(pid, e)| (*pid, &**e))
    }

    /// Checks a batch's producer epoch and sequence (Kafka's rules).
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, StorageError> {
        let Some(entry) = self.entries.get(&header.producer_id) else {
            // Unknown producer (new, or its state expired): any sequence starts it, as
            // in Kafka's ProducerAppendInfo for an entry without an epoch.
            return Ok(SequenceCheck::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                current: entry.epoch,
                got: header.producer_epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            if header.base_sequence != 0 {
                return Err(StorageError::OutOfOrderSequence { expected: 0, got: header.base_sequence });
            }
            return Ok(SequenceCheck::Append);
        }
        let last_seq = header.last_sequence();
        if let Some(dup) = entry
            .batches()
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(dup.base_offset));
        }
        let expected = match entry.batches().last() {
            Some(last) if last.last_seq == i32::MAX => 0,
            Some(last) => last.last_seq + 1,
            None => header.base_sequence,
        };
        if header.base_sequence != expected {
            return Err(StorageError::OutOfOrderSequence { expected, got: header.base_sequence });
        }
        Ok(SequenceCheck::Append)
    }

    /// The entry of one producer, if known.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.entries.get(&producer_id).map(|e| &**e)
    }

    /// Replaces (or removes) a producer's entry; used to undo a failed write.
    pub fn set(&mut self, producer_id: i64, entry: Option<ProducerEntry>) {
        match entry {
            Some(e) => self.entries.insert(producer_id, Box::new(e)),
            None => self.entries.remove(&producer_id),
        };
    }

    /// Records an appended batch (at broker time `now_ms`) and returns the producer's
    /// updated entry.
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64, now_ms: i64) -> &ProducerEntry {
        let entry = self.entries.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.len = 0;
        }
        entry.push(BatchMeta { first_seq: header.base_sequence, last_seq: header.last_sequence(), base_offset });
        entry.last_append_ms = now_ms;
        entry
    }

    /// Ids of the producers whose state has expired.
    pub fn expired(&self, expiry: Expiry) -> Vec<i64> {
        self.entries.iter().filter(|(_, e)| expiry.is_expired(e)).map(|(pid, _)| *pid).collect()
    }

    /// Forgets these producers.
    pub fn remove(&mut self, producer_ids: &[i64]) {
        for pid in producer_ids {
            self.entries.remove(pid);
        }
        // Give back the table's memory once most producers are gone.
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to_fit();
        }
    }

    /// Number of producers with state.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no producer has state.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl ProducerEntry {
    /// The remembered batches, oldest first.
    pub fn batches(&self) -> &[BatchMeta] {
        &self.recent[..self.len as usize]
    }

    /// Remembers a batch, forgetting the oldest when [`BATCHES_KEPT`] are kept.
    fn push(&mut self, batch: BatchMeta) {
        let len = self.len as usize;
        if len == BATCHES_KEPT {
            self.recent.copy_within(1.., 0);
            self.recent[BATCHES_KEPT - 1] = batch;
        } else {
            self.recent[len] = batch;
            self.len += 1;
        }
    }

    /// Serialises the entry for the metadata column family: epoch, batch count, the
    /// batches, then the time of the last append.
    pub fn encode(&self) -> Vec<u8> {
        let batches = self.batches();
        let mut out = Vec::with_capacity(3 + batches.len() * 16 + 8);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(batches.len() as u8);
        for b in batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
        }
        out.extend_from_slice(&self.last_append_ms.to_be_bytes());
        out
    }

    /// Reads an entry written by [`ProducerEntry::encode`]; one written before append
    /// times were kept counts as appended now.
    pub fn decode(buf: &[u8]) -> Option<ProducerEntry> {
        ProducerEntry::decode_at(buf, now_ms())
    }

    /// [`ProducerEntry::decode`], with an entry that has no append time counting as
    /// appended at `loaded_at_ms`.
    pub fn decode_at(buf: &[u8], loaded_at_ms: i64) -> Option<ProducerEntry> {
        let epoch = i16::from_be_bytes(buf.get(0..2)?.try_into().ok()?);
        let n = *buf.get(2)? as usize;
        if n > BATCHES_KEPT {
            return None;
        }
        let mut entry = ProducerEntry { epoch, ..Default::default() };
        for i in 0..n {
            let at = 3 + i * 16;
            let b = buf.get(at..at + 16)?;
            entry.push(BatchMeta {
                first_seq: i32::from_be_bytes(b[0..4].try_into().ok()?),
                last_seq: i32::from_be_bytes(b[4..8].try_into().ok()?),
                base_offset: i64::from_be_bytes(b[8..16].try_into().ok()?),
            });
        }
        let end = 3 + n * 16;
        entry.last_append_ms = match buf.len() - end {
            0 => loaded_at_ms,
            8 => i64::from_be_bytes(buf[end..].try_into().ok()?),
            _ => return None,
        };
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::sample_batch;
    use crate::storage::batch::validate;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        let mut h = validate(&sample_batch(count, pid, seq)).unwrap();
        h.producer_epoch = epoch;
        h
    }

    #[test]
    fn in_order_duplicate_and_gap() {
        let mut s = ProducerStates::default();
        let a = header(7, 0, 0, 3);
        assert_eq!(s.check(&a).unwrap(), SequenceCheck::Append);
        s.record(&a, 100, 0);
        assert_eq!(s.check(&a).unwrap(), SequenceCheck::Duplicate(100));
        let b = header(7, 0, 3, 2);
        assert_eq!(s.check(&b).unwrap(), SequenceCheck::Append);
        s.record(&b, 103, 0);
        let gap = header(7, 0, 9, 1);
        assert!(matches!(s.check(&gap), Err(StorageError::OutOfOrderSequence { expected: 5, got: 9 })));
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStates::default();
        let a = header(7, 3, 0, 1);
        s.record(&a, 0, 0);
        assert!(matches!(s.check(&header(7, 2, 1, 1)), Err(StorageError::InvalidProducerEpoch { .. })));
        assert!(matches!(s.check(&header(7, 4, 5, 1)), Err(StorageError::OutOfOrderSequence { .. })));
        assert_eq!(s.check(&header(7, 4, 0, 1)).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn only_five_batches_are_kept_and_entries_round_trip() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1), i as i64, 1_000);
        }
        let entry = s.record(&header(1, 0, 7, 1), 7, 2_000).clone();
        assert_eq!(entry.batches().len(), BATCHES_KEPT);
        assert_eq!(entry.batches().iter().map(|b| b.first_seq).collect::<Vec<_>>(), vec![3, 4, 5, 6, 7]);
        assert_eq!(entry.last_append_ms, 2_000);
        assert_eq!(ProducerEntry::decode_at(&entry.encode(), 9).unwrap(), entry);
        // An entry stored before append times were kept counts as appended at load.
        let old = &entry.encode()[..3 + 5 * 16];
        assert_eq!(ProducerEntry::decode_at(old, 9).unwrap().last_append_ms, 9);
        assert_eq!(ProducerEntry::decode_at(old, 9).unwrap().batches(), entry.batches());
        assert!(ProducerEntry::decode_at(&entry.encode()[..20], 9).is_none(), "truncated");
    }

    #[test]
    fn entries_are_compact() {
        assert_eq!(std::mem::size_of::<ProducerEntry>(), 96);
    }

    #[test]
    fn idle_producers_expire_and_come_back_as_new() {
        let mut s = ProducerStates::default();
        s.record(&header(1, 0, 0, 3), 0, 1_000);
        s.record(&header(1, 0, 3, 3), 3, 5_000);
        s.record(&header(2, 0, 0, 2), 6, 9_000);
        let expiry = Expiry { now_ms: 15_000, expiration_ms: 10_000 };
        assert_eq!(s.expired(expiry), vec![1], "last append at 5000 is 10000 old: expired (>=)");
        let gone = s.expired(expiry);
        s.remove(&gone);
        assert_eq!((s.len(), s.get(1).is_none(), s.get(2).is_some()), (1, true, true));
        // The expired producer is unknown: a retry of its last batch is no longer a
        // duplicate, sequence 0 and a later sequence both start it afresh (Kafka >= 2.5).
        assert_eq!(s.check(&header(1, 0, 3, 3)).unwrap(), SequenceCheck::Append);
        assert_eq!(s.check(&header(1, 0, 0, 1)).unwrap(), SequenceCheck::Append);
        s.record(&header(1, 0, 6, 1), 8, 16_000);
        assert!(matches!(s.check(&header(1, 0, 9, 1)), Err(StorageError::OutOfOrderSequence { expected: 7, got: 9 })));
        // The producer that stayed keeps its state.
        assert_eq!(s.check(&header(2, 0, 0, 2)).unwrap(), SequenceCheck::Duplicate(6));
    }

}
