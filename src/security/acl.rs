//! Authorization: Kafka's ACL model (`StandardAuthorizer`'s rules) with no wire
//! types and no error codes.
//!
//! An [`AclBinding`] allows or denies one principal (`User:alice`, or `User:*`)
//! from one host (or `*`) one operation on the resources a pattern matches (a
//! literal name, `*` meaning every resource of the type, or a prefix). The
//! [`Authorizer`] decides: super users may do anything; a matching DENY wins over
//! any ALLOW; `ALL` stands for every operation; DESCRIBE is implied by READ,
//! WRITE, DELETE and ALTER, and DESCRIBE_CONFIGS by ALTER_CONFIGS; a resource no
//! ACL matches is allowed only with `allow_everyone_if_no_acl_found`. When the
//! authorizer is off every request is allowed.

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

/// The principal of a connection that has not authenticated (Kafka's `User:ANONYMOUS`).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The one cluster resource's name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// What an ACL protects; the values are Kafka's wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    /// A topic.
    Topic = 2,
    /// A consumer group.
    Group = 3,
    /// The cluster.
    Cluster = 4,
    /// A transactional id.
    TransactionalId = 5,
}

impl ResourceType {
    /// The type for a wire code; `None` for ANY, UNKNOWN and types not supported.
    pub fn from_code(code: i8) -> Option<ResourceType> {
        match code {
            2 => Some(ResourceType::Topic),
            3 => Some(ResourceType::Group),
            4 => Some(ResourceType::Cluster),
            5 => Some(ResourceType::TransactionalId),
            _ => None,
        }
    }
}

impl ResourceType {
    /// The operations an ACL on this type of resource can grant (Kafka's
    /// `AclEntry.supportedOperations`), what authorized-operations fields list.
    pub fn supported_operations(self) -> &'static [Operation] {
        use Operation::*;
        match self {
            ResourceType::Topic => &[Read, Write, Create, Describe, Delete, Alter, DescribeConfigs, AlterConfigs],
            ResourceType::Group => &[Read, Describe, Delete],
            ResourceType::Cluster => &[Create, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, Alter, Describe],
            ResourceType::TransactionalId => &[Describe, Write],
        }
    }
}

/// How an ACL's resource name is matched; the values are Kafka's wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The name itself, or every resource when the name is `*`.
    Literal = 3,
    /// Every resource whose name starts with it.
    Prefixed = 4,
}

impl PatternType {
    /// The pattern type for a wire code (LITERAL or PREFIXED).
    pub fn from_code(code: i8) -> Option<PatternType> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }
}

/// An operation on a resource; the values are Kafka's wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Every operation.
    All = 2,
    /// Read (fetch, consume as a group).
    Read = 3,
    /// Write (produce).
    Write = 4,
    /// Create (topics).
    Create = 5,
    /// Delete (topics, groups, records).
    Delete = 6,
    /// Alter (ACLs, partitions).
    Alter = 7,
    /// Describe (metadata, offsets, groups, ACLs).
    Describe = 8,
    /// Inter-broker requests.
    ClusterAction = 9,
    /// Describe configs.
    DescribeConfigs = 10,
    /// Alter configs.
    AlterConfigs = 11,
    /// Idempotent produce.
    IdempotentWrite = 12,
    /// Create delegation tokens.
    CreateTokens = 13,
    /// Describe delegation tokens.
    DescribeTokens = 14,
}

impl Operation {
    /// The operation for a wire code; `None` for ANY and UNKNOWN.
    pub fn from_code(code: i8) -> Option<Operation> {
        use Operation::*;
        Some(match code {
            2 => All,
            3 => Read,
            4 => Write,
            5 => Create,
            6 => Delete,
            7 => Alter,
            8 => Describe,
            9 => ClusterAction,
            10 => DescribeConfigs,
            11 => AlterConfigs,
            12 => IdempotentWrite,
            13 => CreateTokens,
            14 => DescribeTokens,
            _ => return None,
        })
    }

    /// Whether an ALLOW for `self` also allows `wanted` (ALL, and the implied describes).
    fn allows(self, wanted: Operation) -> bool {
        use Operation::*;
        self == wanted
            || self == All
            || (wanted == Describe && matches!(self, Read | Write | Delete | Alter))
            || (wanted == DescribeConfigs && self == AlterConfigs)
    }
}

