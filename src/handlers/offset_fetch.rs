//! OffsetFetch: committed offsets of one group (v1–7) or several (v8+), for the
//! requested partitions or all of them.

use std::sync::Arc;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;
use crate::coordinator::FetchedOffsets;
use crate::coordinator::StoredOffset;
use crate::error::GroupError;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// The OffsetFetch versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(1, 9);

/// Answers an offset fetch.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    use crate::security::acl::{Operation, ResourceType};
    // Kafka: GROUP DESCRIBE (implied by READ).
    let check = |group: &str| super::auth::check(&broker, &session, Operation::Describe, ResourceType::Group, group);
    if version < 8 {
        let wanted: Wanted = request
            .topics
            .map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        let result = match check(request.group_id.as_str()) {
            Err(e) => Err(GroupError::NotAuthorized(e)),
            Ok(()) => broker.groups().fetch_offsets(&request.group_id, wanted.as_deref(), None),
        };
        // require_stable exists from v7 (KIP-447).
        let unstable = unstable(&broker, request.group_id.as_str(), version >= 7 && request.require_stable);
        return single_group(result, wanted, version, &unstable);
    }
    let groups = request
        .groups
        .into_iter()
        .map(|g| {
            let wanted: Wanted = g.topics.map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
            // v9: a KIP-848 member names itself; epoch -1 without a member id is an admin fetch.
            let member_id = g.member_id.as_ref().map(|m| m.to_string());
            let member = match &member_id {
                Some(id) if version >= 9 && !(id.is_empty() && g.member_epoch < 0) => Some((id.as_str(), g.member_epoch)),
                _ => None,
            };
            let result = match check(g.group_id.as_str()) {
                Err(e) => Err(GroupError::NotAuthorized(e)),
                Ok(()) => broker.groups().fetch_offsets(&g.group_id, wanted.as_deref(), member),
            };
            let unstable = unstable(&broker, g.group_id.as_str(), request.require_stable);
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id);
            match result {
                Ok(fetched) => group.with_topics(topics_v8(fetched, &unstable)),
                Err(e) => group.with_error_code(e.code()),
            }
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// The partitions of `group` whose offsets a transaction has yet to commit, when the
/// client asked for stable offsets only (else none).
fn unstable(broker: &Broker, group: &str, require_stable: bool) -> Unstable {
    if require_stable {
        broker.txns().unstable_offsets(group)
    } else {
        Unstable::new()
    }
}

type Unstable = std::collections::HashSet<(String, i32)>;

/// A partition with a pending transactional offset: no offset, UNSTABLE_OFFSET_COMMIT.
fn unstable_answer(unstable: &Unstable, topic: &str, partition: i32, offset: Option<StoredOffset>) -> (Option<StoredOffset>, i16) {
    if unstable.contains(&(topic.to_string(), partition)) {
        (None, ResponseError::UnstableOffsetCommit.code())
    } else {
        (offset, 0)
    }
}

fn single_group(result: Result<FetchedOffsets, GroupError>, wanted: Wanted, version: i16, unstable: &Unstable) -> OffsetFetchResponse {
    match result {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(topics_v1(fetched, version, 0, unstable)),
        Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
        // v1 has no top-level error: every requested partition carries it.
        Err(e) => {
            let fetched = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None)).collect()))
                .collect();
            OffsetFetchResponse::default().with_topics(topics_v1(fetched, version, e.code(), &Unstable::new()))
        }
    }
}

/// Offset, leader epoch and metadata as a response reports them (-1, -1, "" when none).
fn committed_fields(offset: Option<StoredOffset>) -> (i64, i32, String) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch, o.metadata),
        None => (-1, -1, String::new()),
    }
}

fn topics_v1(fetched: FetchedOffsets, version: i16, error: i16, unstable: &Unstable) -> Vec<OffsetFetchResponseTopic> {
    fetched
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, offset)| {
                    let (offset, unstable_code) = unstable_answer(unstable, &topic, p, offset);
                    let (committed, epoch, metadata) = committed_fields(offset);
                    let partition = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(committed)
                        .with_metadata(Some(StrBytes::from_string(metadata)))
                        .with_error_code(if error != 0 { error } else { unstable_code });
                    if version >= 5 {
                        partition.with_committed_leader_epoch(epoch)
                    } else {
                        partition
                    }
                })
                .collect();
            OffsetFetchResponseTopic::default().with_name(TopicName(StrBytes::from_string(topic))).with_partitions(partitions)
        })
        .collect()
}

fn topics_v8(fetched: FetchedOffsets, unstable: &Unstable) -> Vec<OffsetFetchResponseTopics> {
    fetched
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, offset)| {
                    let (offset, unstable_code) = unstable_answer(unstable, &topic, p, offset);
                    let (committed, epoch, metadata) = committed_fields(offset);
                    OffsetFetchResponsePartitions::default()
                        .with_error_code(unstable_code)
                        .with_partition_index(p)
                        .with_committed_offset(committed)
                        .with_committed_leader_epoch(epoch)
                        .with_metadata(Some(StrBytes::from_string(metadata)))
                })
                .collect();
            OffsetFetchResponseTopics::default().with_name(TopicName(StrBytes::from_string(topic))).with_partitions(partitions)
        })
        .collect()
}
