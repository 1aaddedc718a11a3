//! Storage: one RocksDB database, one column family per partition, a metadata
//! column family for everything that describes the logs.
//!
//! Handlers never touch RocksDB; they go through [`TopicStore`] and [`PartitionLog`],
//! which own the key layout (see `keys`).

pub mod acl_store;
pub mod batch;
pub mod group_store;
pub mod health;
pub mod keys;
pub mod partition_log;
pub mod producer_ids;
pub mod producer_state;
pub mod records;
pub mod scram_store;
pub mod recovery;
pub mod topic_config;
pub mod topic_store;
pub mod wal_scan;
pub mod wal_sync;
pub mod txn_store;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rocksdb::{BlockBasedOptions, Cache, Direction, IteratorMode, Options, WriteBatch, WriteBufferManager};
use uuid::Uuid;

pub use partition_log::PartitionLog;
pub use topic_store::{Topic, TopicStore};

use crate::error::StorageError;

/// The RocksDB handle type: multi-threaded so column families can be created and
/// dropped while other partitions are being written.
pub type Db = rocksdb::DBWithThreadMode<rocksdb::MultiThreaded>;

/// Name of the column family holding topic, partition and producer metadata.
pub const META_CF: &str = "meta";

/// Tuning knobs the storage layer takes from the broker config.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Shared block cache size in bytes.
    pub block_cache_bytes: usize,
    /// Memtable memory shared by all column families, in bytes.
    pub write_buffer_bytes: usize,
    /// fsync the WAL before a write counts as durable.
    pub fsync: bool,
    /// Empty column families kept ready for new partitions (see [`Store::take_partition_cf`]).
    pub spare_column_families: usize,
}

/// The open database plus the options every partition column family is created with.
pub struct Store {
    slot: Arc<health::DbSlot>,
    partition_opts: Options,
    syncer: Option<wal_sync::WalSyncer>,
    /// Empty column families no partition uses yet.
    spares: Arc<Mutex<Vec<String>>>,
    /// Background compactions of recycled column families and spare refills, stopped
    /// and joined on drop.
    recyclers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    closing: Arc<AtomicBool>,
    // Kept alive for as long as the column families that reference them.
    cache: Cache,
    write_buffers: WriteBufferManager,
    /// What recovering a damaged write-ahead log found, consulted as partitions open.
    recovery: Mutex<recovery::WalRecovery>,
    stats: Arc<health::StoreStats>,
    verify_on_start: AtomicBool,
    watchdog: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// How many spares to keep (`spare_column_families`).
    spare_target: usize,
    /// Set while a background thread creates spares.
    refilling: Arc<AtomicBool>,
    /// Refuses appends while the disk is (nearly) full (`min_free_disk_bytes`).
    disk: health::DiskGuard,
}

impl Store {
    /// Opens (or creates) the database in `dir` with every existing column family.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Arc<Store>, StorageError> {
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        // No write stalls: over budget, RocksDB flushes the largest memtables. With
        // stalls on and many partitions, every writer blocked while no flush was
        // scheduled (flushes are scheduled by writers): the broker hung for good.
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager_with_cache(options.write_buffer_bytes, false, cache.clone());

        let mut db_opts = Options::default();
        db_opts.create_if_missing(true);
        db_opts.create_missing_column_families(true);
        db_opts.set_max_open_files(2048);
        db_opts.set_write_buffer_manager(&write_buffers);
        db_opts.set_max_background_jobs(2);
        db_opts.set_max_total_wal_size(512 * 1024 * 1024);
        db_opts.set_keep_log_file_num(5);
        db_opts.set_enable_pipelined_write(true);

        let partition_opts = partition_cf_options(&cache, &write_buffers);
        let mut meta_opts = Options::default();
        meta_opts.set_write_buffer_manager(&write_buffers);

