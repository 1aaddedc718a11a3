//! Retention: deleting old data from the front of a log by `retention.ms` and
//! `retention.bytes`, in Kafka's segment granularity.
//!
//! Fluxo stores batches, not segment files, so segments are virtual: walking the
//! batch index from the first stored batch, a batch starts a new segment when the
//! current one would otherwise exceed `segment.bytes`, or when its max timestamp is
//! more than `segment.ms` past the max timestamp of the segment's first batch (Kafka
//! compares the append time with that timestamp; the batch's own max timestamp stands
//! in for the append time, so every replica groups the same log the same way). The
//! last segment is the active one.
//!
//! A segment is deleted, oldest first and only while every earlier one is, when all of
//! it is below the high watermark and
//! - by time: its newest record is older than `retention.ms` (`now - max timestamp >
//!   retention.ms`; a segment without timestamps, max < 0, never expires by time), or
//! - by size: the log without it still holds at least `retention.bytes`.
//!
//! As in Kafka (which rolls the active segment in order to delete it), the active segment
//! goes too once all of it is past `retention.ms` and committed: the log is then empty
//! and starts at its end. The new log start is the first offset after the deleted
//! segments. Only topics whose `cleanup.policy` includes `delete` are touched; topics
//! without `retention.ms` / `retention.bytes` use the broker's `log_retention_ms` /
//! `log_retention_bytes`.

use std::sync::Arc;
use std::time::Duration;

use super::{Broker, BrokerError, Partition};
use crate::metrics::Metrics;
use crate::storage::partition_log::BatchSummary;

/// A virtual segment: consecutive batches retention deletes together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Base offset of its first batch.
    pub base_offset: i64,
    /// One past the last offset of its last batch (the next segment's base offset).
    pub next_offset: i64,
    /// Stored bytes of its batches.
    pub bytes: u64,
    /// Largest batch max timestamp in it.
    pub max_timestamp: i64,
    /// Max timestamp of its first batch (what `segment.ms` is measured from).
    pub rolled_at: i64,
}

/// Builds virtual segments from batches in offset order.
#[derive(Debug, Clone)]
pub struct SegmentBuilder {
    segment_bytes: i64,
    segment_ms: i64,
    segments: Vec<Segment>,
}

impl SegmentBuilder {
    /// Segments of at most `segment_bytes` (a batch larger than that is a segment of its
    /// own) spanning at most `segment_ms`.
    pub fn new(segment_bytes: i64, segment_ms: i64) -> SegmentBuilder {
        SegmentBuilder { segment_bytes, segment_ms, segments: Vec::new() }
    }

    /// Adds the next batch.
    pub fn push(&mut self, batch: &BatchSummary) {
        if let Some(current) = self.segments.last_mut() {
            let too_big = current.bytes.saturating_add(batch.size) > self.segment_bytes.max(0) as u64;
            let too_old = batch.max_timestamp.saturating_sub(current.rolled_at) > self.segment_ms;
            if !too_big && !too_old {
                current.next_offset = batch.last_offset + 1;
                current.bytes += batch.size;
                current.max_timestamp = current.max_timestamp.max(batch.max_timestamp);
                return;
            }
        }
        self.segments.push(Segment {
            base_offset: batch.base_offset,
            next_offset: batch.last_offset + 1,
            bytes: batch.size,
            max_timestamp: batch.max_timestamp,
            rolled_at: batch.max_timestamp,
        });
    }

    /// The segments, oldest first; the last is the active one.
    pub fn finish(self) -> Vec<Segment> {
        self.segments
    }
}

/// The retention settings that apply to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionRules {
    /// Data older than this goes (-1: kept forever).
    pub retention_ms: i64,
    /// The log is cut down towards this many bytes (-1: no limit).
    pub retention_bytes: i64,
    /// Virtual segment size.
    pub segment_bytes: i64,
    /// Virtual segment time span.
    pub segment_ms: i64,
}

/// Which rule moved the log start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    /// `retention.ms`.
    Time,
    /// `retention.bytes`.
    Size,
    /// Both, one after the other.
    TimeAndSize,
}

