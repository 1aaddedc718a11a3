//! ListGroups: every group, filtered by state (v4+) and type (v5+).

use std::sync::Arc;

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::Versions;
use crate::broker::Broker;

/// The ListGroups versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 5);

/// Lists the groups.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: ListGroupsRequest, version: i16) -> ListGroupsResponse {
    use crate::security::acl::{Operation, ResourceType};
    // CLUSTER DESCRIBE lists every group; otherwise only the groups the client may describe (Kafka).
    let everything = super::auth::check_cluster(&broker, &session, Operation::Describe).is_ok();
    let states: Vec<String> = request.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = request.types_filter.iter().map(|s| s.to_string()).collect();
    let groups = broker
        .groups()
        .list_groups(&states, &types)
        .into_iter()
        .filter(|g| everything || super::auth::allowed(&broker, &session, Operation::Describe, ResourceType::Group, &g.group_id))
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.group_id)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type));
            if version >= 4 {
                listed.group_state = StrBytes::from_string(g.state);
            }
            if version >= 5 {
                listed.group_type = StrBytes::from_string(g.group_type);
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
