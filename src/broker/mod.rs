//! The domain layer: what a Kafka broker *is*, with no wire types and no error
//! codes. Handlers decode a request, call methods here and encode the answer;
//! this layer decides what happens (which partition, which offsets, when a write
//! counts as durable) and keeps its state private.
//!
//! - [`Partition`]: one partition replica — its log, offsets, high watermark,
//!   leader epoch, producer state and fetch wake-ups. [`Partition::append`]
//!   returns an [`AppendTicket`]; the ticket, not the caller, advances the high
//!   watermark once the write is durable. That is the seam replication will use.
//! - [`fetch`](Broker::fetch): long polls over several partitions.
//! - Topics: lookup, creation, deletion, configs ([`TopicRef`], [`TopicPolicy`]).

mod acl;
pub mod scram;
mod error;
mod fetch;
mod partition;
pub mod retention;
mod topics;
pub mod compaction;
pub mod txn;
pub mod cluster;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use error::BrokerError;
pub use fetch::{FetchRequestSpec, FetchTarget, FetchedPartition};
pub use partition::{AppendTicket, Appended, Partition};
pub use topics::{PartitionBudget, TopicRef};

pub use crate::storage::batch::BatchError;
pub use crate::storage::partition_log::{LogOffsets, ReadResult};
pub use crate::storage::topic_config::{self, TopicPolicy};
pub use crate::storage::Topic;

use crate::config::Config;
use crate::coordinator::GroupCoordinator;
use crate::error::StorageError;
use crate::metrics::Metrics;
use crate::storage::producer_ids::ProducerIdAllocator;
use crate::storage::{keys, Store, StoreOptions, TopicStore, META_CF};

/// The broker's shared state. Fields are private: handlers go through methods.
pub struct Broker {
    config: Config,
    store: Arc<Store>,
    topics: TopicStore,
    groups: GroupCoordinator,
    producer_ids: ProducerIdAllocator,
    cluster_id: String,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    acls: acl::Acls,
    scram: scram::Scram,
    txns: crate::coordinator::txn::TxnCoordinator,
    cluster: std::sync::OnceLock<cluster::BrokerCluster>,
}

impl Broker {
    /// Opens the data directory and loads all state.
    pub fn open(config: Config) -> Result<Arc<Broker>, StorageError> {
        let options = StoreOptions {
            block_cache_bytes: config.block_cache_mb << 20,
            write_buffer_bytes: config.write_buffer_mb << 20,
            fsync: config.fsync,
            spare_column_families: config.spare_column_families,
        };
        let store = Store::open(&config.data_dir, &options)?;
        store.set_verify_on_start(config.verify_on_start);
        store.set_min_free_disk_bytes(config.min_free_disk_bytes);
        let topics = TopicStore::open(store.clone(), config.topic_settings())?;
        let producer_ids = ProducerIdAllocator::load(store.clone())?;
        let groups = GroupCoordinator::load(store.clone(), config.group_settings())?;
        let cluster_id = load_or_create_cluster_id(&store)?;
        check_or_store_node_id(&store, config.node_id)?;
        let acls = acl::Acls::load(store.clone(), &config)?;
        let scram = scram::Scram::load(store.clone(), &config)?;
        let txns = crate::coordinator::txn::TxnCoordinator::load(store.clone(), config.txn_settings())?;
        Ok(Arc::new(Broker {
            config,
            store,
            topics,
            groups,
            producer_ids,
            cluster_id,
            shutdown: CancellationToken::new(),
            metrics: Arc::new(Metrics::default()),
            acls,
            scram,
            txns,
            cluster: std::sync::OnceLock::new(),
        }))
    }

    /// Effective configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Prometheus metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The group coordinator: consumer groups and committed offsets.
    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Cluster id, stable across restarts.
    pub fn cluster_id(&self) -> String {
        // Cluster mode: the id the metadata group settled on, the same on every broker.
        match self.cluster().and_then(|c| c.metadata().cluster_id().map(str::to_string)) {
            Some(id) => id,
            None => self.cluster_id.clone(),
        }
    }

    /// Cancelled when the broker starts shutting down; long polls end early.
    pub fn shutdown_signal(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Starts shutting down: long polls return, new work is refused.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Makes everything written so far durable (clean shutdown).
    pub fn flush(&self) -> Result<(), BrokerError> {
        Ok(self.store.flush()?)
    }

    /// A new idempotent producer id.
    pub fn next_producer_id(&self) -> Result<i64, BrokerError> {
        Ok(self.producer_ids.next()?)
    }

    /// RocksDB memory use, for the metrics endpoint.
    pub fn storage_memory(&self) -> crate::storage::StoreMemory {
        self.store.memory()
    }
}

/// The address a listener tells its clients to use for this broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

fn load_or_create_cluster_id(store: &Store) -> Result<String, StorageError> {
    let db = store.db();
    let meta = db.cf_handle(META_CF).expect("meta cf");
    if let Some(v) = db.get_cf(&meta, keys::CLUSTER_ID)? {
        return String::from_utf8(v).map_err(|_| StorageError::CorruptMetadata("cluster id".into()));
    }
    // Kafka cluster ids are 22-character url-safe base64 of a UUID; the hex form is
    // accepted by every client and needs no extra dependency.
    let id = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
    db.put_cf(&meta, keys::CLUSTER_ID, id.as_bytes())?;
    Ok(id)
}

/// Stores `node_id` at the first start of a data directory; afterwards, refuses another one.
fn check_or_store_node_id(store: &Store, node_id: i32) -> Result<(), StorageError> {
    let db = store.db();
    let meta = db.cf_handle(META_CF).expect("meta cf");
    match db.get_cf(&meta, keys::NODE_ID)? {
        Some(v) => {
            let stored = <[u8; 4]>::try_from(v.as_slice())
                .map(i32::from_be_bytes)
                .map_err(|_| StorageError::CorruptMetadata("node id".into()))?;
            if stored != node_id {
                return Err(StorageError::NodeIdMismatch { stored, configured: node_id });
            }
        }
        None => {
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.put_cf_opt(&meta, keys::NODE_ID, node_id.to_be_bytes(), &opts)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
