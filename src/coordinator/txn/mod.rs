//! The transaction coordinator (KIP-98, transactions v1): per transactional id a
//! stable producer id and its epoch, the transaction's partitions and consumer
//! groups, and Kafka's state machine ([`state`]).
//!
//! Every change is persisted (one record per id, see `storage::txn_store`) before the
//! request is answered, and replayed at start-up. Where the records live: rows of the
//! metadata column family, each one the whole record of one transactional id (the
//! `__transaction_state` key and value). docs/cluster.md §11 prefers records in an
//! internal partition placed by hashing the id; the row is chosen for now because the
//! coordinator's reads are "the last record per id" and a row gives exactly that with no
//! compaction, offsets or recovery scan of an internal log, on a single broker where
//! nothing replicates yet. The record is self-contained and replaces the previous one,
//! so moving it into a replicated internal partition later changes the store, not this
//! module.
//!
//! Ending a transaction is three steps: the state moves to PrepareCommit/PrepareAbort
//! (persisted), the broker writes a marker into every partition of the transaction
//! (and commits pending offsets), then the state moves to CompleteCommit/CompleteAbort
//! (persisted). Requests arriving meanwhile get CONCURRENT_TRANSACTIONS. A transaction
//! found in Prepare* at start-up is completed again ([`TxnCoordinator::unfinished`]); an
//! open one past its timeout is fenced and aborted ([`TxnCoordinator::expire`]).
//!
//! Writes of transactional records are checked against the coordinator under the
//! transaction's lock ([`TxnCoordinator::with_ongoing`]), so no record of a transaction
//! can be appended after its marker.

pub mod state;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::error::StorageError;
use crate::storage::producer_state::now_ms;
use crate::storage::txn_store::TxnStore;
use crate::storage::Store;
pub use state::{EndDecision, InitDecision, PendingOffset, TxnMetadata, TxnState};

/// Why the transaction coordinator refused a request. Handlers map each to a Kafka
/// error code; nothing here knows the codes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TxnError {
    /// The transaction timeout is not positive or above `transaction_max_timeout_ms`.
    #[error("transaction timeout {0} ms is not within 1..={1} ms")]
    InvalidTransactionTimeout(i64, i64),
    /// A previous transaction of the id is still being completed; retry.
    #[error("a previous transaction is still being completed")]
    ConcurrentTransactions,
    /// The producer's epoch is not the current one: another producer took the id.
    #[error("producer fenced: a newer producer with the same transactional id exists")]
    ProducerFenced,
    /// The producer's epoch is older than the one the partition has seen.
    #[error("producer epoch is not the current one")]
    InvalidProducerEpoch,
    /// The producer id does not belong to the transactional id (or the id is unknown).
    #[error("the producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    /// The request does not fit the transaction's state (e.g. a write to a partition
    /// not added to it, or a commit of an aborted transaction).
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A malformed request (an empty transactional id, …).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Persisting the coordinator's state failed.
    #[error("transaction state not persisted: {0}")]
    Storage(Arc<StorageError>),
}

impl PartialEq for TxnError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TxnError::Storage(a), TxnError::Storage(b)) => a.to_string() == b.to_string(),
            (a, b) => std::mem::discriminant(a) == std::mem::discriminant(b) && a.to_string() == b.to_string(),
        }
    }
}

impl From<StorageError> for TxnError {
    fn from(e: StorageError) -> Self {
        TxnError::Storage(Arc::new(e))
    }
}

/// Coordinator settings.
#[derive(Debug, Clone, Copy)]
pub struct TxnSettings {
    /// `transaction.max.timeout.ms`: the largest timeout a producer may ask for.
    pub max_timeout_ms: i64,
}

/// Ending a transaction: what the broker must write and commit before calling
/// [`TxnCoordinator::complete`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndJob {
    /// The transactional id.
    pub transactional_id: String,
    /// The producer id the markers carry.
    pub producer_id: i64,
    /// The producer epoch the markers carry.
    pub producer_epoch: i16,
    /// COMMIT or ABORT.
    pub commit: bool,
    /// Partitions to write a marker into.
    pub partitions: Vec<(String, i32)>,
    /// Offsets to make visible (commit only).
    pub offsets: Vec<PendingOffset>,
}

/// What InitProducerId needs from the broker next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The producer id and epoch to answer.
    Ready(i64, i16),
    /// An open transaction was fenced: abort it (write the job's markers, complete it)
    /// and call InitProducerId again.
    AbortFirst(EndJob),
}

/// What EndTxn needs from the broker next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndOutcome {
    /// Nothing to write (a retried EndTxn): answer success.
    Done,
    /// Write the job's markers and offsets, then complete it.
    Markers(EndJob),
}

