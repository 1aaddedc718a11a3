//! ListOffsets: earliest, latest, max-timestamp and by-timestamp lookups.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::error::KafkaError;
use super::Versions;
use crate::broker::{Broker, BrokerError, Partition, TopicRef};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// The ListOffsets versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(1, 10);

/// Answers a list-offsets request.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    // read_committed (isolation level 1, v2+): the latest offset is the last stable offset.
    let read_committed = request.isolation_level == 1;
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = super::auth::topic(
                &broker,
                &session,
                crate::security::acl::Operation::Describe,
                TopicRef::Name(t.name.0.as_str()),
            );
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let partition = match topic.as_ref().map_err(BrokerError::clone_lookup).and_then(|t| broker.partition(t, p.partition_index)) {
                        Ok(partition) => partition,
                        Err(e) => return base.with_error_code(e.code()),
                    };
                    if let Err(e) = partition.check_online().and_then(|()| partition.check_leader_epoch(p.current_leader_epoch)) {
                        return base.with_error_code(e.code());
                    }
                    match lookup(&partition, p.timestamp, read_committed) {
                        Ok(Some((offset, timestamp))) => {
                            let found = base.with_offset(offset).with_timestamp(timestamp);
                            // The leader epoch field exists from v4.
                            if version >= 4 {
                                found.with_leader_epoch(partition.offsets().leader_epoch)
                            } else {
                                found
                            }
                        }
                        Ok(None) => base,
                        Err(e) => base.with_error_code(e.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default().with_name(t.name).with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets timestamp or special value; None answers
/// offset -1 (no record at or after that time).
fn lookup(partition: &Partition, timestamp: i64, read_committed: bool) -> Result<Option<(i64, i64)>, BrokerError> {
    let offsets = partition.offsets();
    match timestamp {
        LATEST | LATEST_TIERED if read_committed => Ok(Some((partition.last_stable_offset(), -1))),
        LATEST | LATEST_TIERED => Ok(Some((offsets.high_watermark, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((offsets.log_start, -1))),
        MAX_TIMESTAMP => Ok(Some(partition.max_timestamp()?.unwrap_or((-1, -1)))),
        ts if ts < 0 => Err(BrokerError::UnknownOffsetSpec(ts)),
        ts => partition.offset_for_timestamp(ts),
    }
}
