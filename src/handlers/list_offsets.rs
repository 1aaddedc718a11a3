//! ListOffsets: earliest, latest, max-timestamp and by-timestamp lookups.

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::leader_epoch_error;
use crate::broker::Broker;
use crate::error::StorageError;
use crate::storage::PartitionLog;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Answers a list-offsets request.
pub async fn handle(broker: Arc<Broker>, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = request
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topics.get(t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                    let log = match topic.as_ref().and_then(|t| t.partition(p.partition_index)) {
                        Some(log) => log,
                        None => return base.with_error_code(StorageError::UnknownTopicOrPartition.code()),
                    };
                    if let Some(code) = leader_epoch_error(p.current_leader_epoch, log.offsets().leader_epoch) {
                        return base.with_error_code(code);
                    }
                    match lookup(log, p.timestamp) {
                        Ok(Some((offset, timestamp))) => {
                            let found = base.with_offset(offset).with_timestamp(timestamp);
                            // The leader epoch field exists from v4.
                            if version >= 4 {
                                found.with_leader_epoch(log.offsets().leader_epoch)
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
fn lookup(log: &PartitionLog, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
    let offsets = log.offsets();
    match timestamp {
        LATEST | LATEST_TIERED => Ok(Some((offsets.high_watermark, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((offsets.log_start, -1))),
        MAX_TIMESTAMP => Ok(Some(log.max_timestamp()?.unwrap_or((-1, -1)))),
        ts if ts < 0 => Err(StorageError::InvalidRequest(format!("unknown timestamp {ts}"))),
        ts => log.offset_for_timestamp(ts),
    }
}
