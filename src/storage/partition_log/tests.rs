//! Partition log tests on real RocksDB directories.

use super::*;
use crate::storage::batch::{split_and_validate, tests::sample_batch};
use crate::storage::{recovery, wal_scan, StoreOptions};
use std::path::Path;

fn open_store(dir: &Path) -> Arc<Store> {
    let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: true, spare_column_families: 2 };
    Store::open(dir, &opts).unwrap()
}

fn append(log: &PartitionLog, count: i32) -> Bytes {
    let batch = sample_batch(count, -1, -1);
    let stored = batch.clone().freeze();
    log.append(split_and_validate(stored.clone()).unwrap(), false).unwrap();
    stored
}

/// The batches of `log` from offset 0, as stored (base offsets rewritten).
fn read_all(log: &PartitionLog) -> Bytes {
    log.read(0, 1 << 20, true).unwrap().records
}

/// A tiny deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An uncompressed batch whose records carry these timestamps.
fn batch_with_timestamps(timestamps: &[i64]) -> Bytes {
    use crate::storage::records::tests::{build, record};
    let base = timestamps[0];
    let max = *timestamps.iter().max().unwrap();
    let mut payload = Vec::new();
    for (i, ts) in timestamps.iter().enumerate() {
        payload.extend(record(i as i64, ts - base, None, Some(&[i as u8]), &[]));
    }
    let n = timestamps.len() as i32;
    build(0, n, n - 1, base, max, &payload).freeze()
}

fn append_timestamps(log: &PartitionLog, timestamps: &[i64]) {
    log.append(split_and_validate(batch_with_timestamps(timestamps)).unwrap(), false).unwrap();
}

/// ListOffsets by timestamp as it was answered before the time index: a scan of every batch.
fn scanned_offset_for_timestamp(log: &PartitionLog, timestamp: i64) -> Option<(i64, i64)> {
    let log_start = log.offsets().log_start;
    let mut found = None;
    log.scan_batches(|stored, header| {
        if header.max_timestamp < timestamp || header.last_offset() < log_start {
            return true;
        }
        match batch::record_timestamps(stored).unwrap().into_iter().find(|(o, ts)| *o >= log_start && *ts >= timestamp) {
            Some(hit) => found = Some(hit),
            None => return true,
        }
        false
    })
    .unwrap();
    found
}

/// The max timestamp as it was answered before the time index.
fn scanned_max_timestamp(log: &PartitionLog) -> Option<(i64, i64)> {
    let mut best: Option<(i64, i64)> = None;
    log.scan_batches(|stored, header| {
        if best.map(|(_, ts)| header.max_timestamp > ts).unwrap_or(true) {
            let offset = batch::record_timestamps(stored)
                .unwrap()
                .into_iter()
                .find(|(_, ts)| *ts == header.max_timestamp)
                .map(|(o, _)| o)
                .unwrap();
            best = Some((offset, header.max_timestamp));
        }
        true
    })
    .unwrap();
    best
}

fn assert_index_matches_scan(log: &PartitionLog, context: &str) {
    for t in (-20..=5_500).step_by(7) {
        assert_eq!(log.offset_for_timestamp(t).unwrap(), scanned_offset_for_timestamp(log, t), "{context}: timestamp {t}");
    }
    assert_eq!(log.max_timestamp().unwrap(), scanned_max_timestamp(log), "{context}: max timestamp");
}

#[test]
fn time_index_answers_like_the_scan_for_random_data_across_deletions_and_restarts() {
    for seed in 1..=6u64 {
        let dir = tempfile::tempdir().unwrap();
        let id = Uuid::new_v4();
        let mut rng = Rng(seed * 0x9e37_79b9_7f4a_7c15);
        {
            let store = open_store(dir.path());
            let log = PartitionLog::create(store.clone(), id, 0).unwrap();
            assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
            assert_eq!(log.max_timestamp().unwrap(), None);
            // Timestamps mostly rising with jitter, sometimes far back: the running
            // maximum and the per-batch maxima differ.
            let mut clock = 500i64;
            for _ in 0..80 {
                let n = 1 + rng.below(5) as usize;
                let ts: Vec<i64> = (0..n)
                    .map(|_| {
                        clock += rng.below(12) as i64;
                        if rng.below(6) == 0 { clock - rng.below(400) as i64 } else { clock }
                    })
                    .collect();
                append_timestamps(&log, &ts);
            }
            assert_index_matches_scan(&log, &format!("seed {seed}"));
            // Move the start: to batch boundaries and into batches.
            for _ in 0..4 {
                let o = log.offsets();
                let target = o.log_start + rng.below(((o.log_end - o.log_start) / 3).max(1) as u64) as i64;
                log.delete_records(target).unwrap();
                assert_index_matches_scan(&log, &format!("seed {seed} after deleting below {target}"));
            }
        }
        let store = open_store(dir.path());
        let log = PartitionLog::open(store.clone(), id, 0).unwrap();
        assert_index_matches_scan(&log, &format!("seed {seed} after a restart"));
        append_timestamps(&log, &[5, 100_000, 7]);
        assert_eq!(log.max_timestamp().unwrap(), scanned_max_timestamp(&log));
        assert_eq!(log.max_timestamp().unwrap().map(|(_, ts)| ts), Some(100_000));
    }
}

