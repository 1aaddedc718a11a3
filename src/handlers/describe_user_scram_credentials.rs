//! DescribeUserScramCredentials: which SCRAM mechanisms (and iterations) each
//! user has; never a salt or key. Needs DESCRIBE on the cluster.

use std::sync::Arc;

use kafka_protocol::messages::describe_user_scram_credentials_response::{CredentialInfo, DescribeUserScramCredentialsResult};
use kafka_protocol::messages::{DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::KafkaError;
use super::{auth, Session, Versions};
use crate::broker::Broker;
use crate::security::acl::Operation;

/// The DescribeUserScramCredentials versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 0);

/// Describes the named users, or all of them when none is named.
pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    request: DescribeUserScramCredentialsRequest,
    _version: i16,
) -> DescribeUserScramCredentialsResponse {
    if let Err(e) = auth::check_cluster(&broker, &session, Operation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(StrBytes::from_string(e.to_string())));
    }
    let users = request.users.map(|list| list.into_iter().map(|u| u.name.to_string()).collect());
    let results = broker
        .describe_scram_credentials(users)
        .into_iter()
        .map(|(user, described)| {
            let result = DescribeUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            match described {
                Ok(infos) => result.with_credential_infos(
                    infos
                        .into_iter()
                        .map(|(hash, iterations)| {
                            CredentialInfo::default().with_mechanism(hash.kafka_type()).with_iterations(iterations as i32)
                        })
                        .collect(),
                ),
                Err(e) => result.with_error_code(e.code()).with_error_message(Some(StrBytes::from_string(e.to_string()))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}
