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
    /// Largest batch max timestamp in the stored log (the newest time index key).
    max_timestamp: Option<i64>,
}

/// One stored batch as the batch index describes it: what retention decides on
/// without reading the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSummary {
    /// Offset of its first record.
    pub base_offset: i64,
    /// Offset of its last record.
    pub last_offset: i64,
    /// Stored size in bytes.
    pub size: u64,
    /// Its largest record timestamp.
    pub max_timestamp: i64,
}

impl BatchSummary {
    fn encode(&self) -> [u8; 20] {
        let mut v = [0u8; 20];
        v[0..8].copy_from_slice(&self.last_offset.to_be_bytes());
        v[8..12].copy_from_slice(&(self.size.min(u32::MAX as u64) as u32).to_be_bytes());
        v[12..20].copy_from_slice(&self.max_timestamp.to_be_bytes());
        v
    }

    fn decode(key: &[u8], v: &[u8]) -> Option<BatchSummary> {
        let base = key.get(key.len().checked_sub(8)?..)?;
        Some(BatchSummary {
            base_offset: i64::from_be_bytes(base.try_into().ok()?),
            last_offset: i64::from_be_bytes(v.get(0..8)?.try_into().ok()?),
            size: u32::from_be_bytes(v.get(8..12)?.try_into().ok()?) as u64,
            max_timestamp: i64::from_be_bytes(v.get(12..20)?.try_into().ok()?),
        })
    }

    fn of_stored(stored: &[u8]) -> Result<BatchSummary, StorageError> {
        let header = BatchHeader::parse(stored)?;
        Ok(BatchSummary {
            base_offset: header.base_offset,
            last_offset: header.last_offset(),
            size: stored.len() as u64,
            max_timestamp: header.max_timestamp,
        })
    }
}