#[test]
fn deleting_everything_restarts_the_time_index_with_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let log = PartitionLog::create(store.clone(), Uuid::new_v4(), 0).unwrap();
    append_timestamps(&log, &[900, 950]);
    append_timestamps(&log, &[100]);
    let deleted = log.delete_before(3).unwrap().unwrap();
    assert_eq!((deleted.batches, deleted.records, deleted.new_start, deleted.deleted_below), (2, 3, 3, 3));
    assert_eq!(log.max_timestamp().unwrap(), None);
    // Older than everything deleted, yet found: the index restarted.
    append_timestamps(&log, &[50, 60]);
    assert_eq!(log.offset_for_timestamp(55).unwrap(), Some((4, 60)));
    assert_eq!(log.max_timestamp().unwrap(), Some((4, 60)));
}

#[test]
fn indexes_are_built_for_a_partition_stored_without_them() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    {
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), id, 0).unwrap();
        append_timestamps(&log, &[10, 30]);
        append_timestamps(&log, &[20]);
        append_timestamps(&log, &[40]);
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        for prefix in [keys::batch_index_prefix(id, None), keys::time_index_prefix(id, None)] {
            db.delete_range_cf(&meta, &prefix, &keys::prefix_end(&prefix)).unwrap();
        }
    }
    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    assert_eq!(log.offset_for_timestamp(25).unwrap(), Some((1, 30)));
    assert_eq!(log.offset_for_timestamp(35).unwrap(), Some((3, 40)));
    let mut batches = Vec::new();
    log.visit_batches(|b| {
        batches.push((b.base_offset, b.last_offset, b.max_timestamp));
        true
    })
    .unwrap();
    assert_eq!(batches, vec![(0, 1, 30), (2, 2, 20), (3, 3, 40)]);
}

#[test]
fn delete_before_removes_batches_and_their_index_entries_in_one_step() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let log = PartitionLog::create(store.clone(), Uuid::new_v4(), 0).unwrap();
    let mut stored = Vec::new();
    for i in 0..10 {
        append_timestamps(&log, &[i * 10, i * 10 + 1]);
        stored.push(log.read(i * 2, 1 << 20, true).unwrap().records);
    }
    let sizes: u64 = stored[..4].iter().map(|b| b.len() as u64).sum();
    let deleted = log.delete_before(8).unwrap().unwrap();
    assert_eq!(deleted, Deleted { old_start: 0, new_start: 8, batches: 4, bytes: sizes, records: 8, deleted_below: 8 });
    assert!(matches!(log.read(7, 1 << 20, true), Err(StorageError::OffsetOutOfRange)));
    let rest = log.read(8, 1 << 20, true).unwrap();
    assert_eq!(&rest.records[..], &stored[4..].concat()[..], "the newest batches, byte for byte");
    let mut bases = Vec::new();
    log.visit_batches(|b| {
        bases.push(b.base_offset);
        true
    })
    .unwrap();
    assert_eq!(bases, vec![8, 10, 12, 14, 16, 18]);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((8, 40)));
    assert!(log.delete_before(8).unwrap().is_none(), "nothing below the start left");
    assert!(matches!(log.delete_before(21), Err(StorageError::OffsetOutOfRange)), "above the high watermark");
    log.reclaim(deleted.deleted_below).unwrap();
    assert_eq!(log.read(8, 1 << 20, true).unwrap().records, rest.records);
}