        let spec = health::OpenSpec { dir: dir.to_owned(), db_opts, meta_opts, partition_opts: partition_opts.clone() };
        let stats = Arc::new(health::StoreStats::default());
        let existing = recovery::existing_cfs(&spec);
        let (mut db, wal_recovery) = recovery::open_with(&spec, &existing, &stats)?;
        let unused = unused_partition_cfs(&db, &existing)?;
        clear_column_families(&db, &unused)?;
        let mut spares = unused;
        if spares.len() < options.spare_column_families {
            // RocksDB rewrites and re-verifies its OPTIONS file (every column family's
            // options) on each create_cf: creating N column families one by one costs
            // O(N²). Creating the missing spares while opening costs one rewrite.
            let next = existing
                .iter()
                .filter_map(|n| n.strip_prefix(keys::SPARE_CF_PREFIX)?.parse::<u64>().ok())
                .max()
                .map_or(0, |n| n + 1);
            let new: Vec<String> = (next..).take(options.spare_column_families - spares.len()).map(keys::spare_cf).collect();
            drop(db);
            let all: Vec<String> = existing.iter().chain(&new).cloned().collect();
            db = recovery::open_with(&spec, &all, &stats)?.0;
            spares.extend(new);
        }
        tracing::debug!(spares = spares.len(), "spare column families ready");
        let slot = health::DbSlot::new(db, spec, stats.clone());
        let syncer = options.fsync.then(|| wal_sync::WalSyncer::start(slot.clone()));
        let watchdog = match health::start_watchdog(slot.clone()) {
            Ok(handle) => Some(handle),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the storage health watchdog");
                None
            }
        };
        Ok(Arc::new(Store {
            slot,
            partition_opts,
            syncer,
            spares: Arc::new(Mutex::new(spares)),
            recyclers: Mutex::new(Vec::new()),
            closing: Arc::new(AtomicBool::new(false)),
            cache,
            write_buffers,
            recovery: Mutex::new(wal_recovery),
            stats: stats.clone(),
            verify_on_start: AtomicBool::new(false),
            watchdog: Mutex::new(watchdog),
            spare_target: options.spare_column_families,
            refilling: Arc::new(AtomicBool::new(false)),
            disk: health::DiskGuard::new(dir.to_owned(), stats.clone()),
        }))
    }

    /// The raw database, for the storage modules (waits while the health watchdog
    /// reopens it).
    pub(crate) fn db(&self) -> Arc<Db> {
        self.slot.get()
    }

    /// The raw database, or an error at once while it is being reopened.
    pub(crate) fn try_db(&self) -> Result<Arc<Db>, StorageError> {
        self.slot.try_get()
    }

    /// Counts reopenings of the database: a partition log that sees it change
    /// re-reads its log end from the data.
    pub(crate) fn generation(&self) -> u64 {
        self.slot.generation()
    }

    /// A write failed: the health watchdog checks whether the database is stuck.
    pub(crate) fn report_write_failure(&self, error: &rocksdb::Error) {
        self.slot.report_write_failure(error);
    }

    /// Storage fault counters since start.
    pub fn stats(&self) -> &health::StoreStats {
        &self.stats
    }

    /// Refuses writes while the data directory's filesystem has less than `bytes`
    /// free (`min_free_disk_bytes`; 0 turns the check off).
    pub fn set_min_free_disk_bytes(&self, bytes: u64) {
        self.disk.set_reserve(bytes);
    }

    /// Ok unless writing `incoming` bytes would leave the data directory's filesystem
    /// with less free space than `min_free_disk_bytes` (read at most every few hundred
    /// milliseconds; bytes let through in between are counted against it).
    pub fn check_disk_space(&self, incoming: u64) -> Result<(), StorageError> {
        self.disk.check(incoming)
    }

    /// Whether partitions verify every checksum of their data while opening.
    pub(crate) fn verify_on_start(&self) -> bool {
        self.verify_on_start.load(Ordering::SeqCst)
    }

    /// Has partitions opened from now on read all their data with checksums
    /// verified, and go offline if it is corrupted (`verify_on_start`).
    pub fn set_verify_on_start(&self, verify: bool) {
        self.verify_on_start.store(verify, Ordering::SeqCst);
    }

    /// The highest log end offset a damaged write-ahead log claimed for a
    /// partition, with the file's name; None when the log was intact.
    pub(crate) fn wal_claim(&self, topic_id: Uuid, partition: i32) -> Option<(i64, String)> {
        let recovery = self.recovery.lock();
        recovery.claimed_log_end.get(&(topic_id, partition)).map(|end| (*end, recovery.file()))
    }

    /// The damaged write-ahead log's name when it ends inside a record (its tail is
    /// gone, so what the partitions written in it lost cannot be counted).
    pub(crate) fn wal_torn_tail(&self) -> Option<String> {
        let recovery = self.recovery.lock();
        recovery.damage.as_ref().filter(|d| d.torn_tail).map(|_| recovery.file())
    }

    /// A column family for a new partition: a spare one when there is one (fast),
    /// else a new one named after the partition.
    /// Once fewer than half the spares are left, more are created in the background.
    pub(crate) fn take_partition_cf(&self, topic_id: Uuid, partition: i32) -> Result<String, StorageError> {
        let (taken, left) = {
            let mut spares = self.spares.lock();
            (spares.pop(), spares.len())
        };
        if left < self.spare_target.div_ceil(2) {
            self.refill_spares();
        }
        if let Some(name) = taken {
            return Ok(name);
        }
        let name = keys::partition_cf(topic_id, partition);
        self.ensure_partition_cf(&name)?;
        Ok(name)
    }

    /// Creates a partition column family unless it exists.
    pub(crate) fn ensure_partition_cf(&self, name: &str) -> Result<(), StorageError> {
        let db = self.db();
        if db.cf_handle(name).is_none() {
            db.create_cf(name, &self.partition_opts)?;
        }
        Ok(())
    }

    /// Creates spare column families on a background thread until there are
    /// `spare_column_families` of them (one thread at a time). Each creation rewrites
    /// RocksDB's OPTIONS file, O(column families), and holds the handle table's lock
    /// meanwhile; doing it here keeps that cost out of CreateTopics requests.
    fn refill_spares(&self) {
        if self.spare_target == 0 || self.refilling.swap(true, Ordering::SeqCst) {
            return;
        }
        let db = Arc::downgrade(&self.db());
        let spares = self.spares.clone();
        let opts = self.partition_opts.clone();
        let closing = self.closing.clone();
        let refilling = self.refilling.clone();
        let target = self.spare_target;
        let spawned = std::thread::Builder::new().name("fluxo-spares".into()).spawn(move || {
            let mut n = 0u64;
            let mut created = 0usize;
            while spares.lock().len() < target {
                let Some(db) = db.upgrade().filter(|_| !closing.load(Ordering::SeqCst)) else { break };
                while db.cf_handle(&keys::spare_cf(n)).is_some() {
                    n += 1;
                }
                let name = keys::spare_cf(n);
                if let Err(e) = db.create_cf(&name, &opts) {
                    tracing::warn!(error = %e, cf = name, "could not create a spare column family");
                    break;
                }
                // At the front: spares that already exist are handed out first.
                spares.lock().insert(0, name);
                created += 1;
            }
            refilling.store(false, Ordering::SeqCst);
            tracing::debug!(created, "spare column families refilled");
        });
        match spawned {
            Ok(handle) => {
                let mut threads = self.recyclers.lock();
                threads.retain(|h| !h.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                self.refilling.store(false, Ordering::SeqCst);
                tracing::warn!(error = %e, "could not start creating spare column families");
            }
        }
    }

    /// Returns column families emptied by a topic deletion to the spares, and
    /// compacts them in the background so their space is reclaimed.
    pub(crate) fn recycle_partition_cfs(&self, names: Vec<String>) {
        self.spares.lock().extend(names.iter().cloned());
        // A weak handle, so that a compaction never keeps the database open.
        let db = Arc::downgrade(&self.db());
        let closing = self.closing.clone();
        let spawned = std::thread::Builder::new().name("fluxo-recycle".into()).spawn(move || {
            for name in names {
                let Some(db) = db.upgrade().filter(|_| !closing.load(Ordering::SeqCst)) else { return };
                let cf = db.cf_handle(&name);
                if let Some(cf) = &cf {
                    db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
                }
                drop(cf);
            }
        });
        match spawned {
            Ok(handle) => {
                let mut recyclers = self.recyclers.lock();
                recyclers.retain(|h| !h.is_finished());
                recyclers.push(handle);
            }
            Err(e) => tracing::warn!(error = %e, "could not start compaction of recycled column families"),
        }
    }

    /// Memory RocksDB holds: memtables and the block cache (which memtables are
    /// charged to as well).
    pub fn memory(&self) -> StoreMemory {
        StoreMemory {
            memtable_bytes: self.write_buffers.get_usage(),
            block_cache_bytes: self.cache.get_usage(),
            block_cache_pinned_bytes: self.cache.get_pinned_usage(),
        }
    }

    /// Number of spare column families.
    pub fn spare_count(&self) -> usize {
        self.spares.lock().len()
    }

    /// What makes the writes completed before this call durable: nothing more when
    /// fsync is off (they are in the WAL in the OS page cache), else an fsync.
    pub fn durability(&self) -> Durability {
        match &self.syncer {
            Some(syncer) => Durability::Pending(syncer.request()),
            None => Durability::Done,
        }
    }

    /// Waits until every write completed before this call is durable.
    pub async fn wait_durable(&self) -> Result<(), StorageError> {
        self.durability().wait().await
    }

    /// Flushes memtables and the WAL; called on clean shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db().flush_wal(true)?;
        Ok(())
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        for handle in self.recyclers.get_mut().drain(..) {
            let _ = handle.join();
        }
        self.slot.close();
        if let Some(handle) = self.watchdog.get_mut().take() {
            let _ = handle.join();
        }
        self.slot.close_db();
    }
}

