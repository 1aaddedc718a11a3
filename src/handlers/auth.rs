//! The one place handlers ask the authorizer: who the connection is (its SASL
//! principal, `User:ANONYMOUS` without one, and its address) and whether it may
//! do an operation on a resource.

use std::sync::Arc;

use crate::broker::{Broker, BrokerError, Topic, TopicRef};
use crate::security::acl::{AuthorizationError, Operation, ResourceType, ANONYMOUS, CLUSTER_NAME};

use super::Session;

/// The connection's principal: `User:<sasl user>`, `User:<certificate subject DN>`
/// on an SSL listener with a client certificate, or `User:ANONYMOUS`.
pub fn principal(session: &Session) -> String {
    session
        .sasl
        .lock()
        .principal()
        .or_else(|| session.tls_principal.as_deref().map(str::to_string))
        .unwrap_or_else(|| ANONYMOUS.to_string())
}

/// The connection's client address as ACL hosts name it.
pub fn host(session: &Session) -> String {
    session.peer.ip().to_string()
}

/// Whether the connection may do `operation` on resource `name` of type `kind`.
pub fn allowed(broker: &Broker, session: &Session, operation: Operation, kind: ResourceType, name: &str) -> bool {
    let authorizer = broker.authorizer();
    if !authorizer.enabled() {
        return true;
    }
    let principal = principal(session);
    let ok = authorizer.authorize(&principal, &host(session), operation, kind, name);
    if !ok {
        tracing::debug!(%principal, peer = %session.peer, ?operation, ?kind, resource = name, "not authorized");
    }
    ok
}

/// [`allowed`], as the refusal for the resource's type.
pub fn check(broker: &Broker, session: &Session, operation: Operation, kind: ResourceType, name: &str) -> Result<(), AuthorizationError> {
    if allowed(broker, session, operation, kind, name) {
        Ok(())
    } else {
        Err(AuthorizationError::for_resource(kind))
    }
}

/// [`check`] on the cluster resource.
pub fn check_cluster(broker: &Broker, session: &Session, operation: Operation) -> Result<(), AuthorizationError> {
    check(broker, session, operation, ResourceType::Cluster, CLUSTER_NAME)
}

/// Whether the connection may do `operation` on some resource of type `kind`.
pub fn allowed_on_any(broker: &Broker, session: &Session, operation: Operation, kind: ResourceType) -> bool {
    broker.authorizer().authorize_any(&principal(session), &host(session), operation, kind)
}

/// Looks a topic up for `operation`: by name the permission is checked first (an
/// unknown topic the client may not see answers as not authorized, as Kafka does),
/// by id after the lookup.
pub fn topic(broker: &Broker, session: &Session, operation: Operation, topic: TopicRef<'_>) -> Result<Arc<Topic>, BrokerError> {
    match topic {
        TopicRef::Name(name) => {
            check(broker, session, operation, ResourceType::Topic, name)?;
            broker.topic(topic)
        }
        TopicRef::Id(_) => {
            let found = broker.topic(topic)?;
            check(broker, session, operation, ResourceType::Topic, &found.name)?;
            Ok(found)
        }
    }
}

/// Checks `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config resource:
/// a topic (type 2) on the topic, the broker (4) and its loggers (8) on the cluster.
/// Other types are left to the handler to refuse.
pub fn check_config_resource(
    broker: &Broker,
    session: &Session,
    operation: Operation,
    resource_type: i8,
    name: &str,
) -> Result<(), AuthorizationError> {
    match resource_type {
        2 => check(broker, session, operation, ResourceType::Topic, name),
        4 | 8 => check_cluster(broker, session, operation),
        _ => Ok(()),
    }
}

/// Kafka's authorized-operations bit field when the client did not ask for it.
pub const OPERATIONS_OMITTED: i32 = i32::MIN;

/// The operations the connection may do on resource `name` of type `kind`, as
/// Kafka's authorized-operations bit field (bit `1 << code` per allowed
/// operation, among those the resource type supports); every supported one when
/// the authorizer is off, as Kafka without an authorizer answers.
pub fn authorized_operations(broker: &Broker, session: &Session, kind: ResourceType, name: &str) -> i32 {
    kind.supported_operations()
        .iter()
        .filter(|op| allowed_quietly(broker, session, **op, kind, name))
        .fold(0i32, |bits, op| bits | (1i32 << (*op as i32)))
}

/// [`authorized_operations`] if `wanted`, else [`OPERATIONS_OMITTED`].
pub fn operations_if(wanted: bool, broker: &Broker, session: &Session, kind: ResourceType, name: &str) -> i32 {
    if wanted {
        authorized_operations(broker, session, kind, name)
    } else {
        OPERATIONS_OMITTED
    }
}

/// [`allowed`] without the debug line: asking what is allowed is not a refusal.
fn allowed_quietly(broker: &Broker, session: &Session, operation: Operation, kind: ResourceType, name: &str) -> bool {
    let authorizer = broker.authorizer();
    !authorizer.enabled() || authorizer.authorize(&principal(session), &host(session), operation, kind, name)
}
