//! `Partition`: one partition replica as the domain sees it, and the
//! [`AppendTicket`] that makes a produce visible once it is durable.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::watch;

use super::error::BrokerError;
use crate::metrics::Metrics;
use crate::storage::batch::{self, BatchError, BatchHeader};
use crate::storage::partition_log::{LogOffsets, ReadResult, TxnMarker};
use crate::storage::{Durability, PartitionLog, Store, Topic};

/// One partition replica: its log (offsets, producer state, batches), the topic
/// policy that governs writes to it, and what makes a write durable.
///
/// A `Partition` is a cheap handle (a few `Arc`s) looked up per request through
/// [`Broker::partition`](super::Broker::partition).
#[derive(Clone)]
pub struct Partition {
    topic: Arc<Topic>,
    log: Arc<PartitionLog>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
}

/// What an append did, reported once it is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// Offset of the first record (the original one for a retried duplicate).
    pub base_offset: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// The broker's timestamp stamped on the batches (LogAppendTime topics), else None.
    pub log_append_time: Option<i64>,
}

/// A write that is in the log but not yet acknowledged. Waiting on it
/// ([`AppendTicket::durable`]) returns once the write is durable — today in the
/// local write-ahead log (fsynced when fsync is on); with replication, committed
/// by a majority — and it is the ticket that then advances the high watermark,
/// so consumers never see a record that is not durable.
///
/// A ticket dropped unawaited (the client went away) still advances the high
/// watermark when the write becomes durable.
pub struct AppendTicket {
    pending: Option<Pending>,
    appended: Appended,
}

struct Pending {
    log: Arc<PartitionLog>,
    log_end: i64,
    durability: Durability,
}

impl Pending {
    async fn complete(self) -> Result<(), BrokerError> {
        match self.durability.wait().await {
            Ok(()) => {
                self.log.advance_high_watermark(self.log_end);
                Ok(())
            }
            Err(e) => Err(BrokerError::NotDurable(e)),
        }
    }
}

impl AppendTicket {
    /// Waits until the write is durable, advances the high watermark, and reports it.
    pub async fn durable(mut self) -> Result<Appended, BrokerError> {
        if let Some(pending) = self.pending.take() {
            pending.complete().await?;
        }
        Ok(self.appended)
    }
}

impl Drop for AppendTicket {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = pending.complete().await {
                        tracing::error!(error = %e, "append of a dropped request not durable");
                    }
                });
            }
        }
    }
}

impl Partition {
    pub(super) fn new(topic: Arc<Topic>, log: Arc<PartitionLog>, store: Arc<Store>, metrics: Arc<Metrics>) -> Partition {
        Partition { topic, log, store, metrics }
    }

    /// The partition's log (for the domain's own modules, e.g. retention).
    pub(super) fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// The partition index.
    pub fn index(&self) -> i32 {
        self.log.partition()
    }

    /// The topic this partition belongs to.
    pub fn topic(&self) -> &Arc<Topic> {
        &self.topic
    }

    /// Log start, log end, high watermark and leader epoch right now.
    pub fn offsets(&self) -> LogOffsets {
        self.log.offsets()
    }

