//! Prometheus metrics: request counts, errors and latency per API, bytes and
//! records in/out per topic, connections, per-partition offsets and sizes, and
//! consumer groups' committed offsets and lag (the last two read from the logs
//! and the group coordinator at scrape time, so they can never drift).

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::coordinator::GroupCoordinator;
use crate::storage::{Store, TopicStore};

/// Labels of per-API metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    /// Kafka API name, e.g. `Produce`.
    pub api: String,
}

/// Labels of per-topic metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// Topic name.
    pub topic: String,
}

/// Labels of per-partition metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Labels of per-group, per-partition metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupPartitionLabels {
    group: String,
    topic: String,
    partition: String,
}

/// Labels of connection-refusal metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Which limit refused the connection, e.g. `max_connections`.
    pub reason: String,
}

type HistogramFamily = Family<ApiLabels, Histogram, fn() -> Histogram>;

/// The broker's live metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests handled, per API.
    pub requests: Family<ApiLabels, Counter>,
    /// Requests (or partitions within them) answered with an error, per API.
    pub errors: Family<ApiLabels, Counter>,
    /// Request handling time, per API.
    pub latency: HistogramFamily,
    /// Bytes of record batches produced, per topic.
    pub bytes_in: Family<TopicLabels, Counter>,
    /// Records produced, per topic.
    pub records_in: Family<TopicLabels, Counter>,
    /// Bytes of record batches fetched, per topic.
    pub bytes_out: Family<TopicLabels, Counter>,
    /// Records fetched, per topic.
    pub records_out: Family<TopicLabels, Counter>,
    /// Open client connections.
    pub connections: Gauge,
    /// Connections accepted since start.
    pub connections_accepted: Counter,
    /// Connections closed at once because a limit was reached, per limit.
    pub connections_rejected: Family<ReasonLabels, Counter>,
    /// Connections closed after `connections_max_idle_ms` without a complete request.
    pub connections_idle_closed: Counter,
    /// Request frames that had to wait for room in the request buffer pool.
    pub request_pool_waits: Counter,
    /// Bytes reserved in the request buffer pool (`queued_max_request_bytes`).
    pub request_pool_bytes: Gauge,
    /// Requests refused by closing the connection (unsupported version, undecodable).
    pub requests_refused: Family<ApiLabels, Counter>,
    /// Record batch bytes deleted by retention, per topic.
    pub retention_deleted_bytes: Family<TopicLabels, Counter>,
    /// Records (offsets) deleted by retention, per topic.
    pub retention_deleted_records: Family<TopicLabels, Counter>,
    /// Log compaction: cleanings completed, per topic.
    pub cleaner_runs: Family<TopicLabels, Counter>,
    /// Log compaction: bytes of batches read by cleanings, per topic.
    pub cleaner_cleaned_bytes: Family<TopicLabels, Counter>,
    /// Log compaction: records removed (superseded, tombstones past their horizon), per topic.
    pub cleaner_removed_records: Family<TopicLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<ApiLabels, Counter>::default();
        let errors = Family::<ApiLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let bytes_in = Family::<TopicLabels, Counter>::default();
        let records_in = Family::<TopicLabels, Counter>::default();
        let bytes_out = Family::<TopicLabels, Counter>::default();
        let records_out = Family::<TopicLabels, Counter>::default();
        let connections = Gauge::default();
        let connections_accepted = Counter::default();
        registry.register("fluxo_requests", "Requests handled per Kafka API", requests.clone());
        registry.register("fluxo_request_errors", "Requests or partitions answered with an error, per Kafka API", errors.clone());
        registry.register("fluxo_request_duration_seconds", "Request handling time per Kafka API", latency.clone());
        registry.register("fluxo_topic_bytes_in", "Record batch bytes produced per topic", bytes_in.clone());
        registry.register("fluxo_topic_records_in", "Records produced per topic", records_in.clone());
        registry.register("fluxo_topic_bytes_out", "Record batch bytes fetched per topic", bytes_out.clone());
        registry.register("fluxo_topic_records_out", "Records fetched per topic", records_out.clone());
        registry.register("fluxo_connections", "Open client connections", connections.clone());
        registry.register("fluxo_connections_accepted", "Client connections accepted", connections_accepted.clone());
        let connections_rejected = Family::<ReasonLabels, Counter>::default();
        let connections_idle_closed = Counter::default();
        let request_pool_waits = Counter::default();
        let request_pool_bytes = Gauge::default();
        let requests_refused = Family::<ApiLabels, Counter>::default();
        registry.register(
            "fluxo_connections_rejected",
            "Connections closed at once because a connection limit was reached, per limit",
            connections_rejected.clone(),
        );
        registry.register(
            "fluxo_connections_idle_closed",
            "Connections closed after connections_max_idle_ms without a complete request",
            connections_idle_closed.clone(),
        );
        registry.register(
            "fluxo_request_pool_waits",
            "Request frames that waited for room in the request buffer pool (queued_max_request_bytes)",
            request_pool_waits.clone(),
        );
        registry.register(
            "fluxo_request_pool_bytes",
            "Bytes of request frames reserved in the request buffer pool",
            request_pool_bytes.clone(),
        );
        registry.register(
            "fluxo_requests_refused",
            "Requests answered by closing the connection (unsupported version, undecodable), per API",
            requests_refused.clone(),
        );
        let retention_deleted_bytes = Family::<TopicLabels, Counter>::default();
        let retention_deleted_records = Family::<TopicLabels, Counter>::default();
        registry.register(
            "fluxo_retention_deleted_bytes",
            "Record batch bytes deleted by retention (retention.ms, retention.bytes), per topic",
            retention_deleted_bytes.clone(),
        );
        registry.register(
            "fluxo_retention_deleted_records",
            "Records deleted by retention (retention.ms, retention.bytes), per topic",
            retention_deleted_records.clone(),
        );
        let cleaner_runs = Family::<TopicLabels, Counter>::default();
        let cleaner_cleaned_bytes = Family::<TopicLabels, Counter>::default();
        let cleaner_removed_records = Family::<TopicLabels, Counter>::default();
        registry.register("fluxo_cleaner_runs", "Log compaction cleanings completed, per topic", cleaner_runs.clone());
        registry.register("fluxo_cleaner_cleaned_bytes", "Bytes of record batches read by log compaction, per topic", cleaner_cleaned_bytes.clone());
        registry.register(
            "fluxo_cleaner_removed_records",
            "Records removed by log compaction (superseded values, expired tombstones), per topic",
            cleaner_removed_records.clone(),
        );
        Metrics {
            registry,
            requests,
            errors,
            latency,
            bytes_in,
            records_in,
            bytes_out,
            records_out,
            connections,
            connections_accepted,
            connections_rejected,
            connections_idle_closed,
            request_pool_waits,
            request_pool_bytes,
            requests_refused,
            retention_deleted_bytes,
            retention_deleted_records,
            cleaner_runs,
            cleaner_cleaned_bytes,
            cleaner_removed_records,
        }
    }
}

