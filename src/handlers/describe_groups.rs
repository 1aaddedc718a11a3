//! DescribeGroups: state, protocol and members of classic groups. A group that does
//! not exist is "Dead" (with GROUP_ID_NOT_FOUND from v6, KIP-1043).

use std::sync::Arc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;
use crate::error::GroupError;
use crate::security::acl::{Operation, ResourceType};

/// The DescribeGroups versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 6);

/// Describes each group.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            if let Err(e) = super::auth::check(&broker, &session, Operation::Describe, ResourceType::Group, id.as_str()) {
                return DescribedGroup::default().with_group_id(id).with_error_code(e.code());
            }
            let described = match broker.groups().describe_group(&id) {
                Ok(d) => {
                    let members = d
                        .members
                        .into_iter()
                        .map(|m| {
                            let member = DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(m.member_id))
                                .with_client_id(StrBytes::from_string(m.client_id))
                                .with_client_host(StrBytes::from_string(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                member.with_group_instance_id(m.instance_id.map(StrBytes::from_string))
                            } else {
                                member
                            }
                        })
                        .collect();
                    DescribedGroup::default()
                        .with_group_state(StrBytes::from_string(d.state))
                        .with_protocol_type(StrBytes::from_string(d.protocol_type))
                        .with_protocol_data(StrBytes::from_string(d.protocol_data))
                        .with_members(members)
                }
                Err(GroupError::GroupIdNotFound(message)) => {
                    let dead = DescribedGroup::default().with_group_state(StrBytes::from_static_str("Dead"));
                    if version >= 6 {
                        dead.with_error_code(GroupError::GroupIdNotFound(String::new()).code())
                            .with_error_message(Some(StrBytes::from_string(message)))
                    } else {
                        dead
                    }
                }
                Err(e) => {
                    let failed = DescribedGroup::default().with_error_code(e.code());
                    if version >= 6 {
                        failed.with_error_message(Some(StrBytes::from_string(e.to_string())))
                    } else {
                        failed
                    }
                }
            };
            let described = described.with_group_id(id);
            if version >= 3 && request.include_authorized_operations {
                // Kafka's bit field of what the principal may do on the group.
                let ops = super::auth::authorized_operations(&broker, &session, ResourceType::Group, described.group_id.as_str());
                described.with_authorized_operations(ops)
            } else {
                described
            }
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}
