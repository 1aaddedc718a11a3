//! `PartitionLog`: the append-only log of one partition, stored in its own column
//! family. The log end offset (LEO, next offset to assign) and the high watermark
//! (HW, offsets below it are committed and visible to consumers) are kept apart:
//! with one broker and fsync off they move together; with fsync on the HW follows
//! the fsync; with replication it will follow the followers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use rocksdb::{Direction, ErrorKind, IteratorMode, ReadOptions, WriteBatch};
use tokio::sync::watch;
use uuid::Uuid;

use super::batch::{self, BatchHeader};
use super::producer_state::{self, Expiry, ProducerEntry, ProducerStates, SequenceCheck};
use super::{keys, Store, META_CF};
use crate::error::StorageError;

/// Initial buffer size of a read (grown as needed): enough for a typical fetch.
const READ_BUFFER_HINT: usize = 256 * 1024;

/// One partition's log.
pub struct PartitionLog {
    topic_id: Uuid,
    partition: i32,
    cf_name: String,
    store: Arc<Store>,
    state: Mutex<LogState>,
    high_watermark: watch::Sender<i64>,
    /// Set (under the state lock) when the topic is deleted: its column family is
    /// about to be emptied and given to another partition.
    deleted: AtomicBool,
    /// Why the partition is offline: its stored data failed a checksum. Reads and
    /// appends answer a storage error from then on (until a restart finds it intact).
    failed: Mutex<Option<String>>,
    /// The store generation (reopen count) this log's state was last checked against.
    generation: AtomicU64,
    /// The leader-epoch history, read from the metadata column family on first use
    /// (see [`EpochHistory`]); locked after `state`.
    epochs: Mutex<Option<EpochHistory>>,
}

#[derive(Debug)]
struct LogState {
    log_start: i64,
    log_end: i64,
    leader_epoch: i32,
    producers: ProducerStates,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Offset of the first record of the first batch (the original one for a retry).
    pub base_offset: i64,
    /// Log end offset after the append.
    pub log_end_offset: i64,
    /// Log start offset.
    pub log_start_offset: i64,
}

/// Batches read for a fetch, with the offsets a fetch response reports.
#[derive(Debug, Clone, Default)]
pub struct ReadResult {
    /// Whole stored batches, back to back in offset order, as a fetch response carries them.
    pub records: Bytes,
    /// Number of batches in `records`.
    pub batches: usize,
    /// Length of `records`.
    pub bytes: usize,
    /// High watermark when the read started.
    pub high_watermark: i64,
    /// Log start offset.
    pub log_start_offset: i64,
}

/// Offsets that describe a partition right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    /// First offset still in the log.
    pub log_start: i64,
    /// Next offset to be assigned.
    pub log_end: i64,
    /// Offsets below this are committed.
    pub high_watermark: i64,
    /// Current leader epoch.
    pub leader_epoch: i32,
}

impl PartitionLog {
    /// Creates a new, empty partition (its column family and metadata).
    pub fn create(store: Arc<Store>, topic_id: Uuid, partition: i32) -> Result<Arc<PartitionLog>, StorageError> {
        let cf_name = store.take_partition_cf(topic_id, partition)?;
        {
            let db = store.db();
            let meta = db.cf_handle(META_CF).expect("meta cf");
            let mut write = WriteBatch::default();
            write.put_cf(&meta, keys::partition_cf_ref(topic_id, partition), cf_name.as_bytes());
            write.put_cf(&meta, keys::partition_meta(topic_id, partition), meta_value(0, 0, 0));
            db.write(write)?;
        }
        Ok(Arc::new(PartitionLog::new(store, topic_id, partition, cf_name, 0, 0, 0, ProducerStates::default())))
    }

    /// A new, empty partition in column family `cf_name` (an empty one the caller took
    /// with [`Store::take_partition_cf`]): its metadata goes into `write`, which the
    /// caller commits together with the rest of the topic; the log is valid once it has.
    pub(crate) fn create_in(
        store: Arc<Store>,
        topic_id: Uuid,
        partition: i32,
        cf_name: String,
        write: &mut WriteBatch,
    ) -> Arc<PartitionLog> {
        {
            let db = store.db();
            let meta = db.cf_handle(META_CF).expect("meta cf");
            write.put_cf(&meta, keys::partition_cf_ref(topic_id, partition), cf_name.as_bytes());
            write.put_cf(&meta, keys::partition_meta(topic_id, partition), meta_value(0, 0, 0));
        }
        Arc::new(PartitionLog::new(store, topic_id, partition, cf_name, 0, 0, 0, ProducerStates::default()))
    }

