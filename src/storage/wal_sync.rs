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

    /// Asks for an fsync covering every write completed before this call; the
    /// returned ticket resolves when one has finished.
    pub fn request(&self) -> SyncTicket {
        let ticket = {
            let mut requested = self.shared.requested.lock();
            *requested += 1;
            *requested
        };
        self.shared.wake.notify_one();
        SyncTicket { ticket, synced: self.synced.clone() }
    }
}

/// A pending fsync: [`SyncTicket::wait`] resolves once the WAL is synced past it.
/// Tickets taken one after another are usually covered by the same fsync.
#[derive(Debug)]
pub struct SyncTicket {
    ticket: u64,
    synced: watch::Receiver<SyncState>,
}

impl SyncTicket {
    /// Waits for the fsync that covers this ticket.
    pub async fn wait(mut self) -> Result<(), StorageError> {
        let ticket = self.ticket;
        let state = self
            .synced
            .wait_for(|s| s.done >= ticket || s.failed >= ticket)
            .await
            .map_err(|_| StorageError::ShuttingDown)?;
        if state.done >= ticket {
            Ok(())
        } else {
            Err(StorageError::FsyncFailed)
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

#[cfg(test)]
mod tests {
    use crate::storage::{Durability, Store, StoreOptions};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiting_writer_is_released_by_an_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: true, spare_column_families: 0 };
        let store = Store::open(dir.path(), &options).unwrap();
        let waiters: Vec<_> = (0..64)
            .map(|_| {
                let durability = store.durability();
                assert!(matches!(durability, Durability::Pending(_)), "with fsync on, writes wait for an fsync");
                tokio::spawn(durability.wait())
            })
            .collect();
        for waiter in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
                .await
                .expect("an fsync covers every ticket")
                .unwrap()
                .unwrap();
        }
        // A ticket taken after all of them is covered by a later fsync, not an old one.
        store.wait_durable().await.unwrap();
    }

    #[test]
    fn without_fsync_writes_are_durable_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 0 };
        let store = Store::open(dir.path(), &options).unwrap();
        assert!(matches!(store.durability(), Durability::Done));
    }
}
