//! SCRAM users: those of the configuration and those created at run time with
//! AlterUserScramCredentials, which are stored as rows in the metadata column
//! family (written, synced, before they take effect) and loaded at start.
//! A stored credential wins over the configured one of the same user and hash;
//! deleting a configured user's credential lasts until the next start, which
//! derives it from `sasl_users` again.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Broker, BrokerError};
use crate::config::Config;
use crate::error::StorageError;
use crate::security::sasl::{ScramCredential, ScramHash, ScramUserError, ScramUsers, SCRAM_ITERATIONS, SCRAM_MAX_ITERATIONS};
use crate::storage::scram_store::ScramStore;
use crate::storage::Store;

/// The SCRAM users and their storage.
pub(super) struct Scram {
    users: Arc<ScramUsers>,
    store: ScramStore,
    /// Serializes changes so storage and memory see them in the same order.
    changes: Mutex<()>,
}

impl Scram {
    /// Derives the configured users' credentials and loads the stored ones.
    pub(super) fn load(store: Arc<Store>, config: &Config) -> Result<Scram, StorageError> {
        let configured = config.sasl_user_list().unwrap_or_default();
        let users = ScramUsers::from_passwords(&configured).map_err(StorageError::CorruptMetadata)?;
        let store = ScramStore::new(store);
        let stored = store.load()?;
        for (user, mechanism, encoded) in &stored {
            let hash = ScramHash::from_kafka_type(*mechanism as i8)
                .ok_or_else(|| StorageError::CorruptMetadata("SCRAM mechanism".into()))?;
            let credential: ScramCredential =
                serde_json::from_slice(encoded).map_err(|_| StorageError::CorruptMetadata("SCRAM credential".into()))?;
            users.set(user, hash, credential);
        }
        if !stored.is_empty() {
            tracing::info!(credentials = stored.len(), "SCRAM credentials loaded");
        }
        Ok(Scram { users: Arc::new(users), store, changes: Mutex::new(()) })
    }
}

/// Sets one user's credential for one mechanism (AlterUserScramCredentials).
#[derive(Debug, Clone)]
pub struct ScramUpsertion {
    /// The user.
    pub user: String,
    /// Kafka's mechanism type (1 SCRAM-SHA-256, 2 SCRAM-SHA-512).
    pub mechanism: i8,
    /// PBKDF2 iterations the client used.
    pub iterations: i32,
    /// The salt the client chose.
    pub salt: Vec<u8>,
    /// Hi(password, salt, iterations), computed by the client.
    pub salted_password: Vec<u8>,
}

/// Removes one user's credential for one mechanism.
#[derive(Debug, Clone)]
pub struct ScramDeletion {
    /// The user.
    pub user: String,
    /// Kafka's mechanism type.
    pub mechanism: i8,
}

/// Per user, whether its change was made.
pub type ScramResults = Vec<(String, Result<(), ScramUserError>)>;

/// Per user described: its (hash, iterations) pairs, or why not.
pub type ScramDescriptions = Vec<(String, Result<Vec<(ScramHash, u32)>, ScramUserError>)>;

impl Broker {
    /// The SCRAM users SASL listeners authenticate against.
    pub fn scram_users(&self) -> Arc<ScramUsers> {
        self.scram.users.clone()
    }

