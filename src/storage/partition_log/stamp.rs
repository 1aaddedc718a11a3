//! The two halves of an append: *stamp* (the leader assigns offsets and its epoch in
//! place, checking producer sequences) and *store* (the one WriteBatch every replica
//! writes), see docs/cluster.md §5–§7.

use super::*;

impl PartitionLog {
    /// The leader's half of an append: checks each batch's producer sequence and epoch
    /// (a retry of a batch still remembered is answered with its original offset) and
    /// assigns offsets from `next_offset` and the leader epoch `leader_epoch` by
    /// rewriting the batch headers in place. Nothing is written and the producer state
    /// is not changed: storing the stamped batches (on every replica) does that.
    pub fn stamp(
        &self,
        batches: Vec<(BatchHeader, BytesMut)>,
        next_offset: i64,
        leader_epoch: i32,
    ) -> Result<Stamp, StorageError> {
        let state = self.state.lock();
        self.check_live()?;
        stamp_batches(&state.producers, batches, next_offset, leader_epoch)
    }

    /// The replicas' half of an append: adds to `write` the stamped batches (each must
    /// start where the previous one, or the log, ends), their batch and time index
    /// entries, the producer state they leave, the leader-epoch history entries of epochs
    /// they start and the partition metadata. Returns what to record in memory once
    /// `write` is written ([`Self::stored`]).
    pub(super) fn store_into(
        &self,
        db: &crate::storage::Db,
        write: &mut WriteBatch,
        state: &LogState,
        batches: &[&[u8]],
    ) -> Result<StoreEffect, StorageError> {
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let (tid, p) = (self.topic_id, self.partition);
        let mut next = state.log_end;
        let mut max_timestamp = state.max_timestamp;
        let mut leader_epoch = state.leader_epoch;
        let mut producers = ProducerStates::default();
        let mut touched: Vec<i64> = Vec::new();
        let mut epoch_starts: Vec<(i32, i64)> = Vec::new();
        let mut open_txns: Vec<(i64, Option<i64>)> = Vec::new();
        let open_txn = |open_txns: &[(i64, Option<i64>)], pid: i64| match open_txns.iter().rev().find(|(p, _)| *p == pid) {
            Some((_, first)) => *first,
            None => state.open_txns.get(&pid).copied(),
        };
        let now_ms = producer_state::now_ms();
        for bytes in batches {
            let header = BatchHeader::parse(bytes)?;
            if header.base_offset != next {
                return Err(StorageError::CorruptMetadata(format!(
                    "partition {}: a stored batch must start at offset {next}, this one starts at {}",
                    self.label(),
                    header.base_offset
                )));
            }
            write.put_cf(&cf, keys::offset_key(next), bytes);
            let summary = BatchSummary::of_stored(bytes)?;
            write.put_cf(&meta, keys::batch_index(tid, p, next), summary.encode());
            if max_timestamp.is_none_or(|m| header.max_timestamp > m) {
                // The running maximum grew: a time index entry, like Kafka's.
                write.put_cf(&meta, keys::time_index(tid, p, header.max_timestamp), keys::offset_key(next));
                max_timestamp = Some(header.max_timestamp);
            }
            if header.is_control() {
                // A transaction marker closes the producer's open transaction here; an
                // ABORT enters the aborted-transaction index (at the marker's offset).
                let pid = header.producer_id;
                if let Some(first) = open_txn(&open_txns, pid) {
                    if batch::marker_is_commit(bytes) == Some(false) {
                        let mut v = [0u8; 16];
                        v[0..8].copy_from_slice(&pid.to_be_bytes());
                        v[8..16].copy_from_slice(&first.to_be_bytes());
                        write.put_cf(&meta, keys::aborted_txn(tid, p, next), v);
                    }
                }
                write.delete_cf(&meta, keys::open_txn(tid, p, pid));
                open_txns.push((pid, None));
            } else if header.is_transactional() && open_txn(&open_txns, header.producer_id).is_none() {
                // The producer's first batch of a transaction here: the LSO stops at it.
                write.put_cf(&meta, keys::open_txn(tid, p, header.producer_id), next.to_be_bytes());
                open_txns.push((header.producer_id, Some(next)));
            }
            if header.has_producer_id() && !header.is_control() {
                if !touched.contains(&header.producer_id) {
                    touched.push(header.producer_id);
                    producers.set(header.producer_id, state.producers.get(header.producer_id).cloned());
                }
                let entry = producers.record(&header, next, now_ms);
                write.put_cf(&meta, keys::producer_state(tid, p, header.producer_id), entry.encode());
            }
            let epoch = header.partition_leader_epoch;
            if epoch_starts.last().is_none_or(|(e, _)| epoch > *e) {
                epoch_starts.push((epoch, next));
            }
            leader_epoch = leader_epoch.max(epoch);
            next = header.last_offset() + 1;
        }
        write.put_cf(&meta, keys::partition_meta(tid, p), meta_value(state.log_start, next, leader_epoch));
        let epochs = self.epoch_starts_for_store(db, write, state, &epoch_starts)?;
        let producers = touched.into_iter().map(|pid| (pid, producers.get(pid).cloned())).collect();
        Ok(StoreEffect { log_end: next, leader_epoch, max_timestamp, producers, epochs, open_txns })
    }

