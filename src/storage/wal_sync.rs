//! Group commit: one thread fsyncs the write-ahead log on behalf of every writer
//! that is waiting, so concurrent producers share each fsync.

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::health::DbSlot;
use crate::error::StorageError;

/// Hands out sync tickets and reports which have been fsynced.
pub struct WalSyncer {
    shared: Arc<Shared>,
    synced: watch::Receiver<SyncState>,
}

#[derive(Clone, Copy, Debug, Default)]
struct SyncState {
    /// Highest ticket covered by a completed fsync.
    done: u64,
    /// Highest ticket whose fsync failed (a failure fails every ticket up to it).
    failed: u64,
}

struct Shared {
    requested: Mutex<u64>,
    wake: Condvar,
}

impl WalSyncer {
    /// Starts the sync thread for the database in `db`.
    pub(crate) fn start(db: Arc<DbSlot>) -> WalSyncer {
        let shared = Arc::new(Shared { requested: Mutex::new(0), wake: Condvar::new() });
        let (tx, rx) = watch::channel(SyncState::default());
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("fluxo-wal-sync".into())
            .spawn(move || sync_loop(db, thread_shared, tx))
            .expect("spawn wal sync thread");
        WalSyncer { shared, synced: rx }
    }

    /// Waits until an fsync that started after this call has completed.
    pub async fn sync(&self) -> Result<(), StorageError> {
        let ticket = {
            let mut requested = self.shared.requested.lock();
            *requested += 1;
            *requested
        };
        self.shared.wake.notify_one();
        let mut rx = self.synced.clone();
        let state = rx
            .wait_for(|s| s.done >= ticket || s.failed >= ticket)
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        if state.done >= ticket {
            Ok(())
        } else {
            Err(StorageError::CorruptMetadata("write-ahead log fsync failed".into()))
        }
    }
}

fn sync_loop(db: Arc<DbSlot>, shared: Arc<Shared>, tx: watch::Sender<SyncState>) {
    let mut done = 0u64;
    loop {
        let target = {
            let mut requested = shared.requested.lock();
            while *requested == done {
                if tx.is_closed() {
                    return;
                }
                shared.wake.wait_for(&mut requested, std::time::Duration::from_millis(200));
            }
            *requested
        };
        // Every write that finished before its writer took a ticket <= target is in
        // the WAL buffer now, so this one fsync covers all of them.
        let flushed = match db.try_get() {
            Ok(handle) => handle.flush_wal(true).map_err(|e| {
                db.report_write_failure(&e);
                e.to_string()
            }),
            Err(e) => Err(e.to_string()),
        };
        match flushed {
            Ok(()) => {
                done = target;
                tx.send_modify(|s| s.done = target);
            }
            Err(e) => {
                tracing::error!(error = %e, "wal fsync failed");
                done = target;
                tx.send_modify(|s| s.failed = target);
            }
        }
    }
}
