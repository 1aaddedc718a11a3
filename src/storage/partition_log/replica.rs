//! The partition log as a Raft log (docs/cluster.md §5–§6): a replicated partition's
//! Raft entries are its batches, written once. A data entry is a stored batch plus
//! `ri/<index>` → its base offset and proposing leader (the offset translator); a non-data entry (blank,
//! membership, DeleteRecords) is `re/<index>` → term and payload, and takes an index
//! but no offset. Offsets are assigned in log order, so every replica derives the same
//! offsets from the same log. Nothing here knows openraft: `cluster::partition_raft`
//! adapts these primitives to its traits and encodes its values.

#[allow(unused_imports)]
use super::*;

use std::collections::{HashMap, HashSet};

/// One Raft log entry of a partition, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaEntry {
    /// A record batch: `batch` carries its base offset, and its `partitionLeaderEpoch`
    /// is the entry's term.
    Data {
        /// Raft index.
        index: u64,
        /// Node id of the leader that proposed it (part of a Raft log id).
        leader: u64,
        /// The stored batch.
        batch: Bytes,
    },
    /// An entry that takes an index and no offset (blank, membership, DeleteRecords):
    /// its term and an opaque payload.
    Other {
        /// Raft index.
        index: u64,
        /// Raft term.
        term: u64,
        /// Node id of the leader that proposed it.
        leader: u64,
        /// Encoded by the Raft layer.
        payload: Bytes,
    },
}

impl ReplicaEntry {
    /// The entry's Raft index.
    pub fn index(&self) -> u64 {
        match self {
            ReplicaEntry::Data { index, .. } | ReplicaEntry::Other { index, .. } => *index,
        }
    }

    /// Node id of the leader that proposed the entry.
    pub fn leader(&self) -> u64 {
        match self {
            ReplicaEntry::Data { leader, .. } | ReplicaEntry::Other { leader, .. } => *leader,
        }
    }

    /// The entry's Raft term (a data entry's is its batch's leader epoch).
    pub fn term(&self) -> u64 {
        match self {
            ReplicaEntry::Data { batch, .. } => batch_epoch(batch).max(0) as u64,
            ReplicaEntry::Other { term, .. } => *term,
        }
    }
}

/// Per-partition Raft values kept in the metadata column family, opaque to storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaKey {
    /// The vote (`rv/`).
    Vote,
    /// The last committed log id (`rc/`).
    Committed,
    /// The last purged log id (`rp/`).
    Purged,
    /// Last applied log id, membership and high watermark (`ra/`).
    Applied,
    /// The current snapshot (`rs/`).
    Snapshot,
}

/// What a replica's snapshot carries of the partition (docs/cluster.md §8): no batches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReplicaState {
    /// First offset in the log.
    pub log_start: i64,
    /// Offset after the last stored batch (the next offset of the log).
    pub log_end: i64,
    /// Idempotent producer states, as stored (`ProducerEntry::encode`).
    pub producers: Vec<(i64, Vec<u8>)>,
    /// The leader-epoch history: `(epoch, first offset)`.
    pub epochs: Vec<(i32, i64)>,
}

/// A stored batch's `partitionLeaderEpoch`.
fn batch_epoch(batch: &[u8]) -> i32 {
    batch.get(12..16).map_or(-1, |e| i32::from_be_bytes([e[0], e[1], e[2], e[3]]))
}