/// Partition column families that no partition refers to: spares, and those of a
/// topic whose deletion predates spares.
fn unused_partition_cfs(db: &Db, existing: &[String]) -> Result<Vec<String>, StorageError> {
    let meta = db.cf_handle(META_CF).expect("meta cf");
    let mut used = HashSet::new();
    let mut with_ref = HashSet::new();
    for item in db.iterator_cf(&meta, IteratorMode::From(keys::PARTITION_CF_REF_PREFIX, Direction::Forward)) {
        let (k, v) = item?;
        if !k.starts_with(keys::PARTITION_CF_REF_PREFIX) {
            break;
        }
        with_ref.insert(k[keys::PARTITION_CF_REF_PREFIX.len()..].to_vec());
        used.insert(String::from_utf8_lossy(&v).into_owned());
    }
    // Partitions created before column family references existed use their own name.
    for item in db.iterator_cf(&meta, IteratorMode::From(keys::PARTITION_META_PREFIX, Direction::Forward)) {
        let (k, _) = item?;
        if !k.starts_with(keys::PARTITION_META_PREFIX) {
            break;
        }
        let Some((id, partition)) = keys::parse_partition_meta(&k) else { continue };
        if !with_ref.contains(&k[keys::PARTITION_META_PREFIX.len()..]) {
            used.insert(keys::partition_cf(id, partition));
        }
    }
    Ok(existing.iter().filter(|n| !used.contains(*n)).cloned().collect())
}

