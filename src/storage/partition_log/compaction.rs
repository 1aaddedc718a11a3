//! Log compaction's storage primitives on a partition log.

#[allow(unused_imports)]
use super::*;

/// Log compaction's storage primitives: read a range of batches, and replace a run of
/// batches (with the cleaner checkpoint) in one atomic write.
impl PartitionLog {
    /// The topic id.
    pub fn topic_id(&self) -> Uuid {
        self.topic_id
    }

    /// Visits, in offset order, the committed batches whose base offset lies in
    /// `from..until` (`until` is capped at the high watermark), until `visit` returns
    /// false. Reads one consistent view: concurrent appends and replacements are not seen.
    pub fn scan_range(&self, from: i64, until: i64, mut visit: impl FnMut(&[u8]) -> bool) -> Result<(), StorageError> {
        self.check_live()?;
        let until = until.min(*self.high_watermark.borrow());
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let mut iter = db.raw_iterator_cf(&cf);
        iter.seek(keys::offset_key(from.max(0)));
        while let Some(value) = iter.value() {
            if value.len() < batch::HEADER_LEN || batch::offsets_of(value).0 >= until || !visit(value) {
                break;
            }
            iter.next();
        }
        iter.status().map_err(|e| self.rocks_error(e, false))?;
        self.check_live()
    }

    /// The cleaner checkpoint: the first offset log compaction has not cleaned yet
    /// (None: never cleaned).
    pub fn cleaner_checkpoint(&self) -> Result<Option<i64>, StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        match db.get_cf(&meta, keys::cleaner_checkpoint(self.topic_id, self.partition))? {
            Some(v) => Ok(Some(i64::from_be_bytes(
                v.as_slice().try_into().map_err(|_| StorageError::CorruptMetadata("cleaner checkpoint".into()))?,
            ))),
            None => Ok(None),
        }
    }

    /// Offset of the last record of each producer's last batch, for the producers
    /// this partition keeps idempotence state for (log compaction keeps those batches).
    pub fn producer_last_offsets(&self) -> std::collections::HashMap<i64, i64> {
        let state = self.state.lock();
        state
            .producers
            .iter()
            .filter_map(|(pid, entry)| {
                let last = entry.batches().last()?;
                let span = (last.last_seq as i64 - last.first_seq as i64).rem_euclid(i32::MAX as i64 + 1);
                Some((pid, last.base_offset + span))
            })
            .collect()
    }

    /// Replaces stored batches in one RocksDB write, so a crash leaves all of the
    /// changes or none: each `(base offset, Some(batch))` overwrites the batch stored at
    /// that base offset (the new batch keeps its offset range), each `(base offset,
    /// None)` deletes it; `checkpoint`, when given, becomes the cleaner checkpoint in
    /// the same write. A batch that is gone meanwhile (deleted records, retention) is
    /// left gone. Returns how many batches were changed.
    pub fn replace_batches(&self, changes: &[(i64, Option<BytesMut>)], checkpoint: Option<i64>) -> Result<usize, StorageError> {
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let state = self.state.lock();
        self.check_live()?;
        let mut write = WriteBatch::default();
        let mut changed = 0;
        for (base, replacement) in changes {
            let key = keys::offset_key(*base);
            let present = db.get_pinned_cf(&cf, key).map_err(|e| self.rocks_error(e, false))?.is_some();
            if !present || *base >= state.log_end {
                continue;
            }
            // The batch index (retention's sizes and timestamps) follows every change.
            let index_key = keys::batch_index(self.topic_id, self.partition, *base);
            match replacement {
                Some(bytes) if batch::offsets_of(bytes).1 >= state.log_start && batch::offsets_of(bytes).0 == *base => {
                    let header = BatchHeader::parse(bytes)?;
                    let summary = BatchSummary {
                        base_offset: *base,
                        last_offset: header.last_offset(),
                        size: bytes.len() as u64,
                        max_timestamp: header.max_timestamp,
                    };
                    write.put_cf(&cf, key, bytes);
                    write.put_cf(&meta, index_key, summary.encode());
                }
                Some(_) => continue,
                None => {
                    write.delete_cf(&cf, key);
                    write.delete_cf(&meta, index_key);
                }
            }
            changed += 1;
        }
        if let Some(offset) = checkpoint {
            write.put_cf(&meta, keys::cleaner_checkpoint(self.topic_id, self.partition), offset.to_be_bytes());
        }
        if !write.is_empty() {
            db.write(write).map_err(|e| self.rocks_error(e, true))?;
        }
        drop(state);
        Ok(changed)
    }
}
