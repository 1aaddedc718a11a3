//! `GroupStore`: committed offsets and consumer group metadata, persisted in the
//! metadata column family (`g/` and `o/` keys, see `keys`).
//!
//! The store knows the offset record layout; group metadata is an opaque record the
//! coordinator serialises. Everything is loaded once at start-up; the coordinator
//! keeps the live state in memory and writes through.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, WriteBatch};

use super::{keys, Store, META_CF};
use crate::error::StorageError;

/// One committed offset as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    /// The committed offset (the next record the group will consume).
    pub offset: i64,
    /// Leader epoch of the last consumed record, -1 when unknown.
    pub leader_epoch: i32,
    /// Client-supplied metadata string.
    pub metadata: String,
    /// When the commit happened (ms since the epoch).
    pub commit_timestamp_ms: i64,
    /// Explicit expiry (OffsetCommit v2–4 retention time), if any.
    pub expire_timestamp_ms: Option<i64>,
}

const OFFSET_RECORD_VERSION: u8 = 0;

impl StoredOffset {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(29 + self.metadata.len());
        v.push(OFFSET_RECORD_VERSION);
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.leader_epoch.to_be_bytes());
        v.extend_from_slice(&self.commit_timestamp_ms.to_be_bytes());
        v.extend_from_slice(&self.expire_timestamp_ms.unwrap_or(-1).to_be_bytes());
        v.extend_from_slice(&(self.metadata.len() as u32).to_be_bytes());
        v.extend_from_slice(self.metadata.as_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<StoredOffset> {
        if v.len() < 33 || v[0] != OFFSET_RECORD_VERSION {
            return None;
        }
        let i64_at = |at: usize| i64::from_be_bytes(v[at..at + 8].try_into().unwrap());
        let len = u32::from_be_bytes(v[29..33].try_into().unwrap()) as usize;
        let metadata = String::from_utf8(v.get(33..33 + len)?.to_vec()).ok()?;
        let expire = i64_at(21);
        Some(StoredOffset {
            offset: i64_at(1),
            leader_epoch: i32::from_be_bytes(v[9..13].try_into().unwrap()),
            commit_timestamp_ms: i64_at(13),
            expire_timestamp_ms: (expire >= 0).then_some(expire),
            metadata,
        })
    }
}

/// Everything persisted about groups, as loaded at start-up.
#[derive(Debug, Default)]
pub struct LoadedGroups {
    /// Group metadata records: (group id, record bytes).
    pub groups: Vec<(String, Vec<u8>)>,
    /// Committed offsets: (group id, topic, partition, offset).
    pub offsets: Vec<(String, String, i32, StoredOffset)>,
}

/// Persistence of groups and committed offsets.
pub struct GroupStore {
    store: Arc<Store>,
}

impl GroupStore {
    /// A store writing to `store`'s metadata column family.
    pub fn new(store: Arc<Store>) -> GroupStore {
        GroupStore { store }
    }

    /// Reads every group record and committed offset.
    pub fn load(&self) -> Result<LoadedGroups, StorageError> {
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut loaded = LoadedGroups::default();
        for item in db.iterator_cf(&meta, IteratorMode::From(keys::GROUP_PREFIX, Direction::Forward)) {
            let (k, v) = item?;
            let Some(id) = k.strip_prefix(keys::GROUP_PREFIX) else { break };
            let id = String::from_utf8(id.to_vec()).map_err(|_| StorageError::CorruptMetadata("group key".into()))?;
            loaded.groups.push((id, v.to_vec()));
        }
        for item in db.iterator_cf(&meta, IteratorMode::From(keys::OFFSET_PREFIX, Direction::Forward)) {
            let (k, v) = item?;
            if !k.starts_with(keys::OFFSET_PREFIX) {
                break;
            }
            let (group, topic, partition) =
                keys::parse_offset_commit(&k).ok_or_else(|| StorageError::CorruptMetadata("offset key".into()))?;
            let offset = StoredOffset::decode(&v).ok_or_else(|| StorageError::CorruptMetadata("offset record".into()))?;
            loaded.offsets.push((group, topic, partition, offset));
        }
        Ok(loaded)
    }

    /// Writes committed offsets of one group atomically.
    pub fn commit_offsets(&self, group: &str, offsets: &[(String, i32, StoredOffset)]) -> Result<(), StorageError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut write = WriteBatch::default();
        for (topic, partition, offset) in offsets {
            write.put_cf(&meta, keys::offset_commit(group, topic, *partition), offset.encode());
        }
        db.write(write)?;
        Ok(())
    }

    /// Deletes committed offsets of one group.
    pub fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<(), StorageError> {
        if partitions.is_empty() {
            return Ok(());
        }
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut write = WriteBatch::default();
        for (topic, partition) in partitions {
            write.delete_cf(&meta, keys::offset_commit(group, topic, *partition));
        }
        db.write(write)?;
        Ok(())
    }

    /// Writes (replaces) a group's metadata record.
    pub fn put_group(&self, group: &str, record: &[u8]) -> Result<(), StorageError> {
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        db.put_cf(&meta, keys::group(group), record)?;
        Ok(())
    }

    /// Deletes a group: its metadata record and every committed offset.
    pub fn delete_group(&self, group: &str) -> Result<(), StorageError> {
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut write = WriteBatch::default();
        write.delete_cf(&meta, keys::group(group));
        let prefix = keys::offset_commit_prefix(group);
        write.delete_range_cf(&meta, &prefix, &keys::prefix_end(&prefix));
        db.write(write)?;
        Ok(())
    }

    /// Waits until earlier writes are durable (fsync mode), as produce does.
    pub async fn wait_durable(&self) -> Result<(), StorageError> {
        self.store.wait_durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;

    fn open(dir: &std::path::Path) -> GroupStore {
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 4 };
        GroupStore::new(Store::open(dir, &opts).unwrap())
    }

    fn offset(o: i64) -> StoredOffset {
        StoredOffset { offset: o, leader_epoch: 3, metadata: "meta".into(), commit_timestamp_ms: 1000, expire_timestamp_ms: None }
    }

    #[test]
    fn offsets_and_groups_survive_reopen_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path());
            store.commit_offsets("g1", &[("t".into(), 0, offset(5)), ("t".into(), 1, offset(6))]).unwrap();
            store.commit_offsets("g10", &[("t".into(), 0, offset(7))]).unwrap();
            store.put_group("g1", b"{}").unwrap();
            store.put_group("g10", b"[]").unwrap();
            store.delete_offsets("g1", &[("t".into(), 1)]).unwrap();
        }
        let store = open(dir.path());
        let loaded = store.load().unwrap();
        assert_eq!(loaded.groups, vec![("g1".into(), b"{}".to_vec()), ("g10".into(), b"[]".to_vec())]);
        let mut offsets: Vec<_> = loaded.offsets.iter().map(|(g, t, p, o)| (g.as_str(), t.as_str(), *p, o.offset)).collect();
        offsets.sort();
        assert_eq!(offsets, vec![("g1", "t", 0, 5), ("g10", "t", 0, 7)]);
        assert_eq!(loaded.offsets[0].3, offset(5));
        store.delete_group("g1").unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.groups.len(), 1);
        assert_eq!(loaded.offsets.len(), 1, "g10's offsets are not covered by g1's prefix");
    }

    #[test]
    fn offset_record_round_trips() {
        let o = StoredOffset { expire_timestamp_ms: Some(99), metadata: String::new(), ..offset(-1) };
        assert_eq!(StoredOffset::decode(&o.encode()), Some(o));
        assert_eq!(StoredOffset::decode(&[1, 2, 3]), None);
    }
}
