//! The broker's ACLs: the [`Authorizer`] deciding requests, kept in step with the
//! bindings stored in the metadata column family (loaded at start, each change
//! written, synced, before it takes effect in memory).

use std::sync::Arc;

use parking_lot::Mutex;

use super::{Broker, BrokerError};
use crate::config::Config;
use crate::error::StorageError;
use crate::security::acl::{AclBinding, AclFilter, Authorizer, AuthorizerSettings};
use crate::storage::acl_store::AclStore;
use crate::storage::Store;

/// The authorizer and its storage.
pub(super) struct Acls {
    authorizer: Authorizer,
    store: AclStore,
    /// Serializes changes so storage and memory see them in the same order.
    changes: Mutex<()>,
}

impl Acls {
    /// Loads the stored bindings.
    pub(super) fn load(store: Arc<Store>, config: &Config) -> Result<Acls, StorageError> {
        let store = AclStore::new(store);
        let bindings = store
            .load()?
            .iter()
            .map(|raw| serde_json::from_slice::<AclBinding>(raw).map_err(|_| StorageError::CorruptMetadata("ACL".into())))
            .collect::<Result<Vec<_>, _>>()?;
        if config.authorizer_enabled {
            tracing::info!(acls = bindings.len(), super_users = ?config.super_users, "authorizer enabled");
        }
        let settings = AuthorizerSettings {
            enabled: config.authorizer_enabled,
            super_users: config.super_users.clone(),
            allow_everyone_if_no_acl_found: config.allow_everyone_if_no_acl_found,
        };
        Ok(Acls { authorizer: Authorizer::new(settings, bindings), store, changes: Mutex::new(()) })
    }
}

fn encode(b: &AclBinding) -> Vec<u8> {
    // Serializing plain enums and strings cannot fail.
    serde_json::to_vec(b).unwrap_or_default()
}

impl Broker {
    /// The authorizer: whether a principal may do an operation on a resource.
    pub fn authorizer(&self) -> &Authorizer {
        &self.acls.authorizer
    }

    /// Adds ACLs (already validated); ones that exist already are left as they are.
    pub fn create_acls(&self, bindings: &[AclBinding]) -> Result<(), BrokerError> {
        let _change = self.acls.changes.lock();
        let existing = self.acls.authorizer.all();
        let new: Vec<Vec<u8>> = bindings.iter().filter(|b| !existing.contains(b)).map(encode).collect();
        self.acls.store.write(&new, &[])?;
        self.acls.authorizer.add(bindings);
        Ok(())
    }

    /// Deletes the ACLs each filter selects; returns them, per filter.
    pub fn delete_acls(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, BrokerError> {
        let _change = self.acls.changes.lock();
        let doomed: Vec<Vec<u8>> = self
            .acls
            .authorizer
            .all()
            .iter()
            .filter(|b| filters.iter().any(|f| f.matches(b)))
            .map(encode)
            .collect();
        self.acls.store.write(&[], &doomed)?;
        Ok(self.acls.authorizer.remove(filters))
    }
}