/// The transaction coordinator: every transactional id this broker coordinates.
pub struct TxnCoordinator {
    settings: TxnSettings,
    store: TxnStore,
    txns: RwLock<HashMap<String, Arc<Mutex<TxnMetadata>>>>,
    /// Producer id → transactional id, for checks on produce.
    by_producer: RwLock<HashMap<i64, String>>,
}

impl TxnCoordinator {
    /// Loads every persisted transaction record.
    pub fn load(store: Arc<Store>, settings: TxnSettings) -> Result<TxnCoordinator, StorageError> {
        let store = TxnStore::new(store);
        let mut txns = HashMap::new();
        let mut by_producer = HashMap::new();
        for (id, bytes) in store.load()? {
            let meta: TxnMetadata = serde_json::from_slice(&bytes)
                .map_err(|e| StorageError::CorruptMetadata(format!("transaction {id}: {e}")))?;
            by_producer.insert(meta.producer_id, id.clone());
            txns.insert(id, Arc::new(Mutex::new(meta)));
        }
        tracing::info!(transactional_ids = txns.len(), "transaction coordinator loaded");
        Ok(TxnCoordinator { settings, store, txns: RwLock::new(txns), by_producer: RwLock::new(by_producer) })
    }

    /// The settings in force.
    pub fn settings(&self) -> TxnSettings {
        self.settings
    }

    fn get(&self, id: &str) -> Option<Arc<Mutex<TxnMetadata>>> {
        self.txns.read().get(id).cloned()
    }

    fn persist(&self, meta: &TxnMetadata) -> Result<(), TxnError> {
        let record = serde_json::to_vec(meta).map_err(|e| TxnError::InvalidRequest(e.to_string()))?;
        self.store.put(&meta.transactional_id, &record)?;
        Ok(())
    }