/// What moving the log start deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Deleted {
    /// Log start before.
    pub old_start: i64,
    /// Log start after.
    pub new_start: i64,
    /// Whole batches deleted.
    pub batches: u64,
    /// Their stored bytes.
    pub bytes: u64,
    /// Offsets they held.
    pub records: u64,
    /// Every batch key below this was deleted (what [`PartitionLog::reclaim`] compacts).
    pub deleted_below: i64,
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
        let max_timestamp = if failed.is_none() {
            match last_time_index_entry(&db, &meta, topic_id, partition)? {
                Some((ts, _)) => Some(ts),
                None => rebuild_indexes(&db, &cf, &meta, topic_id, partition)?,
            }
        } else {
            None
        };
        drop((cf, meta));
        let producers = ProducerStates::from_entries(entries);
        let log = PartitionLog::new(store, topic_id, partition, cf_name, log_start, log_end, leader_epoch, producers);
        log.state.lock().max_timestamp = max_timestamp;
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
            state: Mutex::new(LogState { log_start, log_end, leader_epoch, producers, max_timestamp: None }),
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
            let meta = db.cf_handle(META_CF).expect("meta cf");
            state.max_timestamp = last_time_index_entry(db, &meta, self.topic_id, self.partition)?.map(|(ts, _)| ts);
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
        let mut max_timestamp = state.max_timestamp;
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
            let summary = BatchSummary {
                base_offset: next,
                last_offset: next + header.last_offset_delta as i64,
                size: bytes.len() as u64,
                max_timestamp: header.max_timestamp,
            };
            write.put_cf(&meta, keys::batch_index(self.topic_id, self.partition, next), summary.encode());
            if max_timestamp.is_none_or(|m| header.max_timestamp > m) {
                // The running maximum grew: a time index entry, like Kafka's.
                write.put_cf(&meta, keys::time_index(self.topic_id, self.partition, header.max_timestamp), keys::offset_key(next));
                max_timestamp = Some(header.max_timestamp);
            }
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
            state.max_timestamp = max_timestamp;
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
        let target = if before == -1 { *self.high_watermark.borrow() } else { before };
        Ok(self.delete_before(target)?.map_or_else(|| self.offsets().log_start, |d| d.new_start))
    }

    /// Moves the log start offset to `new_start` (at most the high watermark), deleting
    /// every batch wholly below it with its batch and time index entries, and the partition
    /// metadata, in one write. Returns what was deleted; None when `new_start` is not above
    /// the log start. Retention calls this with a segment boundary; the disk space comes
    /// back with [`PartitionLog::reclaim`].
    pub fn delete_before(&self, new_start: i64) -> Result<Option<Deleted>, StorageError> {
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut state = self.state.lock();
        self.check_live()?;
        let high_watermark = *self.high_watermark.borrow();
        if new_start < 0 || new_start > high_watermark {
            return Err(StorageError::OffsetOutOfRange);
        }
        if new_start <= state.log_start {
            return Ok(None);
        }
        // Keep the batch containing `new_start`, if any.
        let mut iter = db.raw_iterator_cf(&cf);
        iter.seek_for_prev(keys::offset_key(new_start));
        let keep_from = match iter.value() {
            Some(v) if batch::offsets_of(v).1 >= new_start => batch::offsets_of(v).0,
            _ => new_start,
        };
        iter.status().map_err(|e| self.rocks_error(e, false))?;
        drop(iter);
        let (tid, p) = (self.topic_id, self.partition);
        let mut deleted = Deleted { old_start: state.log_start, new_start, deleted_below: keep_from, ..Default::default() };
        let bi_prefix = keys::batch_index_prefix(tid, Some(p));
        let mut index = db.raw_iterator_cf(&meta);
        index.seek(&bi_prefix);
        while let (Some(k), Some(v)) = (index.key(), index.value()) {
            if !k.starts_with(&bi_prefix) {
                break;
            }
            let b = BatchSummary::decode(k, v).ok_or_else(|| StorageError::CorruptMetadata("batch index".into()))?;
            if b.base_offset >= keep_from {
                break;
            }
            deleted.batches += 1;
            deleted.bytes += b.size;
            deleted.records += (b.last_offset - b.base_offset + 1).max(0) as u64;
            index.next();
        }
        index.status()?;
        drop(index);
        let mut write = WriteBatch::default();
        let max_timestamp = self.trim_time_index(&db, &meta, &mut write, keep_from, state.max_timestamp)?;
        write.delete_range_cf(&cf, keys::OFFSET_KEY_MIN, &keys::offset_key(keep_from)[..]);
        write.delete_range_cf(&meta, &bi_prefix, &keys::batch_index(tid, p, keep_from));
        write.put_cf(&meta, keys::partition_meta(tid, p), meta_value(new_start, state.log_end, state.leader_epoch));
        db.write(write).map_err(|e| self.rocks_error(e, true))?;
        state.log_start = new_start;
        state.max_timestamp = max_timestamp;
        Ok(Some(deleted))
    }

    /// Adds to `write` what keeps the time index exact once the batches below `keep_from`
    /// are gone: their entries go, and entries are added for the batches from `keep_from`
    /// on where the running maximum of what remains grows while it is still at or below the
    /// deleted maximum (above it, the old entries are already right). Returns the maximum
    /// timestamp of the log afterwards.
    fn trim_time_index(
        &self,
        db: &super::Db,
        meta: &impl rocksdb::AsColumnFamilyRef,
        write: &mut WriteBatch,
        keep_from: i64,
        max_timestamp: Option<i64>,
    ) -> Result<Option<i64>, StorageError> {
        let (tid, p) = (self.topic_id, self.partition);
        let ti_prefix = keys::time_index_prefix(tid, Some(p));
        let mut iter = db.raw_iterator_cf(meta);
        iter.seek(&ti_prefix);
        let mut deleted_max = None;
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !k.starts_with(&ti_prefix) || offset_value(v)? >= keep_from {
                break;
            }
            deleted_max = keys::parse_time_index(k);
            iter.next();
        }
        iter.status()?;
        let Some(deleted_max) = deleted_max else { return Ok(max_timestamp) };
        write.delete_range_cf(meta, &ti_prefix, &keys::prefix_end(&keys::time_index(tid, p, deleted_max)));
        let bi_prefix = keys::batch_index_prefix(tid, Some(p));
        iter.seek(keys::batch_index(tid, p, keep_from));
        let mut running: Option<i64> = None;
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !k.starts_with(&bi_prefix) {
                break;
            }
            let b = BatchSummary::decode(k, v).ok_or_else(|| StorageError::CorruptMetadata("batch index".into()))?;
            if running.is_none_or(|r| b.max_timestamp > r) {
                if b.max_timestamp > deleted_max {
                    // From here on the old entries are the right ones.
                    return Ok(max_timestamp);
                }
                write.put_cf(meta, keys::time_index(tid, p, b.max_timestamp), keys::offset_key(b.base_offset));
                running = Some(b.max_timestamp);
                if b.max_timestamp == deleted_max {
                    return Ok(max_timestamp);
                }
            }
            iter.next();
        }
        iter.status()?;
        // Nothing left reaches the deleted maximum: the new entries are the whole index.
        Ok(running)
    }

    /// Reclaims the disk space of deleted batches: compacts the key range below
    /// `deleted_below` (RocksDB drops what the range deletion covers) and flushes the
    /// metadata column family, so that write-ahead logs holding the deleted batches can go.
    /// Slow: call it off the request path.
    pub fn reclaim(&self, deleted_below: i64) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        db.flush_cf(&meta)?;
        db.flush_cf(&cf)?;
        db.compact_range_cf(&cf, None::<&[u8]>, Some(keys::offset_key(deleted_below)));
        Ok(())
    }

    /// Visits the batch index (base offset order, from the first stored batch, committed
    /// or not) until `visit` returns false.
    pub fn visit_batches(&self, mut visit: impl FnMut(&BatchSummary) -> bool) -> Result<(), StorageError> {
        self.check_live()?;
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let prefix = keys::batch_index_prefix(self.topic_id, Some(self.partition));
        let mut iter = db.raw_iterator_cf(&meta);
        iter.seek(&prefix);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            let b = BatchSummary::decode(k, v).ok_or_else(|| StorageError::CorruptMetadata("batch index".into()))?;
            if !visit(&b) {
                break;
            }
            iter.next();
        }
        iter.status()?;
        Ok(())
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
    /// timestamp; None when every record is older. A seek in the time index finds the
    /// first batch whose max timestamp reaches `timestamp` (every batch before it is
    /// older), so only that batch (rarely a few after it) is read.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        self.check_live()?;
        let LogOffsets { log_start, high_watermark, .. } = self.offsets();
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let prefix = keys::time_index_prefix(self.topic_id, Some(self.partition));
        let mut index = db.raw_iterator_cf(&meta);
        index.seek(keys::time_index(self.topic_id, self.partition, timestamp));
        let from = match (index.key(), index.value()) {
            (Some(k), Some(v)) if k.starts_with(&prefix) => offset_value(v)?,
            _ => {
                index.status()?;
                return Ok(None);
            }
        };
        drop(index);
        let mut found = None;
        self.scan_batches_from(from, high_watermark, |stored, header| {
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

    /// The offset and timestamp of the record with the largest timestamp (the first
    /// such record), from the newest committed time index entry.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, StorageError> {
        self.check_live()?;
        let high_watermark = *self.high_watermark.borrow();
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let prefix = keys::time_index_prefix(self.topic_id, Some(self.partition));
        let mut index = db.raw_iterator_cf(&meta);
        index.seek_for_prev(keys::prefix_end(&prefix));
        let mut entry = None;
        while let (Some(k), Some(v)) = (index.key(), index.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            let offset = offset_value(v)?;
            if offset < high_watermark {
                entry = keys::parse_time_index(k).map(|ts| (offset, ts));
                break;
            }
            index.prev();
        }
        index.status()?;
        drop(index);
        let Some((from, max)) = entry else { return Ok(None) };
        let mut best = None;
        self.scan_batches_from(from, high_watermark, |stored, header| {
            let offset = batch::record_timestamps(stored)
                .and_then(|r| r.into_iter().find(|(_, ts)| *ts == max))
                .map(|(o, _)| o)
                .unwrap_or(header.last_offset());
            best = Some((offset, max));
            false
        })?;
        Ok(best)
    }

    /// Visits committed batches in order from the one at or after `from` until `visit`
    /// returns false.
    fn scan_batches_from(
        &self,
        from: i64,
        high_watermark: i64,
        mut visit: impl FnMut(&[u8], &BatchHeader) -> bool,
    ) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let cf = db.cf_handle(&self.cf_name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let mut iter = db.raw_iterator_cf(&cf);
        iter.seek(keys::offset_key(from));
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

    /// Visits committed batches in order until `visit` returns false (the plain scan
    /// the time index replaced; tests compare against it).
    #[cfg(test)]
    fn scan_batches(&self, visit: impl FnMut(&[u8], &BatchHeader) -> bool) -> Result<(), StorageError> {
        self.check_live()?;
        let high_watermark = *self.high_watermark.borrow();
        self.scan_batches_from(0, high_watermark, visit)
    }
}

/// An offset stored as a metadata value.
fn offset_value(v: &[u8]) -> Result<i64, StorageError> {
    Ok(i64::from_be_bytes(v.try_into().map_err(|_| StorageError::CorruptMetadata("time index entry".into()))?))
}

/// The newest time index entry of a partition: (timestamp, base offset).
fn last_time_index_entry(
    db: &super::Db,
    meta: &impl rocksdb::AsColumnFamilyRef,
    topic_id: Uuid,
    partition: i32,
) -> Result<Option<(i64, i64)>, StorageError> {
    let prefix = keys::time_index_prefix(topic_id, Some(partition));
    let mut iter = db.raw_iterator_cf(meta);
    iter.seek_for_prev(keys::prefix_end(&prefix));
    let entry = match (iter.key(), iter.value()) {
        (Some(k), Some(v)) if k.starts_with(&prefix) => keys::parse_time_index(k).zip(Some(offset_value(v)?)),
        _ => None,
    };
    iter.status()?;
    Ok(entry)
}

/// Writes the batch and time indexes of a partition stored before they existed (one
/// read of its batches, at start-up); returns its max timestamp (None: no batches).
fn rebuild_indexes(
    db: &super::Db,
    cf: &impl rocksdb::AsColumnFamilyRef,
    meta: &impl rocksdb::AsColumnFamilyRef,
    topic_id: Uuid,
    partition: i32,
) -> Result<Option<i64>, StorageError> {
    let mut iter = db.raw_iterator_cf(cf);
    iter.seek_to_first();
    let mut write = WriteBatch::default();
    let mut max_timestamp: Option<i64> = None;
    let mut batches = 0u64;
    while let Some(value) = iter.value() {
        let b = BatchSummary::of_stored(value)?;
        write.put_cf(meta, keys::batch_index(topic_id, partition, b.base_offset), b.encode());
        if max_timestamp.is_none_or(|m| b.max_timestamp > m) {
            write.put_cf(meta, keys::time_index(topic_id, partition, b.max_timestamp), keys::offset_key(b.base_offset));
            max_timestamp = Some(b.max_timestamp);
        }
        batches += 1;
        if write.len() >= 10_000 {
            db.write(std::mem::take(&mut write))?;
        }
        iter.next();
    }
    iter.status()?;
    if batches > 0 {
        db.write(write)?;
        tracing::info!(topic_id = %topic_id, partition, batches, "built the batch and time indexes of a partition stored without them");
    }
    Ok(max_timestamp)
}

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

    /// A tiny deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// An uncompressed batch whose records carry these timestamps.
    fn batch_with_timestamps(timestamps: &[i64]) -> Bytes {
        use crate::storage::records::tests::{build, record};
        let base = timestamps[0];
        let max = *timestamps.iter().max().unwrap();
        let mut payload = Vec::new();
        for (i, ts) in timestamps.iter().enumerate() {
            payload.extend(record(i as i64, ts - base, None, Some(&[i as u8]), &[]));
        }
        let n = timestamps.len() as i32;
        build(0, n, n - 1, base, max, &payload).freeze()
    }

    fn append_timestamps(log: &PartitionLog, timestamps: &[i64]) {
        log.append(split_and_validate(batch_with_timestamps(timestamps)).unwrap(), false).unwrap();
    }

    /// ListOffsets by timestamp as it was answered before the time index: a scan of every batch.
    fn scanned_offset_for_timestamp(log: &PartitionLog, timestamp: i64) -> Option<(i64, i64)> {
        let log_start = log.offsets().log_start;
        let mut found = None;
        log.scan_batches(|stored, header| {
            if header.max_timestamp < timestamp || header.last_offset() < log_start {
                return true;
            }
            match batch::record_timestamps(stored).unwrap().into_iter().find(|(o, ts)| *o >= log_start && *ts >= timestamp) {
                Some(hit) => found = Some(hit),
                None => return true,
            }
            false
        })
        .unwrap();
        found
    }

    /// The max timestamp as it was answered before the time index.
    fn scanned_max_timestamp(log: &PartitionLog) -> Option<(i64, i64)> {
        let mut best: Option<(i64, i64)> = None;
        log.scan_batches(|stored, header| {
            if best.map(|(_, ts)| header.max_timestamp > ts).unwrap_or(true) {
                let offset = batch::record_timestamps(stored)
                    .unwrap()
                    .into_iter()
                    .find(|(_, ts)| *ts == header.max_timestamp)
                    .map(|(o, _)| o)
                    .unwrap();
                best = Some((offset, header.max_timestamp));
            }
            true
        })
        .unwrap();
        best
    }

    fn assert_index_matches_scan(log: &PartitionLog, context: &str) {
        for t in (-20..=5_500).step_by(7) {
            assert_eq!(log.offset_for_timestamp(t).unwrap(), scanned_offset_for_timestamp(log, t), "{context}: timestamp {t}");
        }
        assert_eq!(log.max_timestamp().unwrap(), scanned_max_timestamp(log), "{context}: max timestamp");
    }

    #[test]
    fn time_index_answers_like_the_scan_for_random_data_across_deletions_and_restarts() {
        for seed in 1..=6u64 {
            let dir = tempfile::tempdir().unwrap();
            let id = Uuid::new_v4();
            let mut rng = Rng(seed * 0x9e37_79b9_7f4a_7c15);
            {
                let store = open_store(dir.path());
                let log = PartitionLog::create(store.clone(), id, 0).unwrap();
                assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
                assert_eq!(log.max_timestamp().unwrap(), None);
                // Timestamps mostly rising with jitter, sometimes far back: the running
                // maximum and the per-batch maxima differ.
                let mut clock = 500i64;
                for _ in 0..80 {
                    let n = 1 + rng.below(5) as usize;
                    let ts: Vec<i64> = (0..n)
                        .map(|_| {
                            clock += rng.below(12) as i64;
                            if rng.below(6) == 0 { clock - rng.below(400) as i64 } else { clock }
                        })
                        .collect();
                    append_timestamps(&log, &ts);
                }
                assert_index_matches_scan(&log, &format!("seed {seed}"));
                // Move the start: to batch boundaries and into batches.
                for _ in 0..4 {
                    let o = log.offsets();
                    let target = o.log_start + rng.below(((o.log_end - o.log_start) / 3).max(1) as u64) as i64;
                    log.delete_records(target).unwrap();
                    assert_index_matches_scan(&log, &format!("seed {seed} after deleting below {target}"));
                }
            }
            let store = open_store(dir.path());
            let log = PartitionLog::open(store.clone(), id, 0).unwrap();
            assert_index_matches_scan(&log, &format!("seed {seed} after a restart"));
            append_timestamps(&log, &[5, 100_000, 7]);
            assert_eq!(log.max_timestamp().unwrap(), scanned_max_timestamp(&log));
            assert_eq!(log.max_timestamp().unwrap().map(|(_, ts)| ts), Some(100_000));
        }
    }

    #[test]
    fn deleting_everything_restarts_the_time_index_with_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), Uuid::new_v4(), 0).unwrap();
        append_timestamps(&log, &[900, 950]);
        append_timestamps(&log, &[100]);
        let deleted = log.delete_before(3).unwrap().unwrap();
        assert_eq!((deleted.batches, deleted.records, deleted.new_start, deleted.deleted_below), (2, 3, 3, 3));
        assert_eq!(log.max_timestamp().unwrap(), None);
        // Older than everything deleted, yet found: the index restarted.
        append_timestamps(&log, &[50, 60]);
        assert_eq!(log.offset_for_timestamp(55).unwrap(), Some((4, 60)));
        assert_eq!(log.max_timestamp().unwrap(), Some((4, 60)));
    }

    #[test]
    fn indexes_are_built_for_a_partition_stored_without_them() {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        {
            let store = open_store(dir.path());
            let log = PartitionLog::create(store.clone(), id, 0).unwrap();
            append_timestamps(&log, &[10, 30]);
            append_timestamps(&log, &[20]);
            append_timestamps(&log, &[40]);
            let db = store.db();
            let meta = db.cf_handle(META_CF).unwrap();
            for prefix in [keys::batch_index_prefix(id, None), keys::time_index_prefix(id, None)] {
                db.delete_range_cf(&meta, &prefix, &keys::prefix_end(&prefix)).unwrap();
            }
        }
        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        assert_eq!(log.offset_for_timestamp(25).unwrap(), Some((1, 30)));
        assert_eq!(log.offset_for_timestamp(35).unwrap(), Some((3, 40)));
        let mut batches = Vec::new();
        log.visit_batches(|b| {
            batches.push((b.base_offset, b.last_offset, b.max_timestamp));
            true
        })
        .unwrap();
        assert_eq!(batches, vec![(0, 1, 30), (2, 2, 20), (3, 3, 40)]);
    }

    #[test]
    fn delete_before_removes_batches_and_their_index_entries_in_one_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), Uuid::new_v4(), 0).unwrap();
        let mut stored = Vec::new();
        for i in 0..10 {
            append_timestamps(&log, &[i * 10, i * 10 + 1]);
            stored.push(log.read(i * 2, 1 << 20, true).unwrap().records);
        }
        let sizes: u64 = stored[..4].iter().map(|b| b.len() as u64).sum();
        let deleted = log.delete_before(8).unwrap().unwrap();
        assert_eq!(deleted, Deleted { old_start: 0, new_start: 8, batches: 4, bytes: sizes, records: 8, deleted_below: 8 });
        assert!(matches!(log.read(7, 1 << 20, true), Err(StorageError::OffsetOutOfRange)));
        let rest = log.read(8, 1 << 20, true).unwrap();
        assert_eq!(&rest.records[..], &stored[4..].concat()[..], "the newest batches, byte for byte");
        let mut bases = Vec::new();
        log.visit_batches(|b| {
            bases.push(b.base_offset);
            true
        })
        .unwrap();
        assert_eq!(bases, vec![8, 10, 12, 14, 16, 18]);
        assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((8, 40)));
        assert!(log.delete_before(8).unwrap().is_none(), "nothing below the start left");
        assert!(matches!(log.delete_before(21), Err(StorageError::OffsetOutOfRange)), "above the high watermark");
        log.reclaim(deleted.deleted_below).unwrap();
        assert_eq!(log.read(8, 1 << 20, true).unwrap().records, rest.records);
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
