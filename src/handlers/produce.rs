//! Produce: hand each partition's records to the domain in request order, then
//! answer once every append's ticket says the write is durable.

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use super::admin::error_message;
use super::error::KafkaError;
use super::{auth, Optional, Session, Versions};
use crate::broker::{AppendTicket, Broker, BrokerError, TopicRef};
use crate::metrics::Metrics;
use crate::security::acl::Operation;

/// The Produce versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(3, 13);

/// One partition of the request: its index and either the append's ticket or
/// the answer already decided (an error).
type Stage = (i32, Result<AppendTicket, PartitionProduceResponse>);

/// Appends every partition's records now (so appends keep the order requests
/// arrived in on the connection) and returns a future that resolves to the
/// response once the appends are durable (None for acks=0: no response).
pub fn handle(
    broker: Arc<Broker>,
    session: Session,
    request: ProduceRequest,
    version: i16,
) -> impl Future<Output = Optional<ProduceResponse>> + Send + 'static {
    let acks = request.acks;
    let valid_acks = matches!(acks, -1..=1);
    // A transactional produce needs TRANSACTIONAL_ID WRITE on its id (Kafka).
    let txn_denied = request.transactional_id.as_ref().and_then(|id| {
        auth::check(&broker, &session, Operation::Write, crate::security::acl::ResourceType::TransactionalId, id.as_str()).err()
    });
    let mut topics: Vec<(TopicProduceData, Vec<Stage>)> = Vec::with_capacity(request.topic_data.len());
    for mut topic_data in request.topic_data {
        let partition_data = std::mem::take(&mut topic_data.partition_data);
        let lookup = if version >= 13 {
            auth::topic(&broker, &session, Operation::Write, TopicRef::Id(topic_data.topic_id))
        } else {
            auth::topic(&broker, &session, Operation::Write, TopicRef::Name(topic_data.name.0.as_str()))
        };
        let stages = partition_data
            .into_iter()
            .map(|data| {
                let index = data.index;
                if !valid_acks {
                    return (index, Err(failed(index, ResponseError::InvalidRequiredAcks.code(), None, version)));
                }
                if let Some(e) = &txn_denied {
                    return (index, Err(failed(index, e.code(), None, version)));
                }
                let outcome = match &lookup {
                    Ok(topic) => broker.partition(topic, index).and_then(|p| {
                        let records = data.records.unwrap_or_default();
                        broker.append_produce(&p, records)
                    }),
                    Err(e) => Err(e.clone_lookup()),
                };
                (index, outcome.map_err(|e| rejected(&broker, &topic_data, index, &e, version)))
            })
            .collect();
        topics.push((topic_data, stages));
    }
    async move {
        let mut responses = Vec::with_capacity(topics.len());
        for (topic_data, stages) in topics {
            let mut partitions = Vec::with_capacity(stages.len());
            for (index, stage) in stages {
                partitions.push(match stage {
                    Ok(ticket) => match ticket.durable().await {
                        Ok(done) => {
                            let ok = PartitionProduceResponse::default()
                                .with_index(index)
                                .with_base_offset(done.base_offset)
                                .with_log_append_time_ms(done.log_append_time.unwrap_or(-1));
                            // The log start offset exists from v5.
                            if version >= 5 {
                                ok.with_log_start_offset(done.log_start_offset)
                            } else {
                                ok
                            }
                        }
                        Err(e) => failed(index, e.code(), error_message(&e), version),
                    },
                    Err(answer) => answer,
                });
            }
            let response = TopicProduceResponse::default().with_partition_responses(partitions);
            responses.push(if version >= 13 {
                response.with_topic_id(topic_data.topic_id)
            } else {
                response.with_name(topic_data.name)
            });
        }
        Optional((acks != 0).then(|| ProduceResponse::default().with_responses(responses)))
    }
}

/// The answer for a partition whose append was refused.
fn rejected(broker: &Broker, topic: &TopicProduceData, index: i32, e: &BrokerError, version: i16) -> PartitionProduceResponse {
    broker.metrics().errors.get_or_create(&Metrics::api(ApiKey::Produce)).inc();
    tracing::debug!(topic = %topic.name.0, partition = index, error = %e, "produce rejected");
    let failure = failed(index, e.code(), error_message(e), version);
    match e {
        // Record errors exist from v8; the client fails those records with the
        // error and the rest of the batch with INVALID_DIFFERENT_RECORD.
        BrokerError::KeylessRecordsInCompactedTopic(indexes) if version >= 8 => failure.with_record_errors(
            indexes
                .iter()
                .map(|&i| {
                    BatchIndexAndErrorMessage::default().with_batch_index(i).with_batch_index_error_message(Some(
                        StrBytes::from_static_str("Compacted topic cannot accept message without key"),
                    ))
                })
                .collect(),
        ),
        _ => failure,
    }
}

fn failed(index: i32, code: i16, message: Option<StrBytes>, version: i16) -> PartitionProduceResponse {
    let response = PartitionProduceResponse::default().with_index(index).with_error_code(code).with_base_offset(-1);
    // The error message field exists from v8.
    if version >= 8 {
        response.with_error_message(message)
    } else {
        response
    }
}
