//! `Broker`: the state every handler shares — configuration, topics, producer ids.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::coordinator::GroupCoordinator;
use crate::metrics::Metrics;
use crate::error::StorageError;
use crate::storage::producer_ids::ProducerIdAllocator;
use crate::storage::{keys, Store, StoreOptions, TopicStore, META_CF};

/// The broker's shared state.
pub struct Broker {
    /// Effective configuration.
    pub config: Config,
    /// The RocksDB store.
    pub store: Arc<Store>,
    /// Every topic and partition log.
    pub topics: TopicStore,
    /// The group coordinator: consumer groups and committed offsets.
    pub groups: GroupCoordinator,
    /// Idempotent producer id allocation.
    pub producer_ids: ProducerIdAllocator,
    /// Cluster id, stable across restarts.
    pub cluster_id: String,
    /// Cancelled when the broker starts shutting down; long polls end early.
    pub shutdown: CancellationToken,
    /// Prometheus metrics.
    pub metrics: Metrics,
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
        let topics = TopicStore::open(store.clone(), config.topic_settings())?;
        let producer_ids = ProducerIdAllocator::load(store.clone())?;
        let groups = GroupCoordinator::load(store.clone(), config.group_settings())?;
        let cluster_id = load_or_create_cluster_id(&store)?;
        Ok(Arc::new(Broker {
            config,
            store,
            topics,
            groups,
            producer_ids,
            cluster_id,
            shutdown: CancellationToken::new(),
            metrics: Metrics::default(),
        }))
    }

    /// This broker's node id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
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
