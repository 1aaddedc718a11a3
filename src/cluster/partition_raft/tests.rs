//! Partition Raft storage on real RocksDB directories: openraft's storage suite, the
//! offset translator, truncation, reopen, and three replicas replicating in one process.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use tempfile::TempDir;
use uuid::Uuid;

use super::*;
use crate::cluster::NodeId;
use crate::storage::batch::{split_and_validate, tests::sample_batch};
use crate::storage::partition_log::Stamped;
use crate::storage::{Store, StoreOptions};

fn open_store(dir: &Path, fsync: bool) -> Arc<Store> {
    let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync, spare_column_families: 0 };
    Store::open(dir, &opts).unwrap()
}

struct Builder {
    fsync: bool,
}

impl StoreBuilder<PartitionRaft, PartitionLogStore, PartitionStateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, PartitionLogStore, PartitionStateMachine), RaftStorageError> {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path(), self.fsync);
        let log = PartitionLog::create(store, Uuid::new_v4(), 0).unwrap();
        let (log_store, sm) = open(log)?;
        Ok((dir, log_store, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(Builder { fsync: false }).unwrap();
}

#[test]
fn openraft_storage_suite_passes_with_fsync() {
    Suite::test_all(Builder { fsync: true }).unwrap();
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn blank(term: u64, index: u64) -> Entry<PartitionRaft> {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Blank }
}

fn membership(term: u64, index: u64, voters: &[NodeId]) -> Entry<PartitionRaft> {
    let set: BTreeSet<NodeId> = voters.iter().copied().collect();
    Entry { log_id: log_id(term, index), payload: EntryPayload::Membership(Membership::new(vec![set], None)) }
}

/// A batch of `count` records of producer `pid` (-1: none) from sequence `seq`,
/// stamped by `log` as a leader would at `next` in epoch `term`.
fn stamped(log: &PartitionLog, next: i64, term: u64, count: i32, pid: i64, seq: i32) -> Bytes {
    let batches = split_and_validate(sample_batch(count, pid, seq).freeze()).unwrap();
    let stamp = log.stamp(batches, next, term as i32).unwrap();
    match stamp.batches.into_iter().next().unwrap() {
        Stamped::New(_, bytes) => bytes.freeze(),
        Stamped::Duplicate(offset) => panic!("unexpected duplicate of offset {offset}"),
    }
}

fn data(term: u64, index: u64, batch: Bytes) -> Entry<PartitionRaft> {
    Entry { log_id: log_id(term, index), payload: EntryPayload::Normal(PartitionCommand::Batch(batch)) }
}

struct Replica {
    _dir: TempDir,
    log: Arc<PartitionLog>,
    log_store: PartitionLogStore,
    sm: PartitionStateMachine,
}

fn replica() -> Replica {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path(), false);
    let log = PartitionLog::create(store, Uuid::new_v4(), 0).unwrap();
    let (log_store, sm) = open(log.clone()).unwrap();
    Replica { _dir: dir, log, log_store, sm }
}

/// Blank, membership, data, data, blank (new term), data: indexes 1..=6, offsets 0..6.
async fn interleaved(r: &mut Replica) -> Vec<Entry<PartitionRaft>> {
    let mut entries = vec![blank(1, 1), membership(1, 2, &[1, 2, 3])];
    entries.push(data(1, 3, stamped(&r.log, 0, 1, 3, -1, -1)));
    r.log_store.blocking_append(entries.clone()).await.unwrap();
    let more = vec![data(1, 4, stamped(&r.log, 3, 1, 2, -1, -1)), blank(2, 5)];
    r.log_store.blocking_append(more.clone()).await.unwrap();
    let last = vec![data(2, 6, stamped(&r.log, 5, 2, 1, -1, -1))];
    r.log_store.blocking_append(last.clone()).await.unwrap();
    entries.extend(more);
    entries.extend(last);
    entries
}

