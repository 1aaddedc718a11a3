//! `TopicStore`: every topic with its id, configs and partition logs, persisted in
//! the metadata column family.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::topic_config::TopicPolicy;
use super::producer_state::Expiry;
use super::{keys, topic_config, PartitionLog, Store, META_CF};
use crate::error::StorageError;

/// Largest legal topic name length.
pub const MAX_TOPIC_NAME_LEN: usize = 249;
/// Upper bound on partitions per topic, so a hostile request cannot exhaust the broker.
pub const MAX_PARTITIONS: i32 = 10_000;

/// A topic and its partitions.
pub struct Topic {
    /// Topic name.
    pub name: String,
    /// Stable topic id (a new one if the topic is deleted and created again).
    pub id: Uuid,
    /// Config overrides set at creation.
    pub configs: BTreeMap<String, String>,
    /// Partition logs, by index.
    pub(crate) partitions: Vec<Arc<PartitionLog>>,
    /// The configs as the broker acts on them.
    pub policy: TopicPolicy,
}

impl Topic {
    fn new(name: String, id: Uuid, configs: BTreeMap<String, String>, partitions: Vec<Arc<PartitionLog>>) -> Topic {
        let policy = TopicPolicy::from_configs(&configs);
        Topic { name, id, configs, partitions, policy }
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// The value of a config key: the override or Kafka's default.
    pub fn config(&self, key: &str) -> Option<&str> {
        self.configs.get(key).map(String::as_str).or_else(|| topic_config::default_of(key))
    }

    /// The partition log with this index.
    pub(crate) fn partition(&self, index: i32) -> Option<&Arc<PartitionLog>> {
        usize::try_from(index).ok().and_then(|i| self.partitions.get(i))
    }
}

/// What is persisted per topic.
#[derive(Debug, Serialize, Deserialize)]
struct TopicRecord {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// Broker settings the topic store applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSettings {
    /// Most partitions the broker holds, all topics together (`max_partitions`).
    pub max_partitions: usize,
    /// Idle producers' state is forgotten after this long (`producer_id_expiration_ms`).
    pub producer_id_expiration_ms: i64,
}

impl Default for TopicSettings {
    /// No partition cap; producer state never expires.
    fn default() -> Self {
        TopicSettings { max_partitions: usize::MAX, producer_id_expiration_ms: i64::MAX }
    }
}

/// All topics of the broker.
pub struct TopicStore {
    store: Arc<Store>,
    settings: TopicSettings,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    ids: RwLock<HashMap<Uuid, String>>,
    // Serialises create/delete/grow so two admin requests never race on one name.
    admin: Mutex<()>,
}

impl TopicStore {
    /// Loads every topic and reopens its partitions, without limits or expiry.
    pub fn load(store: Arc<Store>) -> Result<TopicStore, StorageError> {
        TopicStore::open(store, TopicSettings::default())
    }

    /// Loads every topic and reopens its partitions; producer state that has expired
    /// meanwhile is dropped as each partition opens.
    pub fn open(store: Arc<Store>, settings: TopicSettings) -> Result<TopicStore, StorageError> {
        let mut records = Vec::new();
        {
            let db = store.db();
            let meta = db.cf_handle(META_CF).expect("meta cf");
            for item in db.iterator_cf(&meta, IteratorMode::From(keys::TOPIC_PREFIX, Direction::Forward)) {
                let (k, v) = item?;
                if !k.starts_with(keys::TOPIC_PREFIX) {
                    break;
                }
                let record: TopicRecord = serde_json::from_slice(&v)
                    .map_err(|e| StorageError::CorruptMetadata(format!("topic record: {e}")))?;
                records.push(record);
            }
        }
        let mut topics = HashMap::new();
        let mut ids = HashMap::new();
        let mut expired = 0;
        for r in records {
            let partitions = (0..r.partitions)
                .map(|p| {
                    let log = PartitionLog::open(store.clone(), r.id, p)?;
                    expired += log.expire_producers(Expiry::now(settings.producer_id_expiration_ms))?;
                    Ok(log)
                })
                .collect::<Result<Vec<_>, StorageError>>()?;
            ids.insert(r.id, r.name.clone());
            topics.insert(r.name.clone(), Arc::new(Topic::new(r.name, r.id, r.configs, partitions)));
        }
        tracing::info!(topics = topics.len(), expired_producer_states = expired, "topics loaded");
        Ok(TopicStore { store, settings, topics: RwLock::new(topics), ids: RwLock::new(ids), admin: Mutex::new(()) })
    }