    /// Records in memory what [`Self::store_into`] wrote, once it is written.
    pub(super) fn stored(&self, state: &mut LogState, effect: StoreEffect) {
        self.epoch_started(effect.epochs);
        for (pid, entry) in effect.producers {
            state.producers.set(pid, entry);
        }
        for (pid, first) in effect.open_txns {
            match first {
                Some(first) => state.open_txns.insert(pid, first),
                None => state.open_txns.remove(&pid),
            };
        }
        state.log_end = effect.log_end;
        state.leader_epoch = effect.leader_epoch;
        state.max_timestamp = effect.max_timestamp;
    }

}

/// One batch of a produce as stamping decided it.
#[derive(Debug)]
pub enum Stamped {
    /// A new batch: its bytes (and header) now carry its base offset and leader epoch.
    New(BatchHeader, BytesMut),
    /// A retry of a batch already in the log at this base offset: nothing to store.
    Duplicate(i64),
}

/// What stamping the batches of one produce decided ([`PartitionLog::stamp`]).
#[derive(Debug)]
pub struct Stamp {
    /// The batches in produce order.
    pub batches: Vec<Stamped>,
    /// The offset after the last new batch (the next one to assign).
    pub next_offset: i64,
}

impl Stamp {
    /// Offset of the first batch (the original one for a retry); None: no batch.
    pub fn base_offset(&self) -> Option<i64> {
        self.batches.first().map(|b| match b {
            Stamped::New(header, _) => header.base_offset,
            Stamped::Duplicate(offset) => *offset,
        })
    }

    /// The new batches' bytes, in order.
    pub fn new_batches(&self) -> impl Iterator<Item = &[u8]> {
        self.batches.iter().filter_map(|b| match b {
            Stamped::New(_, bytes) => Some(&bytes[..]),
            Stamped::Duplicate(_) => None,
        })
    }
}

/// What a store wrote that the in-memory state must follow once it is written.
#[derive(Debug)]
pub(super) struct StoreEffect {
    pub(super) log_end: i64,
    leader_epoch: i32,
    max_timestamp: Option<i64>,
    producers: Vec<(i64, Option<ProducerEntry>)>,
    epochs: Vec<(i32, i64)>,
    /// Open transactions changed: producer id → first offset (None: closed by a marker).
    open_txns: Vec<(i64, Option<i64>)>,
}

/// Stamps batches from `next` in `leader_epoch` against `producers` (not changed: the
/// batches of this call are checked against a copy that records them as they go).
pub(super) fn stamp_batches(
    producers: &ProducerStates,
    batches: Vec<(BatchHeader, BytesMut)>,
    mut next: i64,
    leader_epoch: i32,
) -> Result<Stamp, StorageError> {
    let mut seen = ProducerStates::default();
    let mut touched: Vec<i64> = Vec::new();
    let mut out = Vec::with_capacity(batches.len());
    for (mut header, mut bytes) in batches {
        // Markers (control batches, built only by the broker) carry no sequence.
        if header.has_producer_id() && !header.is_control() {
            if !touched.contains(&header.producer_id) {
                touched.push(header.producer_id);
                seen.set(header.producer_id, producers.get(header.producer_id).cloned());
            }
            if let SequenceCheck::Duplicate(offset) = seen.check(&header)? {
                out.push(Stamped::Duplicate(offset));
                continue;
            }
            seen.record(&header, next, 0);
        }
        batch::assign(&mut bytes, next, leader_epoch);
        header.base_offset = next;
        header.partition_leader_epoch = leader_epoch;
        next = header.last_offset() + 1;
        out.push(Stamped::New(header, bytes));
    }
    Ok(Stamp { batches: out, next_offset: next })
}