/// Term, leader and payload of a non-data entry as stored in `re/`.
fn encode_other(term: u64, leader: u64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + payload.len());
    v.extend_from_slice(&term.to_be_bytes());
    v.extend_from_slice(&leader.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn decode_other(index: u64, v: &[u8]) -> Result<ReplicaEntry, StorageError> {
    let word = |at: usize| v.get(at..at + 8).and_then(|t| t.try_into().ok()).map(u64::from_be_bytes);
    let (Some(term), Some(leader)) = (word(0), word(8)) else {
        return Err(StorageError::CorruptMetadata(format!("raft entry {index}")));
    };
    Ok(ReplicaEntry::Other { index, term, leader, payload: Bytes::copy_from_slice(&v[16..]) })
}

/// A data entry's `ri/` value: the batch's base offset and the proposing leader's node id.
fn encode_data(base_offset: i64, leader: u64) -> [u8; 16] {
    let mut v = [0u8; 16];
    v[0..8].copy_from_slice(&base_offset.to_be_bytes());
    v[8..16].copy_from_slice(&leader.to_be_bytes());
    v
}

fn decode_data(v: &[u8]) -> Result<(i64, u64), StorageError> {
    let word = |at: usize| v.get(at..at + 8).and_then(|t| <[u8; 8]>::try_from(t).ok());
    match (word(0), word(8)) {
        (Some(offset), Some(leader)) => Ok((i64::from_be_bytes(offset), u64::from_be_bytes(leader))),
        _ => Err(StorageError::CorruptMetadata("raft index entry".into())),
    }
}

impl PartitionLog {
    fn replica_key(&self, key: ReplicaKey) -> Vec<u8> {
        let (tid, p) = (self.topic_id, self.partition);
        match key {
            ReplicaKey::Vote => keys::raft_vote(tid, p),
            ReplicaKey::Committed => keys::raft_committed(tid, p),
            ReplicaKey::Purged => keys::raft_purged(tid, p),
            ReplicaKey::Applied => keys::raft_applied(tid, p),
            ReplicaKey::Snapshot => keys::raft_snapshot(tid, p),
        }
    }

    /// A stored Raft value (None: never written).
    pub fn replica_value(&self, key: ReplicaKey) -> Result<Option<Vec<u8>>, StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        Ok(db.get_cf(&meta, self.replica_key(key))?)
    }

    /// Writes a Raft value (one RocksDB write; durable as any write is, see
    /// [`Self::durability`]).
    pub fn put_replica_value(&self, key: ReplicaKey, value: &[u8]) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let _state = self.state.lock();
        self.check_live()?;
        db.put_cf(&meta, self.replica_key(key), value).map_err(|e| self.rocks_error(e, true))
    }

    /// What makes the writes completed before this call durable (the store's group commit).
    pub fn durability(&self) -> crate::storage::Durability {
        self.store.durability()
    }

    /// Appends Raft entries after the last one, in one RocksDB write: each data entry's
    /// batch (which must start at the log end: offsets follow log order) with everything
    /// an append stores (indexes, producer state, epoch history, log end) and its `ri/`
    /// key; each other entry's `re/` key. A data entry whose batch carries another leader
    /// epoch than `term` gets `term` written into it (outside the CRC), so entry terms
    /// and batch epochs always agree.
    pub fn replica_append(&self, entries: Vec<(ReplicaEntry, u64)>) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        self.check_live()?;
        let (tid, p) = (self.topic_id, self.partition);
        let mut write = WriteBatch::default();
        let mut batches: Vec<Bytes> = Vec::new();
        let mut next = state.log_end;
        for (entry, term) in entries {
            match entry {
                ReplicaEntry::Data { index, leader, batch } => {
                    let epoch = i32::try_from(term)
                        .map_err(|_| StorageError::CorruptMetadata(format!("raft term {term} exceeds a leader epoch")))?;
                    let batch = if batch_epoch(&batch) == epoch {
                        batch
                    } else {
                        let mut copy = BytesMut::from(&batch[..]);
                        let base = batch::offsets_of(&copy).0;
                        batch::assign(&mut copy, base, epoch);
                        copy.freeze()
                    };
                    let header = BatchHeader::parse(&batch)?;
                    write.put_cf(&meta, keys::raft_index(tid, p, index), encode_data(header.base_offset, leader));
                    next = header.last_offset() + 1;
                    batches.push(batch);
                }
                ReplicaEntry::Other { index, term: t, leader, payload } => {
                    write.put_cf(&meta, keys::raft_entry(tid, p, index), encode_other(t, leader, &payload));
                }
            }
        }
        let effect = if batches.is_empty() {
            None
        } else {
            let slices: Vec<&[u8]> = batches.iter().map(|b| &b[..]).collect();
            Some(self.store_into(&db, &mut write, &state, &slices)?)
        };
        debug_assert!(effect.as_ref().is_none_or(|e| e.log_end == next));
        db.write(write).map_err(|e| self.rocks_error(e, true))?;
        if let Some(effect) = effect {
            self.stored(&mut state, effect);
        }
        Ok(())
    }

    /// The entries with index in `from..until`, in index order (as many as are present:
    /// purged ones are not).
    pub fn replica_entries(&self, from: u64, until: u64) -> Result<Vec<ReplicaEntry>, StorageError> {
        if from >= until {
            return Ok(Vec::new());
        }
        self.check_live()?;
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let (tid, p) = (self.topic_id, self.partition);
        let mut out: Vec<ReplicaEntry> = Vec::new();
        // The two prefix scans, merged by index.
        let ri_prefix = keys::raft_index_prefix(tid, p);
        let mut data = db.raw_iterator_cf(&meta);
        data.seek(keys::raft_index(tid, p, from));
        while let (Some(k), Some(v)) = (data.key(), data.value()) {
            let Some(index) = k.starts_with(&ri_prefix).then(|| keys::parse_raft_index(k)).flatten() else { break };
            if index >= until {
                break;
            }
            let (offset, leader) = decode_data(v)?;
            let batch = db
                .get_pinned_cf(&cf, keys::offset_key(offset))
                .map_err(|e| self.rocks_error(e, false))?
                .ok_or_else(|| {
                    StorageError::CorruptMetadata(format!(
                        "partition {}: raft entry {index} is the batch at offset {offset}, which is gone",
                        self.label()
                    ))
                })?;
            out.push(ReplicaEntry::Data { index, leader, batch: Bytes::copy_from_slice(&batch) });
            data.next();
        }
        data.status()?;
        drop(data);
        let re_prefix = keys::raft_entry_prefix(tid, p);
        let mut other = db.raw_iterator_cf(&meta);
        other.seek(keys::raft_entry(tid, p, from));
        let mut others = Vec::new();
        while let (Some(k), Some(v)) = (other.key(), other.value()) {
            let Some(index) = k.starts_with(&re_prefix).then(|| keys::parse_raft_index(k)).flatten() else { break };
            if index >= until {
                break;
            }
            others.push(decode_other(index, v)?);
            other.next();
        }
        other.status()?;
        if !others.is_empty() {
            out.extend(others);
            out.sort_by_key(|e| e.index());
        }
        self.check_live()?;
        Ok(out)
    }

    /// Index, term and leader of the last entry in the log (None: no entry is present).
    pub fn replica_last_entry(&self) -> Result<Option<(u64, u64, u64)>, StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let (tid, p) = (self.topic_id, self.partition);
        let last = |prefix: Vec<u8>| -> Result<Option<(u64, Vec<u8>)>, StorageError> {
            let mut iter = db.raw_iterator_cf(&meta);
            iter.seek_for_prev(keys::prefix_end(&prefix));
            let found = match (iter.key(), iter.value()) {
                (Some(k), Some(v)) if k.starts_with(&prefix) => keys::parse_raft_index(k).map(|i| (i, v.to_vec())),
                _ => None,
            };
            iter.status()?;
            Ok(found)
        };
        let data = last(keys::raft_index_prefix(tid, p))?;
        let other = last(keys::raft_entry_prefix(tid, p))?;
        match (data, other) {
            (Some((di, _)), Some((oi, v))) if oi > di => {
                let e = decode_other(oi, &v)?;
                Ok(Some((oi, e.term(), e.leader())))
            }
            (None, Some((oi, v))) => {
                let e = decode_other(oi, &v)?;
                Ok(Some((oi, e.term(), e.leader())))
            }
            (Some((di, _)), _) => {
                let entry = self.replica_entries(di, di + 1)?;
                Ok(entry.first().map(|e| (di, e.term(), e.leader())))
            }
            (None, None) => Ok(None),
        }
    }

    /// The base offset of the data entry at Raft index `index` (None: not a data
    /// entry, or not in the log).
    pub fn offset_of_index(&self, index: u64) -> Result<Option<i64>, StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        match db.get_cf(&meta, keys::raft_index(self.topic_id, self.partition, index))? {
            Some(v) => Ok(Some(decode_data(&v)?.0)),
            None => Ok(None),
        }
    }

    /// Deletes the entries from Raft index `from` on (a follower's uncommitted tail that
    /// conflicts with the leader's log), in one RocksDB write: the batches from the first
    /// data entry at or after `from` to the end, their batch and time index entries, the
    /// `ri/`/`re/` keys, the leader-epoch history entries that start past the new end;
    /// the producers those batches touched get back the state the remaining log gives
    /// them (their last five batches of their last epoch); the log end moves back.
    /// Committed data (below the high watermark) is never truncated.
    pub fn replica_truncate(&self, from: u64) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        self.check_live()?;
        let (tid, p) = (self.topic_id, self.partition);
        let ri_prefix = keys::raft_index_prefix(tid, p);
        let mut iter = db.raw_iterator_cf(&meta);
        iter.seek(keys::raft_index(tid, p, from));
        let cut = match (iter.key(), iter.value()) {
            (Some(k), Some(v)) if k.starts_with(&ri_prefix) => Some(decode_data(v)?.0),
            _ => None,
        };
        iter.status()?;
        drop(iter);
        let mut write = WriteBatch::default();
        write.delete_range_cf(&meta, keys::raft_index(tid, p, from), keys::prefix_end(&ri_prefix));
        let re_prefix = keys::raft_entry_prefix(tid, p);
        write.delete_range_cf(&meta, keys::raft_entry(tid, p, from), keys::prefix_end(&re_prefix));
        let Some(cut) = cut.filter(|c| *c < state.log_end) else {
            db.write(write).map_err(|e| self.rocks_error(e, true))?;
            return Ok(());
        };
        let high_watermark = *self.high_watermark.borrow();
        if cut < high_watermark {
            return Err(StorageError::CorruptMetadata(format!(
                "partition {}: truncating the raft log from offset {cut} would remove committed records (high \
                 watermark {high_watermark})",
                self.label()
            )));
        }
        // The producers the truncated batches touched.
        let touched = self.producers_from(&db, cut)?;
        let producers = self.producers_below(&db, cut, state.log_start, touched)?;
        for (pid, entry) in &producers {
            match entry {
                Some(entry) => write.put_cf(&meta, keys::producer_state(tid, p, *pid), entry.encode()),
                None => write.delete_cf(&meta, keys::producer_state(tid, p, *pid)),
            }
        }
        write.delete_range_cf(&cf, &keys::offset_key(cut)[..], keys::OFFSET_KEY_END);
        let bi_prefix = keys::batch_index_prefix(tid, Some(p));
        write.delete_range_cf(&meta, keys::batch_index(tid, p, cut), keys::prefix_end(&bi_prefix));
        // Time index entries are where the running maximum grew, so offsets grow with
        // keys: the truncated ones are a suffix, and the last one left holds the maximum.
        let ti_prefix = keys::time_index_prefix(tid, Some(p));
        let mut ti = db.raw_iterator_cf(&meta);
        ti.seek_for_prev(keys::prefix_end(&ti_prefix));
        let mut max_timestamp = None;
        while let (Some(k), Some(v)) = (ti.key(), ti.value()) {
            if !k.starts_with(&ti_prefix) {
                break;
            }
            if offset_value(v)? < cut {
                max_timestamp = keys::parse_time_index(k);
                break;
            }
            write.delete_cf(&meta, k);
            ti.prev();
        }
        ti.status()?;
        drop(ti);
        // Epochs that start past the new end go (Kafka's truncateFromEnd).
        let mut epochs = self.epochs.lock();
        if epochs.is_none() {
            *epochs = Some(self.load_epoch_history(&db, &state)?);
        }
        for (epoch, start) in epochs.as_ref().map(|h| h.entries().to_vec()).unwrap_or_default() {
            if start >= cut {
                write.delete_cf(&meta, keys::leader_epoch_start(tid, p, epoch));
            }
        }
        write.put_cf(&meta, keys::partition_meta(tid, p), meta_value(state.log_start, cut, state.leader_epoch));
        db.write(write).map_err(|e| self.rocks_error(e, true))?;
        // Re-read from what is stored now.
        *epochs = None;
        drop(epochs);
        for (pid, entry) in producers {
            state.producers.set(pid, entry);
        }
        state.log_end = cut;
        state.max_timestamp = max_timestamp;
        Ok(())
    }

    /// The state the log below `cut` gives these producers: for each, its last (at most
    /// five) batches of its last epoch, read backwards from `cut` (None: it has no batch
    /// left). Appended "now" for expiry.
    fn producers_below(
        &self,
        db: &crate::storage::Db,
        cut: i64,
        log_start: i64,
        mut pending: HashSet<i64>,
    ) -> Result<Vec<(i64, Option<ProducerEntry>)>, StorageError> {
        let all: Vec<i64> = pending.iter().copied().collect();
        let mut found: HashMap<i64, Vec<BatchHeader>> = HashMap::new();
        if cut > 0 && !pending.is_empty() {
            let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
            let mut iter = db.raw_iterator_cf(&cf);
            iter.seek_for_prev(keys::offset_key(cut - 1));
            while let Some(v) = iter.value() {
                if pending.is_empty() {
                    break;
                }
                let header = BatchHeader::parse(v)?;
                if header.last_offset() < log_start {
                    break;
                }
                if pending.contains(&header.producer_id) {
                    let batches = found.entry(header.producer_id).or_default();
                    if batches.first().is_some_and(|newest| newest.producer_epoch != header.producer_epoch) {
                        pending.remove(&header.producer_id);
                    } else {
                        batches.push(header);
                        if batches.len() == producer_state::BATCHES_KEPT {
                            pending.remove(&header.producer_id);
                        }
                    }
                }
                iter.prev();
            }
            iter.status().map_err(|e| self.rocks_error(e, false))?;
        }
        let now = producer_state::now_ms();
        let mut rebuilt = ProducerStates::default();
        Ok(all
            .into_iter()
            .map(|pid| {
                let batches = found.remove(&pid).unwrap_or_default();
                for header in batches.iter().rev() {
                    rebuilt.record(header, header.base_offset, now);
                }
                (pid, rebuilt.get(pid).cloned())
            })
            .collect())
    }

    /// Deletes the `ri/`/`re/` keys up to Raft index `upto` (inclusive) and stores
    /// `purged` (the last purged log id) in the same write. The batches stay: retention
    /// and DeleteRecords own them.
    pub fn replica_purge(&self, upto: u64, purged: &[u8]) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let _state = self.state.lock();
        self.check_live()?;
        let (tid, p) = (self.topic_id, self.partition);
        let mut write = WriteBatch::default();
        write.delete_range_cf(&meta, keys::raft_index_prefix(tid, p), keys::prefix_end(&keys::raft_index(tid, p, upto)));
        write.delete_range_cf(&meta, keys::raft_entry_prefix(tid, p), keys::prefix_end(&keys::raft_entry(tid, p, upto)));
        write.put_cf(&meta, keys::raft_purged(tid, p), purged);
        db.write(write).map_err(|e| self.rocks_error(e, true))
    }

    /// Records what the state machine applied (`applied`, opaque: last applied log id
    /// and membership with the high watermark) and then moves the high watermark to
    /// `high_watermark` (never backwards).
    pub fn replica_applied(&self, applied: &[u8], high_watermark: i64) -> Result<(), StorageError> {
        self.put_replica_value(ReplicaKey::Applied, applied)?;
        self.advance_high_watermark(high_watermark);
        Ok(())
    }

    /// Sets the high watermark to `offset` (at most the log end), backwards too: a
    /// replicated partition restarts at what its state machine applied, not at its log end.
    pub fn reset_high_watermark(&self, offset: i64) {
        let log_end = self.state.lock().log_end;
        self.high_watermark.send_replace(offset.min(log_end));
    }

    /// What a snapshot of this replica at offset `upto` (its high watermark at the last
    /// included entry) carries: log start, `upto` as the log end, the producer state and
    /// leader-epoch history of the log below `upto`.
    pub fn replica_state(&self, upto: i64) -> Result<ReplicaState, StorageError> {
        let db = self.store.try_db()?;
        let state = self.state.lock();
        self.check_live()?;
        let upto = upto.min(state.log_end);
        let mut producers: HashMap<i64, Vec<u8>> = state.producers.iter().map(|(pid, e)| (pid, e.encode())).collect();
        if upto < state.log_end {
            let touched = self.producers_from(&db, upto)?;
            for (pid, entry) in self.producers_below(&db, upto, state.log_start, touched)? {
                match entry {
                    Some(entry) => producers.insert(pid, entry.encode()),
                    None => producers.remove(&pid),
                };
            }
        }
        let mut producers: Vec<(i64, Vec<u8>)> = producers.into_iter().collect();
        producers.sort();
        let mut epochs = self.epochs.lock();
        if epochs.is_none() {
            *epochs = Some(self.load_epoch_history(&db, &state)?);
        }
        let epochs = epochs.as_ref().map(|h| h.entries().to_vec()).unwrap_or_default();
        Ok(ReplicaState {
            log_start: state.log_start,
            log_end: upto,
            producers,
            epochs: epochs.into_iter().filter(|(_, start)| *start < upto).collect(),
        })
    }

    /// The producers of the stored batches from offset `from` on.
    fn producers_from(&self, db: &crate::storage::Db, from: i64) -> Result<HashSet<i64>, StorageError> {
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let mut touched = HashSet::new();
        let mut data = db.raw_iterator_cf(&cf);
        data.seek(keys::offset_key(from));
        while let Some(v) = data.value() {
            let header = BatchHeader::parse(v)?;
            if header.has_producer_id() {
                touched.insert(header.producer_id);
            }
            data.next();
        }
        data.status().map_err(|e| self.rocks_error(e, false))?;
        Ok(touched)
    }

    /// Installs a snapshot's partition state (a follower behind the leader's log start):
    /// when this replica's log ends before the snapshot's, everything it holds is
    /// deleted and the log restarts empty at the snapshot's end with its producer state
    /// and epoch history; otherwise only what lies below the snapshot's log start goes.
    /// The high watermark becomes at least the snapshot's end.
    pub fn install_replica_state(&self, snapshot: &ReplicaState) -> Result<(), StorageError> {
        let behind = self.offsets().log_end < snapshot.log_end;
        if !behind {
            self.advance_high_watermark(snapshot.log_end);
            if snapshot.log_start > self.offsets().log_start {
                self.delete_before(snapshot.log_start.min(*self.high_watermark.borrow()))?;
            }
            return Ok(());
        }
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        self.check_live()?;
        let (tid, p) = (self.topic_id, self.partition);
        let mut entries = Vec::with_capacity(snapshot.producers.len());
        for (pid, encoded) in &snapshot.producers {
            let entry = ProducerEntry::decode(encoded).ok_or_else(|| StorageError::CorruptMetadata("snapshot producer state".into()))?;
            entries.push((*pid, entry));
        }
        let mut write = WriteBatch::default();
        write.delete_range_cf(&cf, keys::OFFSET_KEY_MIN, keys::OFFSET_KEY_END);
        for prefix in [
            keys::batch_index_prefix(tid, Some(p)),
            keys::time_index_prefix(tid, Some(p)),
            keys::producer_state_prefix(tid, Some(p)),
        ] {
            write.delete_range_cf(&meta, &prefix, &keys::prefix_end(&prefix));
        }
        let epoch_prefix = keys::leader_epoch_prefix(tid, p);
        write.delete_range_cf(&meta, keys::leader_epoch_start(tid, p, 0), keys::prefix_end(&epoch_prefix));
        for (pid, encoded) in &snapshot.producers {
            write.put_cf(&meta, keys::producer_state(tid, p, *pid), encoded);
        }
        for (epoch, start) in &snapshot.epochs {
            write.put_cf(&meta, keys::leader_epoch_start(tid, p, *epoch), start.to_be_bytes());
        }
        let leader_epoch = snapshot.epochs.last().map_or(state.leader_epoch, |(e, _)| state.leader_epoch.max(*e));
        write.put_cf(&meta, keys::partition_meta(tid, p), meta_value(snapshot.log_end, snapshot.log_end, leader_epoch));
        db.write(write).map_err(|e| self.rocks_error(e, true))?;
        state.log_start = snapshot.log_end;
        state.log_end = snapshot.log_end;
        state.leader_epoch = leader_epoch;
        state.max_timestamp = None;
        state.producers = ProducerStates::from_entries(entries);
        *self.epochs.lock() = None;
        self.high_watermark.send_replace(snapshot.log_end);
        Ok(())
    }
}
