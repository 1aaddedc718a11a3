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

use super::batch::{self, BatchHeader, HEADER_LEN};
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
    /// Open transactions: producer id → offset of its first transactional batch here.
    open_txns: std::collections::HashMap<i64, i64>,
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
    /// Last stable offset when the read started (the high watermark when no
    /// transaction is open).
    pub last_stable_offset: i64,
    /// Aborted transactions overlapping the batches read (read_committed reads only).
    pub aborted: Vec<AbortedTxn>,
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
        let txn_prefix = keys::open_txn_prefix(topic_id, Some(partition));
        let mut open_txns = std::collections::HashMap::new();
        for item in db.iterator_cf(&meta, IteratorMode::From(&txn_prefix, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(&txn_prefix) {
                break;
            }
            let corrupt = || StorageError::CorruptMetadata("open transaction".into());
            let pid = i64::from_be_bytes(k[txn_prefix.len()..].try_into().map_err(|_| corrupt())?);
            let first = i64::from_be_bytes(v.as_ref().try_into().map_err(|_| corrupt())?);
            open_txns.insert(pid, first);
        }
        drop((cf, meta));
        let producers = ProducerStates::from_entries(entries);
        let log = PartitionLog::new(store, topic_id, partition, cf_name, log_start, log_end, leader_epoch, producers);
        log.state.lock().max_timestamp = max_timestamp;
        log.state.lock().open_txns = open_txns;
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
            state: Mutex::new(LogState {
                log_start,
                log_end,
                leader_epoch,
                producers,
                max_timestamp: None,
                open_txns: Default::default(),
            }),
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
    /// the caller advances it after the fsync). This is [`Self::stamp`] (from the log
    /// end, in the current leader epoch) followed by the store half of the append.
    pub fn append(
        &self,
        batches: Vec<(BatchHeader, BytesMut)>,
        defer_high_watermark: bool,
    ) -> Result<AppendResult, StorageError> {
        let db = self.store.try_db()?;
        let mut state = self.state.lock();
        self.check_live()?;
        self.resync_after_reopen(&db, &mut state)?;
        let stamp = stamp_batches(&state.producers, batches, state.log_end, state.leader_epoch)?;
        let first_offset = stamp.base_offset();
        let new: Vec<&[u8]> = stamp.new_batches().collect();
        if !new.is_empty() {
            let mut write = WriteBatch::default();
            let effect = self.store_into(&db, &mut write, &state, &new)?;
            db.write(write).map_err(|e| self.rocks_error(e, true))?;
            self.stored(&mut state, effect);
            if !defer_high_watermark {
                self.advance_high_watermark(state.log_end);
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
        // Aborted transactions whose markers are gone are no longer reported.
        write.delete_range_cf(&meta, keys::aborted_txn_prefix(tid, Some(p)), keys::aborted_txn(tid, p, keep_from));
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
        self.read_up_to(offset, max_bytes, min_one, false)
    }

    /// [`read`](Self::read) for a read_committed consumer: stops at the last stable
    /// offset and reports the aborted transactions overlapping what was read.
    pub fn read_committed(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<ReadResult, StorageError> {
        let mut result = self.read_up_to(offset, max_bytes, min_one, true)?;
        if result.batches > 0 {
            let (_, last) = last_batch_offsets(&result.records);
            result.aborted = self.aborted_txns(offset, last + 1)?;
        }
        Ok(result)
    }

    fn read_up_to(&self, offset: i64, max_bytes: usize, min_one: bool, committed: bool) -> Result<ReadResult, StorageError> {
        self.check_live()?;
        let last_stable_offset = self.last_stable_offset();
        let LogOffsets { log_start, log_end, high_watermark, .. } = self.offsets();
        let last_stable_offset = last_stable_offset.min(high_watermark);
        // What this read may return: up to the LSO for read_committed.
        let visible = if committed { last_stable_offset } else { high_watermark };
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange);
        }
        let mut result = ReadResult { high_watermark, log_start_offset: log_start, last_stable_offset, ..Default::default() };
        if offset >= visible {
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
            if base >= visible || (oversized && !(min_one && result.batches == 0)) {
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

/// Base and last offset of the last batch in `records` (whole batches back to back).
fn last_batch_offsets(mut records: &[u8]) -> (i64, i64) {
    let mut last = (0, 0);
    while records.len() >= HEADER_LEN {
        last = batch::offsets_of(records);
        let len = BatchHeader::parse(records).map(|h| h.total_len()).unwrap_or(records.len());
        records = &records[len.min(records.len())..];
    }
    last
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

mod compaction;
mod epochs;
mod replica;
mod stamp;
mod txn;

use epochs::EpochHistory;
pub use replica::{ReplicaEntry, ReplicaKey, ReplicaState};
pub use stamp::{Stamp, Stamped};
pub use txn::{AbortedTxn, TxnMarker};
use stamp::stamp_batches;

#[cfg(test)]
mod tests;