impl Metrics {
    /// Labels for an API.
    pub fn api(api: impl std::fmt::Debug) -> ApiLabels {
        ApiLabels { api: format!("{api:?}") }
    }

    /// Labels for a connection-refusal reason.
    pub fn reason(reason: &str) -> ReasonLabels {
        ReasonLabels { reason: reason.to_string() }
    }

    /// Labels for a topic.
    pub fn topic(name: &str) -> TopicLabels {
        TopicLabels { topic: name.to_string() }
    }

    /// The Prometheus text exposition of every metric, partitions and groups included.
    pub fn render(&self, store: &Store, topics: &TopicStore, groups: &GroupCoordinator) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        // Partition gauges are read from the logs at scrape time; `encode` of a
        // second registry appends another `# EOF`, so drop the first one.
        if let Some(stripped) = out.strip_suffix("# EOF\n") {
            out.truncate(stripped.len());
        }
        let mut partitions = Registry::default();
        let log_end = Family::<PartitionLabels, Gauge>::default();
        let high_watermark = Family::<PartitionLabels, Gauge>::default();
        let log_start = Family::<PartitionLabels, Gauge>::default();
        let size = Family::<PartitionLabels, Gauge>::default();
        for topic in topics.all() {
            for log in &topic.partitions {
                let labels = PartitionLabels { topic: topic.name.clone(), partition: log.partition().to_string() };
                let offsets = log.offsets();
                log_end.get_or_create(&labels).set(offsets.log_end);
                high_watermark.get_or_create(&labels).set(offsets.high_watermark);
                log_start.get_or_create(&labels).set(offsets.log_start);
                size.get_or_create(&labels).set(log.size_bytes() as i64);
            }
        }
        partitions.register("fluxo_partition_log_end_offset", "Next offset to be written", log_end);
        partitions.register("fluxo_partition_high_watermark", "Offsets below this are visible to consumers", high_watermark);
        partitions.register("fluxo_partition_log_start_offset", "First offset still in the log", log_start);
        partitions.register("fluxo_partition_size_bytes", "Estimated bytes stored for the partition", size);
        let producer_ids: Gauge = Gauge::default();
        producer_ids.set(topics.producer_count() as i64);
        partitions.register("fluxo_producer_ids", "Idempotent producer states held, one per producer and partition", producer_ids);
        // Consumer groups: the committed offset of each (group, topic, partition) and
        // its lag, the partition's high watermark minus that offset (never below 0:
        // an offset committed past the high watermark has nothing left to read).
        let committed = Family::<GroupPartitionLabels, Gauge>::default();
        let lag = Family::<GroupPartitionLabels, Gauge>::default();
        for (group, topic, partition, offset) in groups.committed_offsets() {
            let high_watermark = topics.get(&topic).and_then(|t| t.partition(partition).map(|l| l.offsets().high_watermark));
            let labels = GroupPartitionLabels { group, topic, partition: partition.to_string() };
            committed.get_or_create(&labels).set(offset);
            if let Some(hw) = high_watermark {
                lag.get_or_create(&labels).set((hw - offset).max(0));
            }
        }
        partitions.register("fluxo_group_committed_offset", "Offset a consumer group committed for the partition", committed);
        partitions.register("fluxo_group_lag", "High watermark minus the group's committed offset", lag);
        register_memory(&mut partitions, store);
        register_storage_health(&mut partitions, store);
        let _ = encode(&mut out, &partitions);
        out
    }
}

