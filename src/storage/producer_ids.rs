//! Producer id allocation: ids are handed out from blocks whose end is persisted
//! before any id in them is used, so no id is ever reused across restarts.

use std::sync::Arc;

use parking_lot::Mutex;

use super::{keys, Store, META_CF};
use crate::error::StorageError;

const BLOCK_SIZE: i64 = 1000;

/// Allocates idempotent producer ids.
pub struct ProducerIdAllocator {
    store: Arc<Store>,
    state: Mutex<(i64, i64)>, // (next id, end of the persisted block)
}

impl ProducerIdAllocator {
    /// Loads the allocator; the first id after a restart starts a fresh block.
    pub fn load(store: Arc<Store>) -> Result<ProducerIdAllocator, StorageError> {
        let db = store.db();
        let cf = db.cf_handle(META_CF).expect("meta cf");
        let start = match db.get_cf(&cf, keys::PRODUCER_ID_BLOCK)? {
            Some(v) => i64::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| StorageError::CorruptMetadata("producer id block".into()))?,
            ),
            None => 0,
        };
        drop(cf);
        Ok(ProducerIdAllocator { store, state: Mutex::new((start, start)) })
    }

    /// Returns a producer id never handed out before.
    pub fn next(&self) -> Result<i64, StorageError> {
        let mut state = self.state.lock();
        if state.0 >= state.1 {
            let end = state.0 + BLOCK_SIZE;
            let db = self.store.db();
            let cf = db.cf_handle(META_CF).expect("meta cf");
            let mut opts = rocksdb::WriteOptions::default();
            opts.set_sync(true);
            db.put_cf_opt(&cf, keys::PRODUCER_ID_BLOCK, end.to_be_bytes(), &opts)?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}
