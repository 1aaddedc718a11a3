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
use super::{auth, Versions};
use crate::broker::Broker;
use crate::security::acl::{AuthorizationError, Operation, ResourceType};
use crate::coordinator::FetchedOffsets;
use crate::coordinator::StoredOffset;
use crate::error::GroupError;

type Wanted = Option<Vec<(String, Vec<i32>)>>;

/// The OffsetFetch versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(1, 9);

/// Answers an offset fetch.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version < 8 {
        let wanted: Wanted = request
            .topics
            .map(|ts| ts.into_iter().map(|t| (t.name.0.to_string(), t.partition_indexes)).collect());
        let result = fetch_authorized(&broker, &session, request.group_id.as_str(), wanted.clone(), None);
        // require_stable exists from v7 (KIP-447).
        let result = stable_only(&broker, request.group_id.as_str(), version >= 7 && request.require_stable, result);
        return single_group(result, wanted, version);
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
            let result = fetch_authorized(&broker, &session, g.group_id.as_str(), wanted, member);
            let result = stable_only(&broker, g.group_id.as_str(), request.require_stable, result);
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id);
            match result {
                Ok(fetched) => group.with_topics(topics_v8(fetched)),
                Err(e) => group.with_error_code(e.code()),
            }
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// Per topic and partition: the committed offset, and the error code the
/// partition carries (0, or TOPIC_AUTHORIZATION_FAILED).
type Answered = Vec<(String, Vec<(i32, Option<StoredOffset>, i16)>)>;

/// Fetches a group's offsets as Kafka authorizes it: GROUP DESCRIBE (implied by
/// READ) for the group; then TOPIC DESCRIBE per topic. Requested topics the client
/// may not describe answer TOPIC_AUTHORIZATION_FAILED in each partition; when all
/// topics are asked for, those topics are left out.
fn fetch_authorized(
    broker: &Broker,
    session: &super::Session,
    group: &str,
    wanted: Wanted,
    member: Option<(&str, i32)>,
) -> Result<Answered, GroupError> {
    auth::check(broker, session, Operation::Describe, ResourceType::Group, group).map_err(GroupError::NotAuthorized)?;
    let describable = |topic: &str| auth::allowed(broker, session, Operation::Describe, ResourceType::Topic, topic);
    let committed = |fetched: FetchedOffsets| -> Answered {
        fetched.into_iter().map(|(t, ps)| (t, ps.into_iter().map(|(p, o)| (p, o, 0)).collect())).collect()
    };
    let Some(wanted) = wanted else {
        let fetched = broker.groups().fetch_offsets(group, None, member)?;
        return Ok(committed(fetched.into_iter().filter(|(t, _)| describable(t.as_str())).collect()));
    };
    let (allowed, refused): (Vec<_>, Vec<_>) = wanted.into_iter().partition(|(t, _)| describable(t.as_str()));
    let fetched = broker.groups().fetch_offsets(group, Some(&allowed), member)?;
    let mut answered = committed(fetched);
    let denied = AuthorizationError::Topic.code();
    answered.extend(refused.into_iter().map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None, denied)).collect())));
    Ok(answered)
}

/// With `require_stable` (KIP-447): a partition whose offset a transaction has yet to
/// commit answers no offset and UNSTABLE_OFFSET_COMMIT, so the client retries.
fn stable_only(broker: &Broker, group: &str, require_stable: bool, result: Result<Answered, GroupError>) -> Result<Answered, GroupError> {
    if !require_stable {
        return result;
    }
    let unstable = broker.txns().unstable_offsets(group);
    let code = ResponseError::UnstableOffsetCommit.code();
    result.map(|answered| {
        answered
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(p, offset, error)| match error == 0 && unstable.contains(&(topic.clone(), p)) {
                        true => (p, None, code),
                        false => (p, offset, error),
                    })
                    .collect();
                (topic, partitions)
            })
            .collect()
    })
}

fn single_group(result: Result<Answered, GroupError>, wanted: Wanted, version: i16) -> OffsetFetchResponse {
    match result {
        Ok(fetched) => OffsetFetchResponse::default().with_topics(topics_v1(fetched, version)),
        Err(e) if version >= 2 => OffsetFetchResponse::default().with_error_code(e.code()),
        // v1 has no top-level error: every requested partition carries it.
        Err(e) => {
            let code = e.code();
            let fetched = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, ps)| (t, ps.into_iter().map(|p| (p, None, code)).collect()))
                .collect();
            OffsetFetchResponse::default().with_topics(topics_v1(fetched, version))
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

fn topics_v1(fetched: Answered, version: i16) -> Vec<OffsetFetchResponseTopic> {
    fetched
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, offset, error)| {
                    let (committed, epoch, metadata) = committed_fields(offset);
                    let partition = OffsetFetchResponsePartition::default()
                        .with_partition_index(p)
                        .with_committed_offset(committed)
                        .with_metadata(Some(StrBytes::from_string(metadata)))
                        .with_error_code(error);
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

fn topics_v8(fetched: Answered) -> Vec<OffsetFetchResponseTopics> {
    fetched
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, offset, error)| {
                    let (committed, epoch, metadata) = committed_fields(offset);
                    OffsetFetchResponsePartitions::default()
                        .with_error_code(error)
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
