//! The controller group's Raft storage on RocksDB: its log, vote and committed log id
//! ([`MetadataLogStore`]) and its state machine ([`MetadataStateMachine`]), all in the
//! metadata column family under `ml/` and `ms/` (see `storage::keys`).
//!
//! Why keys in the metadata column family rather than a column family of its own: the
//! store treats every column family other than `meta` as a partition's (spares are
//! handed out from them and unreferenced ones are emptied at start-up), so a new one
//! would need changes to opening, recovery and the spare pool; keys need none, share the
//! write-ahead log and group commit, and the controller's log is small (a handful of
//! entries per admin operation, purged behind snapshots). Partition groups keep their
//! Raft state in the same column family (`docs/cluster.md` §5).
//!
//! The state machine is small, so it is kept in memory and persisted only as snapshots
//! (every `SNAPSHOT_EVERY` entries, openraft's policy): a restart loads the latest
//! snapshot and openraft re-applies the committed entries after it (it reads the
//! committed log id saved here).

use std::fmt::Debug;
use std::io::Cursor;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership, Vote,
};
use parking_lot::Mutex;
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{ClusterMetadata, MetadataRaft, MetadataReply};
use crate::cluster::{Node, NodeId};
use crate::storage::{keys, Store, META_CF};

/// Format of a serialised [`ClusterMetadata`] in a snapshot (its first byte).
const SNAPSHOT_FORMAT: u8 = 1;

type StorageResult<T> = Result<T, StorageError<NodeId>>;

fn read_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