/// Memory gauges, read at scrape time: where the broker's resident memory goes.
fn register_memory(registry: &mut Registry, store: &Store) {
    let gauge = |v: usize| {
        let g: Gauge = Gauge::default();
        g.set(v as i64);
        g
    };
    let rocksdb = store.memory();
    registry.register("fluxo_storage_memtable_bytes", "RocksDB memtable memory, all partitions", gauge(rocksdb.memtable_bytes));
    registry.register(
        "fluxo_storage_block_cache_bytes",
        "RocksDB block cache use, memtable reservations included",
        gauge(rocksdb.block_cache_bytes),
    );
    // jemalloc's statistics are cached until the epoch advances.
    if tikv_jemalloc_ctl::epoch::advance().is_ok() {
        if let Ok(v) = tikv_jemalloc_ctl::stats::allocated::read() {
            registry.register("fluxo_allocator_allocated_bytes", "Bytes the broker has allocated and not freed", gauge(v));
        }
        if let Ok(v) = tikv_jemalloc_ctl::stats::resident::read() {
            registry.register("fluxo_allocator_resident_bytes", "Bytes of allocator pages resident in memory", gauge(v));
        }
    }
}

/// Labels of the storage corruption counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CorruptionLabels {
    kind: String,
}

/// Storage fault counters, read at scrape time from the store: corruption found,
/// acknowledged records lost to it, and the database refusing writes.
fn register_storage_health(registry: &mut Registry, store: &Store) {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = store.stats();
    let counter = |v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        c
    };
    let corruption = Family::<CorruptionLabels, Counter>::default();
    corruption.get_or_create(&CorruptionLabels { kind: "wal".into() }).inc_by(stats.wal_corruptions.load(Relaxed));
    corruption.get_or_create(&CorruptionLabels { kind: "sst".into() }).inc_by(stats.sst_corruptions.load(Relaxed));
    registry.register(
        "fluxo_storage_corruption",
        "Damaged write-ahead logs (kind=wal) and partitions with corrupted table data (kind=sst) found",
        corruption,
    );
    registry.register(
        "fluxo_storage_recovery_lost_records",
        "Acknowledged records found missing when recovering from damaged storage",
        counter(stats.lost_records.load(Relaxed)),
    );
    registry.register(
        "fluxo_storage_write_failures",
        "Times the database stopped accepting writes (e.g. no file descriptor or disk space left)",
        counter(stats.write_failures.load(Relaxed)),
    );
    registry.register(
        "fluxo_storage_reopens",
        "Times the database was reopened to recover from refusing writes",
        counter(stats.reopens.load(Relaxed)),
    );
    let unwritable: Gauge = Gauge::default();
    unwritable.set(stats.unwritable.load(Relaxed) as i64);
    registry.register("fluxo_storage_unwritable", "1 while the database refuses writes", unwritable);
    let disk_full: Gauge = Gauge::default();
    disk_full.set(stats.disk_full.load(Relaxed) as i64);
    registry.register(
        "fluxo_storage_disk_full",
        "1 while produce is refused because the data directory's disk is full",
        disk_full,
    );
}