#[tokio::test]
async fn raft_indexes_translate_to_offsets_with_blank_and_membership_entries_interleaved() {
    let mut r = replica();
    let entries = interleaved(&mut r).await;
    let offsets: Vec<Option<i64>> = (1..=7).map(|i| r.log.offset_of_index(i).unwrap()).collect();
    assert_eq!(offsets, vec![None, None, Some(0), Some(3), None, Some(5), None]);
    assert_eq!(r.log.offsets().log_end, 6, "only data entries take offsets");
    // Entries read back are the entries appended, payload bytes included.
    let read = r.log_store.try_get_log_entries(0..).await.unwrap();
    assert_eq!(read, entries);
    let middle = r.log_store.try_get_log_entries(2..=4).await.unwrap();
    assert_eq!(middle, entries[1..4].to_vec());
    let state = r.log_store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id, Some(log_id(2, 6)));
    assert_eq!(state.last_purged_log_id, None);
    // Each batch is stored once, under its offset, with the entry's term as its epoch.
    for (entry, (base, epoch)) in entries.iter().filter(|e| matches!(e.payload, EntryPayload::Normal(_))).zip([(0, 1), (3, 1), (5, 2)])
    {
        let EntryPayload::Normal(PartitionCommand::Batch(bytes)) = &entry.payload else { unreachable!() };
        assert_eq!(crate::storage::batch::offsets_of(bytes).0, base);
        assert_eq!(i32::from_be_bytes(bytes[12..16].try_into().unwrap()), epoch);
    }
    assert_eq!(r.log.end_offset_for_epoch(1).unwrap(), Some((1, 5)));
}

#[tokio::test]
async fn a_batch_stamped_in_an_older_term_takes_the_entry_term() {
    let mut r = replica();
    let batch = stamped(&r.log, 0, 1, 2, -1, -1);
    r.log_store.blocking_append([blank(3, 1), data(3, 2, batch.clone())]).await.unwrap();
    let read = r.log_store.try_get_log_entries(2..3).await.unwrap();
    assert_eq!(read[0].log_id, log_id(3, 2));
    let EntryPayload::Normal(PartitionCommand::Batch(stored)) = &read[0].payload else { panic!("not data") };
    assert_eq!(i32::from_be_bytes(stored[12..16].try_into().unwrap()), 3);
    assert_eq!(stored[16..], batch[16..], "only the epoch differs");
}

#[tokio::test]
async fn a_follower_refuses_a_batch_that_does_not_start_at_its_log_end() {
    let mut r = replica();
    let gap = stamped(&r.log, 4, 1, 2, -1, -1);
    assert!(r.log_store.blocking_append([data(1, 1, gap)]).await.is_err());
    assert_eq!(r.log.offsets().log_end, 0);
    assert_eq!(r.log_store.get_log_state().await.unwrap().last_log_id, None, "nothing of it was written");
}

#[tokio::test]
async fn high_watermark_moves_only_when_entries_are_applied() {
    let mut r = replica();
    let entries = interleaved(&mut r).await;
    assert_eq!(r.log.offsets().high_watermark, 0, "appended is not committed");
    assert_eq!(r.log.read(0, 1 << 20, true).unwrap().batches, 0);
    let replies = r.sm.apply(entries[..4].to_vec()).await.unwrap();
    assert_eq!(
        replies,
        vec![
            PartitionReply::None,
            PartitionReply::None,
            PartitionReply::Appended { base_offset: 0, last_offset: 2 },
            PartitionReply::Appended { base_offset: 3, last_offset: 4 },
        ]
    );
    assert_eq!(r.log.offsets().high_watermark, 5);
    assert_eq!(r.log.read(0, 1 << 20, true).unwrap().batches, 2, "the uncommitted batch stays invisible");
    r.sm.apply(entries[4..5].to_vec()).await.unwrap();
    assert_eq!(r.log.offsets().high_watermark, 5, "a blank entry takes no offset");
    r.sm.apply(entries[5..].to_vec()).await.unwrap();
    assert_eq!(r.log.offsets().high_watermark, 6);
    assert_eq!(r.sm.applied_state().await.unwrap().0, Some(log_id(2, 6)));
}