/// The metadata column family's handle, or a storage error.
fn with_meta<T>(
    store: &Store,
    f: impl FnOnce(&crate::storage::Db, &Arc<rocksdb::BoundColumnFamily<'_>>) -> StorageResult<T>,
) -> StorageResult<T> {
    let db = store.db();
    let cf = db
        .cf_handle(META_CF)
        .ok_or_else(|| StorageError::from(StorageIOError::read(&std::io::Error::other("no meta column family"))))?;
    f(&db, &cf)
}

fn get<T: for<'de> Deserialize<'de>>(store: &Store, key: &[u8]) -> StorageResult<Option<T>> {
    with_meta(store, |db, cf| match db.get_cf(cf, key).map_err(read_err)? {
        Some(v) => Ok(Some(bincode::deserialize(&v).map_err(read_err)?)),
        None => Ok(None),
    })
}

fn put<T: Serialize>(store: &Store, key: &[u8], value: &T, sync: bool) -> StorageResult<()> {
    let bytes = bincode::serialize(value).map_err(write_err)?;
    with_meta(store, |db, cf| {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        db.put_cf_opt(cf, key, bytes, &opts).map_err(write_err)
    })
}

/// The controller group's Raft log, vote and committed log id.
#[derive(Clone)]
pub struct MetadataLogStore {
    store: Arc<Store>,
}

impl MetadataLogStore {
    /// The log in `store` (empty when the group never ran here).
    pub fn new(store: Arc<Store>) -> MetadataLogStore {
        MetadataLogStore { store }
    }
}

impl RaftLogReader<MetadataRaft> for MetadataLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<MetadataRaft>>> {
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => match i.checked_add(1) {
                Some(i) => i,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        with_meta(&self.store, |db, cf| {
            let mut out = Vec::new();
            let from = keys::metadata_log(start);
            for item in db.iterator_cf(cf, IteratorMode::From(&from, Direction::Forward)) {
                let (k, v) = item.map_err(read_err)?;
                let Some(index) = keys::parse_metadata_log(&k) else { break };
                if !range.contains(&index) {
                    break;
                }
                out.push(bincode::deserialize(&v).map_err(|e| StorageIOError::read_log_at_index(index, &e))?);
            }
            Ok(out)
        })
    }
}

impl RaftLogStorage<MetadataRaft> for MetadataLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<MetadataRaft>> {
        let last_purged: Option<LogId<NodeId>> = get(&self.store, keys::METADATA_PURGED)?;
        let last = with_meta(&self.store, |db, cf| {
            let end = keys::prefix_end(keys::METADATA_LOG_PREFIX);
            match db.iterator_cf(cf, IteratorMode::From(&end, Direction::Reverse)).next() {
                Some(item) => {
                    let (k, v) = item.map_err(read_err)?;
                    if keys::parse_metadata_log(&k).is_none() {
                        return Ok(None);
                    }
                    let entry: Entry<MetadataRaft> = bincode::deserialize(&v).map_err(read_err)?;
                    Ok(Some(entry.log_id))
                }
                None => Ok(None),
            }
        })?;
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last.or(last_purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        // Synced whatever `fsync` says: a vote forgotten by a crash can elect two leaders.
        put(&self.store, keys::METADATA_VOTE, vote, true)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(&e)))
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        get(&self.store, keys::METADATA_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        put(&self.store, keys::METADATA_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(get::<Option<LogId<NodeId>>>(&self.store, keys::METADATA_COMMITTED)?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<MetadataRaft>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<MetadataRaft>> + Send,
        I::IntoIter: Send,
    {
        with_meta(&self.store, |db, cf| {
            let mut write = WriteBatch::default();
            for entry in entries {
                let value = bincode::serialize(&entry).map_err(write_err)?;
                write.put_cf(cf, keys::metadata_log(entry.log_id.index), value);
            }
            db.write(write).map_err(write_err)
        })?;
        // Acknowledged once durable as the broker's `fsync` setting defines it.
        let flushed = self.store.wait_durable().await.map_err(std::io::Error::other);
        callback.log_io_completed(flushed);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        with_meta(&self.store, |db, cf| {
            let mut write = WriteBatch::default();
            write.delete_range_cf(
                cf,
                keys::metadata_log(log_id.index),
                keys::prefix_end(keys::METADATA_LOG_PREFIX),
            );
            db.write(write).map_err(write_err)
        })
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let purged = bincode::serialize(&log_id).map_err(write_err)?;
        with_meta(&self.store, |db, cf| {
            let mut write = WriteBatch::default();
            write.put_cf(cf, keys::METADATA_PURGED, purged);
            let end = match log_id.index.checked_add(1) {
                Some(next) => keys::metadata_log(next),
                None => keys::prefix_end(keys::METADATA_LOG_PREFIX),
            };
            write.delete_range_cf(cf, keys::metadata_log(0), end);
            db.write(write).map_err(write_err)
        })
    }
}

/// A snapshot as persisted: openraft's meta and the serialised state.
#[derive(Clone, Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Node>,
    data: Vec<u8>,
}

struct SmState {
    metadata: ClusterMetadata,
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, Node>,
    snapshot: Option<StoredSnapshot>,
    /// Snapshots built, for unique snapshot ids.
    built: u64,
}

/// The controller group's state machine: [`ClusterMetadata`] in memory, published on a
/// watch channel after every applied batch, persisted as snapshots.
#[derive(Clone)]
pub struct MetadataStateMachine {
    store: Arc<Store>,
    state: Arc<Mutex<SmState>>,
    published: Arc<watch::Sender<Arc<ClusterMetadata>>>,
}

impl MetadataStateMachine {
    /// The state machine as of the latest snapshot in `store` (empty without one);
    /// openraft re-applies the committed entries after it when the group starts.
    pub fn open(store: Arc<Store>) -> StorageResult<MetadataStateMachine> {
        let snapshot: Option<StoredSnapshot> = get(&store, keys::METADATA_SNAPSHOT)?;
        let (metadata, last_applied, membership) = match &snapshot {
            Some(s) => (decode_state(&s.data)?, s.meta.last_log_id, s.meta.last_membership.clone()),
            None => (ClusterMetadata::default(), None, StoredMembership::default()),
        };
        let (published, _) = watch::channel(Arc::new(metadata.clone()));
        Ok(MetadataStateMachine {
            store,
            state: Arc::new(Mutex::new(SmState { metadata, last_applied, membership, snapshot, built: 0 })),
            published: Arc::new(published),
        })
    }

    /// The applied state, now and as it changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterMetadata>> {
        self.published.subscribe()
    }

    fn publish(&self, metadata: ClusterMetadata) {
        self.published.send_replace(Arc::new(metadata));
    }
}

fn encode_state(metadata: &ClusterMetadata) -> StorageResult<Vec<u8>> {
    let mut data = vec![SNAPSHOT_FORMAT];
    bincode::serialize_into(&mut data, metadata)
        .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
    Ok(data)
}

fn decode_state(data: &[u8]) -> StorageResult<ClusterMetadata> {
    let bad = |what: String| StorageError::from(StorageIOError::read_snapshot(None, &std::io::Error::other(what)));
    match data.split_first() {
        Some((&SNAPSHOT_FORMAT, rest)) => bincode::deserialize(rest).map_err(|e| bad(e.to_string())),
        Some((v, _)) => Err(bad(format!("unknown cluster metadata snapshot format {v}"))),
        None => Err(bad("empty cluster metadata snapshot".into())),
    }
}

impl RaftSnapshotBuilder<MetadataRaft> for MetadataStateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<MetadataRaft>> {
        let stored = {
            let mut st = self.state.lock();
            st.built += 1;
            let snapshot_id = match st.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id.term, l.index, st.built),
                None => format!("none-{}", st.built),
            };
            let meta = SnapshotMeta { last_log_id: st.last_applied, last_membership: st.membership.clone(), snapshot_id };
            StoredSnapshot { meta, data: encode_state(&st.metadata)? }
        };
        put(&self.store, keys::METADATA_SNAPSHOT, &stored, true)
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(Some(stored.meta.signature()), &e)))?;
        self.state.lock().snapshot = Some(stored.clone());
        Ok(Snapshot { meta: stored.meta, snapshot: Box::new(Cursor::new(stored.data)) })
    }
}