    /// The topic with this name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic with this id.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        let name = self.ids.read().get(&id).cloned()?;
        self.get(&name)
    }

    /// Every topic, sorted by name.
    pub fn all(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self.topics.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks a topic creation without doing it.
    pub fn validate_create(
        &self,
        name: &str,
        partitions: i32,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), StorageError> {
        validate_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(StorageError::InvalidPartitions(format!(
                "number of partitions must be between 1 and {MAX_PARTITIONS}, got {partitions}"
            )));
        }
        topic_config::validate_all(configs)?;
        if self.topics.read().contains_key(name) {
            return Err(StorageError::TopicAlreadyExists);
        }
        self.check_capacity(partitions as usize)
    }

    /// Refuses `adding` more partitions when the broker would then hold more than
    /// `max_partitions`.
    pub fn check_capacity(&self, adding: usize) -> Result<(), StorageError> {
        let current = self.partition_count();
        if current.saturating_add(adding) > self.settings.max_partitions {
            return Err(StorageError::PartitionLimitReached(format!(
                "the broker holds {current} partitions; {adding} more would exceed max_partitions ({})",
                self.settings.max_partitions
            )));
        }
        Ok(())
    }

    /// Partitions of all topics.
    pub fn partition_count(&self) -> usize {
        self.topics.read().values().map(|t| t.partitions.len()).sum()
    }