    /// Reopens a partition after a restart; the LEO is recomputed from the last batch.
    pub fn open(store: Arc<Store>, topic_id: Uuid, partition: i32) -> Result<Arc<PartitionLog>, StorageError> {
        let db = store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let cf_name = match db.get_cf(&meta, keys::partition_cf_ref(topic_id, partition))? {
            Some(name) => String::from_utf8(name).map_err(|_| StorageError::CorruptMetadata("column family name".into()))?,
            None => keys::partition_cf(topic_id, partition),
        };
        store.ensure_partition_cf(&cf_name)?;
        let (mut log_start, mut log_end, leader_epoch) = match db.get_cf(&meta, keys::partition_meta(topic_id, partition))? {
            Some(v) if v.len() == 20 => (
                i64::from_be_bytes(v[0..8].try_into().unwrap()),
                i64::from_be_bytes(v[8..16].try_into().unwrap()),
                i32::from_be_bytes(v[16..20].try_into().unwrap()),
            ),
            Some(_) => return Err(StorageError::CorruptMetadata(format!("partition meta of {cf_name}"))),
            None => (0, 0, 0),
        };
        let cf = db.cf_handle(&cf_name).expect("created above");
        let label = format!("{topic_id}-{partition}");
        let mut failed = None;
        match data_bounds(&db, &cf, store.verify_on_start()) {
            Ok(bounds) => {
                if let Some((first, _)) = bounds {
                    log_start = log_start.max(first);
                }
                // The data, not the metadata, says where the log ends: an empty log
                // ends where it starts.
                let data_end = bounds.map_or(log_start, |(_, last)| last + 1);
                let wal_claim = store.wal_claim(topic_id, partition);
                let claimed = log_end.max(wal_claim.as_ref().map_or(i64::MIN, |(end, _)| *end));
                if claimed > data_end {
                    let lost = (claimed - data_end) as u64;
                    store.stats().lost_records.fetch_add(lost, Ordering::Relaxed);
                    let source = match &wal_claim {
                        Some((end, file)) if *end > data_end => format!("write-ahead log {file}"),
                        _ => "partition metadata".to_string(),
                    };
                    tracing::error!(
                        topic_id = %topic_id,
                        partition,
                        lost_from = data_end,
                        lost_to = claimed - 1,
                        lost,
                        evidence = %source,
                        "partition {label} lost acknowledged records: offsets {data_end}..={} ({lost} records) are \
                         not in its data; its log now ends at {data_end}",
                        claimed - 1
                    );
                }
                let torn = store.wal_torn_tail().filter(|_| wal_claim.is_some() && claimed <= data_end);
                if let Some(file) = torn {
                    tracing::error!(
                        topic_id = %topic_id,
                        partition,
                        lost_from = data_end,
                        "partition {label} may have lost acknowledged records from offset {data_end} on: the \
                         write-ahead log {file} ends inside a record, so how many cannot be told; its log now ends at \
                         {data_end}"
                    );
                }
                if log_end != data_end {
                    // Truncate (or extend) the metadata to the data.
                    db.put_cf(&meta, keys::partition_meta(topic_id, partition), meta_value(log_start, data_end, leader_epoch))?;
                }
                log_end = data_end;
            }
            Err(e) if e.kind() == ErrorKind::Corruption => {
                failed = Some(report_corruption(&store, topic_id, partition, &e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        let prefix = keys::producer_state_prefix(topic_id, Some(partition));
        let mut entries = Vec::new();
        for item in db.iterator_cf(&meta, IteratorMode::From(&prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let pid = i64::from_be_bytes(k[prefix.len()..].try_into().map_err(|_| {
                StorageError::CorruptMetadata("producer state key".into())
            })?);
            let entry = ProducerEntry::decode(&v)
                .ok_or_else(|| StorageError::CorruptMetadata("producer state".into()))?;
            entries.push((pid, entry));
        }
        drop((cf, meta));
        let producers = ProducerStates::from_entries(entries);
        let log = PartitionLog::new(store, topic_id, partition, cf_name, log_start, log_end, leader_epoch, producers);
        *log.failed.lock() = failed;
        Ok(Arc::new(log))
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        store: Arc<Store>,
        topic_id: Uuid,
        partition: i32,
        cf_name: String,
        log_start: i64,
        log_end: i64,
        leader_epoch: i32,
        producers: ProducerStates,
    ) -> PartitionLog {
        // Everything that survived in the WAL is durable: on a single broker the
        // high watermark restarts at the log end.
        let (high_watermark, _) = watch::channel(log_end);
        let store_generation = store.generation();
        PartitionLog {
            topic_id,
            partition,
            cf_name,
            store,
            state: Mutex::new(LogState { log_start, log_end, leader_epoch, producers }),
            high_watermark,
            deleted: AtomicBool::new(false),
            failed: Mutex::new(None),
            generation: AtomicU64::new(store_generation),
            epochs: Mutex::new(None),
        }
    }

    /// Marks the partition deleted: appends and reads fail from now on, so that its
    /// column family can be emptied and reused. Waits for an append in progress.
    pub(crate) fn mark_deleted(&self) {
        let _state = self.state.lock();
        self.deleted.store(true, Ordering::SeqCst);
    }

    fn check_live(&self) -> Result<(), StorageError> {
        if self.deleted.load(Ordering::SeqCst) {
            return Err(StorageError::UnknownTopicOrPartition);
        }
        if let Some(detail) = self.failed.lock().as_ref() {
            return Err(StorageError::Corruption { partition: self.label(), detail: detail.clone() });
        }
        Ok(())
    }

    /// `<topic id>-<partition>`, for messages.
    fn label(&self) -> String {
        format!("{}-{}", self.topic_id, self.partition)
    }

    /// Why the partition is offline (its data failed a checksum), if it is.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().clone()
    }

    /// Turns a RocksDB error met on this partition into a storage error: corrupted
    /// data takes the partition offline; a failed write has the store check its health.
    fn rocks_error(&self, e: rocksdb::Error, writing: bool) -> StorageError {
        if e.kind() == ErrorKind::Corruption {
            let mut failed = self.failed.lock();
            let detail = failed
                .get_or_insert_with(|| report_corruption(&self.store, self.topic_id, self.partition, &e.to_string()))
                .clone();
            return StorageError::Corruption { partition: self.label(), detail };
        }
        if writing {
            self.store.report_write_failure(&e);
        }
        e.into()
    }

    /// After the store reopened its database, re-reads the log end from the data:
    /// a write that reported failure may have reached the log before the failure.
    fn resync_after_reopen(&self, db: &super::Db, state: &mut LogState) -> Result<(), StorageError> {
        let generation = self.store.generation();
        if self.generation.load(Ordering::SeqCst) == generation {
            return Ok(());
        }
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let mut iter = db.raw_iterator_cf(&cf);
        iter.seek_to_last();
        let last = iter.value().map(|v| batch::offsets_of(v).1);
        iter.status().map_err(|e| self.rocks_error(e, false))?;
        if let Some(last) = last.filter(|l| *l + 1 > state.log_end) {
            tracing::warn!(
                topic_id = %self.topic_id,
                partition = self.partition,
                from = state.log_end,
                to = last + 1,
                "records of a write reported as failed reached the log before the database was reopened"
            );
            state.log_end = last + 1;
            self.advance_high_watermark(last + 1);
        }
        self.generation.store(generation, Ordering::SeqCst);
        Ok(())
    }

    /// The partition index.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The column family name.
    pub fn cf_name(&self) -> &str {
        &self.cf_name
    }

    /// Current log start, log end, high watermark and leader epoch.
    pub fn offsets(&self) -> LogOffsets {
        let state = self.state.lock();
        LogOffsets {
            log_start: state.log_start,
            log_end: state.log_end,
            high_watermark: *self.high_watermark.borrow(),
            leader_epoch: state.leader_epoch,
        }
    }

    /// Estimated bytes stored for this partition (SST files plus memtables).
    pub fn size_bytes(&self) -> u64 {
        let Ok(db) = self.store.try_db() else { return 0 };
        let Some(cf) = db.cf_handle(&self.cf_name) else { return 0 };
        ["rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables"]
            .iter()
            .filter_map(|p| db.property_int_value_cf(&cf, *p).ok().flatten())
            .sum()
    }

    /// A receiver that changes whenever the high watermark moves.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Appends validated batches: assigns offsets in place, writes data, producer
    /// state and partition metadata in one RocksDB write (WAL on). The high
    /// watermark moves at once unless `defer_high_watermark` is set (fsync mode:
    /// the caller advances it after the fsync).
    pub fn append(
        &self,
        batches: Vec<(BatchHeader, BytesMut)>,
        defer_high_watermark: bool,
    ) -> Result<AppendResult, StorageError> {
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        self.check_live()?;
        self.resync_after_reopen(&db, &mut state)?;
        let mut write = WriteBatch::default();
        let mut next = state.log_end;
        let mut first_offset = None;
        let mut touched: Vec<(i64, Option<ProducerEntry>)> = Vec::new();
        let now_ms = producer_state::now_ms();
        for (header, mut bytes) in batches {
            if header.has_producer_id() {
                match state.producers.check(&header) {
                    Ok(SequenceCheck::Duplicate(offset)) => {
                        first_offset.get_or_insert(offset);
                        continue;
                    }
                    Ok(SequenceCheck::Append) => {}
                    Err(e) => {
                        restore(&mut state.producers, touched);
                        return Err(e);
                    }
                }
            }
            batch::assign(&mut bytes, next, state.leader_epoch);
            write.put_cf(&cf, keys::offset_key(next), &bytes);
            if header.has_producer_id() {
                touched.push((header.producer_id, state.producers.get(header.producer_id).cloned()));
                let entry = state.producers.record(&header, next, now_ms);
                write.put_cf(&meta, keys::producer_state(self.topic_id, self.partition, header.producer_id), entry.encode());
            }
            first_offset.get_or_insert(next);
            next += header.last_offset_delta as i64 + 1;
        }
        if next != state.log_end {
            write.put_cf(&meta, keys::partition_meta(self.topic_id, self.partition), meta_value(state.log_start, next, state.leader_epoch));
            let epoch_started = match self.epoch_start_for_append(&db, &mut write, &state) {
                Ok(started) => started,
                Err(e) => {
                    restore(&mut state.producers, touched);
                    return Err(e);
                }
            };
            if let Err(e) = db.write(write) {
                restore(&mut state.producers, touched);
                return Err(self.rocks_error(e, true));
            }
            self.epoch_started(epoch_started);
            state.log_end = next;
            if !defer_high_watermark {
                self.advance_high_watermark(next);
            }
        }
        Ok(AppendResult {
            base_offset: first_offset.unwrap_or(state.log_end),
            log_end_offset: state.log_end,
            log_start_offset: state.log_start,
        })
    }

    /// Forgets the producers whose last append is too old (Kafka's
    /// `producer.id.expiration.ms`): their entries leave memory and the metadata
    /// column family (one write). Returns how many expired.
    pub fn expire_producers(&self, expiry: Expiry) -> Result<usize, StorageError> {
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        if self.deleted.load(Ordering::SeqCst) {
            return Ok(0);
        }
        let expired = state.producers.expired(expiry);
        if expired.is_empty() {
            return Ok(0);
        }
        let mut write = WriteBatch::default();
        for pid in &expired {
            write.delete_cf(&meta, keys::producer_state(self.topic_id, self.partition, *pid));
        }
        db.write(write)?;
        state.producers.remove(&expired);
        Ok(expired.len())
    }

    /// Number of producers this partition keeps idempotence state for.
    pub fn producer_count(&self) -> usize {
        self.state.lock().producers.len()
    }

    /// Moves the log start offset to `before` (-1: the high watermark), deleting every
    /// batch that lies wholly below it; a batch that straddles it stays (fetches below the
    /// new log start are out of range). Returns the new log start offset (the low watermark).
    /// An offset below the current log start changes nothing; one above the high watermark
    /// is out of range.
    pub fn delete_records(&self, before: i64) -> Result<i64, StorageError> {
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        self.check_live()?;
        let high_watermark = *self.high_watermark.borrow();
        let target = if before == -1 { high_watermark } else { before };
        if target < 0 || target > high_watermark {
            return Err(StorageError::OffsetOutOfRange);
        }
        if target <= state.log_start {
            return Ok(state.log_start);
        }
        // Keep the batch containing `target`, if any.
        let mut iter = db.raw_iterator_cf(&cf);
        iter.seek_for_prev(keys::offset_key(target));
        let keep_from = match iter.value() {
            Some(v) if batch::offsets_of(v).1 >= target => batch::offsets_of(v).0,
            _ => target,
        };
        iter.status().map_err(|e| self.rocks_error(e, false))?;
        drop(iter);
        let mut write = WriteBatch::default();
        write.delete_range_cf(&cf, keys::offset_key(0), keys::offset_key(keep_from));
        write.put_cf(&meta, keys::partition_meta(self.topic_id, self.partition), meta_value(target, state.log_end, state.leader_epoch));
        db.write(write).map_err(|e| self.rocks_error(e, true))?;
        state.log_start = target;
        Ok(target)
    }

    /// Moves the high watermark forward to `offset` (never backwards) and wakes fetchers.
    pub fn advance_high_watermark(&self, offset: i64) {
        self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
    }

    /// Reads whole batches from the one containing `offset` up to the high
    /// watermark, stopping once `max_bytes` is reached (the first batch is always
    /// returned whole when `min_one` is set, as Kafka does for the first partition
    /// of a fetch, so a consumer can always make progress).
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<ReadResult, StorageError> {
        self.check_live()?;
        let LogOffsets { log_start, log_end, high_watermark, .. } = self.offsets();
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange);
        }
        let mut result = ReadResult { high_watermark, log_start_offset: log_start, ..Default::default() };
        if offset >= high_watermark {
            return Ok(result);
        }
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let mut iter = db.raw_iterator_cf(&cf);
        iter.seek_for_prev(keys::offset_key(offset));
        if !iter.valid() {
            // Not found, or failed: a seek would clear the error.
            iter.status().map_err(|e| self.rocks_error(e, false))?;
            iter.seek(keys::offset_key(offset));
        } else if iter.value().map(|v| batch::offsets_of(v).1 < offset).unwrap_or(false) {
            iter.next();
        }
        // One buffer for all batches: the response needs them contiguous anyway.
        let mut records = BytesMut::new();
        while let Some(value) = iter.value() {
            let (base, _) = batch::offsets_of(value);
            let oversized = result.bytes + value.len() > max_bytes;
            if base >= high_watermark || (oversized && !(min_one && result.batches == 0)) {
                break;
            }
            if records.capacity() == 0 {
                records.reserve(max_bytes.clamp(value.len(), READ_BUFFER_HINT.max(value.len())));
            }
            records.extend_from_slice(value);
            result.bytes += value.len();
            result.batches += 1;
            if result.bytes >= max_bytes {
                break;
            }
            iter.next();
        }
        iter.status().map_err(|e| self.rocks_error(e, false))?;
        result.records = records.freeze();
        // A read that overlapped a deletion may have seen the next owner's batches.
        self.check_live()?;
        Ok(result)
    }

    /// The first offset whose record timestamp is >= `timestamp`, with that
    /// timestamp; None when every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let log_start = self.offsets().log_start;
        let mut found = None;
        self.scan_batches(|stored, header| {
            if header.max_timestamp < timestamp || header.last_offset() < log_start {
                return true;
            }
            match batch::record_timestamps(stored) {
                Some(records) => match records.into_iter().find(|(o, ts)| *o >= log_start && *ts >= timestamp) {
                    Some(hit) => found = Some(hit),
                    // Only records below the log start matched: look further.
                    None => return true,
                },
                None => found = Some((header.base_offset.max(log_start), header.max_timestamp)),
            }
            false
        })?;
        Ok(found)
    }

    /// The offset and timestamp of the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        let mut best: Option<(i64, i64)> = None;
        self.scan_batches(|stored, header| {
            if best.map(|(_, ts)| header.max_timestamp > ts).unwrap_or(true) {
                let offset = batch::record_timestamps(stored)
                    .and_then(|r| r.into_iter().find(|(_, ts)| *ts == header.max_timestamp))
                    .map(|(o, _)| o)
                    .unwrap_or(header.last_offset());
                best = Some((offset, header.max_timestamp));
            }
            true
        })?;
        Ok(best)
    }

