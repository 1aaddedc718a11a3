//! Log compaction (`cleanup.policy=compact`, Kafka's log cleaner): keep the latest
//! record of every key, drop the rest, and drop tombstones once they have been
//! visible long enough.
//!
//! How a partition is cleaned (as Kafka's `LogCleaner` does, on batches instead of
//! segment files):
//!
//! - The log has a *clean* section, below the cleaner checkpoint (the first dirty
//!   offset, kept in the metadata column family), and a *dirty* one above it. The
//!   dirty section ends at the *first uncleanable offset*: the newest committed batch
//!   (the active tail, where appends land; Kafka never cleans the active segment),
//!   everything at or above the high watermark, and everything from the first batch
//!   holding a record younger than `min.compaction.lag.ms`.
//! - A partition is cleaned when dirty bytes / (clean + dirty bytes) exceeds
//!   `min.cleanable.dirty.ratio`, when its oldest dirty batch is older than
//!   `max.compaction.lag.ms`, or when a tombstone's delete horizon has passed.
//! - Pass 1 maps every key of the dirty section to its latest offset ([`KeyMap`],
//!   bounded; a full map ends the dirty section early, the rest waits for the next
//!   cleaning). Pass 2 walks the log from its start to the end of the dirty section
//!   and rewrites each batch ([`clean_batch`]): a record stays if it has a key, no
//!   later record of that key is in the map, and it is not a tombstone whose batch's
//!   delete horizon has passed. Records keep their offsets; a rewritten batch keeps
//!   its base offset, last offset delta, producer id, epoch and base sequence (so the
//!   offset range and sequence range stay), gets a fresh CRC, and disappears when no
//!   record is left — unless it is the last batch of a producer whose idempotence
//!   state the partition keeps, which stays as an empty batch (Kafka's rule).
//! - Tombstones: the first cleaning that keeps a batch holding tombstones stamps it
//!   with a delete horizon, now + `delete.retention.ms` (KIP-534: the batch's base
//!   timestamp, with attribute bit 6 set; record timestamps are re-encoded relative
//!   to it, so they do not change). A cleaning after the horizon removes them. The
//!   horizon travels with the batch, so a replica would see the same.
//! - Changed batches are written in chunks, each one RocksDB write (deletes and puts
//!   together), the last with the new checkpoint: a crash leaves every batch either
//!   cleaned or as it was, both valid logs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Broker;
use crate::config::Config;
use crate::error::StorageError;
use crate::metrics::Metrics;
use crate::storage::batch::{self, BatchError, BatchHeader, DELETE_HORIZON_FLAG};
use crate::storage::records::{self, BatchSpec, StoredRecord};
use crate::storage::topic_config::TopicPolicy;
use crate::storage::PartitionLog;

/// Memory one cleaning's key map may use (keys plus per-entry overhead), like
/// Kafka's `log.cleaner.dedupe.buffer.size`.
pub const KEY_MAP_BYTES: usize = 64 << 20;
/// Estimated bytes per key map entry besides the key.
const KEY_ENTRY_OVERHEAD: usize = 48;
/// Bytes of rewritten batches gathered before they are written (one atomic write each).
const CHUNK_BYTES: usize = 4 << 20;
/// Batch changes gathered before they are written.
const CHUNK_CHANGES: usize = 1024;

/// The broker-wide cleaner settings (Kafka's `log.cleaner.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    /// `log_cleaner_enable`.
    pub enable: bool,
    /// `log_cleaner_backoff_ms`: pause between passes.
    pub backoff_ms: u64,
    /// `log_cleaner_min_cleanable_ratio`.
    pub min_cleanable_ratio: f64,
    /// `log_cleaner_min_compaction_lag_ms`.
    pub min_compaction_lag_ms: i64,
    /// `log_cleaner_max_compaction_lag_ms`.
    pub max_compaction_lag_ms: i64,
    /// `log_cleaner_delete_retention_ms`.
    pub delete_retention_ms: i64,
}

impl CleanerConfig {
    /// The cleaner settings of a broker configuration.
    pub fn from_config(config: &Config) -> CleanerConfig {
        CleanerConfig {
            enable: config.log_cleaner_enable,
            backoff_ms: config.log_cleaner_backoff_ms,
            min_cleanable_ratio: config.log_cleaner_min_cleanable_ratio,
            min_compaction_lag_ms: config.log_cleaner_min_compaction_lag_ms,
            max_compaction_lag_ms: config.log_cleaner_max_compaction_lag_ms,
            delete_retention_ms: config.log_cleaner_delete_retention_ms,
        }
    }

