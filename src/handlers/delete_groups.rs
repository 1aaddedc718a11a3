//! DeleteGroups: removes empty groups with their committed offsets.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use super::error::KafkaError;
use super::Versions;
use crate::broker::Broker;

/// The DeleteGroups versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 2);

/// Deletes each group.
pub async fn handle(broker: Arc<Broker>, session: super::Session, request: DeleteGroupsRequest, _version: i16) -> DeleteGroupsResponse {
    let results = request
        .groups_names
        .into_iter()
        .map(|id| {
            use crate::security::acl::{Operation, ResourceType};
            let code = match super::auth::check(&broker, &session, Operation::Delete, ResourceType::Group, id.as_str()) {
                Err(e) => e.code(),
                Ok(()) => broker.groups().delete_group(&id).err().map(|e| e.code()).unwrap_or(0),
            };
            DeletableGroupResult::default().with_group_id(id).with_error_code(code)
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