#[test]
fn metadata_claiming_more_than_the_data_is_truncated_to_it_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let stored;
    {
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), id, 0).unwrap();
        append(&log, 3);
        append(&log, 2);
        stored = read_all(&log);
        assert_eq!(log.offsets().log_end, 5);
        // The metadata says 12 records were written; the data holds 5.
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        db.put_cf(&meta, keys::partition_meta(id, 0), meta_value(0, 12, 0)).unwrap();
    }
    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    let offsets = log.offsets();
    assert_eq!((offsets.log_end, offsets.high_watermark), (5, 5), "log end and high watermark follow the data");
    assert_eq!(store.stats().lost_records.load(Ordering::Relaxed), 7, "offsets 5..=11 reported lost");
    assert_eq!(read_all(&log), stored, "the data is untouched");
    {
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        let v = db.get_cf(&meta, keys::partition_meta(id, 0)).unwrap().unwrap();
        assert_eq!(i64::from_be_bytes(v[8..16].try_into().unwrap()), 5, "metadata truncated to the data");
    }
    // Appends continue right after the data.
    append(&log, 1);
    assert_eq!(log.read(5, 1 << 20, true).unwrap().batches, 1);
    assert_eq!(batch::offsets_of(&log.read(5, 1 << 20, true).unwrap().records), (5, 5));
    drop(log);
    drop(store);
    // A second restart finds nothing more to report.
    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    assert_eq!(log.offsets().log_end, 6);
    assert_eq!(store.stats().lost_records.load(Ordering::Relaxed), 0);
}

#[test]
fn torn_write_ahead_log_recovers_the_intact_prefix_and_reports_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let mut stored = Vec::new();
    {
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), id, 0).unwrap();
        for _ in 0..40 {
            append(&log, 5);
        }
        stored.extend_from_slice(&read_all(&log));
        store.flush().unwrap();
    }
    // Garble bytes in the middle of the newest write-ahead log.
    let wal = wal_scan::wal_files(dir.path()).pop().expect("a wal file");
    let mut bytes = std::fs::read(&wal).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&wal, &bytes).unwrap();

    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    let end = log.offsets().log_end;
    assert!(end > 0 && end < 200, "recovered a strict prefix, got log end {end}");
    assert_eq!(log.offsets().high_watermark, end);
    assert_eq!(store.stats().wal_corruptions.load(Ordering::Relaxed), 1);
    assert_eq!(store.stats().lost_records.load(Ordering::Relaxed), (200 - end) as u64, "every lost offset counted");
    let read = read_all(&log);
    assert_eq!(&read[..], &stored[..read.len()], "a byte-for-byte prefix");
    let preserved = dir.path().join(recovery::LOST_AND_FOUND);
    assert!(std::fs::read_dir(&preserved).unwrap().next().is_some(), "damaged wal kept in lost+found");
}

#[test]
fn epoch_history_answers_kafkas_end_offsets() {
    // Epoch 0 from 0, epoch 2 from 10, epoch 5 from 25; log end 40.
    let h = EpochHistory::from_entries(vec![(0, 0), (2, 10), (5, 25)]);
    let end = |requested| h.end_offset_for(requested, 5, 0, 40);
    assert_eq!(end(0), Some((0, 10)));
    assert_eq!(end(1), Some((0, 10)), "an unknown epoch between: the largest epoch below it");
    assert_eq!(end(2), Some((2, 25)));
    assert_eq!(end(4), Some((2, 25)));
    assert_eq!(end(5), Some((5, 40)), "the current epoch ends at the log end");
    assert_eq!(end(6), None, "newer than any known");
    assert_eq!(end(-1), None, "undefined epoch");
    // Log start moved to 12: epoch 0 is gone, epoch 2 starts at 12.
    assert_eq!(h.end_offset_for(0, 5, 12, 40), Some((0, 12)), "older than any known: its end is the log start");
    assert_eq!(h.end_offset_for(2, 5, 12, 40), Some((2, 25)));
    // Nothing written in the current epoch yet: it starts at the log end.
    let h = EpochHistory::from_entries(vec![(0, 0)]);
    assert_eq!(h.end_offset_for(0, 3, 0, 7), Some((0, 7)));
    assert_eq!(h.end_offset_for(3, 3, 0, 7), Some((3, 7)));
    assert_eq!(EpochHistory::default().end_offset_for(0, 0, 0, 0), Some((0, 0)), "a new empty partition");
}