    /// The settings for one topic: its overrides, else these defaults.
    pub fn for_topic(&self, policy: &TopicPolicy) -> LogCleaning {
        LogCleaning {
            min_cleanable_ratio: policy.min_cleanable_dirty_ratio.unwrap_or(self.min_cleanable_ratio),
            min_compaction_lag_ms: policy.min_compaction_lag_ms.unwrap_or(self.min_compaction_lag_ms).max(0),
            max_compaction_lag_ms: policy.max_compaction_lag_ms.unwrap_or(self.max_compaction_lag_ms),
            delete_retention_ms: policy.delete_retention_ms.unwrap_or(self.delete_retention_ms).max(0),
        }
    }
}

/// The effective compaction settings of one topic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogCleaning {
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
}

/// Sizes of a partition's clean and dirty (cleanable) sections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirtyStats {
    /// Bytes below the cleaner checkpoint.
    pub clean_bytes: u64,
    /// Bytes from the checkpoint to the first uncleanable offset.
    pub dirty_bytes: u64,
    /// Max timestamp of the first dirty batch.
    pub first_dirty_timestamp: Option<i64>,
}

impl DirtyStats {
    /// Dirty bytes / (clean + dirty bytes).
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

/// Whether a partition is due for cleaning: enough dirty bytes, a dirty record past
/// `max.compaction.lag.ms`, or a tombstone horizon that has passed.
pub fn should_clean(stats: &DirtyStats, cleaning: &LogCleaning, tombstone_horizon: Option<i64>, now_ms: i64) -> bool {
    let horizon_due = tombstone_horizon.is_some_and(|h| now_ms >= h);
    if stats.dirty_bytes == 0 {
        return horizon_due;
    }
    let overdue = stats.first_dirty_timestamp.is_some_and(|ts| now_ms.saturating_sub(ts) > cleaning.max_compaction_lag_ms);
    stats.ratio() > cleaning.min_cleanable_ratio || overdue || horizon_due
}

/// What the cleaner knows of one batch of the dirty section from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchInfo {
    /// Base offset.
    pub base_offset: i64,
    /// Max timestamp.
    pub max_timestamp: i64,
    /// Stored size.
    pub bytes: u64,
}

/// The first offset the cleaner leaves alone, given the batches from the checkpoint
/// to the high watermark in order: the newest of them (the active tail) and every
/// batch from the first one holding a record younger than `min_lag_ms`. None when
/// there is no batch.
pub fn first_uncleanable(dirty: &[BatchInfo], min_lag_ms: i64, now_ms: i64) -> Option<i64> {
    let tail = dirty.last()?.base_offset;
    let young = (min_lag_ms > 0)
        .then(|| dirty.iter().find(|b| b.max_timestamp > now_ms.saturating_sub(min_lag_ms)).map(|b| b.base_offset))
        .flatten();
    Some(young.map_or(tail, |y| y.min(tail)))
}

/// Every key of the dirty section with the offset of its latest record.
#[derive(Debug, Default)]
pub struct KeyMap {
    latest: HashMap<Vec<u8>, i64>,
    bytes: usize,
    limit: usize,
}

impl KeyMap {
    /// An empty map holding at most about `limit_bytes`.
    pub fn new(limit_bytes: usize) -> KeyMap {
        KeyMap { latest: HashMap::new(), bytes: 0, limit: limit_bytes }
    }

    /// Records the keys of one batch's records (its base offset `base`). Returns false,
    /// adding nothing, when they do not fit (a first batch always fits).
    pub fn add(&mut self, base: i64, records: &[StoredRecord]) -> bool {
        let extra: usize = records
            .iter()
            .filter_map(|r| r.key.as_ref())
            .filter(|k| !self.latest.contains_key(k.as_slice()))
            .map(|k| k.len() + KEY_ENTRY_OVERHEAD)
            .sum();
        if self.bytes + extra > self.limit && !self.latest.is_empty() {
            return false;
        }
        for record in records {
            if let Some(key) = &record.key {
                self.latest.insert(key.clone(), base + record.offset_delta as i64);
            }
        }
        self.bytes += extra;
        true
    }