/// Where retention moves the log start of a log made of `segments`, as of `now_ms`,
/// and why; None when nothing is deletable. Only segments wholly below
/// `high_watermark` are candidates.
pub fn retention_start(segments: &[Segment], rules: &RetentionRules, now_ms: i64, high_watermark: i64) -> Option<(i64, Breach)> {
    let deletable = |s: &Segment| s.next_offset <= high_watermark;
    let mut cut = 0;
    if rules.retention_ms >= 0 {
        while let Some(s) = segments.get(cut) {
            if !(deletable(s) && s.max_timestamp >= 0 && now_ms.saturating_sub(s.max_timestamp) > rules.retention_ms) {
                break;
            }
            cut += 1;
        }
    }
    let by_time = cut;
    if rules.retention_bytes >= 0 {
        let total: u64 = segments[cut..].iter().map(|s| s.bytes).sum();
        let mut excess = total as i128 - rules.retention_bytes as i128;
        while let Some(s) = segments.get(cut) {
            if !(deletable(s) && excess - s.bytes as i128 >= 0) {
                break;
            }
            excess -= s.bytes as i128;
            cut += 1;
        }
    }
    let breach = match (by_time > 0, cut > by_time) {
        (false, false) => return None,
        (true, false) => Breach::Time,
        (false, true) => Breach::Size,
        (true, true) => Breach::TimeAndSize,
    };
    Some((segments[cut - 1].next_offset, breach))
}

/// What retention did to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Log start before.
    pub old_start: i64,
    /// Log start after.
    pub new_start: i64,
    /// Bytes of the batches deleted.
    pub bytes: u64,
    /// Records (offsets) deleted.
    pub records: u64,
    /// Which rule moved the start.
    pub breach: Breach,
    deleted_below: i64,
}

impl Partition {
    /// The virtual segments of this partition's stored log.
    pub fn segments(&self, segment_bytes: i64, segment_ms: i64) -> Result<Vec<Segment>, BrokerError> {
        let mut builder = SegmentBuilder::new(segment_bytes, segment_ms);
        self.log().visit_batches(|b| {
            builder.push(b);
            true
        })?;
        Ok(builder.finish())
    }

    /// Applies retention as of `now_ms` with these rules: moves the log start past the
    /// segments retention deletes and deletes their batches (one write with the
    /// metadata). The disk space comes back with [`Partition::reclaim`].
    pub fn enforce_retention(&self, rules: &RetentionRules, now_ms: i64) -> Result<Option<RetentionOutcome>, BrokerError> {
        if rules.retention_ms < 0 && rules.retention_bytes < 0 {
            return Ok(None);
        }
        let high_watermark = self.offsets().high_watermark;
        let segments = self.segments(rules.segment_bytes, rules.segment_ms)?;
        let Some((new_start, breach)) = retention_start(&segments, rules, now_ms, high_watermark) else { return Ok(None) };
        let Some(deleted) = self.log().delete_before(new_start)? else { return Ok(None) };
        Ok(Some(RetentionOutcome {
            old_start: deleted.old_start,
            new_start: deleted.new_start,
            bytes: deleted.bytes,
            records: deleted.records,
            breach,
            deleted_below: deleted.deleted_below,
        }))
    }

    /// Gives the disk space of what retention deleted back (a RocksDB compaction of the
    /// deleted range; slow, so off the request path).
    pub fn reclaim(&self, outcome: &RetentionOutcome) -> Result<(), BrokerError> {
        Ok(self.log().reclaim(outcome.deleted_below)?)
    }
}

impl Broker {
    /// The retention rules of a partition of `topic`: its overrides, else the broker's defaults.
    pub fn retention_rules(&self, topic: &crate::storage::Topic) -> RetentionRules {
        let policy = &topic.policy;
        let (retention_ms, retention_bytes) = policy.retention(self.config.log_retention_ms, self.config.log_retention_bytes);
        RetentionRules { retention_ms, retention_bytes, segment_bytes: policy.segment_bytes, segment_ms: policy.segment_ms }
    }

