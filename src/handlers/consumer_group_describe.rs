//! ConsumerGroupDescribe (KIP-848): epochs, assignor and members with their current
//! and target assignments. Classic groups get GROUP_ID_NOT_FOUND (clients then use
//! DescribeGroups).

use std::sync::Arc;

use kafka_protocol::messages::consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;
use crate::coordinator::NamedAssignment;

/// Member type of a consumer-protocol member (v1, KIP-1099).
const MEMBER_TYPE_CONSUMER: i8 = 1;

fn assignment(a: NamedAssignment) -> Assignment {
    Assignment::default().with_topic_partitions(
        a.into_iter()
            .map(|(id, name, ps)| {
                TopicPartitions::default().with_topic_id(id).with_topic_name(TopicName(StrBytes::from_string(name))).with_partitions(ps)
            })
            .collect(),
    )
}

/// The ConsumerGroupDescribe versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 1);

use crate::security::acl::{Operation, ResourceType};

/// Describes each KIP-848 group the client may describe (GROUP DESCRIBE).
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: ConsumerGroupDescribeRequest, version: i16) -> ConsumerGroupDescribeResponse {
    let wanted = request.include_authorized_operations;
    let groups = request
        .group_ids
        .into_iter()
        .map(|id| match super::auth::check(&broker, &session, Operation::Describe, ResourceType::Group, id.as_str())
            .map_err(crate::error::GroupError::NotAuthorized)
            .and_then(|()| broker.groups().consumer_describe(broker.topic_lookup(), &id))
        {
            Ok(d) => {
                let members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let member = Member::default()
                            .with_member_id(StrBytes::from_string(m.member_id))
                            .with_instance_id(m.instance_id.map(StrBytes::from_string))
                            .with_rack_id(m.rack_id.map(StrBytes::from_string))
                            .with_member_epoch(m.member_epoch)
                            .with_client_id(StrBytes::from_string(m.client_id))
                            .with_client_host(StrBytes::from_string(m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed_topic_names.into_iter().map(|t| TopicName(StrBytes::from_string(t))).collect(),
                            )
                            .with_assignment(assignment(m.assignment))
                            .with_target_assignment(assignment(m.target));
                        if version >= 1 {
                            member.with_member_type(MEMBER_TYPE_CONSUMER)
                        } else {
                            member
                        }
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_state(StrBytes::from_string(d.state))
                    .with_group_epoch(d.group_epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(StrBytes::from_string(d.assignor))
                    .with_members(members)
                    .with_authorized_operations(super::auth::operations_if(wanted, &broker, &session, ResourceType::Group, id.as_str()))
                    .with_group_id(id)
            }
            Err(e) => DescribedGroup::default()
                .with_group_id(id)
                .with_error_code(e.code())
                .with_error_message(Some(StrBytes::from_string(e.to_string()))),
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