#[tokio::test]
async fn truncate_restores_producer_state_and_epoch_history() {
    let mut r = replica();
    let pid = 7;
    let entries = vec![
        blank(1, 1),
        data(1, 2, stamped(&r.log, 0, 1, 3, pid, 0)),
        data(1, 3, stamped(&r.log, 3, 1, 2, pid, 3)),
    ];
    r.log_store.blocking_append(entries.clone()).await.unwrap();
    r.sm.apply(entries.clone()).await.unwrap();
    let tail = vec![blank(2, 4), data(2, 5, stamped(&r.log, 5, 2, 1, pid, 5))];
    r.log_store.blocking_append(tail).await.unwrap();
    r.log_store.blocking_append([data(3, 6, stamped(&r.log, 6, 3, 1, pid, 6))]).await.unwrap();
    assert_eq!(r.log.end_offset_for_epoch(2).unwrap(), Some((2, 6)));
    let retry = |log: &PartitionLog, seq: i32, count: i32| {
        let next = log.offsets().log_end;
        let batches = split_and_validate(sample_batch(count, pid, seq).freeze()).unwrap();
        match log.stamp(batches, next, 3).unwrap().batches.remove(0) {
            Stamped::New(h, _) => Ok(h.base_offset),
            Stamped::Duplicate(offset) => Err(offset),
        }
    };
    assert_eq!(retry(&r.log, 5, 1), Err(5), "sequence 5 is in the log");

    // A new leader's log has no entry 4 on: the follower's tail goes.
    r.log_store.truncate(log_id(2, 4)).await.unwrap();
    assert_eq!(r.log.offsets().log_end, 5);
    assert_eq!(r.log_store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 3)));
    assert_eq!(r.log_store.try_get_log_entries(0..).await.unwrap(), entries);
    assert_eq!(retry(&r.log, 5, 1), Ok(5), "sequence 5 is gone: appended anew at the new end");
    assert_eq!(retry(&r.log, 3, 2), Err(3), "the batch before the cut is still a duplicate");
    let batches = split_and_validate(sample_batch(1, pid, 7).freeze()).unwrap();
    assert!(r.log.stamp(batches, 5, 3).is_err(), "sequence 7 leaves a gap after 4");
    // Epochs 2 and 3 started past the new end: gone (epoch 2 now ends where epoch 3 starts, the log end).
    assert_eq!(r.log.end_offset_for_epoch(2).unwrap(), Some((1, 5)));

}

#[tokio::test]
async fn entries_vote_and_state_survive_a_reopen_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let topic = Uuid::new_v4();
    let (entries, vote) = {
        let store = open_store(dir.path(), true);
        let log = PartitionLog::create(store.clone(), topic, 0).unwrap();
        let (log_store, sm) = open(log.clone()).unwrap();
        let mut r = Replica { _dir: tempfile::tempdir().unwrap(), log, log_store, sm };
        let entries = interleaved(&mut r).await;
        let vote = Vote::new_committed(2, 3);
        r.log_store.save_vote(&vote).await.unwrap();
        r.log_store.save_committed(Some(log_id(1, 4))).await.unwrap();
        r.sm.apply(entries[..4].to_vec()).await.unwrap();
        assert_eq!(r.log.offsets().high_watermark, 5);
        (entries, vote)
    };
    let store = open_store(dir.path(), true);
    let log = PartitionLog::open(store, topic, 0).unwrap();
    let (mut log_store, mut sm) = open(log.clone()).unwrap();
    assert_eq!(log_store.try_get_log_entries(0..).await.unwrap(), entries);
    assert_eq!(log_store.read_vote().await.unwrap(), Some(vote));
    assert_eq!(log_store.read_committed().await.unwrap(), Some(log_id(1, 4)));
    assert_eq!(log_store.get_log_state().await.unwrap().last_log_id, Some(log_id(2, 6)));
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 4)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 2)));
    let offsets = log.offsets();
    assert_eq!((offsets.log_end, offsets.high_watermark), (6, 5), "the high watermark restarts at what was applied");
    // The log continues where it ended.
    log_store.blocking_append([data(2, 7, stamped(&log, 6, 2, 2, -1, -1))]).await.unwrap();
    assert_eq!(log.offset_of_index(7).unwrap(), Some(6));
}

