//! SyncGroup: the leader hands in the assignment; every member waits for its own.

use std::future::Future;
use std::sync::Arc;

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::code_of;
use super::Versions;
use crate::broker::Broker;
use crate::coordinator::{SyncOutcome, SyncParams};
use crate::error::GroupError;

/// The SyncGroup versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 5);

/// Syncs the member; resolves when the leader's assignment is in.
pub fn handle(
    broker: Arc<Broker>,
    session: super::Session,
    request: SyncGroupRequest,
    version: i16,
) -> impl Future<Output = SyncGroupResponse> {
    use crate::security::acl::{Operation, ResourceType};
    // Syncing needs GROUP READ (Kafka); a refused sync never reaches the group.
    let sync = match super::auth::check(&broker, &session, Operation::Read, ResourceType::Group, request.group_id.as_str()) {
        Ok(()) => Ok(sync(broker, request, version)),
        Err(e) => Err(e),
    };
    async move {
        match sync {
            Ok(synced) => synced.await,
            Err(e) => SyncGroupResponse::default().with_error_code(code_of(Some(&GroupError::NotAuthorized(e)))),
        }
    }
}

fn sync(broker: Arc<Broker>, request: SyncGroupRequest, version: i16) -> impl Future<Output = SyncGroupResponse> {
    let params = SyncParams {
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.map(|s| s.to_string()),
        protocol_type: request.protocol_type.map(|s| s.to_string()),
        protocol_name: request.protocol_name.map(|s| s.to_string()),
        assignments: request.assignments.into_iter().map(|a| (a.member_id.to_string(), a.assignment)).collect(),
    };
    let pending = broker.groups().sync_group(&request.group_id, params);
    async move {
        let outcome = tokio::select! {
            outcome = pending.resolve(|| SyncOutcome::failed(&GroupError::RebalanceInProgress)) => outcome,
            _ = broker.shutdown_signal().cancelled() => SyncOutcome::failed(&GroupError::CoordinatorNotAvailable),
        };
        let mut response = SyncGroupResponse::default().with_error_code(code_of(outcome.error.as_ref())).with_assignment(outcome.assignment);
        if version >= 5 {
            response.protocol_type = outcome.protocol_type.map(StrBytes::from_string);
            response.protocol_name = outcome.protocol_name.map(StrBytes::from_string);
        }
        response
    }
}
