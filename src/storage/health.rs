//! Storage health: the slot holding the open database, the counters that describe
//! what went wrong with it, and the watchdog that brings it back.
//!
//! RocksDB stops accepting writes for good after a "hard" background error, such
//! as failing to create a WAL or SST file (EMFILE when connections used up every
//! file descriptor): the error is not retryable, its automatic recovery does not
//! apply, and `DB::Resume()` is not in the C API. So when a write fails, the
//! watchdog probes the database with a harmless write; if that fails too, it
//! closes and reopens the database in-process once files can be opened again.
//! Partition logs re-resolve their column families on every operation, so they
//! carry on with the new handle.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rocksdb::Options;

use super::{recovery, Db, META_CF};
use crate::error::StorageError;

/// Key the watchdog's probe deletes in the meta column family (it never exists).
const PROBE_KEY: &[u8] = b"health_probe";
/// Files the watchdog must be able to open before it closes the database to reopen it.
const SPARE_FILES_NEEDED: usize = 64;

/// Counters of storage faults since start, rendered as metrics at scrape time.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Damaged write-ahead log files found at start-up.
    pub wal_corruptions: AtomicU64,
    /// Partitions found with corrupted table (SST) data, at start-up or on read.
    pub sst_corruptions: AtomicU64,
    /// Records acknowledged once and found missing at start-up.
    pub lost_records: AtomicU64,
    /// Times the database stopped accepting writes.
    pub write_failures: AtomicU64,
    /// Times the database was reopened after it stopped accepting writes.
    pub reopens: AtomicU64,
    /// Whether writes are currently accepted.
    pub unwritable: AtomicBool,
    /// Whether writes are refused because the data directory's disk is full (free
    /// space below `min_free_disk_bytes`, or RocksDB ran out of space).
    pub disk_full: AtomicBool,
}

/// How to (re)open the database.
pub(crate) struct OpenSpec {
    pub dir: PathBuf,
    pub db_opts: Options,
    pub meta_opts: Options,
    pub partition_opts: Options,
}

/// The open database, swapped for a new one when the watchdog reopens it.
pub(crate) struct DbSlot {
    db: Mutex<Option<Arc<Db>>>,
    ready: Condvar,
    generation: AtomicU64,
    trouble: Mutex<bool>,
    wake: Condvar,
    closing: AtomicBool,
    pub spec: OpenSpec,
    pub stats: Arc<StoreStats>,
}

impl DbSlot {
    pub fn new(db: Db, spec: OpenSpec, stats: Arc<StoreStats>) -> Arc<DbSlot> {
        Arc::new(DbSlot {
            db: Mutex::new(Some(Arc::new(db))),
            ready: Condvar::new(),
            generation: AtomicU64::new(0),
            trouble: Mutex::new(false),
            wake: Condvar::new(),
            closing: AtomicBool::new(false),
            spec,
            stats,
        })
    }

    /// The database, waiting while it is being reopened.
    pub fn get(&self) -> Arc<Db> {
        let mut db = self.db.lock();
        loop {
            if let Some(db) = db.as_ref() {
                return db.clone();
            }
            self.ready.wait(&mut db);
        }
    }

    /// The database, or an error at once while it is being reopened.
    pub fn try_get(&self) -> Result<Arc<Db>, StorageError> {
        self.db.lock().clone().ok_or_else(|| StorageError::Unavailable("the database is being reopened".into()))
    }

    /// How many times the database has been reopened.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// A write failed: let the watchdog find out whether the database is stuck.
    pub fn report_write_failure(&self, error: &rocksdb::Error) {
        tracing::debug!(error = %error, "storage write failed; checking storage health");
        *self.trouble.lock() = true;
        self.wake.notify_all();
    }

