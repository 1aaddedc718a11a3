//! `TxnStore`: the transaction coordinator's records, one per transactional id, in
//! the metadata column family (`xt/<transactional id>` → the metadata as JSON).
//!
//! The record has the shape of Kafka's `__transaction_state` (key: transactional id;
//! value: producer id and epoch, timeout, state, partitions, pending offsets), so a
//! replicated internal log can carry it unchanged later: each write is a whole record
//! replacing the previous one, and loading is replaying the last record per key.

use std::sync::Arc;

use rocksdb::{Direction, IteratorMode};

use super::{keys, Store, META_CF};
use crate::error::StorageError;

/// Persistence of transaction coordinator records.
pub struct TxnStore {
    store: Arc<Store>,
}

impl TxnStore {
    /// A store writing to `store`'s metadata column family.
    pub fn new(store: Arc<Store>) -> TxnStore {
        TxnStore { store }
    }

    /// Every record: (transactional id, record bytes).
    pub fn load(&self) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let db = self.store.db();
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let mut out = Vec::new();
        for item in db.iterator_cf(&meta, IteratorMode::From(keys::TXN_PREFIX, Direction::Forward)) {
            let (k, v) = item?;
            let Some(id) = k.strip_prefix(keys::TXN_PREFIX) else { break };
            let id = String::from_utf8(id.to_vec()).map_err(|_| StorageError::CorruptMetadata("transactional id".into()))?;
            out.push((id, v.to_vec()));
        }
        Ok(out)
    }

    /// Writes (replaces) the record of one transactional id.
    pub fn put(&self, transactional_id: &str, record: &[u8]) -> Result<(), StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        db.put_cf(&meta, keys::txn(transactional_id), record)?;
        Ok(())
    }

    /// Waits until earlier writes are durable (fsync mode).
    pub async fn wait_durable(&self) -> Result<(), StorageError> {
        self.store.wait_durable().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;

    #[test]
    fn records_survive_reopen_and_the_last_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 4 };
        {
            let store = TxnStore::new(Store::open(dir.path(), &opts).unwrap());
            store.put("a", b"1").unwrap();
            store.put("b", b"2").unwrap();
            store.put("a", b"3").unwrap();
        }
        let store = TxnStore::new(Store::open(dir.path(), &opts).unwrap());
        assert_eq!(store.load().unwrap(), vec![("a".to_string(), b"3".to_vec()), ("b".to_string(), b"2".to_vec())]);
    }
}
