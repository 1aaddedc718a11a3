//! `TopicStore`: every topic with its id, configs and partition logs, persisted in
//! the metadata column family.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use rocksdb::{Direction, IteratorMode, WriteBatch};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::topic_config::TopicPolicy;
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

/// All topics of the broker.
pub struct TopicStore {
    store: Arc<Store>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    ids: RwLock<HashMap<Uuid, String>>,
    // Serialises create/delete/grow so two admin requests never race on one name.
    admin: Mutex<()>,
}

impl TopicStore {
    /// Loads every topic and reopens its partitions.
    pub fn load(store: Arc<Store>) -> Result<TopicStore, StorageError> {
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
        for r in records {
            let partitions = (0..r.partitions)
                .map(|p| PartitionLog::open(store.clone(), r.id, p))
                .collect::<Result<Vec<_>, _>>()?;
            ids.insert(r.id, r.name.clone());
            topics.insert(r.name.clone(), Arc::new(Topic::new(r.name, r.id, r.configs, partitions)));
        }
        tracing::info!(topics = topics.len(), "topics loaded");
        Ok(TopicStore { store, topics: RwLock::new(topics), ids: RwLock::new(ids), admin: Mutex::new(()) })
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
        Ok(())
    }

    /// Creates a topic with `partitions` empty partitions.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, StorageError> {
        let _admin = self.admin.lock();
        self.validate_create(name, partitions, &configs)?;
        let id = Uuid::new_v4();
        let logs = (0..partitions)
            .map(|p| PartitionLog::create(self.store.clone(), id, p))
            .collect::<Result<Vec<_>, _>>()?;
        let topic = Arc::new(Topic::new(name.to_string(), id, configs, logs));
        self.persist(&topic)?;
        self.ids.write().insert(id, topic.name.clone());
        self.topics.write().insert(topic.name.clone(), topic.clone());
        tracing::info!(topic = name, %id, partitions, "topic created");
        Ok(topic)
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

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(&self, name: &str, count: i32, validate_only: bool) -> Result<(), StorageError> {
        let _admin = self.admin.lock();
        let topic = self.get(name).ok_or(StorageError::UnknownTopicOrPartition)?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(StorageError::InvalidPartitions(format!(
                "topic currently has {current} partitions, {count} would not be an increase"
            )));
        }
        if count > MAX_PARTITIONS {
            return Err(StorageError::InvalidPartitions(format!("at most {MAX_PARTITIONS} partitions")));
        }
        if validate_only {
            return Ok(());
        }
        let mut partitions = topic.partitions.clone();
        for p in current..count {
            partitions.push(PartitionLog::create(self.store.clone(), topic.id, p)?);
        }
        let grown = Arc::new(Topic::new(topic.name.clone(), topic.id, topic.configs.clone(), partitions));
        self.persist(&grown)?;
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
        let record = TopicRecord {
            name: topic.name.clone(),
            id: topic.id,
            partitions: topic.partitions.len() as i32,
            configs: topic.configs.clone(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| StorageError::CorruptMetadata(e.to_string()))?;
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        db.put_cf_opt(&meta, keys::topic(&topic.name), value, &opts)?;
        Ok(())
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

    fn is_empty(store: &Store, cf: &str) -> bool {
        let db = store.db();
        let cf = db.cf_handle(cf).unwrap();
        let empty = db.iterator_cf(&cf, rocksdb::IteratorMode::Start).next().is_none();
        empty
    }
}