impl RaftStateMachine<MetadataRaft> for MetadataStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>)> {
        let st = self.state.lock();
        Ok((st.last_applied, st.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<MetadataReply>>
    where
        I: IntoIterator<Item = Entry<MetadataRaft>> + Send,
        I::IntoIter: Send,
    {
        let (replies, changed) = {
            let mut st = self.state.lock();
            let mut replies = Vec::new();
            let mut changed = false;
            for entry in entries {
                st.last_applied = Some(entry.log_id);
                match entry.payload {
                    EntryPayload::Blank => replies.push(Ok(super::Applied::Done)),
                    EntryPayload::Normal(cmd) => {
                        tracing::debug!(log_id = %entry.log_id, ?cmd, "cluster metadata command applied");
                        replies.push(st.metadata.apply(cmd));
                        changed = true;
                    }
                    EntryPayload::Membership(m) => {
                        st.membership = StoredMembership::new(Some(entry.log_id), m);
                        replies.push(Ok(super::Applied::Done));
                    }
                }
            }
            (replies, changed.then(|| st.metadata.clone()))
        };
        if let Some(metadata) = changed {
            self.publish(metadata);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        let data = snapshot.into_inner();
        let metadata = decode_state(&data)?;
        let stored = StoredSnapshot { meta: meta.clone(), data };
        put(&self.store, keys::METADATA_SNAPSHOT, &stored, true)
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e)))?;
        {
            let mut st = self.state.lock();
            st.metadata = metadata.clone();
            st.last_applied = meta.last_log_id;
            st.membership = meta.last_membership.clone();
            st.snapshot = Some(stored);
        }
        tracing::info!(snapshot = %meta.snapshot_id, "cluster metadata snapshot installed");
        self.publish(metadata);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<MetadataRaft>>> {
        let st = self.state.lock();
        Ok(st
            .snapshot
            .clone()
            .map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data)) }))
    }
}
