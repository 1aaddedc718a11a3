//! ACLs in the metadata column family: one key per binding (`a/<encoded binding>`),
//! the binding's encoding chosen by the caller. Writes are synced: an ACL change
//! acknowledged to a client survives a crash.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};

use super::{keys, Store, META_CF};
use crate::error::StorageError;

/// Reads and writes the stored ACLs.
pub struct AclStore {
    store: Arc<Store>,
}

impl AclStore {
    /// ACL storage in `store`.
    pub fn new(store: Arc<Store>) -> AclStore {
        AclStore { store }
    }

    /// Every stored binding's encoding, in key order.
    pub fn load(&self) -> Result<Vec<Vec<u8>>, StorageError> {
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut out = Vec::new();
        for item in db.iterator_cf(&meta, IteratorMode::From(keys::ACL_PREFIX, Direction::Forward)) {
            let (k, _) = item?;
            let Some(encoded) = k.strip_prefix(keys::ACL_PREFIX) else { break };
            out.push(encoded.to_vec());
        }
        Ok(out)
    }

    /// Adds `added` and removes `removed` in one synced write.
    pub fn write(&self, added: &[Vec<u8>], removed: &[Vec<u8>]) -> Result<(), StorageError> {
        if added.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut write = WriteBatch::default();
        for encoded in added {
            write.put_cf(&meta, keys::acl(encoded), b"");
        }
        for encoded in removed {
            write.delete_cf(&meta, keys::acl(encoded));
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(write, &opts)?;
        Ok(())
    }
}