    /// Offset of the latest record with `key` in the dirty section.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

/// What one cleaning decides with.
#[derive(Debug)]
pub struct CleanContext<'a> {
    /// The cleaning's clock, ms since the epoch.
    pub now_ms: i64,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// Latest offset of every key of the dirty section.
    pub keys: &'a KeyMap,
    /// Last offset of each producer's last batch (producers with idempotence state).
    pub producer_last_offsets: &'a HashMap<i64, i64>,
}

/// What becomes of one batch.
#[derive(Debug)]
pub enum Cleaned {
    /// Stays as it is.
    Unchanged,
    /// Replaced by this batch (same base offset and offset range).
    Replaced(BytesMut),
    /// Removed: none of its records stay.
    Removed,
}

/// The outcome of cleaning one batch.
#[derive(Debug)]
pub struct CleanedBatch {
    /// What becomes of the batch.
    pub outcome: Cleaned,
    /// Records removed from it.
    pub removed_records: u64,
    /// The delete horizon of the tombstones it still holds, if any.
    pub tombstone_horizon: Option<i64>,
}

/// Cleans one stored batch (see the module documentation for the rules).
pub fn clean_batch(stored: &[u8], ctx: &CleanContext<'_>) -> Result<CleanedBatch, BatchError> {
    let header = batch::validate_stored(stored)?;
    let unchanged = |tombstone_horizon| CleanedBatch { outcome: Cleaned::Unchanged, removed_records: 0, tombstone_horizon };
    if header.is_control() {
        return Ok(unchanged(None));
    }
    let limit = batch::max_uncompressed(batch::DEFAULT_MAX_MESSAGE_BYTES.max(stored.len()));
    let records = records::stored_records(stored, &header, limit)?;
    let horizon = (header.attributes & DELETE_HORIZON_FLAG != 0).then_some(header.base_timestamp);
    let kept: Vec<&StoredRecord> = records
        .iter()
        .filter(|r| {
            let Some(key) = &r.key else { return false };
            let offset = header.base_offset + r.offset_delta as i64;
            if ctx.keys.latest(key).is_some_and(|latest| latest > offset) {
                return false;
            }
            !r.value_is_null || horizon.is_none_or(|h| ctx.now_ms < h)
        })
        .collect();
    let removed_records = (records.len() - kept.len()) as u64;
    let has_tombstones = kept.iter().any(|r| r.value_is_null);
    if removed_records == 0 && (!has_tombstones || horizon.is_some()) {
        return Ok(unchanged(horizon.filter(|_| has_tombstones)));
    }
    if kept.is_empty() {
        let producer_last = header.has_producer_id()
            && ctx.producer_last_offsets.get(&header.producer_id) == Some(&header.last_offset());
        if !producer_last {
            return Ok(CleanedBatch { outcome: Cleaned::Removed, removed_records, tombstone_horizon: None });
        }
    }
    let new_horizon = has_tombstones.then(|| horizon.unwrap_or(ctx.now_ms.saturating_add(ctx.delete_retention_ms)));
    let mut attributes = header.attributes & !DELETE_HORIZON_FLAG;
    if new_horizon.is_some() {
        attributes |= DELETE_HORIZON_FLAG;
    }
    let log_append_time = header.attributes & 0x08 != 0;
    let max_timestamp = match kept.iter().map(|r| r.timestamp).max() {
        Some(ts) if !log_append_time => ts,
        _ => header.max_timestamp,
    };
    let base_timestamp = match (new_horizon, horizon, kept.first()) {
        (Some(h), _, _) => h,
        // The old horizon is no longer needed: back to the first record's timestamp.
        (None, Some(_), Some(first)) => first.timestamp,
        (None, Some(_), None) => max_timestamp,
        (None, None, _) => header.base_timestamp,
    };
    let spec = BatchSpec {
        base_offset: header.base_offset,
        partition_leader_epoch: header.partition_leader_epoch,
        attributes,
        last_offset_delta: header.last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
    };
    Ok(CleanedBatch {
        outcome: Cleaned::Replaced(records::encode_batch(&spec, &kept)),
        removed_records,
        tombstone_horizon: new_horizon,
    })
}

/// What one cleaning of a partition did (for the log line and the metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleaningReport {
    /// The dirty section cleaned: `from..to`.
    pub from: i64,
    /// End (exclusive) of the dirty section cleaned; the new checkpoint.
    pub to: i64,
    /// Bytes of batches read in pass 2.
    pub read_bytes: u64,
    /// Bytes left in the cleaned range.
    pub clean_bytes: u64,
    /// Records removed.
    pub removed_records: u64,
    /// Batches removed.
    pub removed_batches: u64,
    /// Batches rewritten.
    pub rewritten_batches: u64,
    /// Batches that could not be decoded (kept as they are).
    pub undecodable_batches: u64,
}