#[tokio::test]
async fn truncation_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let topic = Uuid::new_v4();
    let pid = 9;
    {
        let store = open_store(dir.path(), false);
        let log = PartitionLog::create(store, topic, 0).unwrap();
        let (mut log_store, _sm) = open(log.clone()).unwrap();
        log_store.blocking_append([data(1, 1, stamped(&log, 0, 1, 2, pid, 0))]).await.unwrap();
        log_store.blocking_append([data(2, 2, stamped(&log, 2, 2, 2, pid, 2))]).await.unwrap();
        log_store.truncate(log_id(2, 2)).await.unwrap();
    }
    let store = open_store(dir.path(), false);
    let log = PartitionLog::open(store, topic, 0).unwrap();
    let (mut log_store, _sm) = open(log.clone()).unwrap();
    assert_eq!(log.offsets().log_end, 2);
    assert_eq!(log_store.get_log_state().await.unwrap().last_log_id, Some(log_id(1, 1)));
    let again = split_and_validate(sample_batch(2, pid, 2).freeze()).unwrap();
    assert!(matches!(log.stamp(again, 2, 2).unwrap().batches[0], Stamped::New(..)), "sequence 2 is not in the log");
    let retry = split_and_validate(sample_batch(2, pid, 0).freeze()).unwrap();
    assert!(matches!(log.stamp(retry, 2, 2).unwrap().batches[0], Stamped::Duplicate(0)));
    assert_eq!(log.end_offset_for_epoch(1).unwrap(), Some((1, 2)));
}

#[tokio::test]
async fn purge_drops_translation_keys_below_the_index() {
    let mut r = replica();
    let entries = interleaved(&mut r).await;
    r.sm.apply(entries.clone()).await.unwrap();
    r.log_store.purge(log_id(1, 3)).await.unwrap();
    assert_eq!(r.log_store.try_get_log_entries(0..).await.unwrap(), entries[3..].to_vec());
    let state = r.log_store.get_log_state().await.unwrap();
    assert_eq!((state.last_purged_log_id, state.last_log_id), (Some(log_id(1, 3)), Some(log_id(2, 6))));
    assert_eq!(r.log.offset_of_index(3).unwrap(), None);
    // The batches themselves belong to retention: still readable.
    assert_eq!(r.log.read(0, 1 << 20, true).unwrap().batches, 3);
}

#[tokio::test]
async fn a_snapshot_carries_producer_state_and_restarts_an_empty_follower_at_its_end() {
    let mut leader = replica();
    let pid = 11;
    let entries = vec![
        membership(1, 1, &[1, 2]),
        data(1, 2, stamped(&leader.log, 0, 1, 3, pid, 0)),
        data(1, 3, stamped(&leader.log, 3, 1, 1, pid, 3)),
    ];
    leader.log_store.blocking_append(entries.clone()).await.unwrap();
    leader.sm.apply(entries).await.unwrap();
    // An appended, uncommitted entry is not part of the snapshot.
    leader.log_store.blocking_append([data(1, 4, stamped(&leader.log, 4, 1, 1, pid, 4))]).await.unwrap();
    let snapshot = leader.sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 3)));

    let mut follower = replica();
    let mut receiving = follower.sm.begin_receiving_snapshot().await.unwrap();
    *receiving = *snapshot.snapshot;
    follower.sm.install_snapshot(&snapshot.meta, receiving).await.unwrap();
    let offsets = follower.log.offsets();
    assert_eq!((offsets.log_start, offsets.log_end, offsets.high_watermark), (4, 4, 4));
    assert_eq!(follower.sm.applied_state().await.unwrap().0, Some(log_id(1, 3)));
    let retry = split_and_validate(sample_batch(1, pid, 3).freeze()).unwrap();
    assert!(matches!(follower.log.stamp(retry, 4, 1).unwrap().batches[0], Stamped::Duplicate(3)));
    let uncommitted = split_and_validate(sample_batch(1, pid, 4).freeze()).unwrap();
    assert!(matches!(follower.log.stamp(uncommitted, 4, 1).unwrap().batches[0], Stamped::New(..)));
    assert_eq!(follower.log.end_offset_for_epoch(1).unwrap(), Some((1, 4)));
    // Replication continues with the entry after the snapshot.
    follower.log_store.purge(log_id(1, 3)).await.unwrap();
    let next = data(1, 4, leader.log_store.try_get_log_entries(4..5).await.unwrap().remove(0).payload_batch());
    follower.log_store.blocking_append([next]).await.unwrap();
    assert_eq!(follower.log.offsets().log_end, 5);
    let current = follower.sm.get_current_snapshot().await.unwrap().unwrap();
    assert_eq!(current.meta, snapshot.meta);
}

trait PayloadBatch {
    fn payload_batch(self) -> Bytes;
}

impl PayloadBatch for Entry<PartitionRaft> {
    fn payload_batch(self) -> Bytes {
        match self.payload {
            EntryPayload::Normal(PartitionCommand::Batch(b)) => b,
            other => panic!("not a batch: {other:?}"),
        }
    }
}

mod three_replicas;