    /// Applies deletions and upsertions as Kafka's controller does: a user named
    /// twice in the request is refused whole, each change is validated, and the
    /// valid ones are stored in one synced write and then take effect. Results
    /// come deletions first, then upsertions, then refusals.
    pub fn alter_scram_credentials(
        &self,
        deletions: Vec<ScramDeletion>,
        upsertions: Vec<ScramUpsertion>,
    ) -> Result<ScramResults, BrokerError> {
        let _change = self.scram.changes.lock();
        let users = &self.scram.users;
        let mut refused: Vec<(String, ScramUserError)> = Vec::new();
        let is_refused = |refused: &Vec<(String, ScramUserError)>, user: &str| refused.iter().any(|(u, _)| u == user);
        let mut deletes: Vec<(String, ScramHash)> = Vec::new();
        for d in deletions {
            if is_refused(&refused, &d.user) {
                continue;
            }
            if let Some(i) = deletes.iter().position(|(u, _)| *u == d.user) {
                deletes.remove(i);
                refused.push((d.user, ScramUserError::AlteredTwice));
                continue;
            }
            let checked = if d.user.is_empty() {
                Err(ScramUserError::EmptyUser)
            } else {
                match ScramHash::from_kafka_type(d.mechanism) {
                    None => Err(ScramUserError::UnknownMechanism(d.mechanism)),
                    Some(hash) if users.get(&d.user, hash).is_none() => Err(ScramUserError::DeleteNotFound),
                    Some(hash) => Ok(hash),
                }
            };
            match checked {
                Ok(hash) => deletes.push((d.user, hash)),
                Err(e) => refused.push((d.user, e)),
            }
        }
        let mut upserts: Vec<(String, ScramHash, ScramCredential)> = Vec::new();
        for u in upsertions {
            if is_refused(&refused, &u.user) {
                continue;
            }
            let deleted = deletes.iter().position(|(user, _)| *user == u.user);
            let upserted = upserts.iter().position(|(user, _, _)| *user == u.user);
            if deleted.is_some() || upserted.is_some() {
                if let Some(i) = deleted {
                    deletes.remove(i);
                }
                if let Some(i) = upserted {
                    upserts.remove(i);
                }
                refused.push((u.user, ScramUserError::AlteredTwice));
                continue;
            }
            let checked = if u.user.is_empty() {
                Err(ScramUserError::EmptyUser)
            } else {
                match ScramHash::from_kafka_type(u.mechanism) {
                    None => Err(ScramUserError::UnknownMechanism(u.mechanism)),
                    Some(_) if u.iterations < SCRAM_ITERATIONS as i32 => Err(ScramUserError::TooFewIterations),
                    Some(_) if u.iterations > SCRAM_MAX_ITERATIONS => Err(ScramUserError::TooManyIterations),
                    Some(_) if u.salt.is_empty() || u.salted_password.is_empty() => Err(ScramUserError::EmptyCredential),
                    Some(hash) => Ok(hash),
                }
            };
            match checked {
                Ok(hash) => {
                    let credential = ScramCredential::from_salted_password(hash, &u.salted_password, u.salt, u.iterations as u32);
                    upserts.push((u.user, hash, credential));
                }
                Err(e) => refused.push((u.user, e)),
            }
        }
        let put: Vec<(String, u8, Vec<u8>)> = upserts
            .iter()
            .map(|(user, hash, c)| (user.clone(), hash.kafka_type() as u8, serde_json::to_vec(c).unwrap_or_default()))
            .collect();
        let removed: Vec<(String, u8)> = deletes.iter().map(|(user, hash)| (user.clone(), hash.kafka_type() as u8)).collect();
        self.scram.store.write(&put, &removed)?;
        let mut results: ScramResults = Vec::new();
        for (user, hash) in deletes {
            users.remove(&user, hash);
            tracing::info!(%user, mechanism = hash.mechanism().name(), "SCRAM credential deleted");
            results.push((user, Ok(())));
        }
        for (user, hash, credential) in upserts {
            tracing::info!(%user, mechanism = hash.mechanism().name(), iterations = credential.iterations, "SCRAM credential set");
            users.set(&user, hash, credential);
            results.push((user, Ok(())));
        }
        results.extend(refused.into_iter().map(|(user, e)| (user, Err(e))));
        Ok(results)
    }

    /// Describes the named users (every user when `users` is `None` or empty), as
    /// Kafka does: unknown users and users named twice are refused one by one.
    pub fn describe_scram_credentials(&self, users: Option<Vec<String>>) -> ScramDescriptions {
        let all = self.scram.users.describe();
        let wanted = match users {
            Some(list) if !list.is_empty() => list,
            _ => return all.into_iter().map(|(user, infos)| (user, Ok(infos))).collect(),
        };
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for user in &wanted {
            *seen.entry(user.as_str()).or_default() += 1;
        }
        let mut out: ScramDescriptions = Vec::new();
        for user in &wanted {
            if out.iter().any(|(u, _)| u == user) {
                continue;
            }
            let result = if seen.get(user.as_str()).copied().unwrap_or(0) > 1 {
                Err(ScramUserError::DescribedTwice(user.clone()))
            } else {
                match all.iter().find(|(u, _)| u == user) {
                    Some((_, infos)) => Ok(infos.clone()),
                    None => Err(ScramUserError::DescribeNotFound(user.clone())),
                }
            };
            out.push((user.clone(), result));
        }
        out
    }
}