#[test]
fn leader_epoch_history_is_written_with_the_data_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    {
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), id, 0).unwrap();
        assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 0)));
        append(&log, 3);
        append(&log, 2);
        log.assign_leader_epoch(2).unwrap();
        append(&log, 4);
        log.assign_leader_epoch(3).unwrap();
        log.assign_leader_epoch(7).unwrap();
        append(&log, 1);
        assert_eq!(log.offsets().leader_epoch, 7);
        let stored = read_all(&log);
        let mut epochs = Vec::new();
        let mut rest = &stored[..];
        while rest.len() >= 16 {
            let len = 12 + i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize;
            epochs.push(i32::from_be_bytes(rest[12..16].try_into().unwrap()));
            rest = &rest[len..];
        }
        assert_eq!(epochs, vec![0, 0, 2, 7], "each batch carries the epoch it was written in");
    }
    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    assert_eq!(log.offsets().leader_epoch, 7);
    assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 5)));
    assert_eq!(log.end_offset_for_epoch(1).unwrap(), Some((0, 5)));
    assert_eq!(log.end_offset_for_epoch(2).unwrap(), Some((2, 9)));
    assert_eq!(log.end_offset_for_epoch(3).unwrap(), Some((3, 9)), "an epoch with no data ends where it began");
    assert_eq!(log.end_offset_for_epoch(5).unwrap(), Some((3, 9)));
    assert_eq!(log.end_offset_for_epoch(7).unwrap(), Some((7, 10)));
    assert_eq!(log.end_offset_for_epoch(8).unwrap(), None);
    append(&log, 2);
    assert_eq!(log.end_offset_for_epoch(7).unwrap(), Some((7, 12)), "the current epoch follows the log end");
    // Deleting records moves the history's start with the log start.
    log.delete_records(6).unwrap();
    assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 6)));
    assert_eq!(log.end_offset_for_epoch(2).unwrap(), Some((2, 9)));
}

#[test]
fn a_log_written_before_the_history_existed_gets_one_from_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    {
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), id, 0).unwrap();
        append(&log, 3);
        // Remove the history entry, as a log from an older version has none.
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        db.delete_cf(&meta, keys::leader_epoch_start(id, 0, 0)).unwrap();
    }
    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 3)));
    log.assign_leader_epoch(1).unwrap();
    assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 3)));
    let db = store.db();
    let meta = db.cf_handle(META_CF).unwrap();
    assert_eq!(db.get_cf(&meta, keys::leader_epoch_start(id, 0, 0)).unwrap(), Some(0i64.to_be_bytes().to_vec()), "saved");
}

#[test]
fn epochs_starting_past_a_truncated_log_end_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    {
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), id, 0).unwrap();
        append(&log, 3);
        log.assign_leader_epoch(1).unwrap();
        // As if epoch 2 had started at offset 8 and that data was lost.
        let db = store.db();
        let meta = db.cf_handle(META_CF).unwrap();
        db.put_cf(&meta, keys::leader_epoch_start(id, 0, 2), 8i64.to_be_bytes()).unwrap();
    }
    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    assert_eq!(log.end_offset_for_epoch(0).unwrap(), Some((0, 3)));
    log.assign_leader_epoch(3).unwrap();
    for _ in 0..4 {
        append(&log, 2);
    }
    // Log end 11: the lost epoch 2 must not reappear.
    assert_eq!(log.end_offset_for_epoch(1).unwrap(), Some((1, 3)));
    assert_eq!(log.end_offset_for_epoch(2).unwrap(), Some((1, 3)));
    assert_eq!(log.end_offset_for_epoch(3).unwrap(), Some((3, 11)));
    let db = store.db();
    let meta = db.cf_handle(META_CF).unwrap();
    assert_eq!(db.get_cf(&meta, keys::leader_epoch_start(id, 0, 2)).unwrap(), None, "deleted");
}

/// A transactional batch of `count` records for `pid` (epoch 0) from `sequence`.
fn txn_batch(count: i32, pid: i64, sequence: i32) -> Vec<(BatchHeader, BytesMut)> {
    let mut b = sample_batch(count, pid, sequence);
    b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    split_and_validate(b.freeze()).unwrap()
}

fn marker(pid: i64, commit: bool) -> TxnMarker {
    TxnMarker { producer_id: pid, producer_epoch: 0, commit, coordinator_epoch: 0 }
}