/// Deletes everything in these column families (one write).
fn clear_column_families(db: &Db, names: &[String]) -> Result<(), StorageError> {
    let mut write = WriteBatch::default();
    for name in names {
        let cf = db.cf_handle(name).expect("opened");
        write.delete_range_cf(&cf, keys::OFFSET_KEY_MIN, keys::OFFSET_KEY_END);
    }
    if !names.is_empty() {
        db.write(write)?;
    }
    Ok(())
}

/// Whether writes are durable yet, and how to wait until they are.
#[derive(Debug)]
pub enum Durability {
    /// Already durable.
    Done,
    /// Durable once this fsync completes.
    Pending(wal_sync::SyncTicket),
}

impl Durability {
    /// Waits until durable.
    pub async fn wait(self) -> Result<(), StorageError> {
        match self {
            Durability::Done => Ok(()),
            Durability::Pending(ticket) => ticket.wait().await,
        }
    }
}

/// A snapshot of RocksDB's memory use.
#[derive(Debug, Clone, Copy)]
pub struct StoreMemory {
    /// Memtable memory of every column family (bounded by `write_buffer_mb`).
    pub memtable_bytes: usize,
    /// Block cache use, memtable reservations included (bounded by `block_cache_mb`).
    pub block_cache_bytes: usize,
    /// Block cache entries in use by readers, which eviction cannot free.
    pub block_cache_pinned_bytes: usize,
}

/// Options for partition column families: batches are large, written once, read
/// mostly in order and usually compressed already by the client.
fn partition_cf_options(cache: &Cache, write_buffers: &WriteBufferManager) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_block_size(64 * 1024);
    table.set_cache_index_and_filter_blocks(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&table);
    opts.set_write_buffer_manager(write_buffers);
    opts.set_write_buffer_size(32 * 1024 * 1024);
    // A memtable reserves memory from the shared WriteBufferManager one arena block
    // at a time (default: write_buffer_size / 8 = 4 MiB). With a thousand partitions
    // being written, those first blocks alone exceed the budget and writes stall
    // for good; small blocks keep the reservation close to the data.
    opts.set_arena_block_size(64 * 1024);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Lz4);
    opts
}
