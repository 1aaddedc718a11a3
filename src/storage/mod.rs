//! Storage: one RocksDB database, one column family per partition, a metadata
//! column family for everything that describes the logs.
//!
//! Handlers never touch RocksDB; they go through [`TopicStore`] and [`PartitionLog`],
//! which own the key layout (see `keys`).

pub mod batch;
pub mod group_store;
pub mod keys;
pub mod partition_log;
pub mod producer_ids;
pub mod producer_state;
pub mod topic_config;
pub mod topic_store;
pub mod wal_sync;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, Options, WriteBufferManager};

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
}

/// The open database plus the options every partition column family is created with.
pub struct Store {
    db: Arc<Db>,
    partition_opts: Options,
    syncer: Option<wal_sync::WalSyncer>,
    // Kept alive for as long as the column families that reference them.
    _cache: Cache,
    _write_buffers: WriteBufferManager,
}

impl Store {
    /// Opens (or creates) the database in `dir` with every existing column family.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Arc<Store>, StorageError> {
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let write_buffers =
            WriteBufferManager::new_write_buffer_manager_with_cache(options.write_buffer_bytes, true, cache.clone());

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

        let existing = match Db::list_cf(&db_opts, dir) {
            Ok(names) => names,
            Err(_) => vec![], // a new database
        };
        let mut descriptors = vec![ColumnFamilyDescriptor::new(META_CF, meta_opts)];
        for name in existing.iter().filter(|n| n.as_str() != META_CF && n.as_str() != "default") {
            descriptors.push(ColumnFamilyDescriptor::new(name, partition_opts.clone()));
        }
        let db = Arc::new(Db::open_cf_descriptors(&db_opts, dir, descriptors)?);
        let syncer = options.fsync.then(|| wal_sync::WalSyncer::start(db.clone()));
        Ok(Arc::new(Store {
            db,
            partition_opts,
            syncer,
            _cache: cache,
            _write_buffers: write_buffers,
        }))
    }

    /// The raw database, for the storage modules.
    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    /// Creates a partition's column family.
    pub(crate) fn create_partition_cf(&self, name: &str) -> Result<(), StorageError> {
        if self.db.cf_handle(name).is_none() {
            self.db.create_cf(name, &self.partition_opts)?;
        }
        Ok(())
    }

    /// Drops a partition's column family and its data.
    pub(crate) fn drop_partition_cf(&self, name: &str) -> Result<(), StorageError> {
        if self.db.cf_handle(name).is_some() {
            self.db.drop_cf(name)?;
        }
        Ok(())
    }

    /// Names of all partition column families on disk.
    pub(crate) fn partition_cf_names(&self, dir: &Path) -> Vec<String> {
        Db::list_cf(&Options::default(), dir)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.starts_with(keys::PARTITION_CF_PREFIX))
            .collect()
    }

    /// Waits until every write completed before this call is fsynced (a no-op when
    /// fsync is off: the write already reached the WAL in the OS page cache).
    pub async fn wait_durable(&self) -> Result<(), StorageError> {
        match &self.syncer {
            Some(syncer) => syncer.sync().await,
            None => Ok(()),
        }
    }

    /// Flushes memtables and the WAL; called on clean shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        self.db.flush_wal(true)?;
        Ok(())
    }
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
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_compression_type(rocksdb::DBCompressionType::None);
    opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Lz4);
    opts
}
