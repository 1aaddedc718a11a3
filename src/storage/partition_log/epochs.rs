//! The leader-epoch history of a partition (OffsetForLeaderEpoch).

#[allow(unused_imports)]
use super::*;

// ---- Leader-epoch history ------------------------------------------------------
//
// Kafka's `LeaderEpochFileCache`: for each leader epoch, the first offset written in
// it. The entries live in the metadata column family (`keys::leader_epoch_start`),
// each written in the same `WriteBatch` as the append (or the epoch change) that
// starts its epoch, so the history never disagrees with the data after a crash.

/// A partition's leader-epoch history: `(epoch, first offset written in it)` in
/// increasing epoch (and offset) order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochHistory {
    entries: Vec<(i32, i64)>,
    /// Entries found only in the data (a log written before the history existed),
    /// stored with the next write.
    unsaved: bool,
    /// Epochs whose stored entries start past the log end (their data was lost before
    /// a restart): deleted with the next write, as Kafka truncates its cache.
    stale: Vec<i32>,
}

impl EpochHistory {
    /// The stored `(epoch, start offset)` entries, in epoch order.
    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// A history of these `(epoch, start offset)` entries.
    pub fn from_entries(entries: Vec<(i32, i64)>) -> EpochHistory {
        EpochHistory { entries, unsaved: false, stale: Vec::new() }
    }

