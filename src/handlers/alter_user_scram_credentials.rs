//! AlterUserScramCredentials: creates, replaces and deletes SCRAM users at run
//! time. The client sends the salted password (never the password); the broker
//! keeps StoredKey and ServerKey. Needs ALTER on the cluster.

use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::{auth, Session, Versions};
use crate::broker::scram::{ScramDeletion, ScramUpsertion};
use crate::broker::Broker;
use crate::security::acl::Operation;

/// The AlterUserScramCredentials versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 0);

fn result(user: String, code: i16, message: Option<String>) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user))
        .with_error_code(code)
        .with_error_message(message.map(StrBytes::from_string))
}

/// Applies the changes, one result per user named.
pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    request: AlterUserScramCredentialsRequest,
    _version: i16,
) -> AlterUserScramCredentialsResponse {
    // Each user named, once: who gets a request-wide failure.
    let mut users: Vec<String> = Vec::new();
    for name in request.deletions.iter().map(|d| &d.name).chain(request.upsertions.iter().map(|u| &u.name)) {
        if !users.iter().any(|u| u == name.as_str()) {
            users.push(name.to_string());
        }
    }
    let all_fail = |users: Vec<String>, code: i16, message: String| {
        AlterUserScramCredentialsResponse::default()
            .with_results(users.into_iter().map(|u| result(u, code, Some(message.clone()))).collect())
    };
    if let Err(e) = auth::check_cluster(&broker, &session, Operation::Alter) {
        // Kafka: every user named gets CLUSTER_AUTHORIZATION_FAILED.
        return all_fail(users, e.code(), e.to_string());
    }
    let deletions = request
        .deletions
        .into_iter()
        .map(|d| ScramDeletion { user: d.name.to_string(), mechanism: d.mechanism })
        .collect();
    let upsertions = request
        .upsertions
        .into_iter()
        .map(|u| ScramUpsertion {
            user: u.name.to_string(),
            mechanism: u.mechanism,
            iterations: u.iterations,
            salt: u.salt.to_vec(),
            salted_password: u.salted_password.to_vec(),
        })
        .collect();
    let results = match broker.alter_scram_credentials(deletions, upsertions) {
        Ok(results) => results.into_iter().map(|(user, r)| match r {
            Ok(()) => result(user, 0, None),
            Err(e) => result(user, e.code(), Some(e.to_string())),
        })
        .collect(),
        Err(e) => {
            // Nothing was changed: every user gets the storage error.
            tracing::error!(error = %e, "SCRAM credentials not stored");
            return all_fail(users, e.code(), e.to_string());
        }
    };
    AlterUserScramCredentialsResponse::default().with_results(results)
}
