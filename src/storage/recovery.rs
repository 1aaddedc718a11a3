//! Opening the database without lying about damage.
//!
//! RocksDB's default WAL recovery (point in time) replays a damaged write-ahead
//! log up to its first bad record and opens without a word: acknowledged records
//! after it are gone, silently. Fluxo opens in absolute-consistency mode instead;
//! when that fails on corruption it keeps a copy of the damaged files under
//! `lost+found/` in the data directory, says so in an ERROR naming the file, and
//! only then recovers to the last intact record (as Kafka's log recovery truncates
//! a segment at its first invalid batch). What each partition lost is worked out
//! from the damaged log itself (see `wal_scan`) when the partitions are opened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rocksdb::{ColumnFamilyDescriptor, DBRecoveryMode, ErrorKind};
use uuid::Uuid;

use super::health::{OpenSpec, StoreStats};
use super::wal_scan::{self, WalDamage};
use super::{Db, META_CF};
use crate::error::StorageError;

/// Directory, under the data directory, where damaged files are preserved.
pub const LOST_AND_FOUND: &str = "lost+found";

/// What opening the database had to recover from.
#[derive(Debug, Default)]
pub(crate) struct WalRecovery {
    /// Where the write-ahead log was damaged (None: it was intact, or RocksDB's
    /// complaint was about something this scan does not see).
    pub damage: Option<WalDamage>,
    /// Highest log end offset each partition's metadata claimed in the damaged logs.
    pub claimed_log_end: HashMap<(Uuid, i32), i64>,
    /// Where the copies of the damaged files are.
    pub preserved: Option<PathBuf>,
}

impl WalRecovery {
    /// The damaged file's name, for messages.
    pub fn file(&self) -> String {
        self.damage.as_ref().map_or_else(|| "unknown".to_string(), |d| d.file.display().to_string())
    }
}

/// Partition column families that exist in the database (all but meta and default).
pub(crate) fn existing_cfs(spec: &OpenSpec) -> Vec<String> {
    match Db::list_cf(&spec.db_opts, &spec.dir) {
        Ok(names) => names.into_iter().filter(|n| n != META_CF && n != "default").collect(),
        Err(_) => vec![], // a new database
    }
}

/// Opens the database with every existing column family.
pub(crate) fn open(spec: &OpenSpec, stats: &StoreStats) -> Result<(Db, WalRecovery), StorageError> {
    open_with(spec, &existing_cfs(spec), stats)
}

/// Opens the database with the meta column family and `names`; recovers (loudly)
/// from a damaged write-ahead log.
pub(crate) fn open_with(spec: &OpenSpec, names: &[String], stats: &StoreStats) -> Result<(Db, WalRecovery), StorageError> {
    let descriptors = || {
        std::iter::once(ColumnFamilyDescriptor::new(META_CF, spec.meta_opts.clone()))
            .chain(names.iter().map(|n| ColumnFamilyDescriptor::new(n, spec.partition_opts.clone())))
            .collect::<Vec<_>>()
    };
    let mut strict = spec.db_opts.clone();
    strict.set_wal_recovery_mode(DBRecoveryMode::AbsoluteConsistency);
    let refusal = match Db::open_cf_descriptors(&strict, &spec.dir, descriptors()) {
        Ok(db) => return Ok((db, WalRecovery::default())),
        Err(e) if e.kind() == ErrorKind::Corruption => e,
        Err(e) => return Err(e.into()),
    };
    let files = wal_scan::wal_files(&spec.dir);
    let scan = wal_scan::scan(&files);
    // Keep the damaged file and every later one: recovery drops them all.
    let from = scan.damage.as_ref().and_then(|d| files.iter().position(|f| *f == d.file)).unwrap_or(0);
    let preserved = match preserve(&spec.dir, &files[from..]) {
        Ok(dir) => Some(dir),
        Err(e) => {
            tracing::error!(error = %e, "cannot copy the damaged write-ahead log files to {LOST_AND_FOUND}/");
            None
        }
    };
    let recovery = WalRecovery { damage: scan.damage, claimed_log_end: scan.claimed_log_end, preserved };
    stats.wal_corruptions.fetch_add(1, Ordering::Relaxed);
    let preserved_at = recovery.preserved.as_ref().map_or_else(|| "nowhere".to_string(), |p| p.display().to_string());
    match &recovery.damage {
        Some(d) => tracing::error!(
            file = %d.file.display(),
            offset = d.offset,
            damage = %d.what,
            rocksdb = %refusal,
            preserved = %preserved_at,
            "write-ahead log {} is damaged at byte {}: recovering every partition to its last intact record; records \
             written after it are lost{}",
            d.file.display(),
            d.offset,
            if d.torn_tail {
                " (the file ends inside a record: anything written after it is gone and cannot be counted)"
            } else {
                ""
            }
        ),
        None => tracing::error!(
            rocksdb = %refusal,
            preserved = %preserved_at,
            "the database refused to open as corrupted (no damaged write-ahead log record found): \
             recovering to the last intact write-ahead log record"
        ),
    }
    let mut lenient = spec.db_opts.clone();
    lenient.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
    let db = Db::open_cf_descriptors(&lenient, &spec.dir, descriptors())?;
    Ok((db, recovery))
}

/// Copies `files` into a new directory under `lost+found/`; returns it.
fn preserve(dir: &Path, files: &[PathBuf]) -> std::io::Result<PathBuf> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let target = dir.join(LOST_AND_FOUND).join(format!("wal-{stamp}"));
    std::fs::create_dir_all(&target)?;
    for file in files {
        if let Some(name) = file.file_name() {
            std::fs::copy(file, target.join(name))?;
        }
    }
    Ok(target)
}