    /// Fails when the partition is offline (its stored data failed its checksums).
    pub fn check_online(&self) -> Result<(), BrokerError> {
        match self.log.failure() {
            Some(detail) => Err(crate::error::StorageError::Corruption {
                partition: format!("{}-{}", self.topic.name, self.index()),
                detail,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Checks a client's view of the leader epoch (-1: the client did not say).
    pub fn check_leader_epoch(&self, requested: i32) -> Result<(), BrokerError> {
        let current = self.offsets().leader_epoch;
        match requested {
            -1 => Ok(()),
            r if r < current => Err(BrokerError::FencedLeaderEpoch { requested: r, current }),
            r if r > current => Err(BrokerError::UnknownLeaderEpoch { requested: r, current }),
            _ => Ok(()),
        }
    }

    /// Appends the record batches of one produce to the log, in the order calls
    /// are made: validates them (framing, CRC, producer sequence) and the topic's
    /// policy (size, keys on compacted topics, LogAppendTime), assigns offsets,
    /// and writes them. The returned ticket resolves when the write is durable.
    pub fn append(&self, records: Bytes) -> Result<AppendTicket, BrokerError> {
        self.store.check_disk_space(records.len() as u64)?;
        let policy = &self.topic.policy;
        let mut batches =
            batch::split_and_validate_for(records, policy.max_message_bytes).map_err(crate::error::StorageError::from)?;
        if let Some((_, too_big)) = batches.iter().find(|(_, b)| b.len() > policy.max_message_bytes) {
            return Err(BrokerError::RecordTooLarge { size: too_big.len(), limit: policy.max_message_bytes });
        }
        if policy.compact {
            // Compaction keeps the last record per key, so a record without one is
            // refused, as Kafka does, with its index (compressed batches are walked
            // decompressed).
            let mut keyless = Vec::new();
            let mut first = 0;
            for (header, bytes) in &batches {
                keyless.extend(batch::keyless_records(bytes).unwrap_or_default().into_iter().map(|i| first + i));
                first += header.record_count;
            }
            if !keyless.is_empty() {
                return Err(BrokerError::KeylessRecordsInCompactedTopic(keyless));
            }
        }
        let mut log_append_time = None;
        if policy.log_append_time {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
            for (header, bytes) in &mut batches {
                batch::set_log_append_time(bytes, now);
                *header = BatchHeader::parse(bytes).map_err(|e: BatchError| crate::error::StorageError::from(e))?;
            }
            log_append_time = Some(now);
        }
        let bytes: usize = batches.iter().map(|(_, b)| b.len()).sum();
        let records: i64 = batches.iter().map(|(h, _)| h.record_count as i64).sum();
        let result = self.log.append(batches, true)?;
        let labels = Metrics::topic(&self.topic.name);
        self.metrics.bytes_in.get_or_create(&labels).inc_by(bytes as u64);
        self.metrics.records_in.get_or_create(&labels).inc_by(records as u64);
        let appended = Appended {
            base_offset: result.base_offset,
            log_start_offset: result.log_start_offset,
            log_append_time,
        };
        Ok(self.ticket(result.log_end_offset, appended))
    }

    /// The ticket of a write that ends the log at `log_end`: resolved at once when
    /// nothing is left to wait for (the high watermark moves now, even if nobody awaits
    /// the ticket), else when the write is durable.
    fn ticket(&self, log_end: i64, appended: Appended) -> AppendTicket {
        let pending = Pending { log: self.log.clone(), log_end, durability: self.store.durability() };
        if matches!(pending.durability, Durability::Done) {
            pending.log.advance_high_watermark(pending.log_end);
            return AppendTicket { pending: None, appended };
        }
        AppendTicket { pending: Some(pending), appended }
    }

    /// Writes a transaction marker (COMMIT or ABORT) for `marker.producer_id`; the
    /// ticket resolves once it is durable.
    pub fn append_marker(&self, marker: TxnMarker) -> Result<AppendTicket, BrokerError> {
        let result = self.log.append_marker(marker, true)?;
        let appended = Appended { base_offset: result.base_offset, log_start_offset: result.log_start_offset, log_append_time: None };
        Ok(self.ticket(result.log_end_offset, appended))
    }

    /// The last stable offset (first offset of the earliest open transaction, else the
    /// high watermark).
    pub fn last_stable_offset(&self) -> i64 {
        self.log.last_stable_offset()
    }

    /// [`read`](Self::read) for read_committed consumers: up to the last stable offset,
    /// with the aborted transactions overlapping the batches read.
    pub fn read_committed(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<ReadResult, BrokerError> {
        Ok(self.log.read_committed(offset, max_bytes, min_one)?)
    }

    /// Reads whole batches from the one containing `offset` up to the high
    /// watermark, at most `max_bytes` (but the first batch whole when `min_one`).
    pub fn read(&self, offset: i64, max_bytes: usize, min_one: bool) -> Result<ReadResult, BrokerError> {
        Ok(self.log.read(offset, max_bytes, min_one)?)
    }

    /// A receiver that changes whenever the high watermark moves (fetch wake-ups).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.log.subscribe()
    }

    /// The first offset whose record timestamp is >= `timestamp`, with that timestamp.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, BrokerError> {
        Ok(self.log.offset_for_timestamp(timestamp)?)
    }

    /// The offset and timestamp of the record with the largest timestamp.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, BrokerError> {
        Ok(self.log.max_timestamp()?)
    }

    /// Moves the log start offset to `before` (-1: the high watermark); returns the new one.
    pub fn delete_records(&self, before: i64) -> Result<i64, BrokerError> {
        Ok(self.log.delete_records(before)?)
    }

    /// Estimated bytes stored.
    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }
}

impl Partition {
    /// Kafka's `Partition.lastOffsetForLeaderEpoch`: checks the client's view of the
    /// current leader epoch (-1: not given), then answers the end offset of
    /// `leader_epoch` (the first offset of the next higher epoch, or the log end for
    /// the current one) with the largest epoch ≤ it; None when undefined (epoch -1, or
    /// newer than any this partition had).
    pub fn end_offset_for_leader_epoch(
        &self,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<Option<(i32, i64)>, BrokerError> {
        self.check_leader_epoch(current_leader_epoch)?;
        Ok(self.log.end_offset_for_epoch(leader_epoch)?)
    }
}