    /// Visits committed batches in order until `visit` returns false.
    fn scan_batches(&self, mut visit: impl FnMut(&[u8], &BatchHeader) -> bool) -> Result<(), StorageError> {
        self.check_live()?;
        let high_watermark = *self.high_watermark.borrow();
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let mut iter = db.raw_iterator_cf(&cf);
        iter.seek_to_first();
        while let Some(value) = iter.value() {
            let header = BatchHeader::parse(value)?;
            if header.base_offset >= high_watermark || !visit(value, &header) {
                break;
            }
            iter.next();
        }
        iter.status().map_err(|e| self.rocks_error(e, false))?;
        self.check_live()?;
        Ok(())
    }
}

fn restore(producers: &mut ProducerStates, touched: Vec<(i64, Option<ProducerEntry>)>) {
    for (pid, previous) in touched.into_iter().rev() {
        producers.set(pid, previous);
    }
}

/// First and last offsets of the stored data (None: no batch), reading every batch
/// with checksums verified when `verify` is set (bypassing the block cache).
fn data_bounds(db: &super::Db, cf: &impl rocksdb::AsColumnFamilyRef, verify: bool) -> Result<Option<(i64, i64)>, rocksdb::Error> {
    let mut opts = ReadOptions::default();
    opts.set_verify_checksums(true);
    if verify {
        opts.fill_cache(false);
        opts.set_readahead_size(2 << 20);
    }
    let mut iter = db.raw_iterator_cf_opt(cf, opts);
    iter.seek_to_first();
    let first = iter.value().map(|v| batch::offsets_of(v).0);
    if verify {
        while iter.valid() {
            iter.next();
        }
    }
    iter.status()?;
    iter.seek_to_last();
    let last = iter.value().map(|v| batch::offsets_of(v).1);
    iter.status()?;
    Ok(first.zip(last))
}