#[test]
fn markers_move_the_last_stable_offset_and_index_aborts_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    {
        let store = open_store(dir.path());
        let log = PartitionLog::create(store.clone(), id, 0).unwrap();
        append(&log, 2); // 0..=1, not transactional
        log.append(txn_batch(3, 7, 0), false).unwrap(); // 2..=4, producer 7
        log.append(txn_batch(2, 8, 0), false).unwrap(); // 5..=6, producer 8
        assert_eq!(log.last_stable_offset(), 2, "the earliest open transaction holds the LSO");
        assert!(log.has_open_txn(7) && log.has_open_txn(8));
        let committed = log.read_committed(0, 1 << 20, true).unwrap();
        assert_eq!((committed.batches, committed.last_stable_offset), (1, 2), "read_committed stops at the LSO");
        assert_eq!(log.read(0, 1 << 20, true).unwrap().batches, 3, "read_uncommitted does not");
        let aborted = log.append_marker(marker(7, false), false).unwrap();
        assert_eq!((aborted.base_offset, aborted.log_end_offset), (7, 8), "the marker takes an offset");
        assert_eq!(log.last_stable_offset(), 5, "producer 8 still holds the LSO");
        log.append(txn_batch(1, 7, 3), false).unwrap(); // 8, producer 7's next transaction
        drop(log);
        drop(store);
    }
    let store = open_store(dir.path());
    let log = PartitionLog::open(store.clone(), id, 0).unwrap();
    assert_eq!(log.last_stable_offset(), 5, "open transactions survive a reopen");
    log.append_marker(marker(8, true), false).unwrap(); // 9
    assert_eq!(log.last_stable_offset(), 8, "producer 7's second transaction is still open");
    log.append_marker(marker(7, true), false).unwrap(); // 10
    assert_eq!(log.last_stable_offset(), 11);
    assert!(!log.has_open_txn(7) && !log.has_open_txn(8));
    let all = log.read_committed(0, 1 << 20, true).unwrap();
    assert_eq!(all.batches, 7);
    assert_eq!(all.aborted, vec![AbortedTxn { producer_id: 7, first_offset: 2, last_offset: 7 }], "one aborted transaction");
    assert!(log.read_committed(8, 1 << 20, true).unwrap().aborted.is_empty(), "the abort ended before offset 8");
    let markers: Vec<Option<bool>> =
        raw_batches(&all.records).iter().map(|b| batch::marker_is_commit(b)).collect();
    assert_eq!(markers, vec![None, None, None, Some(false), None, Some(true), Some(true)]);
    // Deleting records below the abort marker drops its index entry; up to it keeps it.
    log.delete_records(7).unwrap();
    assert_eq!(log.aborted_txns(0, i64::MAX).unwrap().len(), 1, "the marker at 7 is still there");
    log.delete_records(8).unwrap();
    assert!(log.aborted_txns(0, i64::MAX).unwrap().is_empty(), "its marker was deleted");
}

/// Splits stored batches back to back.
fn raw_batches(mut records: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !records.is_empty() {
        let len = BatchHeader::parse(records).unwrap().total_len();
        out.push(records[..len].to_vec());
        records = &records[len..];
    }
    out
}

#[test]
fn stamp_rewrites_headers_in_place_and_changes_nothing_until_stored() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::create(open_store(dir.path()), Uuid::new_v4(), 0).unwrap();
    let original = sample_batch(3, 5, 0).freeze();
    let stamp = log.stamp(split_and_validate(original.clone()).unwrap(), 10, 4).unwrap();
    assert_eq!(stamp.next_offset, 13);
    assert_eq!(stamp.base_offset(), Some(10));
    let Stamped::New(header, bytes) = &stamp.batches[0] else { panic!("new batch expected") };
    assert_eq!((header.base_offset, header.partition_leader_epoch), (10, 4));
    assert_eq!(batch::offsets_of(bytes), (10, 12));
    assert_eq!(&bytes[12..16], &4i32.to_be_bytes());
    assert_eq!(bytes[16..], original[16..], "everything from the magic byte on (the CRC range) is untouched");
    batch::validate(bytes).unwrap();
    assert_eq!((log.offsets().log_end, log.producer_count()), (0, 0), "stamping writes nothing");
    // Within one produce, a repeated batch is a duplicate of the first.
    let twice = Bytes::from([original.clone(), original.clone()].concat());
    let stamp = log.stamp(split_and_validate(twice).unwrap(), 0, 0).unwrap();
    assert!(matches!(stamp.batches[..], [Stamped::New(..), Stamped::Duplicate(0)]));
    assert_eq!(stamp.next_offset, 3);
    // append = stamp + store: the stored producer state makes the retry a duplicate.
    assert_eq!(log.append(split_and_validate(original.clone()).unwrap(), false).unwrap().base_offset, 0);
    let retry = log.stamp(split_and_validate(original).unwrap(), 3, 0).unwrap();
    assert!(matches!(retry.batches[..], [Stamped::Duplicate(0)]));
}