/// Whether a matching ACL allows or denies; the values are Kafka's wire codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Denies the operation, whatever else allows it.
    Deny = 2,
    /// Allows the operation.
    Allow = 3,
}

impl Permission {
    /// The permission for a wire code (DENY or ALLOW).
    pub fn from_code(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }
}

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The type of resource it protects.
    pub resource_type: ResourceType,
    /// The resource name, prefix or `*`.
    pub resource_name: String,
    /// How `resource_name` matches.
    pub pattern_type: PatternType,
    /// `User:name` or `User:*`.
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// Allow or deny.
    pub permission: Permission,
}

/// Why a binding cannot be created (Kafka answers these with INVALID_REQUEST).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AclError {
    /// A field has a value an ACL cannot have.
    #[error("invalid ACL: {0}")]
    Invalid(String),
}

impl AclBinding {
    /// Checks a binding as Kafka does before creating it.
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_name.is_empty() {
            return Err(AclError::Invalid("resource name must not be empty".into()));
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(AclError::Invalid(format!("the cluster resource is named {CLUSTER_NAME}")));
        }
        if self.pattern_type == PatternType::Prefixed && self.resource_name == "*" {
            return Err(AclError::Invalid("a prefixed pattern cannot be *".into()));
        }
        match self.principal.split_once(':') {
            Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {}
            _ => return Err(AclError::Invalid(format!("principal {:?} is not Type:name", self.principal))),
        }
        if self.host.is_empty() {
            return Err(AclError::Invalid("host must not be empty".into()));
        }
        Ok(())
    }

    /// Whether this binding's pattern covers the resource `name` of type `kind`.
    fn covers(&self, kind: ResourceType, name: &str) -> bool {
        self.resource_type == kind
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == "*" || self.resource_name == name,
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// Whether the binding applies to this principal from this host.
    fn applies_to(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == "User:*") && (self.host == "*" || self.host == host)
    }
}

/// Which pattern types a filter matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternFilter {
    /// Any pattern type (ANY).
    Any,
    /// Every binding that would apply to the named resource (MATCH): its literal,
    /// the `*` literal and prefixes of it.
    Match,
    /// Exactly this pattern type.
    Exactly(PatternType),
}

/// Selects bindings (DescribeAcls, DeleteAcls); `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    /// Resource type, or any.
    pub resource_type: Option<ResourceType>,
    /// Resource name, or any.
    pub resource_name: Option<String>,
    /// Pattern type.
    pub pattern: PatternFilter,
    /// Principal, or any.
    pub principal: Option<String>,
    /// Host, or any.
    pub host: Option<String>,
    /// Operation, or any.
    pub operation: Option<Operation>,
    /// Permission, or any.
    pub permission: Option<Permission>,
}