    /// The entries as they stand for a log from `log_start` to `log_end` whose current
    /// epoch is `current`: the current epoch starts at the log end if nothing was
    /// written in it yet; entries past the log end (their data was lost) are dropped;
    /// and, as Kafka truncates its cache when the log start moves, the last epoch that
    /// began at or below the log start begins at the log start instead, earlier ones
    /// being gone.
    pub fn effective(&self, current: i32, log_start: i64, log_end: i64) -> Vec<(i32, i64)> {
        let mut all: Vec<(i32, i64)> = self.entries.iter().copied().filter(|(_, start)| *start <= log_end).collect();
        if all.last().map_or(true, |(epoch, _)| *epoch < current) {
            all.push((current, log_end));
        }
        match all.iter().rposition(|(_, start)| *start <= log_start) {
            Some(i) => {
                let epoch = all[i].0;
                all.drain(..=i);
                all.insert(0, (epoch, log_start));
                all
            }
            None => all,
        }
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the end offset of `requested` (the
    /// start of the next higher epoch, or the log end for the latest one) with the
    /// largest epoch ≤ `requested`; for an epoch older than any known, `requested` with
    /// the start of the oldest known. None (Kafka's UNDEFINED_EPOCH, -1 offset) for
    /// epoch -1 or one newer than any known.
    pub fn end_offset_for(&self, requested: i32, current: i32, log_start: i64, log_end: i64) -> Option<(i32, i64)> {
        if requested == -1 {
            return None;
        }
        let entries = self.effective(current, log_start, log_end);
        if entries.last().map(|(epoch, _)| *epoch) == Some(requested) {
            return Some((requested, log_end));
        }
        let higher = entries.iter().find(|(epoch, _)| *epoch > requested)?;
        match entries.iter().rev().find(|(epoch, _)| *epoch <= requested) {
            Some((floor, _)) => Some((*floor, higher.1)),
            None => Some((requested, higher.1)),
        }
    }
}

impl PartitionLog {
    /// Reads the leader-epoch history from the metadata column family. A log written
    /// before the history was kept has no entries: its first stored batch's leader
    /// epoch is taken to start at the log start (and saved with the next write).
    pub(super) fn load_epoch_history(&self, db: &crate::storage::Db, state: &LogState) -> Result<EpochHistory, StorageError> {
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let prefix = keys::leader_epoch_prefix(self.topic_id, self.partition);
        let mut entries = Vec::new();
        for item in db.iterator_cf(&meta, IteratorMode::From(&prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let Some(epoch) = keys::parse_leader_epoch_start(&prefix, &k) else { continue };
            let start = i64::from_be_bytes(
                v.as_ref().try_into().map_err(|_| StorageError::CorruptMetadata("leader epoch start".into()))?,
            );
            entries.push((epoch, start));
        }
        let (entries, stale): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(_, start)| *start <= state.log_end);
        let mut history = EpochHistory::from_entries(entries);
        history.stale = stale.into_iter().map(|(epoch, _)| epoch).collect();
        if history.entries.is_empty() && state.log_end > state.log_start {
            let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
            let mut iter = db.raw_iterator_cf(&cf);
            iter.seek_to_first();
            let first_epoch = iter.value().and_then(|v| v.get(12..16)).map(|e| i32::from_be_bytes([e[0], e[1], e[2], e[3]]));
            iter.status().map_err(|e| self.rocks_error(e, false))?;
            if let Some(epoch) = first_epoch.filter(|e| *e >= 0) {
                history.entries.push((epoch, state.log_start));
                history.unsaved = true;
            }
        }
        Ok(history)
    }

    /// For a store about to be written in `write` whose batches start the epochs
    /// `starts` (`(epoch, first offset)`, increasing): adds the history entry of each
    /// epoch newer than the history's last (and any entry found only in the data).
    /// Returns the entries to record in memory once the write succeeded.
    pub(super) fn epoch_starts_for_store(
        &self,
        db: &crate::storage::Db,
        write: &mut WriteBatch,
        state: &LogState,
        starts: &[(i32, i64)],
    ) -> Result<Vec<(i32, i64)>, StorageError> {
        let mut epochs = self.epochs.lock();
        if epochs.is_none() {
            *epochs = Some(self.load_epoch_history(db, state)?);
        }
        let history = epochs.as_mut().expect("loaded above");
        let meta = db.cf_handle(META_CF).expect("meta cf");
        if history.unsaved {
            for (epoch, start) in &history.entries {
                write.put_cf(&meta, keys::leader_epoch_start(self.topic_id, self.partition, *epoch), start.to_be_bytes());
            }
        }
        for epoch in &history.stale {
            write.delete_cf(&meta, keys::leader_epoch_start(self.topic_id, self.partition, *epoch));
        }
        let mut last = history.entries.last().map(|(epoch, _)| *epoch);
        let mut added = Vec::new();
        for (epoch, start) in starts {
            if last.is_some_and(|l| l >= *epoch) {
                continue;
            }
            write.put_cf(&meta, keys::leader_epoch_start(self.topic_id, self.partition, *epoch), start.to_be_bytes());
            added.push((*epoch, *start));
            last = Some(*epoch);
        }
        Ok(added)
    }

    /// Records in memory what [`Self::epoch_starts_for_store`] wrote, once it is written.
    pub(super) fn epoch_started(&self, entries: Vec<(i32, i64)>) {
        if let Some(history) = self.epochs.lock().as_mut() {
            history.unsaved = false;
            history.stale.clear();
            history.entries.extend(entries);
        }
    }

    /// Makes `epoch` the partition's leader epoch from the log end on (Kafka's
    /// `maybeAssignEpochStartOffset` when a replica becomes leader): the partition
    /// metadata and the history entry are written together. An epoch not newer than the
    /// current one changes nothing.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        self.check_live()?;
        if epoch <= state.leader_epoch {
            return Ok(());
        }
        let mut epochs = self.epochs.lock();
        if epochs.is_none() {
            *epochs = Some(self.load_epoch_history(&db, &state)?);
        }
        let history = epochs.as_mut().expect("loaded above");
        let mut write = WriteBatch::default();
        // The epoch being left keeps its start even if nothing was written in it.
        let mut entries = history.entries.clone();
        if entries.last().map_or(true, |(e, _)| *e < state.leader_epoch) {
            entries.push((state.leader_epoch, state.log_end));
        }
        entries.push((epoch, state.log_end));
        for (e, start) in &entries {
            write.put_cf(&meta, keys::leader_epoch_start(self.topic_id, self.partition, *e), start.to_be_bytes());
        }
        for e in &history.stale {
            write.delete_cf(&meta, keys::leader_epoch_start(self.topic_id, self.partition, *e));
        }
        write.put_cf(&meta, keys::partition_meta(self.topic_id, self.partition), meta_value(state.log_start, state.log_end, epoch));
        db.write(write).map_err(|e| self.rocks_error(e, true))?;
        history.entries = entries;
        history.unsaved = false;
        history.stale.clear();
        state.leader_epoch = epoch;
        Ok(())
    }

    /// The end offset of leader epoch `requested` and the largest epoch ≤ it, as
    /// [`EpochHistory::end_offset_for`] defines them; None when undefined.
    pub fn end_offset_for_epoch(&self, requested: i32) -> Result<Option<(i32, i64)>, StorageError> {
        let db = self.store.try_db()?;
        let state = self.state.lock();
        self.check_live()?;
        let mut epochs = self.epochs.lock();
        if epochs.is_none() {
            *epochs = Some(self.load_epoch_history(&db, &state)?);
        }
        let history = epochs.as_ref().expect("loaded above");
        Ok(history.end_offset_for(requested, state.leader_epoch, state.log_start, state.log_end))
    }
}
