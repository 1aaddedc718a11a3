//! Idempotent producer state of one partition: per producer id, its epoch and the
//! last five batches it wrote, so a retried batch is recognised and answered with
//! its original offset, and a gap in sequences is refused.

use std::collections::{HashMap, VecDeque};

use super::batch::BatchHeader;
use crate::error::StorageError;

/// How many recent batches are remembered per producer (the Java client keeps at
/// most five requests in flight).
pub const BATCHES_KEPT: usize = 5;

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// Sequence of the first record.
    pub first_seq: i32,
    /// Sequence of the last record.
    pub last_seq: i32,
    /// Offset the batch was written at.
    pub base_offset: i64,
}

/// What the log knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// Most recent batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
}

/// The result of checking a batch against the producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// A new batch to append.
    Append,
    /// A retry of a batch already in the log at this base offset.
    Duplicate(i64),
}

/// All producers of one partition.
#[derive(Debug, Default)]
pub struct ProducerStates {
    entries: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// Rebuilds the state from persisted entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> Self {
        ProducerStates { entries: entries.into_iter().collect() }
    }

    /// Checks a batch's producer epoch and sequence (Kafka's rules).
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, StorageError> {
        let Some(entry) = self.entries.get(&header.producer_id) else {
            // Unknown producer (new, or its state expired): any sequence starts it.
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
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return Ok(SequenceCheck::Duplicate(dup.base_offset));
        }
        let expected = match entry.batches.back() {
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
        self.entries.get(&producer_id)
    }

    /// Replaces (or removes) a producer's entry; used to undo a failed write.
    pub fn set(&mut self, producer_id: i64, entry: Option<ProducerEntry>) {
        match entry {
            Some(e) => self.entries.insert(producer_id, e),
            None => self.entries.remove(&producer_id),
        };
    }

    /// Records an appended batch and returns the producer's updated entry.
    pub fn record(&mut self, header: &BatchHeader, base_offset: i64) -> &ProducerEntry {
        let entry = self.entries.entry(header.producer_id).or_default();
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_KEPT {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            base_offset,
        });
        entry
    }
}

impl ProducerEntry {
    /// Serialises the entry for the metadata column family.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(3 + self.batches.len() * 16);
        out.extend_from_slice(&self.epoch.to_be_bytes());
        out.push(self.batches.len() as u8);
        for b in &self.batches {
            out.extend_from_slice(&b.first_seq.to_be_bytes());
            out.extend_from_slice(&b.last_seq.to_be_bytes());
            out.extend_from_slice(&b.base_offset.to_be_bytes());
        }
        out
    }

    /// Reads an entry written by [`ProducerEntry::encode`].
    pub fn decode(buf: &[u8]) -> Option<ProducerEntry> {
        let epoch = i16::from_be_bytes(buf.get(0..2)?.try_into().ok()?);
        let n = *buf.get(2)? as usize;
        let mut batches = VecDeque::with_capacity(n);
        for i in 0..n {
            let at = 3 + i * 16;
            let b = buf.get(at..at + 16)?;
            batches.push_back(BatchMeta {
                first_seq: i32::from_be_bytes(b[0..4].try_into().ok()?),
                last_seq: i32::from_be_bytes(b[4..8].try_into().ok()?),
                base_offset: i64::from_be_bytes(b[8..16].try_into().ok()?),
            });
        }
        Some(ProducerEntry { epoch, batches })
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
        s.record(&a, 100);
        assert_eq!(s.check(&a).unwrap(), SequenceCheck::Duplicate(100));
        let b = header(7, 0, 3, 2);
        assert_eq!(s.check(&b).unwrap(), SequenceCheck::Append);
        s.record(&b, 103);
        let gap = header(7, 0, 9, 1);
        assert!(matches!(s.check(&gap), Err(StorageError::OutOfOrderSequence { expected: 5, got: 9 })));
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut s = ProducerStates::default();
        let a = header(7, 3, 0, 1);
        s.record(&a, 0);
        assert!(matches!(s.check(&header(7, 2, 1, 1)), Err(StorageError::InvalidProducerEpoch { .. })));
        assert!(matches!(s.check(&header(7, 4, 5, 1)), Err(StorageError::OutOfOrderSequence { .. })));
        assert_eq!(s.check(&header(7, 4, 0, 1)).unwrap(), SequenceCheck::Append);
    }

    #[test]
    fn only_five_batches_are_kept_and_entries_round_trip() {
        let mut s = ProducerStates::default();
        for i in 0..7 {
            s.record(&header(1, 0, i, 1), i as i64);
        }
        let entry = s.record(&header(1, 0, 7, 1), 7).clone();
        assert_eq!(entry.batches.len(), BATCHES_KEPT);
        assert_eq!(entry.batches.front().unwrap().first_seq, 3);
        assert_eq!(ProducerEntry::decode(&entry.encode()).unwrap(), entry);
    }
}