    /// One retention pass over every partition of every topic whose `cleanup.policy`
    /// includes `delete`, as of `now_ms`. Returns the partitions whose start moved.
    /// Blocking (reads indexes, compacts): run it off the async runtime.
    pub fn enforce_retention(&self, now_ms: i64) -> Vec<(String, i32, RetentionOutcome)> {
        let mut moved = Vec::new();
        for topic in self.all_topics() {
            if !topic.policy.delete {
                continue;
            }
            let rules = self.retention_rules(&topic);
            for partition in self.partitions(&topic) {
                match partition.enforce_retention(&rules, now_ms) {
                    Ok(Some(outcome)) => {
                        tracing::info!(
                            topic = %topic.name,
                            partition = partition.index(),
                            from = outcome.old_start,
                            to = outcome.new_start,
                            bytes = outcome.bytes,
                            records = outcome.records,
                            breach = ?outcome.breach,
                            "retention moved the log start offset of {}-{} from {} to {}",
                            topic.name,
                            partition.index(),
                            outcome.old_start,
                            outcome.new_start
                        );
                        let labels = Metrics::topic(&topic.name);
                        self.metrics.retention_deleted_bytes.get_or_create(&labels).inc_by(outcome.bytes);
                        self.metrics.retention_deleted_records.get_or_create(&labels).inc_by(outcome.records);
                        if let Err(e) = partition.reclaim(&outcome) {
                            tracing::warn!(topic = %topic.name, partition = partition.index(), error = %e, "reclaiming deleted data failed");
                        }
                        moved.push((topic.name.clone(), partition.index(), outcome));
                    }
                    Ok(None) => {}
                    // Deleted meanwhile, or offline: nothing to do here.
                    Err(BrokerError::UnknownTopicOrPartition) => {}
                    Err(e) => {
                        tracing::warn!(topic = %topic.name, partition = partition.index(), error = %e, "retention check failed")
                    }
                }
            }
        }
        moved
    }
}