/// What the cleaner remembers of a partition between passes.
#[derive(Debug, Clone, Copy, Default)]
struct PartitionState {
    /// Bytes of the clean section after the last cleaning (None: not measured yet).
    clean_bytes: Option<u64>,
    /// Earliest delete horizon of the tombstones left (None: none).
    tombstone_horizon: Option<i64>,
    /// False until a cleaning has seen the whole clean section (after a restart the
    /// horizons of stored tombstones are unknown, so one cleaning looks).
    horizon_known: bool,
}

/// The log cleaner: cleans compacted partitions, remembering each one's sizes.
#[derive(Debug)]
pub struct Cleaner {
    config: CleanerConfig,
    partitions: HashMap<(Uuid, i32), PartitionState>,
}

impl Cleaner {
    /// A cleaner with these settings.
    pub fn new(config: CleanerConfig) -> Cleaner {
        Cleaner { config, partitions: HashMap::new() }
    }

    /// One pass over every partition of every compacted topic at time `now_ms`;
    /// returns the cleanings done.
    pub fn clean_all(&mut self, broker: &Broker, now_ms: i64) -> usize {
        let mut cleaned = 0;
        let mut seen = Vec::new();
        for topic in broker.topics.all() {
            if !topic.policy.compact {
                continue;
            }
            let cleaning = self.config.for_topic(&topic.policy);
            for log in &topic.partitions {
                seen.push((topic.id, log.partition()));
                match self.clean_partition(log, &cleaning, now_ms) {
                    Ok(Some(report)) => {
                        cleaned += 1;
                        record_metrics(broker.metrics(), &topic.name, &report);
                        tracing::info!(
                            topic = %topic.name,
                            partition = log.partition(),
                            from = report.from,
                            to = report.to,
                            read_bytes = report.read_bytes,
                            clean_bytes = report.clean_bytes,
                            removed_records = report.removed_records,
                            removed_batches = report.removed_batches,
                            rewritten_batches = report.rewritten_batches,
                            "log cleaned"
                        );
                    }
                    Ok(None) => {}
                    // Deleted or offline meanwhile: nothing to clean.
                    Err(StorageError::UnknownTopicOrPartition) | Err(StorageError::Corruption { .. }) => {}
                    Err(e) => tracing::warn!(topic = %topic.name, partition = log.partition(), error = %e, "log cleaning failed"),
                }
            }
        }
        self.partitions.retain(|k, _| seen.contains(k));
        cleaned
    }