    /// Drops the state of producers idle for `producer_id_expiration_ms` as of `now_ms`,
    /// from memory and the metadata column family. Returns how many states expired.
    pub fn expire_producers(&self, now_ms: i64) -> Result<usize, StorageError> {
        let expiry = Expiry { now_ms, expiration_ms: self.settings.producer_id_expiration_ms };
        let mut expired = 0;
        for topic in self.all() {
            for log in &topic.partitions {
                match log.expire_producers(expiry) {
                    Ok(n) => expired += n,
                    // A partition deleted meanwhile has nothing left to expire.
                    Err(StorageError::UnknownTopicOrPartition) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if expired > 0 {
            tracing::info!(expired, "idle producer states expired");
        }
        Ok(expired)
    }

    /// Idempotent producer states held, one per producer and partition.
    pub fn producer_count(&self) -> usize {
        self.all().iter().flat_map(|t| t.partitions.iter()).map(|p| p.producer_count()).sum()
    }

    /// Creates a topic with `partitions` empty partitions. The column families are
    /// taken (or created, which can take long) before the admin lock is held, so other
    /// admin work and auto-creation wait only for the commit; the topic record and every
    /// partition's metadata are then written in one synced write, so a crash leaves the
    /// whole topic or none of it. Of concurrent creates of one name, one wins; the
    /// others get TOPIC_ALREADY_EXISTS and their column families go back to the spares.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, StorageError> {
        self.create_with_id(name, Uuid::new_v4(), partitions, configs)
    }

    /// [`TopicStore::create`] with a topic id chosen elsewhere (in cluster mode, the
    /// controller's: every broker materialises the topic under the same id).
    pub fn create_with_id(
        &self,
        name: &str,
        id: Uuid,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, StorageError> {
        self.validate_create(name, partitions, &configs)?;
        let cfs = self.take_cfs(id, 0..partitions)?;
        let _admin = self.admin.lock();
        if let Err(e) = self.validate_create(name, partitions, &configs) {
            self.store.recycle_partition_cfs(cfs);
            return Err(e);
        }
        let mut write = WriteBatch::default();
        let logs = self.logs_in(id, 0, cfs, &mut write);
        let topic = Arc::new(Topic::new(name.to_string(), id, configs, logs));
        self.commit(&topic, write, &topic.partitions)?;
        self.ids.write().insert(id, topic.name.clone());
        self.topics.write().insert(topic.name.clone(), topic.clone());
        tracing::info!(topic = name, %id, partitions, "topic created");
        Ok(topic)
    }

    /// Empty column families for partitions `range` of topic `id`; on failure the ones
    /// already taken go back to the spares.
    fn take_cfs(&self, id: Uuid, range: std::ops::Range<i32>) -> Result<Vec<String>, StorageError> {
        let mut cfs = Vec::with_capacity(range.len());
        for p in range {
            match self.store.take_partition_cf(id, p) {
                Ok(cf) => cfs.push(cf),
                Err(e) => {
                    self.store.recycle_partition_cfs(cfs);
                    return Err(e);
                }
            }
        }
        Ok(cfs)
    }

    /// Partition logs `first..` of topic `id` in these column families, their metadata added to `write`.
    fn logs_in(&self, id: Uuid, first: i32, cfs: Vec<String>, write: &mut WriteBatch) -> Vec<Arc<PartitionLog>> {
        cfs.into_iter()
            .zip(first..)
            .map(|(cf, p)| PartitionLog::create_in(self.store.clone(), id, p, cf, write))
            .collect()
    }

    /// Writes the topic record with `write` (new partitions' metadata), synced; on
    /// failure the new partitions' column families go back to the spares.
    fn commit(&self, topic: &Topic, mut write: WriteBatch, new: &[Arc<PartitionLog>]) -> Result<(), StorageError> {
        let outcome = (|| -> Result<(), StorageError> {
            let value = record_value(topic)?;
            let db = self.store.db();
            let meta = db.cf_handle(META_CF).expect("meta cf");
            write.put_cf(&meta, keys::topic(&topic.name), value);
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.write_opt(write, &opts)?;
            Ok(())
        })();
        if outcome.is_err() {
            self.store.recycle_partition_cfs(new.iter().map(|p| p.cf_name().to_string()).collect());
        }
        outcome
    }

    /// Returns the topic, creating it with `partitions` partitions if it is missing.
    pub fn get_or_create(&self, name: &str, partitions: i32) -> Result<Arc<Topic>, StorageError> {
        if let Some(t) = self.get(name) {
            return Ok(t);
        }
        match self.create(name, partitions, BTreeMap::new()) {
            Err(StorageError::TopicAlreadyExists) => self.get(name).ok_or(StorageError::UnknownTopicOrPartition),
            other => other,
        }
    }

    /// Grows a topic to `count` partitions; like [`TopicStore::create`], the column
    /// families are taken before the admin lock and the metadata is written in one write.
    pub fn add_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), StorageError> {
        let check = |topic: &Topic| -> Result<i32, StorageError> {
            let current = topic.partitions.len() as i32;
            if count <= current {
                return Err(StorageError::InvalidPartitions(format!(
                    "topic currently has {current} partitions, {count} would not be an increase"
                )));
            }
            if count > MAX_PARTITIONS {
                return Err(StorageError::InvalidPartitions(format!("at most {MAX_PARTITIONS} partitions")));
            }
            self.check_capacity((count - current) as usize)?;
            Ok(current)
        };
        let topic = self.get(name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let current = check(&topic)?;
        if validate_only {
            return Ok(());
        }
        let cfs = self.take_cfs(topic.id, current..count)?;
        let _admin = self.admin.lock();
        let now = match self.get(name) {
            Some(t) if t.id == topic.id && t.partitions.len() == current as usize => check(&t).map(|_| t),
            Some(_) => Err(StorageError::InvalidPartitions(format!("topic {name} was changed by a concurrent request"))),
            None => Err(StorageError::UnknownTopicOrPartition),
        };
        let now = match now {
            Ok(t) => t,
            Err(e) => {
                self.store.recycle_partition_cfs(cfs);
                return Err(e);
            }
        };
        let mut write = WriteBatch::default();
        let new = self.logs_in(now.id, current, cfs, &mut write);
        let partitions = now.partitions.iter().chain(&new).cloned().collect();
        let grown = Arc::new(Topic::new(now.name.clone(), now.id, now.configs.clone(), partitions));
        self.commit(&grown, write, &new)?;
        self.topics.write().insert(grown.name.clone(), grown);
        tracing::info!(topic = name, from = current, to = count, "partitions added");
        Ok(())
    }

    /// Replaces a topic's config overrides with `configs` (validated first). The new
    /// configs apply to every request that looks the topic up afterwards.
    pub fn alter_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), StorageError> {
        let _admin = self.admin.lock();
        let topic = self.get(name).ok_or(StorageError::UnknownTopicOrPartition)?;
        topic_config::validate_all(&configs)?;
        if validate_only {
            return Ok(());
        }
        let altered = Arc::new(Topic::new(topic.name.clone(), topic.id, configs, topic.partitions.clone()));
        self.persist(&altered)?;
        self.topics.write().insert(altered.name.clone(), altered);
        tracing::info!(topic = name, "topic configs altered");
        Ok(())
    }

    /// Deletes a topic: its record, partition metadata, producer state and column families.
    pub fn delete(&self, name: &str) -> Result<Arc<Topic>, StorageError> {
        let _admin = self.admin.lock();
        let topic = self.get(name).ok_or(StorageError::UnknownTopicOrPartition)?;
        {
            let db = self.store.db();
            let meta = db.cf_handle(META_CF).expect("meta cf");
            for p in &topic.partitions {
                p.mark_deleted();
            }
            // One write: the metadata and every batch go together, so a crash leaves
            // either the whole topic or none of it. The emptied column families are
            // reused: dropping them would rewrite RocksDB's OPTIONS file once each.
            let mut write = WriteBatch::default();
            write.delete_cf(&meta, keys::topic(name));
            for prefix in [
                keys::partition_meta_prefix(topic.id),
                keys::producer_state_prefix(topic.id, None),
                keys::partition_cf_ref_prefix(topic.id),
                keys::batch_index_prefix(topic.id, None),
                keys::time_index_prefix(topic.id, None),
                keys::cleaner_checkpoint_prefix(topic.id),
                keys::open_txn_prefix(topic.id, None),
                keys::aborted_txn_prefix(topic.id, None),
            ] {
                write.delete_range_cf(&meta, &prefix, &keys::prefix_end(&prefix));
            }
            for p in &topic.partitions {
                if let Some(cf) = db.cf_handle(p.cf_name()) {
                    write.delete_range_cf(&cf, keys::OFFSET_KEY_MIN, keys::OFFSET_KEY_END);
                }
            }
            db.write(write)?;
        }
        self.topics.write().remove(name);
        self.ids.write().remove(&topic.id);
        self.store.recycle_partition_cfs(topic.partitions.iter().map(|p| p.cf_name().to_string()).collect());
        tracing::info!(topic = name, id = %topic.id, "topic deleted");
        Ok(topic)
    }

    fn persist(&self, topic: &Topic) -> Result<(), StorageError> {
        let value = record_value(topic)?;
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        db.put_cf_opt(&meta, keys::topic(&topic.name), value, &opts)?;
        Ok(())
    }
}

/// The persisted record of a topic.
fn record_value(topic: &Topic) -> Result<Vec<u8>, StorageError> {
    let record = TopicRecord {
        name: topic.name.clone(),
        id: topic.id,
        partitions: topic.partitions.len() as i32,
        configs: topic.configs.clone(),
    };
    serde_json::to_vec(&record).map_err(|e| StorageError::CorruptMetadata(e.to_string()))
}

/// Expires idle producer state every `interval` (`producer_id_expiration_check_interval_ms`)
/// until `stop` is cancelled; each sweep runs on a blocking thread, off the request path.
/// `topics` finds the topic store inside `owner` (the broker).
pub async fn expire_producers_every<T: Send + Sync + 'static>(
    owner: Arc<T>,
    topics: fn(&T) -> &TopicStore,
    interval: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await; // the first tick is immediate; start-up already expired
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let owner = owner.clone();
        let swept = tokio::task::spawn_blocking(move || {
            topics(&owner).expire_producers(super::producer_state::now_ms())
        })
        .await;
        match swept {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "expiring producer state failed"),
            Err(e) => tracing::error!(error = %e, "producer state expiry task failed"),
        }
    }
}