    /// Runs `f` on an existing id's metadata and persists it if `f` says it changed
    /// (restoring the previous metadata if that fails).
    fn update<R>(&self, id: &str, f: impl FnOnce(&mut TxnMetadata) -> Result<(R, bool), TxnError>) -> Result<R, TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest("empty transactional id".into()));
        }
        let txn = self.get(id).ok_or(TxnError::InvalidProducerIdMapping)?;
        let mut meta = txn.lock();
        let before = meta.clone();
        let (result, changed) = f(&mut meta)?;
        if changed {
            if let Err(e) = self.persist(&meta) {
                *meta = before;
                return Err(e);
            }
        }
        Ok(result)
    }

    /// Waits until the records written so far are durable (fsync mode).
    pub async fn wait_durable(&self) -> Result<(), TxnError> {
        Ok(self.store.wait_durable().await?)
    }

    /// InitProducerId with a transactional id. `allocate` hands out a new producer id.
    pub fn init_producer_id(
        &self,
        id: &str,
        timeout_ms: i64,
        expected: Option<(i64, i16)>,
        allocate: impl FnOnce() -> Result<i64, StorageError>,
    ) -> Result<InitOutcome, TxnError> {
        if id.is_empty() {
            return Err(TxnError::InvalidRequest("empty transactional id".into()));
        }
        if timeout_ms <= 0 || timeout_ms > self.settings.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout(timeout_ms, self.settings.max_timeout_ms));
        }
        let now = now_ms();
        let txn = {
            let mut txns = self.txns.write();
            match txns.get(id) {
                Some(t) => t.clone(),
                None => {
                    if expected.is_some() {
                        // KIP-360: the client names a producer id this id never had.
                        return Err(TxnError::InvalidProducerIdMapping);
                    }
                    let meta = TxnMetadata::new(id, allocate()?, timeout_ms, now);
                    self.persist(&meta)?;
                    self.by_producer.write().insert(meta.producer_id, id.to_string());
                    let answer = InitOutcome::Ready(meta.producer_id, meta.producer_epoch);
                    txns.insert(id.to_string(), Arc::new(Mutex::new(meta)));
                    return Ok(answer);
                }
            }
        };
        let mut meta = txn.lock();
        let before = meta.clone();
        let decision = meta.init(timeout_ms, expected, now)?;
        let outcome = match decision {
            InitDecision::Ready { changed: false } => return Ok(InitOutcome::Ready(meta.producer_id, meta.producer_epoch)),
            InitDecision::Ready { changed: true } => InitOutcome::Ready(meta.producer_id, meta.producer_epoch),
            InitDecision::AbortFirst => InitOutcome::AbortFirst(job(&meta)),
            InitDecision::NewProducerId => {
                let pid = allocate()?;
                meta.rotate_producer_id(pid, timeout_ms, now);
                InitOutcome::Ready(meta.producer_id, meta.producer_epoch)
            }
        };
        if let Err(e) = self.persist(&meta) {
            *meta = before;
            return Err(e);
        }
        if meta.producer_id != before.producer_id {
            let mut by_producer = self.by_producer.write();
            by_producer.remove(&before.producer_id);
            by_producer.insert(meta.producer_id, id.to_string());
        }
        Ok(outcome)
    }

    /// AddPartitionsToTxn: adds partitions (which the caller checked exist).
    pub fn add_partitions(&self, id: &str, producer_id: i64, producer_epoch: i16, partitions: &[(String, i32)]) -> Result<(), TxnError> {
        let now = now_ms();
        self.update(id, |m| Ok(((), m.add_partitions(producer_id, producer_epoch, partitions, now)?)))
    }

    /// Checks a producer's id and epoch and that the transaction can take more partitions,
    /// without changing anything (answers for partitions that could not be added).
    pub fn check_add(&self, id: &str, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        self.update(id, |m| {
            m.check_producer(producer_id, producer_epoch)?;
            if m.state.is_preparing() {
                return Err(TxnError::ConcurrentTransactions);
            }
            Ok(((), false))
        })
    }

    /// AddOffsetsToTxn.
    pub fn add_offsets(&self, id: &str, producer_id: i64, producer_epoch: i16, group: &str) -> Result<(), TxnError> {
        let now = now_ms();
        self.update(id, |m| Ok(((), m.add_offsets(producer_id, producer_epoch, group, now)?)))
    }

    /// TxnOffsetCommit: holds the offsets until the transaction commits.
    pub fn commit_offsets(&self, id: &str, producer_id: i64, producer_epoch: i16, offsets: Vec<PendingOffset>) -> Result<(), TxnError> {
        let now = now_ms();
        self.update(id, |m| {
            m.commit_offsets(producer_id, producer_epoch, offsets, now)?;
            Ok(((), true))
        })
    }

    /// EndTxn: moves to PrepareCommit/PrepareAbort (persisted) and says what to write.
    pub fn end_txn(&self, id: &str, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<EndOutcome, TxnError> {
        let now = now_ms();
        self.update(id, |m| match m.end(producer_id, producer_epoch, commit, now)? {
            EndDecision::AlreadyDone => Ok((EndOutcome::Done, false)),
            EndDecision::WriteMarkers => Ok((EndOutcome::Markers(job(m)), true)),
        })
    }

    /// The markers and offsets of `job` are written: CompleteCommit/CompleteAbort.
    pub fn complete(&self, job: &EndJob) -> Result<(), TxnError> {
        let now = now_ms();
        self.update(&job.transactional_id, |m| {
            if !m.state.is_preparing() || m.producer_id != job.producer_id {
                return Ok(((), false));
            }
            m.complete(now);
            Ok(((), true))
        })
    }

    /// Runs `f` (an append of a transactional batch) if `producer_id` at
    /// `producer_epoch` has an open transaction containing (topic, partition), holding
    /// the transaction's lock so that it cannot end meanwhile.
    pub fn with_ongoing<R>(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
        f: impl FnOnce() -> R,
    ) -> Result<R, TxnError> {
        let id = self.by_producer.read().get(&producer_id).cloned();
        let txn = id.and_then(|id| self.get(&id)).ok_or_else(|| {
            TxnError::InvalidTxnState(format!("producer id {producer_id} has no transactional id"))
        })?;
        let meta = txn.lock();
        if meta.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if producer_epoch < meta.producer_epoch {
            return Err(TxnError::InvalidProducerEpoch);
        }
        if meta.state != TxnState::Ongoing || producer_epoch != meta.producer_epoch {
            return Err(TxnError::InvalidTxnState(format!("no open transaction (state {})", meta.state.name())));
        }
        if !meta.partitions.contains(&(topic.to_string(), partition)) {
            return Err(TxnError::InvalidTxnState(format!("{topic}-{partition} was not added to the transaction")));
        }
        Ok(f())
    }

    /// Fences and aborts every open transaction past its timeout (epoch bumped,
    /// PrepareAbort persisted); returns the abort jobs to carry out.
    pub fn expire(&self) -> Vec<EndJob> {
        let now = now_ms();
        let all: Vec<_> = self.txns.read().values().cloned().collect();
        let mut jobs = Vec::new();
        for txn in all {
            let mut meta = txn.lock();
            if !meta.timed_out(now) {
                continue;
            }
            let before = meta.clone();
            meta.fence(now);
            match self.persist(&meta) {
                Ok(()) => {
                    tracing::info!(transactional_id = %meta.transactional_id, producer_id = meta.producer_id, epoch = meta.producer_epoch, "transaction timed out: aborting");
                    jobs.push(job(&meta));
                }
                Err(e) => {
                    *meta = before;
                    tracing::warn!(transactional_id = %meta.transactional_id, error = %e, "could not abort a timed-out transaction");
                }
            }
        }
        jobs
    }

    /// Transactions whose markers may not all be written (Prepare* states: a crash, or
    /// a failed marker write): their jobs, to be carried out again.
    pub fn unfinished(&self) -> Vec<EndJob> {
        let all: Vec<_> = self.txns.read().values().cloned().collect();
        all.iter()
            .filter_map(|t| {
                let mut meta = t.lock();
                if meta.state == TxnState::PrepareEpochFence {
                    meta.state = TxnState::PrepareAbort;
                }
                meta.state.is_preparing().then(|| job(&meta))
            })
            .collect()
    }

    /// The partitions of `group` with offsets committed in a transaction that has not
    /// ended yet (KIP-447: OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT
    /// for them, so a new consumer does not start from an offset about to change).
    pub fn unstable_offsets(&self, group: &str) -> std::collections::HashSet<(String, i32)> {
        let all: Vec<_> = self.txns.read().values().cloned().collect();
        let mut out = std::collections::HashSet::new();
        for txn in all {
            let meta = txn.lock();
            if matches!(meta.state, TxnState::Ongoing | TxnState::PrepareCommit) {
                out.extend(meta.pending_offsets.iter().filter(|o| o.group == group).map(|o| (o.topic.clone(), o.partition)));
            }
        }
        out
    }

    /// The current metadata of a transactional id (tests, operators).
    pub fn describe(&self, id: &str) -> Option<TxnMetadata> {
        self.get(id).map(|t| t.lock().clone())
    }
}