    /// Cleans one partition if it is due; returns what the cleaning did.
    pub fn clean_partition(&mut self, log: &PartitionLog, cleaning: &LogCleaning, now_ms: i64) -> Result<Option<CleaningReport>, StorageError> {
        let high_watermark = log.offsets().high_watermark;
        let stored_checkpoint = log.cleaner_checkpoint()?;
        let checkpoint = stored_checkpoint.unwrap_or(0);
        let mut dirty = Vec::new();
        log.scan_range(checkpoint, high_watermark, |b| {
            if let Ok(h) = BatchHeader::parse(b) {
                dirty.push(BatchInfo { base_offset: h.base_offset, max_timestamp: h.max_timestamp, bytes: b.len() as u64 });
            }
            true
        })?;
        let mut end = first_uncleanable(&dirty, cleaning.min_compaction_lag_ms, now_ms).unwrap_or(checkpoint).max(checkpoint);
        let dirty_batches = || dirty.iter().take_while(|b| b.base_offset < end);
        let state = self.partitions.entry((log.topic_id(), log.partition())).or_insert(PartitionState {
            horizon_known: stored_checkpoint.is_none(),
            ..Default::default()
        });
        let clean_bytes = match state.clean_bytes {
            Some(bytes) => bytes,
            None => {
                let mut bytes = 0;
                log.scan_range(0, checkpoint, |b| {
                    bytes += b.len() as u64;
                    true
                })?;
                state.clean_bytes = Some(bytes);
                bytes
            }
        };
        let stats = DirtyStats {
            clean_bytes,
            dirty_bytes: dirty_batches().map(|b| b.bytes).sum(),
            first_dirty_timestamp: dirty_batches().next().map(|b| b.max_timestamp),
        };
        let horizon = if state.horizon_known { state.tombstone_horizon } else { Some(i64::MIN) };
        if !should_clean(&stats, cleaning, horizon, now_ms) {
            return Ok(None);
        }

        // Pass 1: the latest offset of every key of the dirty section.
        let mut keys = KeyMap::new(KEY_MAP_BYTES);
        let mut covered = checkpoint;
        let mut full = false;
        log.scan_range(checkpoint, end, |stored| {
            let Ok(header) = batch::validate_stored(stored) else { return true };
            let limit = batch::max_uncompressed(batch::DEFAULT_MAX_MESSAGE_BYTES.max(stored.len()));
            // An undecodable batch adds no key: older records of its keys stay.
            let records = records::stored_records(stored, &header, limit).unwrap_or_default();
            if !keys.add(header.base_offset, &records) {
                full = true;
                return false;
            }
            covered = header.last_offset() + 1;
            true
        })?;
        if full {
            end = covered;
        }

        // Pass 2: rewrite the log from its start to the end of the dirty section.
        let producers = log.producer_last_offsets();
        let ctx = CleanContext { now_ms, delete_retention_ms: cleaning.delete_retention_ms, keys: &keys, producer_last_offsets: &producers };
        let mut report = CleaningReport { from: checkpoint, to: end, ..Default::default() };
        let mut next_horizon: Option<i64> = None;
        let mut changes: Vec<(i64, Option<BytesMut>)> = Vec::new();
        let mut pending = 0usize;
        let mut failure = None;
        log.scan_range(0, end, |stored| {
            report.read_bytes += stored.len() as u64;
            let base = batch::offsets_of(stored).0;
            match clean_batch(stored, &ctx) {
                Ok(c) => {
                    report.removed_records += c.removed_records;
                    if let Some(h) = c.tombstone_horizon {
                        next_horizon = Some(next_horizon.map_or(h, |n| n.min(h)));
                    }
                    match c.outcome {
                        Cleaned::Unchanged => report.clean_bytes += stored.len() as u64,
                        Cleaned::Replaced(b) => {
                            report.clean_bytes += b.len() as u64;
                            report.rewritten_batches += 1;
                            pending += b.len();
                            changes.push((base, Some(b)));
                        }
                        Cleaned::Removed => {
                            report.removed_batches += 1;
                            changes.push((base, None));
                        }
                    }
                }
                Err(e) => {
                    if report.undecodable_batches == 0 {
                        tracing::warn!(base_offset = base, error = %e, "log cleaner keeps a batch it cannot decode");
                    }
                    report.undecodable_batches += 1;
                    report.clean_bytes += stored.len() as u64;
                }
            }
            if pending >= CHUNK_BYTES || changes.len() >= CHUNK_CHANGES {
                if let Err(e) = log.replace_batches(&changes, None) {
                    failure = Some(e);
                    return false;
                }
                changes.clear();
                pending = 0;
            }
            true
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        log.replace_batches(&changes, Some(end))?;
        let state = self.partitions.entry((log.topic_id(), log.partition())).or_default();
        state.clean_bytes = Some(report.clean_bytes);
        state.tombstone_horizon = next_horizon;
        state.horizon_known = true;
        Ok(Some(report))
    }
}

fn record_metrics(metrics: &Metrics, topic: &str, report: &CleaningReport) {
    let labels = Metrics::topic(topic);
    metrics.cleaner_runs.get_or_create(&labels).inc();
    metrics.cleaner_cleaned_bytes.get_or_create(&labels).inc_by(report.read_bytes);
    metrics.cleaner_removed_records.get_or_create(&labels).inc_by(report.removed_records);
}

/// The log cleaner task: a pass every `log_cleaner_backoff_ms` until `stop`
/// (started from `main`; does nothing when `log_cleaner_enable` is off).
pub async fn run_cleaner(broker: Arc<Broker>, stop: CancellationToken) {
    let config = CleanerConfig::from_config(broker.config());
    if !config.enable {
        tracing::info!("log cleaner disabled");
        return;
    }
    let mut cleaner = Cleaner::new(config);
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(config.backoff_ms));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let owner = broker.clone();
        let started = Instant::now();
        let pass = tokio::task::spawn_blocking(move || {
            let cleaned = cleaner.clean_all(&owner, crate::storage::producer_state::now_ms());
            (cleaner, cleaned)
        })
        .await;
        match pass {
            Ok((back, cleaned)) => {
                cleaner = back;
                if cleaned > 0 {
                    tracing::debug!(cleaned, elapsed_ms = started.elapsed().as_millis() as u64, "log cleaner pass done");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "log cleaner pass failed");
                cleaner = Cleaner::new(config);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;

    use super::*;
    use crate::storage::records::tests::{build, compress, record};
    use crate::storage::{Store, StoreOptions};

    type Rec<'a> = (&'a str, Option<&'a str>);

    /// A stored batch at `base` holding `recs` (timestamps 1000 + index), with an
    /// optional producer id and base sequence; `codec` 0 or 1 (gzip).
    fn stored(base: i64, recs: &[Rec<'_>], producer: Option<(i64, i32)>, codec: u8) -> BytesMut {
        let mut raw = Vec::new();
        for (i, (k, v)) in recs.iter().enumerate() {
            raw.extend(record(i as i64, i as i64, Some(k.as_bytes()), v.map(str::as_bytes), &[]));
        }
        let n = recs.len() as i32;
        let mut b = build(codec as i16, n, n - 1, 1000, 1000 + n as i64 - 1, &compress(codec, &raw));
        if let Some((pid, seq)) = producer {
            b[43..51].copy_from_slice(&pid.to_be_bytes());
            b[51..53].copy_from_slice(&0i16.to_be_bytes());
            b[53..57].copy_from_slice(&seq.to_be_bytes());
            let crc = crc32c::crc32c(&b[21..]);
            b[17..21].copy_from_slice(&crc.to_be_bytes());
        }
        batch::assign(&mut b, base, 0);
        b
    }

    /// (offset, key, value) of every record of a run of stored batches, in order,
    /// after checking each batch validates as a stored batch.
    fn contents(batches: &[BytesMut]) -> Vec<(i64, String, Option<String>)> {
        let mut all = BytesMut::new();
        for b in batches {
            all.extend_from_slice(b);
        }
        let mut out = Vec::new();
        for (header, b) in batch::split_and_validate_stored(all.freeze(), 1 << 20).expect("valid stored batches") {
            for r in records::stored_records(&b, &header, 1 << 30).unwrap() {
                out.push((header.base_offset + r.offset_delta as i64, String::from_utf8(r.key.clone().unwrap()).unwrap(), value_of(&r.raw)));
            }
        }
        out
    }

    /// The value of an encoded record.
    fn value_of(raw: &[u8]) -> Option<String> {
        fn varint(raw: &[u8], pos: &mut usize) -> i64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let b = raw[*pos];
                *pos += 1;
                v |= ((b & 0x7f) as u64) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    return ((v >> 1) as i64) ^ -((v & 1) as i64);
                }
            }
        }
        let mut pos = 0;
        varint(raw, &mut pos); // length
        pos += 1; // attributes
        varint(raw, &mut pos); // timestamp delta
        varint(raw, &mut pos); // offset delta
        let key_len = varint(raw, &mut pos);
        pos += key_len.max(0) as usize;
        let value_len = varint(raw, &mut pos);
        (value_len >= 0).then(|| String::from_utf8(raw[pos..pos + value_len as usize].to_vec()).unwrap())
    }

    /// What a consumer reading from offset 0 ends up with: the latest value per key,
    /// tombstoned keys absent.
    fn latest(view: &[(i64, String, Option<String>)]) -> BTreeMap<String, (i64, String)> {
        let mut out = BTreeMap::new();
        for (offset, k, v) in view {
            match v {
                Some(v) => out.insert(k.clone(), (*offset, v.clone())),
                None => out.remove(k),
            };
        }
        out
    }

    /// One cleaning of an in-memory log: key map over `dirty`, then every batch.
    fn clean(log: &[BytesMut], dirty: std::ops::Range<usize>, now_ms: i64, producers: &HashMap<i64, i64>) -> (Vec<BytesMut>, u64, Option<i64>) {
        let mut keys = KeyMap::new(KEY_MAP_BYTES);
        for b in &log[dirty] {
            let h = batch::validate_stored(b).unwrap();
            assert!(keys.add(h.base_offset, &records::stored_records(b, &h, 1 << 30).unwrap()));
        }
        let ctx = CleanContext { now_ms, delete_retention_ms: 100, keys: &keys, producer_last_offsets: producers };
        let (mut out, mut removed, mut horizon) = (Vec::new(), 0, None);
        for b in log {
            let c = clean_batch(b, &ctx).unwrap();
            removed += c.removed_records;
            horizon = horizon.or(c.tombstone_horizon);
            match c.outcome {
                Cleaned::Unchanged => out.push(b.clone()),
                Cleaned::Replaced(n) => {
                    assert_eq!(batch::offsets_of(&n), batch::offsets_of(b), "a rewritten batch keeps its offset range");
                    out.push(n)
                }
                Cleaned::Removed => {}
            }
        }
        (out, removed, horizon)
    }

    #[test]
    fn cleaning_keeps_the_latest_record_per_key_at_its_offset_and_tombstones_until_their_horizon() {
        let log = vec![
            stored(0, &[("k1", Some("a")), ("k2", Some("b")), ("k3", Some("c"))], None, 0),
            stored(3, &[("k1", Some("d")), ("k2", None)], None, 1),
            stored(5, &[("k1", Some("e")), ("k4", Some("f")), ("k4", Some("g"))], Some((7, 0)), 0),
            stored(8, &[("k5", Some("h"))], Some((9, 0)), 0),
            stored(9, &[("k5", Some("i")), ("k3", Some("j"))], None, 0),
        ];
        let before = latest(&contents(&log));
        let producers = HashMap::from([(9, 8)]);
        let (first, removed, horizon) = clean(&log, 0..5, 1_000, &producers);
        assert_eq!(removed, 6, "k1@0, k2@1, k3@2, k1@3, k4@6, k5@8");
        assert_eq!(horizon, Some(1_100), "the tombstone's horizon is the first cleaning + delete.retention.ms");
        let view = contents(&first);
        assert_eq!(
            view,
            vec![
                (4, "k2".into(), None),
                (5, "k1".into(), Some("e".into())),
                (7, "k4".into(), Some("g".into())),
                (9, "k5".into(), Some("i".into())),
                (10, "k3".into(), Some("j".into())),
            ]
        );
        assert_eq!(latest(&view), before, "a consumer from offset 0 sees the same latest values");
        // Batch @0 is gone; @3 was gzip and still is; @8 (producer 9's last batch) stays, empty.
        assert_eq!(first.iter().map(|b| batch::offsets_of(b)).collect::<Vec<_>>(), vec![(3, 4), (5, 7), (8, 8), (9, 10)]);
        let gz = batch::validate_stored(&first[0]).unwrap();
        assert_eq!((gz.compression(), gz.record_count, gz.attributes & DELETE_HORIZON_FLAG), (1, 1, DELETE_HORIZON_FLAG));
        assert_eq!(gz.base_timestamp, 1_100);
        assert_eq!(batch::record_timestamps(&first[0]).unwrap(), vec![(4, 1001)], "record timestamps survive the horizon");
        let empty = batch::validate_stored(&first[2]).unwrap();
        assert_eq!((empty.record_count, empty.producer_id, empty.base_sequence, empty.last_sequence()), (0, 9, 0, 0));
        let partial = batch::validate_stored(&first[1]).unwrap();
        assert_eq!((partial.producer_id, partial.base_sequence, partial.last_offset_delta, partial.record_count), (7, 0, 2, 2));

        // Before the horizon a cleaning keeps the tombstone; at it, the tombstone goes.
        let (second, removed, _) = clean(&first, 0..0, 1_099, &producers);
        assert_eq!((removed, contents(&second)), (0, view.clone()));
        let (third, removed, horizon) = clean(&first, 0..0, 1_100, &producers);
        assert_eq!((removed, horizon), (1, None));
        assert_eq!(contents(&third), view[1..].to_vec());
        assert_eq!(latest(&contents(&third)), before);
    }

    #[test]
    fn min_compaction_lag_and_the_active_tail_bound_the_dirty_section() {
        let batches = [
            BatchInfo { base_offset: 0, max_timestamp: 100, bytes: 10 },
            BatchInfo { base_offset: 5, max_timestamp: 900, bytes: 10 },
            BatchInfo { base_offset: 9, max_timestamp: 950, bytes: 10 },
        ];
        assert_eq!(first_uncleanable(&batches, 0, 1_000), Some(9), "never the newest batch");
        assert_eq!(first_uncleanable(&batches, 200, 1_000), Some(5), "nothing younger than the lag");
        assert_eq!(first_uncleanable(&batches, 2_000, 1_000), Some(0));
        assert_eq!(first_uncleanable(&[], 0, 1_000), None);
        let cleaning = LogCleaning { min_cleanable_ratio: 0.5, min_compaction_lag_ms: 0, max_compaction_lag_ms: 500, delete_retention_ms: 0 };
        let stats = |clean, dirty| DirtyStats { clean_bytes: clean, dirty_bytes: dirty, first_dirty_timestamp: Some(900) };
        assert!(should_clean(&stats(10, 11), &cleaning, None, 1_000));
        assert!(!should_clean(&stats(10, 10), &cleaning, None, 1_000), "ratio must exceed the minimum");
        assert!(should_clean(&stats(10, 1), &cleaning, None, 1_401), "max.compaction.lag.ms forces a cleaning");
        assert!(!should_clean(&stats(10, 0), &cleaning, Some(2_000), 1_999));
        assert!(should_clean(&stats(10, 0), &cleaning, Some(2_000), 2_000), "a passed tombstone horizon");
    }

    #[test]
    fn cleaner_rewrites_a_partition_log_atomically_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 2 };
        let store = Store::open(dir.path(), &opts).unwrap();
        let log = PartitionLog::create(store.clone(), Uuid::new_v4(), 0).unwrap();
        let mut expected = BTreeMap::new();
        for round in 0..20 {
            let recs: Vec<(String, Option<String>)> = (0..5)
                .map(|k| (format!("key{k}"), (!(k == 4 && round == 19)).then(|| format!("v{round}-{k}"))))
                .collect();
            let borrowed: Vec<Rec<'_>> = recs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            let b = stored(0, &borrowed, None, 0);
            log.append(batch::split_and_validate(b.freeze()).unwrap(), false).unwrap();
        }
        // The active tail: one more batch, which the cleaner leaves alone.
        log.append(batch::split_and_validate(stored(0, &[("tail", Some("t"))], None, 0).freeze()).unwrap(), false).unwrap();
        let read = |log: &PartitionLog| {
            let r = log.read(0, 1 << 24, true).unwrap().records;
            let parts: Vec<BytesMut> = batch::split_and_validate_stored(Bytes::clone(&r), 1 << 20).unwrap().into_iter().map(|(_, b)| b).collect();
            contents(&parts)
        };
        let before = read(&log);
        for (offset, k, v) in &before {
            if let Some(v) = v {
                expected.insert(k.clone(), (*offset, v.clone()));
            } else {
                expected.remove(k);
            }
        }
        let cleaning = LogCleaning { min_cleanable_ratio: 0.5, min_compaction_lag_ms: 0, max_compaction_lag_ms: i64::MAX, delete_retention_ms: 50 };
        let mut cleaner = Cleaner::new(CleanerConfig { enable: true, backoff_ms: 1, min_cleanable_ratio: 0.5, min_compaction_lag_ms: 0, max_compaction_lag_ms: i64::MAX, delete_retention_ms: 50 });
        let lagged = LogCleaning { min_compaction_lag_ms: 1 << 40, ..cleaning };
        assert_eq!(cleaner.clean_partition(&log, &lagged, 10_000).unwrap(), None, "everything is younger than the lag");
        let report = cleaner.clean_partition(&log, &cleaning, 10_000).unwrap().expect("a cleaning");
        assert_eq!((report.from, report.to, report.removed_records), (0, 100, 95));
        assert_eq!(log.cleaner_checkpoint().unwrap(), Some(100));
        let after = read(&log);
        assert_eq!(after.len(), 6, "one record per key, the tombstone and the tail: {after:?}");
        assert_eq!(after[4], (99, "key4".to_string(), None));
        assert_eq!(latest(&after), latest(&before));
        assert_eq!(cleaner.clean_partition(&log, &cleaning, 10_049).unwrap(), None, "nothing dirty, horizon not reached");
        let report = cleaner.clean_partition(&log, &cleaning, 10_050).unwrap().expect("the horizon passed");
        assert_eq!(report.removed_records, 1);
        let after = read(&log);
        assert_eq!(after.iter().map(|(o, _, _)| *o).collect::<Vec<_>>(), vec![95, 96, 97, 98, 100]);
        assert_eq!(latest(&after), expected);
        assert_eq!(log.offsets().log_end, 101, "the log end does not move");
        let appended = log.append(batch::split_and_validate(stored(0, &[("key0", Some("new"))], None, 0).freeze()).unwrap(), false).unwrap();
        assert_eq!(appended.base_offset, 101);
        assert_eq!(read(&log).last().unwrap(), &(101, "key0".to_string(), Some("new".to_string())));
    }
}
