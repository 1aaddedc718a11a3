//! Produce: validate each partition's batches, append them in request order, and
//! acknowledge once they are durable (in the WAL; fsynced when fsync is on).

use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::error_message;
use crate::broker::Broker;
use crate::metrics::Metrics;
use crate::error::StorageError;
use crate::storage::batch::{self, BatchError};
use crate::storage::{PartitionLog, Topic};

/// Appends every partition's batches now (so appends keep the order requests
/// arrived in on the connection) and returns a future that resolves to the
/// response once the appends are durable.
pub fn handle(
    broker: &Arc<Broker>,
    request: ProduceRequest,
    version: i16,
) -> impl Future<Output = ProduceResponse> + Send + 'static {
    let fsync = broker.config.fsync;
    let valid_acks = matches!(request.acks, -1..=1);
    let mut pending: Vec<(usize, usize, Arc<PartitionLog>, i64)> = Vec::new();
    let mut responses = Vec::with_capacity(request.topic_data.len());
    for (ti, topic_data) in request.topic_data.into_iter().enumerate() {
        let TopicProduceData { name, topic_id, partition_data, .. } = topic_data;
        let topic = if version >= 13 { broker.topics.get_by_id(topic_id) } else { broker.topics.get(name.0.as_str()) };
        let missing = || if version >= 13 { StorageError::UnknownTopicId } else { StorageError::UnknownTopicOrPartition };
        let mut partitions = Vec::with_capacity(partition_data.len());
        for (pi, data) in partition_data.into_iter().enumerate() {
            let index = data.index;
            let outcome = if !valid_acks {
                Err(None)
            } else {
                match &topic {
                    Some(topic) => append(broker, topic, data, fsync).map_err(Some),
                    None => Err(Some(missing())),
                }
            };
            partitions.push(match outcome {
                Ok((log, result, append_time)) => {
                    pending.push((ti, pi, log, result.log_end_offset));
                    let ok = PartitionProduceResponse::default()
                        .with_index(index)
                        .with_base_offset(result.base_offset)
                        .with_log_append_time_ms(append_time);
                    if version >= 5 {
                        ok.with_log_start_offset(result.log_start_offset)
                    } else {
                        ok
                    }
                }
                Err(Some(e)) => {
                    broker.metrics.errors.get_or_create(&Metrics::api(ApiKey::Produce)).inc();
                    tracing::debug!(topic = %name.0, partition = index, error = %e, "produce rejected");
                    let failure = failed(index, e.code(), error_message(&e), version);
                    match &e {
                        // Record errors exist from v8; the client fails those records with the
                        // error and the rest of the batch with INVALID_DIFFERENT_RECORD.
                        StorageError::KeylessRecordsInCompactedTopic(indexes) if version >= 8 => failure
                            .with_record_errors(
                                indexes
                                    .iter()
                                    .map(|&i| {
                                        BatchIndexAndErrorMessage::default().with_batch_index(i).with_batch_index_error_message(
                                            Some(StrBytes::from_static_str("Compacted topic cannot accept message without key")),
                                        )
                                    })
                                    .collect(),
                            ),
                        _ => failure,
                    }
                }
                Err(None) => failed(index, ResponseError::InvalidRequiredAcks.code(), None, version),
            });
        }
        let response = TopicProduceResponse::default().with_partition_responses(partitions);
        responses.push(if version >= 13 { response.with_topic_id(topic_id) } else { response.with_name(name) });
    }
    let broker = broker.clone();
    async move {
        if fsync && !pending.is_empty() {
            let durable = broker.store.wait_durable().await;
            for (ti, pi, log, log_end) in pending {
                match &durable {
                    Ok(()) => log.advance_high_watermark(log_end),
                    Err(e) => {
                        let index = responses[ti].partition_responses[pi].index;
                        responses[ti].partition_responses[pi] = failed(index, e.code(), error_message(e), version);
                    }
                }
            }
        }
        ProduceResponse::default().with_responses(responses)
    }
}

type Appended = (Arc<PartitionLog>, crate::storage::partition_log::AppendResult, i64);

fn append(broker: &Broker, topic: &Arc<Topic>, data: PartitionProduceData, defer_hw: bool) -> Result<Appended, StorageError> {
    let log = topic.partition(data.index).ok_or(StorageError::UnknownTopicOrPartition)?.clone();
    let records = data.records.ok_or(BatchError::Empty)?;
    let max_bytes: usize = topic.config("max.message.bytes").and_then(|v| v.parse().ok()).unwrap_or(1_048_588);
    let mut batches = batch::split_and_validate_for(records, max_bytes)?;
    if let Some((_, too_big)) = batches.iter().find(|(_, b)| b.len() > max_bytes) {
        return Err(StorageError::RecordTooLarge(too_big.len()));
    }
    if topic.config("cleanup.policy").is_some_and(|p| p.split(',').any(|p| p.trim() == "compact")) {
        // Compaction keeps the last record per key, so a record without one is refused, as
        // Kafka does, with its index (compressed batches are walked decompressed).
        let mut keyless = Vec::new();
        let mut first = 0;
        for (header, bytes) in &batches {
            keyless.extend(batch::keyless_records(bytes).unwrap_or_default().into_iter().map(|i| first + i));
            first += header.record_count;
        }
        if !keyless.is_empty() {
            return Err(StorageError::KeylessRecordsInCompactedTopic(keyless));
        }
    }
    let mut append_time = -1;
    if topic.config("message.timestamp.type") == Some("LogAppendTime") {
        append_time = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        for (header, bytes) in &mut batches {
            batch::set_log_append_time(bytes, append_time);
            *header = batch::BatchHeader::parse(bytes)?;
        }
    }
    let bytes: usize = batches.iter().map(|(_, b)| b.len()).sum();
    let records: i64 = batches.iter().map(|(h, _)| h.record_count as i64).sum();
    let result = log.append(batches, defer_hw)?;
    let labels = Metrics::topic(&topic.name);
    broker.metrics.bytes_in.get_or_create(&labels).inc_by(bytes as u64);
    broker.metrics.records_in.get_or_create(&labels).inc_by(records as u64);
    Ok((log, result, append_time))
}

fn failed(index: i32, code: i16, message: Option<kafka_protocol::protocol::StrBytes>, version: i16) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index).with_error_code(code).with_base_offset(-1);
    // The error message field exists from v8.
    if version >= 8 {
        response.with_error_message(message)
    } else {
        response
    }
}
