//! Fetch: read several partitions, long-polling until enough bytes are there.
//! A woken poll re-reads only the partitions whose high watermark moved.

use std::time::Duration;

use futures::future::select_all;
use futures::FutureExt;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{Broker, BrokerError, Partition};
use crate::metrics::Metrics;
use crate::storage::batch;
use crate::storage::partition_log::ReadResult;

/// One partition a fetch asks for.
pub struct FetchTarget {
    /// The partition, or why it cannot be read (unknown topic, …).
    pub partition: Result<Partition, BrokerError>,
    /// First offset wanted.
    pub offset: i64,
    /// Most bytes wanted from this partition.
    pub max_bytes: usize,
    /// The client's leader epoch (-1: not given).
    pub leader_epoch: i32,
    /// read_committed: stop at the last stable offset and report aborted transactions.
    pub read_committed: bool,
}

/// A fetch: its partitions and how long and for how much to wait.
pub struct FetchRequestSpec {
    /// The partitions, in the order the client listed them.
    pub targets: Vec<FetchTarget>,
    /// Answer once at least this many bytes are available.
    pub min_bytes: usize,
    /// Most bytes in the whole answer.
    pub max_bytes: usize,
    /// Answer after this long even with fewer than `min_bytes`.
    pub max_wait: Duration,
}

/// What one partition of a fetch answered.
#[derive(Debug)]
pub struct FetchedPartition {
    /// High watermark (-1 when the partition is unknown).
    pub high_watermark: i64,
    /// Log start offset (-1 when the partition is unknown).
    pub log_start_offset: i64,
    /// Last stable offset (-1 when the partition is unknown).
    pub last_stable_offset: i64,
    /// The batches read, or why none could be.
    pub result: Result<ReadResult, BrokerError>,
}

impl Broker {
    /// Reads every target, waiting as `spec` allows for `min_bytes` to be available.
    /// Any partition error answers at once, as Kafka does.
    pub async fn fetch(&self, spec: FetchRequestSpec) -> Vec<FetchedPartition> {
        let deadline = Instant::now() + spec.max_wait;
        // Each readable partition's high-watermark receiver and the value last read at.
        let mut watchers: Vec<Option<(watch::Receiver<i64>, i64)>> = spec
            .targets
            .iter()
            .map(|t| t.partition.as_ref().ok().map(|p| {
                let mut rx = p.subscribe();
                let seen = *rx.borrow_and_update();
                (rx, seen)
            }))
            .collect();
        let mut results: Vec<FetchedPartition> = Vec::with_capacity(spec.targets.len());
        let mut total = 0usize;
        for target in &spec.targets {
            let read = read_one(target, spec.max_bytes.saturating_sub(total), total == 0);
            total += read_bytes(&read);
            results.push(read);
        }
        loop {
            let any_error = results.iter().any(|r| r.result.is_err());
            let waiting = watchers.iter().any(Option::is_some);
            if total >= spec.min_bytes || any_error || !waiting || Instant::now() >= deadline {
                break;
            }
            let changed = select_all(watchers.iter_mut().flatten().map(|(rx, _)| rx.changed().boxed()));
            let woken = tokio::select! {
                r = tokio::time::timeout_at(deadline, changed) => matches!(r, Ok((Ok(()), _, _))),
                _ = self.shutdown.cancelled() => false,
            };
            // Re-read the partitions whose high watermark moved (also after a timeout
            // that raced with an append), and only those.
            for (i, watcher) in watchers.iter_mut().enumerate() {
                let Some((rx, seen)) = watcher else { continue };
                let now = *rx.borrow_and_update();
                if now == *seen {
                    continue;
                }
                *seen = now;
                total -= read_bytes(&results[i]);
                let read = read_one(&spec.targets[i], spec.max_bytes.saturating_sub(total), total == 0);
                total += read_bytes(&read);
                results[i] = read;
            }
            if !woken {
                break;
            }
        }
        self.count_fetched(&spec.targets, &results);
        results
    }

    fn count_fetched(&self, targets: &[FetchTarget], results: &[FetchedPartition]) {
        for (target, fetched) in targets.iter().zip(results) {
            let (Ok(partition), Ok(read)) = (&target.partition, &fetched.result) else { continue };
            if read.bytes > 0 {
                let labels = Metrics::topic(&partition.topic().name);
                self.metrics.bytes_out.get_or_create(&labels).inc_by(read.bytes as u64);
                self.metrics.records_out.get_or_create(&labels).inc_by(batch::count_records(&read.records));
            }
        }
    }
}

fn read_bytes(fetched: &FetchedPartition) -> usize {
    fetched.result.as_ref().map(|r| r.bytes).unwrap_or(0)
}

/// Reads one partition within `budget` bytes of the whole answer.
fn read_one(target: &FetchTarget, budget: usize, first: bool) -> FetchedPartition {
    let partition = match &target.partition {
        Ok(p) => p,
        Err(e) => {
            return FetchedPartition {
                high_watermark: -1,
                log_start_offset: -1,
                last_stable_offset: -1,
                result: Err(e.clone_lookup()),
            };
        }
    };
    let offsets = partition.offsets();
    let mut fetched = FetchedPartition {
        high_watermark: offsets.high_watermark,
        log_start_offset: offsets.log_start,
        last_stable_offset: partition.last_stable_offset(),
        result: Ok(ReadResult::default()),
    };
    if let Err(e) = partition.check_leader_epoch(target.leader_epoch) {
        fetched.result = Err(e);
        return fetched;
    }
    let budget = target.max_bytes.min(budget);
    if budget == 0 && !first {
        return fetched;
    }
    fetched.result = if target.read_committed {
        partition.read_committed(target.offset, budget.max(1), first)
    } else {
        partition.read(target.offset, budget.max(1), first)
    };
    if let Ok(read) = &fetched.result {
        fetched.high_watermark = read.high_watermark;
        fetched.log_start_offset = read.log_start_offset;
        fetched.last_stable_offset = read.last_stable_offset;
    }
    fetched
}
