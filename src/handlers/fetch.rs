//! Fetch: whole stored batches from each requested partition, long-polling until
//! `min_bytes` are available or `max_wait_ms` passes (the domain's `Broker::fetch`).

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{AbortedTransaction, FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, ProducerId};

use super::error::KafkaError;
use super::{auth, Session, Sharing, Versions};
use crate::broker::{Broker, FetchRequestSpec, FetchTarget, FetchedPartition, TopicRef};
use crate::metrics::Metrics;
use crate::security::acl::Operation;

/// The Fetch versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(4, 17);

/// The isolation level of a read_committed consumer.
const READ_COMMITTED: i8 = 1;

/// Upper bound on a long poll, whatever the client asks for.
const MAX_WAIT: Duration = Duration::from_secs(30);

/// Answers a fetch, waiting for data as the request allows.
pub async fn handle(broker: Arc<Broker>, session: Session, request: FetchRequest, version: i16) -> Sharing<FetchResponse> {
    if request.session_id != 0 {
        // This broker hands out no fetch sessions (KIP-227 allows that), so a
        // session id can only be stale.
        let body = FetchResponse::default().with_error_code(ResponseError::FetchSessionIdNotFound.code());
        return Sharing { body, shared: Vec::new() };
    }
    // The response repeats each topic as the request named it, partitions in order.
    let mut shape = Vec::with_capacity(request.topics.len());
    let mut targets = Vec::new();
    for t in request.topics {
        let topic = if version >= 13 {
            auth::topic(&broker, &session, Operation::Read, TopicRef::Id(t.topic_id))
        } else {
            auth::topic(&broker, &session, Operation::Read, TopicRef::Name(t.topic.0.as_str()))
        };
        let mut indexes = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            indexes.push(p.partition);
            targets.push(FetchTarget {
                partition: topic.as_ref().map_err(|e| e.clone_lookup()).and_then(|topic| broker.partition(topic, p.partition)),
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                leader_epoch: p.current_leader_epoch,
                read_committed: request.isolation_level == READ_COMMITTED,
            });
        }
        shape.push((t.topic, t.topic_id, indexes));
    }
    let spec = FetchRequestSpec {
        targets,
        min_bytes: request.min_bytes.max(0) as usize,
        max_bytes: if request.max_bytes <= 0 { i32::MAX as usize } else { request.max_bytes as usize },
        max_wait: Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT),
    };
    let read_committed = request.isolation_level == READ_COMMITTED;
    let mut fetched = broker.fetch(spec).await.into_iter();
    let mut errors = 0u64;
    let mut shared = Vec::new();
    let responses = shape
        .into_iter()
        .map(|(name, topic_id, indexes)| {
            let partitions = indexes
                .into_iter()
                .map(|index| {
                    let f = fetched.next().expect("one result per requested partition");
                    errors += f.result.is_err() as u64;
                    if let Ok(read) = &f.result {
                        shared.push(read.records.clone());
                    }
                    partition_data(index, f, version, read_committed)
                })
                .collect();
            let response = FetchableTopicResponse::default().with_partitions(partitions);
            if version >= 13 {
                response.with_topic_id(topic_id)
            } else {
                response.with_topic(name)
            }
        })
        .collect();
    if errors > 0 {
        broker.metrics().errors.get_or_create(&Metrics::api(ApiKey::Fetch)).inc_by(errors);
    }
    Sharing { body: FetchResponse::default().with_responses(responses), shared }
}

fn partition_data(index: i32, fetched: FetchedPartition, version: i16, read_committed: bool) -> PartitionData {
    let data = PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(fetched.high_watermark)
        .with_last_stable_offset(fetched.last_stable_offset);
    // The log start offset exists from v5.
    let data = if version >= 5 { data.with_log_start_offset(fetched.log_start_offset) } else { data };
    match fetched.result {
        Ok(read) => {
            // Aborted transactions are reported to read_committed fetches only (null otherwise, as Kafka).
            let aborted = read_committed.then(|| {
                read.aborted
                    .iter()
                    .map(|a| AbortedTransaction::default().with_producer_id(ProducerId(a.producer_id)).with_first_offset(a.first_offset))
                    .collect()
            });
            data.with_aborted_transactions(aborted).with_records(Some(read.records))
        }
        Err(e) => data.with_error_code(e.code()),
    }
}