impl AclFilter {
    /// Whether `binding` is selected.
    pub fn matches(&self, b: &AclBinding) -> bool {
        let resource = match (&self.pattern, &self.resource_name) {
            (PatternFilter::Match, Some(name)) => match self.resource_type {
                Some(kind) => b.covers(kind, name),
                None => b.covers(b.resource_type, name),
            },
            (PatternFilter::Match, None) | (PatternFilter::Any, None) => true,
            (PatternFilter::Any, Some(name)) => &b.resource_name == name,
            (PatternFilter::Exactly(p), name) => b.pattern_type == *p && name.as_ref().is_none_or(|n| &b.resource_name == n),
        };
        resource
            && self.resource_type.is_none_or(|t| t == b.resource_type)
            && self.principal.as_ref().is_none_or(|p| p == &b.principal)
            && self.host.as_ref().is_none_or(|h| h == &b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// How the authorizer is set up (from the broker's configuration).
#[derive(Debug, Clone, Default)]
pub struct AuthorizerSettings {
    /// Whether requests are authorized at all.
    pub enabled: bool,
    /// Principals allowed everything (`super.users`).
    pub super_users: Vec<String>,
    /// Whether a resource no ACL covers is open to everyone.
    pub allow_everyone_if_no_acl_found: bool,
}

/// The ACLs in force and the decisions made from them.
#[derive(Debug, Default)]
pub struct Authorizer {
    settings: AuthorizerSettings,
    acls: RwLock<Vec<AclBinding>>,
}

impl Authorizer {
    /// An authorizer with these settings and bindings (loaded from storage).
    pub fn new(settings: AuthorizerSettings, acls: Vec<AclBinding>) -> Authorizer {
        Authorizer { settings, acls: RwLock::new(acls) }
    }

    /// Whether requests are authorized at all.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// Whether `principal` connecting from `host` may do `operation` on the
    /// resource `name` of type `kind`.
    pub fn authorize(&self, principal: &str, host: &str, operation: Operation, kind: ResourceType, name: &str) -> bool {
        if !self.settings.enabled || self.settings.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.acls.read();
        let mut covering = acls.iter().filter(|b| b.covers(kind, name)).peekable();
        if covering.peek().is_none() {
            return self.settings.allow_everyone_if_no_acl_found;
        }
        let mut allowed = false;
        for b in covering.filter(|b| b.applies_to(principal, host)) {
            match b.permission {
                Permission::Deny if b.operation == operation || b.operation == Operation::All => return false,
                Permission::Allow if b.operation.allows(operation) => allowed = true,
                _ => {}
            }
        }
        allowed
    }

    /// Whether `principal` may do `operation` on at least one resource of type
    /// `kind` (Kafka's `authorizeByResourceType`, used for idempotent produce).
    pub fn authorize_any(&self, principal: &str, host: &str, operation: Operation, kind: ResourceType) -> bool {
        if !self.settings.enabled || self.settings.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.acls.read();
        let candidates: Vec<&AclBinding> = acls
            .iter()
            .filter(|b| b.resource_type == kind && b.applies_to(principal, host) && b.permission == Permission::Allow)
            .filter(|b| b.operation.allows(operation))
            .collect();
        // A literal allow counts unless a deny covers that very resource; a prefix
        // allow unless a deny covers the whole prefix.
        candidates.iter().any(|allow| {
            !acls.iter().any(|d| {
                d.permission == Permission::Deny
                    && d.resource_type == kind
                    && d.applies_to(principal, host)
                    && (d.operation == operation || d.operation == Operation::All)
                    && (d.resource_name == "*" && d.pattern_type == PatternType::Literal
                        || (allow.pattern_type == PatternType::Literal && d.covers(kind, &allow.resource_name))
                        || (allow.pattern_type == PatternType::Prefixed
                            && d.pattern_type == PatternType::Prefixed
                            && allow.resource_name.starts_with(&d.resource_name)))
            })
        })
    }

    /// The bindings `filter` selects.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls.read().iter().filter(|b| filter.matches(b)).cloned().collect()
    }

    /// Every binding.
    pub fn all(&self) -> Vec<AclBinding> {
        self.acls.read().clone()
    }

    /// Adds bindings not already present; returns the ones added.
    pub fn add(&self, bindings: &[AclBinding]) -> Vec<AclBinding> {
        let mut acls = self.acls.write();
        let mut added = Vec::new();
        for b in bindings {
            if !acls.contains(b) {
                acls.push(b.clone());
                added.push(b.clone());
            }
        }
        added
    }

    /// Removes the bindings each filter selects; returns them, per filter.
    pub fn remove(&self, filters: &[AclFilter]) -> Vec<Vec<AclBinding>> {
        let mut acls = self.acls.write();
        let removed: Vec<Vec<AclBinding>> =
            filters.iter().map(|f| acls.iter().filter(|b| f.matches(b)).cloned().collect()).collect();
        acls.retain(|b| !filters.iter().any(|f| f.matches(b)));
        removed
    }
}

/// A request refused by the authorizer, by the kind of resource refused.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AuthorizationError {
    /// Not allowed on a topic.
    #[error("not authorized to access the topic")]
    Topic,
    /// Not allowed on a group.
    #[error("not authorized to access the group")]
    Group,
    /// Not allowed on the cluster.
    #[error("not authorized on the cluster")]
    Cluster,
    /// Not allowed on a transactional id.
    #[error("not authorized to use the transactional id")]
    TransactionalId,
}

impl AuthorizationError {
    /// The refusal for a resource of this type.
    pub fn for_resource(kind: ResourceType) -> AuthorizationError {
        match kind {
            ResourceType::Topic => AuthorizationError::Topic,
            ResourceType::Group => AuthorizationError::Group,
            ResourceType::Cluster => AuthorizationError::Cluster,
            ResourceType::TransactionalId => AuthorizationError::TransactionalId,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(kind: ResourceType, name: &str, pattern: PatternType, principal: &str, op: Operation, perm: Permission) -> AclBinding {
        AclBinding {
            resource_type: kind,
            resource_name: name.into(),
            pattern_type: pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission: perm,
        }
    }

    fn on(acls: Vec<AclBinding>) -> Authorizer {
        let settings =
            AuthorizerSettings { enabled: true, super_users: vec!["User:admin".into()], allow_everyone_if_no_acl_found: false };
        Authorizer::new(settings, acls)
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn rules() {
        let a = on(vec![
            acl(Topic, "t1", Literal, "User:alice", Write, Allow),
            acl(Topic, "pre-", Prefixed, "User:alice", Read, Allow),
            acl(Topic, "pre-secret", Literal, "User:alice", All, Deny),
            acl(Topic, "*", Literal, "User:*", DescribeConfigs, Allow),
            acl(Group, "g", Literal, "User:bob", All, Allow),
        ]);
        assert!(a.authorize("User:alice", "1.2.3.4", Write, Topic, "t1"));
        assert!(a.authorize("User:alice", "1.2.3.4", Describe, Topic, "t1"), "WRITE implies DESCRIBE");
        assert!(!a.authorize("User:alice", "1.2.3.4", Read, Topic, "t1"));
        assert!(!a.authorize("User:bob", "1.2.3.4", Write, Topic, "t1"));
        assert!(a.authorize("User:alice", "h", Read, Topic, "pre-x"));
        assert!(!a.authorize("User:alice", "h", Read, Topic, "pre-secret"), "deny wins");
        assert!(a.authorize("User:carol", "h", DescribeConfigs, Topic, "anything"), "wildcard");
        assert!(!a.authorize("User:carol", "h", Describe, Topic, "t2"));
        assert!(a.authorize("User:bob", "h", Delete, Group, "g"), "ALL");
        assert!(!a.authorize("User:alice", "h", Read, Group, "no-acl"), "no ACL: denied");
        assert!(a.authorize("User:admin", "h", Alter, Cluster, CLUSTER_NAME), "super user");
        assert!(a.authorize_any("User:alice", "h", Write, Topic));
        assert!(!a.authorize_any("User:bob", "h", Write, Topic));
    }

    #[test]
    fn host_and_open_mode() {
        let mut b = acl(Topic, "t", Literal, "User:alice", Read, Allow);
        b.host = "10.0.0.1".into();
        let a = on(vec![b]);
        assert!(a.authorize("User:alice", "10.0.0.1", Read, Topic, "t"));
        assert!(!a.authorize("User:alice", "10.0.0.2", Read, Topic, "t"));
        let open = Authorizer::new(
            AuthorizerSettings { enabled: true, super_users: vec![], allow_everyone_if_no_acl_found: true },
            vec![acl(Topic, "t", Literal, "User:alice", Read, Allow)],
        );
        assert!(open.authorize("User:bob", "h", Write, Topic, "other"));
        assert!(!open.authorize("User:bob", "h", Read, Topic, "t"));
        assert!(Authorizer::default().authorize("User:x", "h", Alter, Cluster, CLUSTER_NAME), "off");
    }

    #[test]
    fn filters_add_remove() {
        let a = on(vec![]);
        let x = acl(Topic, "t", Literal, "User:alice", Read, Allow);
        let y = acl(Topic, "t", Prefixed, "User:bob", Write, Deny);
        assert_eq!(a.add(&[x.clone(), y.clone(), x.clone()]).len(), 2);
        let any = AclFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        };
        assert_eq!(a.describe(&any).len(), 2);
        let lit = AclFilter { pattern: PatternFilter::Exactly(Literal), ..any.clone() };
        assert_eq!(a.describe(&lit), vec![x.clone()]);
        let m = AclFilter { pattern: PatternFilter::Match, resource_name: Some("tx".into()), ..any.clone() };
        assert_eq!(a.describe(&m), vec![y.clone()]);
        let bob = AclFilter { principal: Some("User:bob".into()), ..any.clone() };
        assert_eq!(a.remove(&[bob]), vec![vec![y]]);
        assert_eq!(a.all(), vec![x]);
    }
}
