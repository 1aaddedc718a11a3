//! CreateAcls, DescribeAcls and DeleteAcls: ACL bindings and filters decoded from
//! their wire codes, and the three handlers. Creating and deleting ACLs needs
//! CLUSTER ALTER, describing them CLUSTER DESCRIBE.

use std::sync::Arc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{DeleteAclsFilterResult, DeleteAclsMatchingAcl};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest,
    DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::auth;
use super::error::KafkaError;
use super::{Session, Versions};
use crate::broker::Broker;
use crate::security::acl::{
    AclBinding, AclError, AclFilter, Operation, PatternFilter, PatternType, Permission, ResourceType,
};

/// The CreateAcls, DescribeAcls and DeleteAcls versions this broker answers
/// (v1 carries pattern types; v2+ are flexible, what Kafka 4 serves).
pub const VERSIONS: Versions = Versions::new(1, 3);

const ANY: i8 = 1;
const MATCH: i8 = 2;

fn invalid(what: &str, code: i8) -> AclError {
    AclError::Invalid(format!("{what} {code} is not valid here"))
}

/// Decodes one binding to create.
#[allow(clippy::too_many_arguments)]
fn binding(kind: i8, name: &str, pattern: i8, principal: &str, host: &str, op: i8, perm: i8) -> Result<AclBinding, AclError> {
    let b = AclBinding {
        resource_type: ResourceType::from_code(kind).ok_or_else(|| invalid("resource type", kind))?,
        resource_name: name.to_string(),
        pattern_type: PatternType::from_code(pattern).ok_or_else(|| invalid("pattern type", pattern))?,
        principal: principal.to_string(),
        host: host.to_string(),
        operation: Operation::from_code(op).ok_or_else(|| invalid("operation", op))?,
        permission: Permission::from_code(perm).ok_or_else(|| invalid("permission", perm))?,
    };
    b.validate()?;
    Ok(b)
}

/// Decodes a filter (ANY is 1 for every code; MATCH 2 for patterns).
#[allow(clippy::too_many_arguments)]
fn filter(
    kind: i8,
    name: Option<&StrBytes>,
    pattern: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    op: i8,
    perm: i8,
) -> Result<AclFilter, AclError> {
    Ok(AclFilter {
        resource_type: match kind {
            ANY => None,
            k => Some(ResourceType::from_code(k).ok_or_else(|| invalid("resource type", k))?),
        },
        resource_name: name.map(|n| n.to_string()),
        pattern: match pattern {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            p => PatternFilter::Exactly(PatternType::from_code(p).ok_or_else(|| invalid("pattern type", p))?),
        },
        principal: principal.map(|p| p.to_string()),
        host: host.map(|h| h.to_string()),
        operation: match op {
            ANY => None,
            o => Some(Operation::from_code(o).ok_or_else(|| invalid("operation", o))?),
        },
        permission: match perm {
            ANY => None,
            p => Some(Permission::from_code(p).ok_or_else(|| invalid("permission", p))?),
        },
    })
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn message(e: &impl std::fmt::Display) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}

/// CreateAcls handler.
pub mod create {
    use super::*;

    /// The versions answered.
    pub const VERSIONS: Versions = super::VERSIONS;

    /// Creates the ACLs; each creation has its own result.
    pub async fn handle(broker: Arc<Broker>, session: Session, request: CreateAclsRequest, _version: i16) -> CreateAclsResponse {
        let refused = auth::check_cluster(&broker, &session, Operation::Alter).err();
        let mut results = Vec::with_capacity(request.creations.len());
        let mut valid = Vec::new();
        for c in &request.creations {
            let result = match (&refused, binding(
                c.resource_type,
                c.resource_name.as_str(),
                c.resource_pattern_type,
                c.principal.as_str(),
                c.host.as_str(),
                c.operation,
                c.permission_type,
            )) {
                (Some(e), _) => AclCreationResult::default().with_error_code(e.code()).with_error_message(message(e)),
                (None, Err(e)) => AclCreationResult::default().with_error_code(e.code()).with_error_message(message(&e)),
                (None, Ok(b)) => {
                    valid.push((results.len(), b));
                    AclCreationResult::default()
                }
            };
            results.push(result);
        }
        let bindings: Vec<AclBinding> = valid.iter().map(|(_, b)| b.clone()).collect();
        if let Err(e) = broker.create_acls(&bindings) {
            tracing::warn!(error = %e, "creating ACLs failed");
            for (i, _) in &valid {
                results[*i] = AclCreationResult::default().with_error_code(e.code()).with_error_message(message(&e));
            }
        } else if !bindings.is_empty() {
            tracing::info!(principal = %auth::principal(&session), acls = ?bindings, "ACLs created");
        }
        CreateAclsResponse::default().with_results(results)
    }
}