/// Logs (once per partition) that its data is corrupted, naming the file, and
/// counts it; returns the detail the partition's errors carry.
fn report_corruption(store: &Store, topic_id: Uuid, partition: i32, detail: &str) -> String {
    let file = detail.split_whitespace().find(|w| w.contains(".sst")).unwrap_or("unknown").trim_matches(|c: char| c == ',' || c == ':');
    store.stats().sst_corruptions.fetch_add(1, Ordering::Relaxed);
    tracing::error!(
        topic_id = %topic_id,
        partition,
        file,
        error = %detail,
        "partition {topic_id}-{partition} is offline: its stored data in {file} failed a checksum; reads and \
         appends answer KAFKA_STORAGE_ERROR until it is repaired"
    );
    detail.to_string()
}

fn meta_value(log_start: i64, log_end: i64, leader_epoch: i32) -> [u8; 20] {
    let mut v = [0u8; 20];
    v[0..8].copy_from_slice(&log_start.to_be_bytes());
    v[8..16].copy_from_slice(&log_end.to_be_bytes());
    v[16..20].copy_from_slice(&leader_epoch.to_be_bytes());
    v
}

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
    fn load_epoch_history(&self, db: &super::Db, state: &LogState) -> Result<EpochHistory, StorageError> {
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

    /// For an append about to be written in `write`: adds the history entry of the
    /// current epoch if this append is its first write (and any entry found only in the
    /// data). Returns the entry to record in memory once the write succeeded.
    fn epoch_start_for_append(
        &self,
        db: &super::Db,
        write: &mut WriteBatch,
        state: &LogState,
    ) -> Result<Option<(i32, i64)>, StorageError> {
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
        if history.entries.last().is_some_and(|(epoch, _)| *epoch >= state.leader_epoch) {
            return Ok(None);
        }
        let entry = (state.leader_epoch, state.log_end);
        write.put_cf(&meta, keys::leader_epoch_start(self.topic_id, self.partition, entry.0), entry.1.to_be_bytes());
        Ok(Some(entry))
    }

    /// Records in memory what [`Self::epoch_start_for_append`] wrote, once it is written.
    fn epoch_started(&self, entry: Option<(i32, i64)>) {
        if let Some(history) = self.epochs.lock().as_mut() {
            history.unsaved = false;
            history.stale.clear();
            if let Some(entry) = entry {
                history.entries.push(entry);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{split_and_validate, tests::sample_batch};
    use crate::storage::{recovery, wal_scan, StoreOptions};
    use std::path::Path;

    fn open_store(dir: &Path) -> Arc<Store> {
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: true, spare_column_families: 2 };
        Store::open(dir, &opts).unwrap()
    }

    fn append(log: &PartitionLog, count: i32) -> Bytes {
        let batch = sample_batch(count, -1, -1);
        let stored = batch.clone().freeze();
        log.append(split_and_validate(stored.clone()).unwrap(), false).unwrap();
        stored
    }

    /// The batches of `log` from offset 0, as stored (base offsets rewritten).
    fn read_all(log: &PartitionLog) -> Bytes {
        log.read(0, 1 << 20, true).unwrap().records
    }

    #[test]
    fn metadata_claiming_more_than_the_data_is_truncated_to_it_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let stored;
        {
            let store = open_store(dir.path());
            let log = PartitionLog::create(store.clone(), id, 0).unwrap();
            append(&log, 3);
            append(&log, 2);
            stored = read_all(&log);
            assert_eq!(log.offsets().log_end, 5);
            // The metadata says 12 records were written; the data holds 5.
            let db = store.db();
            let meta = db.cf_handle(META_CF).unwrap();
            db.put_cf(&meta, keys::partition_meta(id, 0), meta_value(0, 12, 0)).unwrap();
        }
        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        let offsets = log.offsets();
        assert_eq!((offsets.log_end, offsets.high_watermark), (5, 5), "log end and high watermark follow the data");
        assert_eq!(store.stats().lost_records.load(Ordering::Relaxed), 7, "offsets 5..=11 reported lost");
        assert_eq!(read_all(&log), stored, "the data is untouched");
        {
            let db = store.db();
            let meta = db.cf_handle(META_CF).unwrap();
            let v = db.get_cf(&meta, keys::partition_meta(id, 0)).unwrap().unwrap();
            assert_eq!(i64::from_be_bytes(v[8..16].try_into().unwrap()), 5, "metadata truncated to the data");
        }
        // Appends continue right after the data.
        append(&log, 1);
        assert_eq!(log.read(5, 1 << 20, true).unwrap().batches, 1);
        assert_eq!(batch::offsets_of(&log.read(5, 1 << 20, true).unwrap().records), (5, 5));
        drop(log);
        drop(store);
        // A second restart finds nothing more to report.
        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        assert_eq!(log.offsets().log_end, 6);
        assert_eq!(store.stats().lost_records.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn torn_write_ahead_log_recovers_the_intact_prefix_and_reports_the_loss() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let mut stored = Vec::new();
        {
            let store = open_store(dir.path());
            let log = PartitionLog::create(store.clone(), id, 0).unwrap();
            for _ in 0..40 {
                append(&log, 5);
            }
            stored.extend_from_slice(&read_all(&log));
            store.flush().unwrap();
        }
        // Garble bytes in the middle of the newest write-ahead log.
        let wal = wal_scan::wal_files(dir.path()).pop().expect("a wal file");
        let mut bytes = std::fs::read(&wal).unwrap();
        let middle = bytes.len() / 2;
        for b in &mut bytes[middle..middle + 16] {
            *b ^= 0x5a;
        }
        std::fs::write(&wal, &bytes).unwrap();

        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        let end = log.offsets().log_end;
        assert!(end > 0 && end < 200, "recovered a strict prefix, got log end {end}");
        assert_eq!(log.offsets().high_watermark, end);
        assert_eq!(store.stats().wal_corruptions.load(Ordering::Relaxed), 1);
        assert_eq!(store.stats().lost_records.load(Ordering::Relaxed), (200 - end) as u64, "every lost offset counted");
        let read = read_all(&log);
        assert_eq!(&read[..], &stored[..read.len()], "a byte-for-byte prefix");
        let preserved = dir.path().join(recovery::LOST_AND_FOUND);
        assert!(std::fs::read_dir(&preserved).unwrap().next().is_some(), "damaged wal kept in lost+found");
    }

    #[test]
    fn epoch_history_answers_kafkas_end_offsets() {
        // Epoch 0 from 0, epoch 2 from 10, epoch 5 from 25; log end 40.
        let h = EpochHistory::from_entries(vec![(0, 0), (2, 10), (5, 25)]);
        let end = |requested| h.end_offset_for(requested, 5, 0, 40);
        assert_eq!(end(0), Some((0, 10)));
        assert_eq!(end(1), Some((0, 10)), "an unknown epoch between: the largest epoch below it");
        assert_eq!(end(2), Some((2, 25)));
        assert_eq!(end(4), Some((2, 25)));
        assert_eq!(end(5), Some((5, 40)), "the current epoch ends at the log end");
        assert_eq!(end(6), None, "newer than any known");
        assert_eq!(end(-1), None, "undefined epoch");
        // Log start moved to 12: epoch 0 is gone, epoch 2 starts at 12.
        assert_eq!(h.end_offset_for(0, 5, 12, 40), Some((0, 12)), "older than any known: its end is the log start");
        assert_eq!(h.end_offset_for(2, 5, 12, 40), Some((2, 25)));
        // Nothing written in the current epoch yet: it starts at the log end.
        let h = EpochHistory::from_entries(vec![(0, 0)]);
        assert_eq!(h.end_offset_for(0, 3, 0, 7), Some((0, 7)));
        assert_eq!(h.end_offset_for(3, 3, 0, 7), Some((3, 7)));
        assert_eq!(EpochHistory::default().end_offset_for(0, 0, 0, 0), Some((0, 0)), "a new empty partition");
    }

    #[test]
    fn leader_epoch_history_is_written_with_the_data_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let store = open_store(dir.path());
            let log = PartitionLog::create(store.clone(), id, 0).unwrap();
            assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 0)));
            append(&log, 3);
            append(&log, 2);
            log.assign_leader_epoch(2).unwrap();
            append(&log, 4);
            log.assign_leader_epoch(3).unwrap();
            log.assign_leader_epoch(7).unwrap();
            append(&log, 1);
            assert_eq!(log.offsets().leader_epoch, 7);
            let stored = read_all(&log);
            let mut epochs = Vec::new();
            let mut rest = &stored[..];
            while rest.len() >= 16 {
                let len = 12 + i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
                epochs.push(i32::from_be_bytes(rest[12..16].try_into().unwrap()));
                rest = &rest[len..];
            }
            assert_eq!(epochs, vec![0, 0, 2, 7], "each batch carries the epoch it was written in");
        }
        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        assert_eq!(log.offsets().leader_epoch, 7);
        assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 5)));
        assert_eq!(log.end_offset_for_epoch(1).unwrap(), Some((0, 5)));
        assert_eq!(log.end_offset_for_epoch(2).unwrap(), Some((2, 9)));
        assert_eq!(log.end_offset_for_epoch(3).unwrap(), Some((3, 9)), "an epoch with no data ends where it began");
        assert_eq!(log.end_offset_for_epoch(5).unwrap(), Some((3, 9)));
        assert_eq!(log.end_offset_for_epoch(7).unwrap(), Some((7, 10)));
        assert_eq!(log.end_offset_for_epoch(8).unwrap(), None);
        append(&log, 2);
        assert_eq!(log.end_offset_for_epoch(7).unwrap(), Some((7, 12)), "the current epoch follows the log end");
        // Deleting records moves the history's start with the log start.
        log.delete_records(6).unwrap();
        assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 6)));
        assert_eq!(log.end_offset_for_epoch(2).unwrap(), Some((2, 9)));
    }

    #[test]
    fn a_log_written_before_the_history_existed_gets_one_from_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let store = open_store(dir.path());
            let log = PartitionLog::create(store.clone(), id, 0).unwrap();
            append(&log, 3);
            // Remove the history entry, as a log from an older version has none.
            let db = store.db();
            let meta = db.cf_handle(META_CF).unwrap();
            db.delete_cf(&meta, keys::leader_epoch_start(id, 0, 0)).unwrap();
        }
        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 3)));
        log.assign_leader_epoch(1).unwrap();
        assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 3)));
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        assert_eq!(db.get_cf(&meta, keys::leader_epoch_start(id, 0, 0)).unwrap(), Some(0i64.to_be_bytes().to_vec()), "saved");
    }

    #[test]
    fn epochs_starting_past_a_truncated_log_end_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let store = open_store(dir.path());
            let log = PartitionLog::create(store.clone(), id, 0).unwrap();
            append(&log, 3);
            log.assign_leader_epoch(1).unwrap();
            // As if epoch 2 had started at offset 8 and that data was lost.
            let db = store.db();
            let meta = db.cf_handle(META_CF).unwrap();
            db.put_cf(&meta, keys::leader_epoch_start(id, 0, 2), 8i64.to_be_bytes()).unwrap();
        }
        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 3)));
        log.assign_leader_epoch(3).unwrap();
        for _ in 0..4 {
            append(&log, 2);
        }
        // Log end 11: the lost epoch 2 must not reappear.
        assert_eq!(log.end_offset_for_epoch(1).unwrap(), Some((1, 3)));
        assert_eq!(log.end_offset_for_epoch(2).unwrap(), Some((1, 3)));
        assert_eq!(log.end_offset_for_epoch(3).unwrap(), Some((3, 11)));
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        assert_eq!(db.get_cf(&meta, keys::leader_epoch_start(id, 0, 2)).unwrap(), None, "deleted");
    }
}