/// Enforces retention every `interval` (`log_retention_check_interval_ms`) until the
/// broker shuts down; each pass runs on a blocking thread, off the request path.
pub async fn enforce_retention_every(broker: Arc<Broker>, interval: Duration) {
    let stop = broker.shutdown_signal().clone();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        let b = broker.clone();
        let pass = tokio::task::spawn_blocking(move || b.enforce_retention(crate::storage::producer_state::now_ms())).await;
        if let Err(e) = pass {
            tracing::error!(error = %e, "retention task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Batches of `records` offsets each, with these sizes and max timestamps.
    fn batches(spec: &[(u64, i64)], records: i64) -> Vec<BatchSummary> {
        let mut next = 0;
        spec.iter()
            .map(|&(size, max_timestamp)| {
                let b = BatchSummary { base_offset: next, last_offset: next + records - 1, size, max_timestamp };
                next += records;
                b
            })
            .collect()
    }

    fn group(batches: &[BatchSummary], segment_bytes: i64, segment_ms: i64) -> Vec<Segment> {
        let mut builder = SegmentBuilder::new(segment_bytes, segment_ms);
        batches.iter().for_each(|b| builder.push(b));
        builder.finish()
    }

    fn bounds(segments: &[Segment]) -> Vec<(i64, i64, u64)> {
        segments.iter().map(|s| (s.base_offset, s.next_offset, s.bytes)).collect()
    }

    const DAY: i64 = 86_400_000;

    #[test]
    fn batches_group_into_segments_by_bytes_and_by_time() {
        let b = batches(&[(100, 0), (100, 1), (100, 2), (250, 3), (100, 4), (50, 5)], 2);
        // 300 bytes: three of 100 fit, the 250-byte batch starts (and fills) its own.
        assert_eq!(bounds(&group(&b, 300, DAY)), vec![(0, 6, 300), (6, 8, 250), (8, 12, 150)]);
        // A batch bigger than segment.bytes is a segment of its own.
        assert_eq!(bounds(&group(&b, 120, DAY)).len(), 6);
        // segment.ms: a batch more than 2 ms past the segment's first batch rolls.
        let t = batches(&[(1, 100), (1, 101), (1, 102), (1, 103), (1, 90), (1, 106)], 1);
        let segments = group(&t, 1 << 30, 2);
        assert_eq!(bounds(&segments), vec![(0, 3, 3), (3, 5, 2), (5, 6, 1)]);
        assert_eq!(segments[0].max_timestamp, 102);
        assert_eq!(segments[1].max_timestamp, 103, "a late batch joins; the max is kept");
    }

    fn rules(retention_ms: i64, retention_bytes: i64) -> RetentionRules {
        RetentionRules { retention_ms, retention_bytes, segment_bytes: 200, segment_ms: 7 * DAY }
    }

    #[test]
    fn time_retention_deletes_whole_expired_segments_from_the_front() {
        let now = 10 * DAY;
        // Segments of two 100-byte batches: [old, old], [old, new], [new, new].
        let b = batches(&[(100, DAY), (100, DAY + 5), (100, 2 * DAY), (100, 9 * DAY), (100, 9 * DAY), (100, 10 * DAY)], 10);
        let segments = group(&b, 200, 7 * DAY);
        assert_eq!(segments.len(), 3);
        // 5 days: only the first segment is wholly older; the second has a new batch.
        assert_eq!(retention_start(&segments, &rules(5 * DAY, -1), now, 60), Some((20, Breach::Time)));
        // Exactly at the limit nothing goes (Kafka: now - max > retention.ms).
        assert_eq!(retention_start(&segments, &rules(now - (DAY + 5), -1), now, 60), None);
        assert_eq!(retention_start(&segments, &rules(now - (DAY + 5) - 1, -1), now, 60), Some((20, Breach::Time)));
        // -1: forever.
        assert_eq!(retention_start(&segments, &rules(-1, -1), now, 60), None);
        // An expired segment behind a live one stays: deletion goes from the front only.
        let mixed = batches(&[(100, 9 * DAY), (100, 9 * DAY), (100, DAY), (100, DAY), (100, 10 * DAY)], 1);
        assert_eq!(retention_start(&group(&mixed, 200, 7 * DAY), &rules(5 * DAY, -1), now, 5), None);
    }

    #[test]
    fn the_active_segment_goes_only_when_all_of_it_is_expired_and_committed() {
        let now = 10 * DAY;
        let b = batches(&[(100, DAY), (100, DAY), (100, 2 * DAY)], 10);
        let segments = group(&b, 200, 7 * DAY);
        assert_eq!(segments.len(), 2);
        // Everything expired and committed: the log empties, starting at its end.
        assert_eq!(retention_start(&segments, &rules(DAY, -1), now, 30), Some((30, Breach::Time)));
        // The last batch is not committed: its segment stays.
        assert_eq!(retention_start(&segments, &rules(DAY, -1), now, 29), Some((20, Breach::Time)));
        assert_eq!(retention_start(&segments, &rules(DAY, -1), now, 19), None);
        // Segments without timestamps never expire by time.
        let untimed = batches(&[(100, -1), (100, -1)], 1);
        assert_eq!(retention_start(&group(&untimed, 100, DAY), &rules(0, -1), now, 2), None);
    }

    #[test]
    fn size_retention_keeps_at_least_retention_bytes() {
        let now = DAY;
        let b = batches(&[(100, now); 7], 1);
        let segments = group(&b, 200, DAY); // 200, 200, 200, 100
        assert_eq!(bounds(&segments).len(), 4);
        // 700 bytes, keep >= 300: deleting 2 segments leaves 300.
        assert_eq!(retention_start(&segments, &rules(-1, 300), now, 7), Some((4, Breach::Size)));
        // keep >= 301: only one can go (500 left; 300 would be too little).
        assert_eq!(retention_start(&segments, &rules(-1, 301), now, 7), Some((2, Breach::Size)));
        assert_eq!(retention_start(&segments, &rules(-1, 600), now, 7), None);
        assert_eq!(retention_start(&segments, &rules(-1, 500), now, 7), Some((2, Breach::Size)));
        // retention.bytes 0: everything committed goes, the active segment included.
        assert_eq!(retention_start(&segments, &rules(-1, 0), now, 7), Some((7, Breach::Size)));
        // Never past the high watermark.
        assert_eq!(retention_start(&segments, &rules(-1, 0), now, 5), Some((4, Breach::Size)));
        // Time first, then size on what is left.
        let mixed = batches(&[(100, 0), (100, 0), (100, now), (100, now), (100, now), (100, now)], 1);
        let segments = group(&mixed, 200, DAY);
        assert_eq!(retention_start(&segments, &rules(1000, 200), now, 6), Some((4, Breach::TimeAndSize)));
    }
}