/// The end job of a transaction in PrepareCommit or PrepareAbort.
fn job(meta: &TxnMetadata) -> EndJob {
    let commit = meta.state == TxnState::PrepareCommit;
    EndJob {
        transactional_id: meta.transactional_id.clone(),
        producer_id: meta.producer_id,
        producer_epoch: meta.producer_epoch,
        commit,
        partitions: meta.partitions.iter().cloned().collect(),
        offsets: if commit { meta.pending_offsets.clone() } else { Vec::new() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::StoreOptions;

    fn open(dir: &std::path::Path) -> TxnCoordinator {
        let opts = StoreOptions { block_cache_bytes: 8 << 20, write_buffer_bytes: 8 << 20, fsync: false, spare_column_families: 2 };
        TxnCoordinator::load(Store::open(dir, &opts).unwrap(), TxnSettings { max_timeout_ms: 60_000 }).unwrap()
    }

    #[test]
    fn a_transaction_prepared_before_a_crash_is_handed_back_to_complete() {
        let dir = tempfile::tempdir().unwrap();
        let (pid, job) = {
            let c = open(dir.path());
            let InitOutcome::Ready(pid, 0) = c.init_producer_id("t", 10_000, None, || Ok(41)).unwrap() else { panic!("init") };
            c.add_partitions("t", pid, 0, &[("a".into(), 1), ("b".into(), 0)]).unwrap();
            c.add_offsets("t", pid, 0, "g").unwrap();
            let offset = PendingOffset { group: "g".into(), topic: "a".into(), partition: 1, offset: 9, leader_epoch: 2, metadata: "m".into() };
            c.commit_offsets("t", pid, 0, vec![offset]).unwrap();
            assert!(c.unstable_offsets("g").contains(&("a".to_string(), 1)));
            let EndOutcome::Markers(job) = c.end_txn("t", pid, 0, true).unwrap() else { panic!("end") };
            assert_eq!(c.with_ongoing(pid, 0, "a", 1, || ()), Err(TxnError::InvalidTxnState("no open transaction (state PrepareCommit)".into())));
            (pid, job)
            // dropped without completing: a crash between PrepareCommit and the markers
        };
        let c = open(dir.path());
        assert_eq!(c.unfinished(), vec![job.clone()], "the prepared commit is found again");
        assert_eq!(job.partitions, vec![("a".to_string(), 1), ("b".to_string(), 0)]);
        assert_eq!(job.offsets.len(), 1);
        c.complete(&job).unwrap();
        assert!(c.unfinished().is_empty());
        assert_eq!(c.describe("t").unwrap().state, TxnState::CompleteCommit);
        assert!(c.unstable_offsets("g").is_empty());
        drop(c);
        let c = open(dir.path());
        assert_eq!(c.describe("t").unwrap().state, TxnState::CompleteCommit, "completion is persisted");
        assert_eq!(c.init_producer_id("t", 10_000, None, || Ok(99)).unwrap(), InitOutcome::Ready(pid, 1));
        assert_eq!(c.init_producer_id("t", 60_001, None, || Ok(99)), Err(TxnError::InvalidTransactionTimeout(60_001, 60_000)));
    }
}