    /// Stops the watchdog.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let _trouble = self.trouble.lock();
        self.wake.notify_all();
    }

    /// Closes the database now (unless an operation still holds it), rather than
    /// when the last thread holding the slot lets go of it.
    pub fn close_db(&self) {
        let db = self.db.lock().take();
        drop(db);
    }

    /// A harmless write: fails while RocksDB refuses writes after a background error.
    fn probe(&self) -> Result<(), StorageError> {
        let db = self.try_get()?;
        let meta = db.cf_handle(META_CF).ok_or_else(|| StorageError::CorruptMetadata("meta cf".into()))?;
        db.delete_cf(&meta, PROBE_KEY)?;
        Ok(())
    }

    /// Closes the database and opens it again; on failure the slot stays empty
    /// (operations fail fast meanwhile) and the next attempt opens it.
    fn reopen(&self) -> Result<(), StorageError> {
        let old = self.db.lock().take();
        if let Some(old) = old {
            // Operations in flight hold the old handle for a moment: wait for them.
            let deadline = Instant::now() + Duration::from_secs(5);
            while Arc::strong_count(&old) > 1 {
                if Instant::now() > deadline {
                    *self.db.lock() = Some(old);
                    self.ready.notify_all();
                    return Err(StorageError::Unavailable("database still in use".into()));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(old);
        }
        let (db, _report) = recovery::open(&self.spec, &self.stats)?;
        *self.db.lock() = Some(Arc::new(db));
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.ready.notify_all();
        Ok(())
    }
}

/// Starts the watchdog thread for `slot`.
pub(crate) fn start_watchdog(slot: Arc<DbSlot>) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new().name("fluxo-storage-health".into()).spawn(move || watchdog(slot))
}

fn watchdog(slot: Arc<DbSlot>) {
    loop {
        {
            let mut trouble = slot.trouble.lock();
            while !*trouble && !slot.closing.load(Ordering::SeqCst) {
                slot.wake.wait(&mut trouble);
            }
            *trouble = false;
        }
        if slot.closing.load(Ordering::SeqCst) {
            return;
        }
        let Err(first) = slot.probe() else { continue };
        slot.stats.write_failures.fetch_add(1, Ordering::Relaxed);
        slot.stats.unwritable.store(true, Ordering::SeqCst);
        let no_space = is_no_space(&first);
        if no_space {
            slot.stats.disk_full.store(true, Ordering::SeqCst);
            tracing::warn!(
                error = %first,
                dir = %slot.spec.dir.display(),
                "disk full: storage stopped accepting writes (produce answers KAFKA_STORAGE_ERROR; reads go on); \
                 writes resume once space is freed"
            );
        } else {
            tracing::warn!(error = %first, "storage stopped accepting writes; reopening the database once files can be opened");
        }
        let started = Instant::now();
        let mut attempts = 0u64;
        loop {
            if slot.closing.load(Ordering::SeqCst) {
                return;
            }
            // RocksDB resumes by itself after some errors (a full disk freed): check first.
            if slot.probe().is_ok() {
                break;
            }
            attempts += 1;
            // Out of space, RocksDB resumes by itself once space returns; reopening
            // meanwhile would close the database (and stop reads) only to fail.
            let wait_for_space = no_space && free_bytes(&slot.spec.dir).is_some_and(|free| free < REOPEN_MIN_FREE_BYTES);
            // Closing the database while no file can be opened would leave it closed.
            if !wait_for_space && can_open_files(SPARE_FILES_NEEDED) {
                match slot.reopen() {
                    Ok(()) if slot.probe().is_ok() => {
                        slot.stats.reopens.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    Ok(()) => tracing::warn!("database reopened but still refuses writes; retrying"),
                    Err(e) => tracing::warn!(error = %e, attempts, "reopening the database failed; retrying"),
                }
            }
            let mut trouble = slot.trouble.lock();
            if !slot.closing.load(Ordering::SeqCst) {
                slot.wake.wait_for(&mut trouble, Duration::from_millis(500));
            }
        }
        slot.stats.unwritable.store(false, Ordering::SeqCst);
        if no_space {
            slot.stats.disk_full.store(false, Ordering::SeqCst);
            tracing::info!(after_ms = started.elapsed().as_millis() as u64, "disk space available again: writes accepted again");
        } else {
            tracing::info!(after_ms = started.elapsed().as_millis() as u64, "storage recovered: writes accepted again");
        }
    }
}

/// Whether `n` more files can be opened right now.
fn can_open_files(n: usize) -> bool {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(_) => return false,
        }
    }
    true
}

