//! SCRAM credentials created at run time, in the metadata column family: one row
//! per user and mechanism (`u/<mechanism><user>` → the encoded salted
//! credential, the encoding chosen by the caller), so a Raft group for cluster
//! metadata can later carry them as it carries ACLs. Writes are synced: a change
//! acknowledged to a client survives a crash.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{keys, Store, META_CF};
use crate::error::StorageError;

/// One stored credential: user, mechanism byte, encoded credential.
pub type StoredCredential = (String, u8, Vec<u8>);

/// Reads and writes the stored SCRAM credentials.
pub struct ScramStore {
    store: Arc<Store>,
}

impl ScramStore {
    /// SCRAM credential storage in `store`.
    pub fn new(store: Arc<Store>) -> ScramStore {
        ScramStore { store }
    }

    /// Every stored credential, in key order.
    pub fn load(&self) -> Result<Vec<StoredCredential>, StorageError> {
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut out = Vec::new();
        for item in db.iterator_cf(&meta, IteratorMode::From(keys::SCRAM_PREFIX, Direction::Forward)) {
            let (k, v) = item?;
            let Some(rest) = k.strip_prefix(keys::SCRAM_PREFIX) else { break };
            let Some((mechanism, user)) = rest.split_first() else {
                return Err(StorageError::CorruptMetadata("SCRAM credential key".into()));
            };
            let user = String::from_utf8(user.to_vec()).map_err(|_| StorageError::CorruptMetadata("SCRAM user name".into()))?;
            out.push((user, *mechanism, v.to_vec()));
        }
        Ok(out)
    }

    /// Writes `put` and removes `removed` (user, mechanism) in one synced write.
    pub fn write(&self, put: &[StoredCredential], removed: &[(String, u8)]) -> Result<(), StorageError> {
        if put.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut write = WriteBatch::default();
        for (user, mechanism, encoded) in put {
            write.put_cf(&meta, keys::scram_credential(*mechanism, user), encoded);
        }
        for (user, mechanism) in removed {
            write.delete_cf(&meta, keys::scram_credential(*mechanism, user));
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(write, &opts)?;
        Ok(())
    }
}
