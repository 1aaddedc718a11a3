//! Fetch: whole stored batches from each requested partition, long-polling until
//! `min_bytes` are available or `max_wait_ms` passes; appends wake waiting fetches.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use futures::FutureExt;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use super::leader_epoch_error;
use crate::broker::Broker;
use crate::error::StorageError;
use crate::metrics::Metrics;
use crate::storage::{batch, PartitionLog};

/// Upper bound on a long poll, whatever the client asks for.
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Wanted {
    /// The topic's name, when it exists (v13+ requests name topics by id only).
    resolved: Option<String>,
    name: TopicName,
    topic_id: Uuid,
    partitions: Vec<(FetchPartition, Result<Arc<PartitionLog>, StorageError>)>,
}

/// Answers a fetch, waiting for data as the request allows.
pub async fn handle(broker: Arc<Broker>, request: FetchRequest, version: i16) -> FetchResponse {
    if request.session_id != 0 {
        // This broker hands out no fetch sessions (KIP-227 allows that), so a
        // session id can only be stale.
        return FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let wanted = resolve(&broker, request.topics, version);
    let mut watchers: Vec<watch::Receiver<i64>> = wanted
        .iter()
        .flat_map(|t| t.partitions.iter())
        .filter_map(|(_, log)| log.as_ref().ok().map(|l| l.subscribe()))
        .collect();
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let max_bytes = if request.max_bytes <= 0 { i32::MAX } else { request.max_bytes } as usize;
    loop {
        for w in &mut watchers {
            w.borrow_and_update();
        }
        let (responses, bytes, any_error) = read_all(&wanted, max_bytes, version);
        if bytes >= request.min_bytes.max(0) as usize || any_error || watchers.is_empty() || Instant::now() >= deadline {
            return respond(&broker, &wanted, responses);
        }
        let changed = select_all(watchers.iter_mut().map(|w| w.changed().boxed()));
        let woken = tokio::select! {
            r = tokio::time::timeout_at(deadline, changed) => r.is_ok(),
            _ = broker.shutdown.cancelled() => false,
        };
        if !woken {
            let (responses, _, _) = read_all(&wanted, max_bytes, version);
            return respond(&broker, &wanted, responses);
        }
    }
}

fn resolve(broker: &Broker, topics: Vec<kafka_protocol::messages::fetch_request::FetchTopic>, version: i16) -> Vec<Wanted> {
    topics
        .into_iter()
        .map(|t| {
            let topic = if version >= 13 { broker.topics.get_by_id(t.topic_id) } else { broker.topics.get(t.topic.0.as_str()) };
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let log = match &topic {
                        Some(topic) => topic.partition(p.partition).cloned().ok_or(StorageError::UnknownTopicOrPartition),
                        None if version >= 13 => Err(StorageError::UnknownTopicId),
                        None => Err(StorageError::UnknownTopicOrPartition),
                    };
                    (p, log)
                })
                .collect();
            Wanted { resolved: topic.as_ref().map(|t| t.name.clone()), name: t.topic, topic_id: t.topic_id, partitions }
        })
        .collect()
}

/// Reads every partition once; returns the responses, bytes read and whether any
/// partition failed (an error answers the fetch at once, as Kafka does).
fn read_all(wanted: &[Wanted], max_bytes: usize, version: i16) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut any_error = false;
    let responses = wanted
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|(p, log)| {
                    let base = PartitionData::default().with_partition_index(p.partition).with_high_watermark(-1);
                    let log = match log {
                        Ok(log) => log,
                        Err(e) => {
                            any_error = true;
                            return base.with_error_code(e.code());
                        }
                    };
                    let offsets = log.offsets();
                    let base = with_offsets(base, offsets.high_watermark, offsets.log_start, version);
                    if let Some(code) = leader_epoch_error(p.current_leader_epoch, offsets.leader_epoch) {
                        any_error = true;
                        return base.with_error_code(code);
                    }
                    let budget = (p.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
                    if budget == 0 && total > 0 {
                        return base.with_records(Some(Bytes::new()));
                    }
                    match log.read(p.fetch_offset, budget.max(1), total == 0) {
                        Ok(read) => {
                            total += read.bytes;
                            with_offsets(base, read.high_watermark, read.log_start_offset, version)
                                .with_records(Some(read.records))
                        }
                        Err(e) => {
                            any_error = true;
                            base.with_error_code(e.code())
                        }
                    }
                })
                .collect();
            let response = FetchableTopicResponse::default().with_partitions(partitions);
            if version >= 13 {
                response.with_topic_id(t.topic_id)
            } else {
                response.with_topic(t.name.clone())
            }
        })
        .collect();
    (responses, total, any_error)
}

/// Builds the response and counts what it carries.
fn respond(broker: &Broker, wanted: &[Wanted], responses: Vec<FetchableTopicResponse>) -> FetchResponse {
    let metrics = &broker.metrics;
    for (w, r) in wanted.iter().zip(&responses) {
        let errors = r.partitions.iter().filter(|p| p.error_code != 0).count();
        if errors > 0 {
            metrics.errors.get_or_create(&Metrics::api(ApiKey::Fetch)).inc_by(errors as u64);
        }
        let Some(name) = &w.resolved else { continue };
        let (bytes, records) = r
            .partitions
            .iter()
            .filter_map(|p| p.records.as_ref())
            .fold((0u64, 0u64), |(b, n), recs| (b + recs.len() as u64, n + batch::count_records(recs)));
        if bytes > 0 {
            let labels = Metrics::topic(name);
            metrics.bytes_out.get_or_create(&labels).inc_by(bytes);
            metrics.records_out.get_or_create(&labels).inc_by(records);
        }
    }
    FetchResponse::default().with_responses(responses)
}

/// Sets the offsets a partition reports (log start offset exists from v5).
fn with_offsets(data: PartitionData, high_watermark: i64, log_start: i64, version: i16) -> PartitionData {
    let data = data.with_high_watermark(high_watermark).with_last_stable_offset(high_watermark);
    if version >= 5 {
        data.with_log_start_offset(log_start)
    } else {
        data
    }
}