/// Free space below which the watchdog does not reopen a database that ran out of
/// space (it waits for RocksDB to resume by itself, or for more space).
const REOPEN_MIN_FREE_BYTES: u64 = 8 << 20;

/// How long a free-space reading of the data directory is reused.
const DISK_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Whether a RocksDB error says the disk is full (ENOSPC).
fn is_no_space(error: &StorageError) -> bool {
    let text = error.to_string();
    text.contains("No space left") || text.contains("NoSpace") || text.contains("no space")
}

/// Bytes an unprivileged process may still write on the filesystem holding `dir`.
pub(crate) fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `path` is a valid NUL-terminated string and `stat` a plain struct
    // that statvfs fills in; nothing is retained after the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(path.as_ptr(), &mut stat) };
    (rc == 0).then(|| (stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

/// Refuses writes before the disk is full: produce is answered KAFKA_STORAGE_ERROR
/// while the data directory's filesystem has less than `min_free_disk_bytes` free,
/// so RocksDB does not run out of space in the middle of a write; writes resume once
/// a quarter of the reserve more is free. The free space is read (statvfs) at most
/// every [`DISK_CHECK_INTERVAL`].
pub(crate) struct DiskGuard {
    dir: PathBuf,
    reserve: AtomicU64,
    /// The last reading: when, and the free bytes then less what was let through since.
    last: Mutex<Option<(Instant, u64)>>,
    /// Whether the last check refused.
    refusing: AtomicBool,
    stats: Arc<StoreStats>,
}

impl DiskGuard {
    /// A guard for `dir`, off until [`DiskGuard::set_reserve`].
    pub fn new(dir: PathBuf, stats: Arc<StoreStats>) -> DiskGuard {
        DiskGuard { dir, reserve: AtomicU64::new(0), last: Mutex::new(None), refusing: AtomicBool::new(false), stats }
    }

    /// Sets the free space writes need (0: no check).
    pub fn set_reserve(&self, bytes: u64) {
        self.reserve.store(bytes, Ordering::SeqCst);
        *self.last.lock() = None;
    }

    /// Ok while the filesystem would keep at least the reserve free after writing
    /// `incoming` more bytes (counting what was let through since the last reading);
    /// logs (WARN, INFO) and flags the change when writes stop or resume for that reason.
    pub fn check(&self, incoming: u64) -> Result<(), StorageError> {
        let reserve = self.reserve.load(Ordering::Relaxed);
        if reserve == 0 {
            return Ok(());
        }
        let mut last = self.last.lock();
        let (at, free) = match *last {
            Some((at, free)) if at.elapsed() < DISK_CHECK_INTERVAL => (at, free),
            // An unreadable filesystem is not reported as full: RocksDB's errors will tell.
            _ => (Instant::now(), free_bytes(&self.dir).unwrap_or(u64::MAX)),
        };
        // Once refusing, resume only with a margin more (a quarter of the reserve), so
        // that free space wavering around the reserve does not flip writes on and off.
        let was_refusing = self.refusing.load(Ordering::SeqCst);
        let needed = if was_refusing { reserve.saturating_add(reserve / 4) } else { reserve };
        let refuse = free.saturating_sub(incoming) < needed;
        // Bytes let through count against the reading until the next one.
        *last = Some((at, if refuse { free } else { free - incoming }));
        self.refusing.store(refuse, Ordering::SeqCst);
        if refuse && !was_refusing {
            self.stats.disk_full.store(true, Ordering::SeqCst);
            tracing::warn!(
                free_bytes = free,
                min_free_disk_bytes = reserve,
                dir = %self.dir.display(),
                "disk full: free space below min_free_disk_bytes; produce answers KAFKA_STORAGE_ERROR (reads go on) \
                 until space is freed"
            );
        } else if !refuse && was_refusing {
            self.stats.disk_full.store(false, Ordering::SeqCst);
            tracing::info!(free_bytes = free, min_free_disk_bytes = reserve, "disk space available again: accepting writes");
        }
        if refuse {
            return Err(StorageError::DiskFull { free, reserve });
        }
        Ok(())
    }
}