/// DescribeAcls handler.
pub mod describe {
    use super::*;

    /// The versions answered.
    pub const VERSIONS: Versions = super::VERSIONS;

    /// Lists the ACLs the filter selects, grouped by resource pattern.
    pub async fn handle(broker: Arc<Broker>, session: Session, r: DescribeAclsRequest, _version: i16) -> DescribeAclsResponse {
        if let Err(e) = auth::check_cluster(&broker, &session, Operation::Describe) {
            return DescribeAclsResponse::default().with_error_code(e.code()).with_error_message(message(&e));
        }
        let f = match filter(
            r.resource_type_filter,
            r.resource_name_filter.as_ref(),
            r.pattern_type_filter,
            r.principal_filter.as_ref(),
            r.host_filter.as_ref(),
            r.operation,
            r.permission_type,
        ) {
            Ok(f) => f,
            Err(e) => return DescribeAclsResponse::default().with_error_code(e.code()).with_error_message(message(&e)),
        };
        let mut resources: Vec<DescribeAclsResource> = Vec::new();
        for b in broker.authorizer().describe(&f) {
            let acl = AclDescription::default()
                .with_principal(text(&b.principal))
                .with_host(text(&b.host))
                .with_operation(b.operation as i8)
                .with_permission_type(b.permission as i8);
            let same = |r: &&mut DescribeAclsResource| {
                r.resource_type == b.resource_type as i8
                    && r.resource_name.as_str() == b.resource_name
                    && r.pattern_type == b.pattern_type as i8
            };
            match resources.iter_mut().find(|r| same(r)) {
                Some(r) => r.acls.push(acl),
                None => resources.push(
                    DescribeAclsResource::default()
                        .with_resource_type(b.resource_type as i8)
                        .with_resource_name(text(&b.resource_name))
                        .with_pattern_type(b.pattern_type as i8)
                        .with_acls(vec![acl]),
                ),
            }
        }
        DescribeAclsResponse::default().with_resources(resources)
    }
}

/// DeleteAcls handler.
pub mod delete {
    use super::*;

    /// The versions answered.
    pub const VERSIONS: Versions = super::VERSIONS;

    /// Deletes the ACLs each filter selects and lists them per filter.
    pub async fn handle(broker: Arc<Broker>, session: Session, request: DeleteAclsRequest, _version: i16) -> DeleteAclsResponse {
        let refused = auth::check_cluster(&broker, &session, Operation::Alter).err();
        let decoded: Vec<Result<AclFilter, AclError>> = request
            .filters
            .iter()
            .map(|f| {
                filter(
                    f.resource_type_filter,
                    f.resource_name_filter.as_ref(),
                    f.pattern_type_filter,
                    f.principal_filter.as_ref(),
                    f.host_filter.as_ref(),
                    f.operation,
                    f.permission_type,
                )
            })
            .collect();
        let valid: Vec<AclFilter> = decoded.iter().filter_map(|f| f.as_ref().ok().cloned()).collect();
        let removed = match refused {
            Some(_) => Ok(Vec::new()),
            None => broker.delete_acls(&valid),
        };
        let mut removed = match removed {
            Ok(r) => r.into_iter(),
            Err(e) => {
                tracing::warn!(error = %e, "deleting ACLs failed");
                let results = decoded
                    .iter()
                    .map(|_| DeleteAclsFilterResult::default().with_error_code(e.code()).with_error_message(message(&e)))
                    .collect();
                return DeleteAclsResponse::default().with_filter_results(results);
            }
        };
        let results = decoded
            .into_iter()
            .map(|f| match (&refused, f) {
                (Some(e), _) => DeleteAclsFilterResult::default().with_error_code(e.code()).with_error_message(message(e)),
                (None, Err(e)) => DeleteAclsFilterResult::default().with_error_code(e.code()).with_error_message(message(&e)),
                (None, Ok(_)) => {
                    let matching = removed.next().unwrap_or_default();
                    DeleteAclsFilterResult::default().with_matching_acls(
                        matching
                            .iter()
                            .map(|b| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(b.resource_type as i8)
                                    .with_resource_name(text(&b.resource_name))
                                    .with_pattern_type(b.pattern_type as i8)
                                    .with_principal(text(&b.principal))
                                    .with_host(text(&b.host))
                                    .with_operation(b.operation as i8)
                                    .with_permission_type(b.permission as i8)
                            })
                            .collect(),
                    )
                }
            })
            .collect();
        DeleteAclsResponse::default().with_filter_results(results)
    }
}