/// Kafka's topic name rules: 1..=249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> Result<(), StorageError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(StorageError::InvalidTopic(format!("topic name {name:?} is illegal")));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(StorageError::InvalidTopic(format!("topic name is longer than {MAX_TOPIC_NAME_LEN}")));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return Err(StorageError::InvalidTopic(format!("topic name {name:?} contains illegal characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{self, split_and_validate, tests::sample_batch};
    use crate::storage::StoreOptions;
    use std::path::Path;

    fn open(dir: &Path) -> (Arc<Store>, TopicStore) {
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 4 };
        let store = Store::open(dir, &opts).unwrap();
        let topics = TopicStore::load(store.clone()).unwrap();
        (store, topics)
    }

    #[test]
    fn append_read_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let (_store, topics) = open(dir.path());
            let t = topics.create("orders", 2, BTreeMap::new()).unwrap();
            id = t.id;
            let log = t.partition(1).unwrap();
            for n in [3, 2] {
                let batches = split_and_validate(sample_batch(n, -1, -1).freeze()).unwrap();
                log.append(batches, false).unwrap();
            }
            assert_eq!(log.offsets().log_end, 5);
            let read = log.read(4, 1 << 20, true).unwrap();
            assert_eq!(read.batches, 1, "batch containing offset 4 only");
            assert_eq!(batch::offsets_of(&read.records), (3, 4));
            assert_eq!(read.records.len(), read.bytes);
            assert!(matches!(log.read(6, 100, true), Err(StorageError::OffsetOutOfRange)));
            assert_eq!(log.read(5, 100, true).unwrap().batches, 0);
        }
        let (_store, topics) = open(dir.path());
        let t = topics.get("orders").unwrap();
        assert_eq!(t.id, id);
        let log = t.partition(1).unwrap();
        assert_eq!(log.offsets().log_end, 5);
        assert_eq!(log.offsets().high_watermark, 5);
        let all = log.read(0, 1 << 20, true).unwrap();
        assert_eq!(all.batches, 2);
        let first_len = 12 + i32::from_be_bytes(all.records[8..12].try_into().unwrap()) as usize;
        let (first, second) = all.records.split_at(first_len);
        assert_eq!((batch::offsets_of(first), batch::offsets_of(second)), ((0, 2), (3, 4)), "batches back to back");
    }

    #[test]
    fn duplicates_keep_offsets_across_restart() {
        let dir = tempfile::tempdir().unwrap();
        let batch = sample_batch(2, 77, 0);
        {
            let (_s, topics) = open(dir.path());
            let t = topics.create("idem", 1, BTreeMap::new()).unwrap();
            let log = t.partition(0).unwrap();
            log.append(split_and_validate(sample_batch(1, -1, -1).freeze()).unwrap(), false).unwrap();
            let r = log.append(split_and_validate(batch.clone().freeze()).unwrap(), false).unwrap();
            assert_eq!(r.base_offset, 1);
        }
        let (_s, topics) = open(dir.path());
        let log = topics.get("idem").unwrap().partition(0).unwrap().clone();
        let r = log.append(split_and_validate(batch.freeze()).unwrap(), false).unwrap();
        assert_eq!((r.base_offset, r.log_end_offset), (1, 3), "retry answered with the original offset");
        let gap = split_and_validate(sample_batch(1, 77, 5).freeze()).unwrap();
        assert!(matches!(log.append(gap, false), Err(StorageError::OutOfOrderSequence { .. })));
        assert_eq!(log.offsets().log_end, 3);
    }

    #[test]
    fn delete_and_recreate_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, topics) = open(dir.path());
        let t = topics.create("gone", 1, BTreeMap::new()).unwrap();
        t.partition(0).unwrap().append(split_and_validate(sample_batch(1, -1, -1).freeze()).unwrap(), false).unwrap();
        topics.delete("gone").unwrap();
        assert!(matches!(topics.create("gone", 0, BTreeMap::new()), Err(StorageError::InvalidPartitions(_))));
        let again = topics.create("gone", 1, BTreeMap::new()).unwrap();
        assert_ne!(again.id, t.id);
        assert_eq!(again.partition(0).unwrap().offsets().log_end, 0);
        assert!(matches!(topics.create("gone", 1, BTreeMap::new()), Err(StorageError::TopicAlreadyExists)));
        assert!(matches!(validate_name("bad/name"), Err(StorageError::InvalidTopic(_))));
    }

    #[test]
    fn altered_configs_persist() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_s, topics) = open(dir.path());
            topics.create("conf", 1, BTreeMap::new()).unwrap();
            let set = BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]);
            topics.alter_configs("conf", set.clone(), true).unwrap();
            assert_eq!(topics.get("conf").unwrap().config("cleanup.policy"), Some("delete"), "validate only");
            topics.alter_configs("conf", set, false).unwrap();
            let bad = BTreeMap::from([("retention.ms".to_string(), "soon".to_string())]);
            assert!(matches!(topics.alter_configs("conf", bad, false), Err(StorageError::InvalidConfig(_))));
            assert!(matches!(
                topics.alter_configs("nope", BTreeMap::new(), false),
                Err(StorageError::UnknownTopicOrPartition)
            ));
        }
        let (_s, topics) = open(dir.path());
        assert_eq!(topics.get("conf").unwrap().config("cleanup.policy"), Some("compact"));
    }

    #[test]
    fn deleted_records_move_the_log_start() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (_s, topics) = open(dir.path());
            let t = topics.create("dr", 1, BTreeMap::new()).unwrap();
            let log = t.partition(0).unwrap();
            for _ in 0..3 {
                log.append(split_and_validate(sample_batch(3, -1, -1).freeze()).unwrap(), false).unwrap();
            }
            assert!(matches!(log.delete_records(10), Err(StorageError::OffsetOutOfRange)));
            assert!(matches!(log.delete_records(-2), Err(StorageError::OffsetOutOfRange)));
            assert_eq!(log.delete_records(4).unwrap(), 4, "mid-batch: the batch 3..=5 stays");
            assert_eq!(log.delete_records(2).unwrap(), 4, "never backwards");
            assert!(matches!(log.read(3, 1 << 20, true), Err(StorageError::OffsetOutOfRange)));
            let read = log.read(4, 1 << 20, true).unwrap();
            assert_eq!((read.log_start_offset, batch::offsets_of(&read.records)), (4, (3, 5)));
            assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((4, 1001)), "below the log start is skipped");
        }
        {
            let (_s, topics) = open(dir.path());
            let log = topics.get("dr").unwrap().partition(0).unwrap().clone();
            assert_eq!((log.offsets().log_start, log.offsets().log_end), (4, 9), "after restart");
            assert_eq!(log.delete_records(-1).unwrap(), 9, "-1: up to the high watermark");
            assert_eq!(log.read(9, 1 << 20, true).unwrap().batches, 0);
        }
        let (_s, topics) = open(dir.path());
        let log = topics.get("dr").unwrap().partition(0).unwrap().clone();
        assert_eq!((log.offsets().log_start, log.offsets().log_end), (9, 9), "empty log after restart");
    }

    #[test]
    fn timestamps_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let (_s, topics) = open(dir.path());
        let t = topics.create("ts", 1, BTreeMap::new()).unwrap();
        let log = t.partition(0).unwrap();
        log.append(split_and_validate(sample_batch(3, -1, -1).freeze()).unwrap(), false).unwrap();
        assert_eq!(log.offset_for_timestamp(1001).unwrap(), Some((1, 1001)));
        assert_eq!(log.offset_for_timestamp(5000).unwrap(), None);
        assert_eq!(log.max_timestamp().unwrap(), Some((2, 1002)));
    }

    #[test]
    fn deleted_topics_column_families_are_emptied_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (store, topics) = open(dir.path());
        assert_eq!(store.spare_count(), 4);
        let t = topics.create("old", 2, BTreeMap::new()).unwrap();
        assert_eq!(store.spare_count(), 2, "partitions take spares");
        let old_log = t.partition(1).unwrap().clone();
        old_log.append(split_and_validate(sample_batch(3, -1, -1).freeze()).unwrap(), false).unwrap();
        let cfs: Vec<String> = t.partitions.iter().map(|p| p.cf_name().to_string()).collect();
        topics.delete("old").unwrap();
        assert_eq!(store.spare_count(), 4, "the deleted topic's column families are spares again");
        // A handle kept across the deletion neither writes into nor reads from the reused family.
        let batches = split_and_validate(sample_batch(1, -1, -1).freeze()).unwrap();
        assert!(matches!(old_log.append(batches, false), Err(StorageError::UnknownTopicOrPartition)));
        let new = topics.create("new", 4, BTreeMap::new()).unwrap();
        let reused: Vec<&str> = new.partitions.iter().map(|p| p.cf_name()).filter(|n| cfs.iter().any(|c| c == n)).collect();
        assert_eq!(reused.len(), 2, "both emptied families are reused");
        for p in &new.partitions {
            assert_eq!(p.offsets().log_end, 0);
            assert!(is_empty(&store, p.cf_name()), "{} is empty", p.cf_name());
        }
        assert!(matches!(old_log.read(0, 1 << 20, true), Err(StorageError::UnknownTopicOrPartition)));
        // Past the spares, partitions get column families of their own; all survive a restart.
        let more = topics.create("more", 3, BTreeMap::new()).unwrap();
        more.partition(2).unwrap().append(split_and_validate(sample_batch(2, -1, -1).freeze()).unwrap(), false).unwrap();
        new.partition(0).unwrap().append(split_and_validate(sample_batch(1, -1, -1).freeze()).unwrap(), false).unwrap();
        drop((store, topics, new, more, old_log, t));
        let (store, topics) = open(dir.path());
        assert_eq!(store.spare_count(), 4, "spares topped up at open");
        assert_eq!(topics.get("more").unwrap().partition(2).unwrap().offsets().log_end, 2);
        assert_eq!(topics.get("new").unwrap().partition(0).unwrap().offsets().log_end, 1);
        assert_eq!(topics.get("new").unwrap().partition(1).unwrap().offsets().log_end, 0);
    }

    #[test]
    fn unreferenced_column_families_are_cleared_into_spares() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _topics) = open(dir.path());
            // A family left by a deletion interrupted before references existed.
            store.ensure_partition_cf("p-leftover-0").unwrap();
            let db = store.db();
            let cf = db.cf_handle("p-leftover-0").unwrap();
            db.put_cf(&cf, keys::offset_key(0), b"stale").unwrap();
        }
        let (store, topics) = open(dir.path());
        assert_eq!(store.spare_count(), 5, "the leftover family is a spare");
        let t = topics.create("fresh", 5, BTreeMap::new()).unwrap();
        assert!(t.partitions.iter().any(|p| p.cf_name() == "p-leftover-0"));
        for p in &t.partitions {
            assert!(is_empty(&store, p.cf_name()), "{} is empty", p.cf_name());
        }
    }

    fn open_with(dir: &Path, settings: TopicSettings) -> (Arc<Store>, TopicStore) {
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 4 };
        let store = Store::open(dir, &opts).unwrap();
        let topics = TopicStore::open(store.clone(), settings).unwrap();
        (store, topics)
    }

    /// Producer ids with state in the metadata column family for this partition.
    fn stored_producers(store: &Store, topic_id: Uuid, partition: i32) -> Vec<i64> {
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        let prefix = keys::producer_state_prefix(topic_id, Some(partition));
        let pids = db
            .iterator_cf(&meta, IteratorMode::From(&prefix, Direction::Forward))
            .map(|item| item.unwrap().0)
            .take_while(|k| k.starts_with(&prefix))
            .map(|k| i64::from_be_bytes(k[prefix.len()..].try_into().unwrap()))
            .collect();
        pids
    }

    fn idempotent(pid: i64, seq: i32, count: i32) -> Vec<(batch::BatchHeader, bytes::BytesMut)> {
        split_and_validate(sample_batch(count, pid, seq).freeze()).unwrap()
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn idle_producers_expire_from_memory_and_disk() {
        use crate::storage::producer_state::now_ms;
        let dir = tempfile::tempdir().unwrap();
        let settings = TopicSettings { producer_id_expiration_ms: HOUR, ..TopicSettings::default() };
        let id;
        {
            let (store, topics) = open_with(dir.path(), settings);
            let t = topics.create("idem", 1, BTreeMap::new()).unwrap();
            id = t.id;
            let log = t.partition(0).unwrap();
            log.append(idempotent(10, 0, 3), false).unwrap();
            log.append(idempotent(13, 0, 2), false).unwrap();
            let old_done = now_ms();
            while now_ms() < old_done + 2 {
                std::hint::spin_loop();
            }
            log.append(idempotent(11, 0, 2), false).unwrap();
            assert_eq!((log.producer_count(), stored_producers(&store, id, 0)), (3, vec![10, 11, 13]));
            // Nothing is an hour old yet.
            assert_eq!(topics.expire_producers(now_ms()).unwrap(), 0);
            // An hour after 10 and 13 appended, but not yet after 11.
            assert_eq!(topics.expire_producers(old_done + HOUR).unwrap(), 2);
            assert_eq!(log.producer_count(), 1);
            assert_eq!(stored_producers(&store, id, 0), vec![11], "expired states are deleted from disk");
            // 11 still has its state: its retry is a duplicate.
            assert_eq!(log.append(idempotent(11, 0, 2), false).unwrap().base_offset, 5);
            // 10 is unknown now: the retry of its batch is appended, as Kafka does for a
            // producer without state, and its sequences are checked again from there.
            assert_eq!(log.append(idempotent(10, 0, 3), false).unwrap().base_offset, 7);
            assert!(matches!(log.append(idempotent(10, 9, 1), false), Err(StorageError::OutOfOrderSequence { expected: 3, got: 9 })));
            // 13 is unknown: a later sequence starts it afresh too.
            assert_eq!(log.append(idempotent(13, 2, 1), false).unwrap().base_offset, 10);
            // Earlier batches are still read back at their offsets.
            let read = log.read(0, 1 << 20, true).unwrap();
            assert_eq!(read.batches, 5);
            assert_eq!(batch::offsets_of(&read.records), (0, 2));
        }
        // Reopened, only live states are loaded.
        let (store, topics) = open_with(dir.path(), settings);
        let log = topics.get("idem").unwrap().partition(0).unwrap().clone();
        assert_eq!((log.producer_count(), stored_producers(&store, id, 0)), (3, vec![10, 11, 13]));
        assert_eq!(log.append(idempotent(13, 2, 1), false).unwrap().base_offset, 10, "13's new state survived");
    }

    #[test]
    fn expired_producer_states_are_dropped_when_loading() {
        let dir = tempfile::tempdir().unwrap();
        let id;
        {
            let (store, topics) = open(dir.path());
            let t = topics.create("old", 1, BTreeMap::new()).unwrap();
            id = t.id;
            let log = t.partition(0).unwrap();
            log.append(idempotent(20, 0, 1), false).unwrap();
            log.append(idempotent(21, 0, 1), false).unwrap();
            // 21's state as a broker wrote it two hours ago.
            let mut stale = crate::storage::producer_state::ProducerStates::default();
            let header = idempotent(21, 0, 1).remove(0).0;
            let entry = stale.record(&header, 1, crate::storage::producer_state::now_ms() - 2 * HOUR).encode();
            let db = store.db();
            let meta = db.cf_handle(META_CF).unwrap();
            db.put_cf(&meta, keys::producer_state(id, 0, 21), entry).unwrap();
        }
        let settings = TopicSettings { producer_id_expiration_ms: HOUR, ..TopicSettings::default() };
        let (store, topics) = open_with(dir.path(), settings);
        let log = topics.get("old").unwrap().partition(0).unwrap().clone();
        assert_eq!(log.producer_count(), 1);
        assert_eq!(stored_producers(&store, id, 0), vec![20], "the expired state is deleted at load");
        assert_eq!(log.append(idempotent(20, 0, 1), false).unwrap().base_offset, 0, "20 is still known");
        assert_eq!(log.append(idempotent(21, 0, 1), false).unwrap().base_offset, 2, "21 is new again");
    }

    #[test]
    fn the_partition_cap_refuses_creation_growth_and_auto_creation() {
        let dir = tempfile::tempdir().unwrap();
        let (_store, topics) = open_with(dir.path(), TopicSettings { max_partitions: 5, ..TopicSettings::default() });
        topics.create("a", 3, BTreeMap::new()).unwrap();
        assert!(matches!(topics.create("b", 3, BTreeMap::new()), Err(StorageError::PartitionLimitReached(_))));
        assert!(matches!(topics.validate_create("b", 3, &BTreeMap::new()), Err(StorageError::PartitionLimitReached(_))));
        assert!(topics.get("b").is_none());
        assert!(matches!(topics.add_partitions("a", 6, true), Err(StorageError::PartitionLimitReached(_))));
        assert!(matches!(topics.add_partitions("a", 6, false), Err(StorageError::PartitionLimitReached(_))));
        assert_eq!(topics.get("a").unwrap().partitions.len(), 3);
        topics.create("b", 2, BTreeMap::new()).unwrap();
        assert_eq!(topics.partition_count(), 5);
        assert!(matches!(topics.get_or_create("auto", 1), Err(StorageError::PartitionLimitReached(_))));
        assert!(topics.get("auto").is_none());
    }

    #[test]
    fn spares_are_refilled_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let (store, topics) = open(dir.path());
        assert_eq!(store.spare_count(), 4);
        let t = topics.create("wide", 6, BTreeMap::new()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.spare_count() < 4 {
            assert!(std::time::Instant::now() < deadline, "spares not refilled: {}", store.spare_count());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The refilled spares are new, empty column families no partition uses.
        let spares = store.spares.lock().clone();
        assert_eq!(spares.len(), 4);
        for name in &spares {
            assert!(is_empty(&store, name));
            assert!(t.partitions.iter().all(|p| p.cf_name() != name), "{name} is in use");
        }
        let next = topics.create("next", 2, BTreeMap::new()).unwrap();
        assert!(next.partitions.iter().all(|p| spares.iter().any(|s| s == p.cf_name())), "new partitions take spares");
    }

    fn is_empty(store: &Store, cf: &str) -> bool {
        let db = store.db();
        let cf = db.cf_handle(cf).unwrap();
        let empty = db.iterator_cf(&cf, rocksdb::IteratorMode::Start).next().is_none();
        empty
    }
}
