//! The transaction state machine of one transactional id, as Kafka's
//! `TransactionMetadata` (transactions v1): pure functions of the current metadata,
//! the request and the time, with no I/O. The coordinator persists the metadata
//! after every transition that changed it, before answering.
//!
//! ```text
//! Empty ──AddPartitions/AddOffsets──► Ongoing ──EndTxn(commit)──► PrepareCommit ──markers──► CompleteCommit
//!   ▲                                    │  ╲                                                    │
//!   │                                    │   ╲─EndTxn(abort)──► PrepareAbort ──markers──► CompleteAbort
//!   │                                    │                        ▲                               │
//!   │                          InitProducerId / timeout           │                               │
//!   │                                    └──► PrepareEpochFence ──┘ (epoch bumped)                │
//!   └──────────────────── InitProducerId (epoch bump) ◄──────────────────────────────────────────┘
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::TxnError;

/// Kafka's transaction states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnState {
    /// No transaction in progress (after InitProducerId).
    Empty,
    /// Partitions or offsets were added; records may be written.
    Ongoing,
    /// EndTxn(commit) accepted; COMMIT markers being written.
    PrepareCommit,
    /// EndTxn(abort) or a fence accepted; ABORT markers being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
    /// The epoch was bumped to fence a producer whose transaction is being aborted.
    PrepareEpochFence,
    /// The transactional id expired (not produced by this broker yet).
    Dead,
}

impl TxnState {
    /// Kafka's name of the state (DescribeTransactions, logs).
    pub fn name(&self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
            TxnState::Dead => "Dead",
        }
    }

    /// Whether markers are being written (requests get CONCURRENT_TRANSACTIONS).
    pub fn is_preparing(&self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence)
    }
}

/// An offset committed inside a transaction, visible to OffsetFetch once the
/// transaction commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingOffset {
    /// Consumer group.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The committed offset.
    pub offset: i64,
    /// Leader epoch of the last consumed record (-1: unknown).
    pub leader_epoch: i32,
    /// Metadata string.
    pub metadata: String,
}

/// Everything the coordinator knows of one transactional id: the record persisted
/// under its id (Kafka's `__transaction_state` value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnMetadata {
    /// The transactional id.
    pub transactional_id: String,
    /// Producer id, stable for the id until its epoch is exhausted.
    pub producer_id: i64,
    /// The producer id before the last change (-1: none), for KIP-360 retries.
    pub last_producer_id: i64,
    /// Current producer epoch.
    pub producer_epoch: i16,
    /// Epoch before the last bump (-1: none), for KIP-360 retries.
    pub last_producer_epoch: i16,
    /// `transaction.timeout.ms` the producer asked for.
    pub timeout_ms: i64,
    /// State.
    pub state: TxnState,
    /// Partitions of the ongoing (or ending) transaction.
    pub partitions: BTreeSet<(String, i32)>,
    /// Consumer groups whose offsets the transaction commits.
    pub groups: BTreeSet<String>,
    /// Offsets committed in the transaction (TxnOffsetCommit), not yet visible.
    pub pending_offsets: Vec<PendingOffset>,
    /// When the current transaction started (wall clock ms; -1: none).
    pub txn_start_ms: i64,
    /// Last change (wall clock ms).
    pub last_update_ms: i64,
}

/// What InitProducerId decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitDecision {
    /// Answer with the metadata's producer id and epoch (changed: persist first).
    Ready {
        /// Whether the metadata changed.
        changed: bool,
    },
    /// A transaction is open: it was fenced (epoch bumped, state PrepareAbort) and
    /// must be aborted before the producer gets its id.
    AbortFirst,
    /// The producer id's epochs are exhausted: a new producer id is needed.
    NewProducerId,
}

/// What EndTxn decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndDecision {
    /// Write the markers (the state is now PrepareCommit or PrepareAbort).
    WriteMarkers,
    /// Nothing to do: a retry of the EndTxn that completed the last transaction.
    AlreadyDone,
}

impl TxnMetadata {
    /// A new transactional id with its first producer id, at epoch 0.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i64, now_ms: i64) -> TxnMetadata {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            last_producer_id: -1,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            pending_offsets: Vec::new(),
            txn_start_ms: -1,
            last_update_ms: now_ms,
        }
    }

    /// InitProducerId for an existing id. `expected` is the producer id and epoch the
    /// client already has (KIP-360), if any.
    pub fn init(&mut self, timeout_ms: i64, expected: Option<(i64, i16)>, now_ms: i64) -> Result<InitDecision, TxnError> {
        if let Some((pid, epoch)) = expected {
            let current = pid == self.producer_id && epoch == self.producer_epoch;
            // A retry of the InitProducerId that gave the client its current id.
            let retried = (pid == self.producer_id || pid == self.last_producer_id) && epoch == self.last_producer_epoch;
            if !current && !retried {
                if pid != self.producer_id && pid != self.last_producer_id {
                    return Err(TxnError::InvalidProducerIdMapping);
                }
                return Err(TxnError::ProducerFenced);
            }
            if retried && !current && self.state == TxnState::Empty {
                return Ok(InitDecision::Ready { changed: false });
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                self.fence(now_ms);
                Ok(InitDecision::AbortFirst)
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort | TxnState::Dead => {
                if self.producer_epoch >= i16::MAX - 1 {
                    return Ok(InitDecision::NewProducerId);
                }
                self.last_producer_id = self.producer_id;
                self.last_producer_epoch = self.producer_epoch;
                self.producer_epoch += 1;
                self.timeout_ms = timeout_ms;
                self.reset(TxnState::Empty, now_ms);
                Ok(InitDecision::Ready { changed: true })
            }
        }
    }

    /// Moves to a new producer id (epochs exhausted), at epoch 0.
    pub fn rotate_producer_id(&mut self, producer_id: i64, timeout_ms: i64, now_ms: i64) {
        self.last_producer_id = self.producer_id;
        self.last_producer_epoch = self.producer_epoch;
        self.producer_id = producer_id;
        self.producer_epoch = 0;
        self.timeout_ms = timeout_ms;
        self.reset(TxnState::Empty, now_ms);
    }

    /// Fences the current producer of an open transaction: bumps the epoch (Kafka's
    /// PrepareEpochFence) and moves to PrepareAbort; markers carry the new epoch, so
    /// the old producer's writes and requests are refused from now on.
    pub fn fence(&mut self, now_ms: i64) {
        self.last_producer_epoch = self.producer_epoch;
        self.producer_epoch = self.producer_epoch.saturating_add(1);
        self.state = TxnState::PrepareAbort;
        self.last_update_ms = now_ms;
    }

    /// Checks the producer id and epoch of a request against the metadata.
    pub fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if producer_epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced);
        }
        Ok(())
    }

    /// The state check shared by AddPartitionsToTxn and AddOffsetsToTxn; starts a
    /// transaction if none is open. Returns whether the state changed.
    fn begin(&mut self, producer_id: i64, producer_epoch: i16, now_ms: i64) -> Result<bool, TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        match self.state {
            s if s.is_preparing() => Err(TxnError::ConcurrentTransactions),
            TxnState::Dead => Err(TxnError::InvalidTxnState("the transactional id is dead".into())),
            TxnState::Ongoing => Ok(false),
            _ => {
                self.reset(TxnState::Ongoing, now_ms);
                self.txn_start_ms = now_ms;
                Ok(true)
            }
        }
    }

    /// AddPartitionsToTxn: returns whether the metadata changed.
    pub fn add_partitions(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<bool, TxnError> {
        let mut changed = self.begin(producer_id, producer_epoch, now_ms)?;
        for p in partitions {
            changed |= self.partitions.insert(p.clone());
        }
        if changed {
            self.last_update_ms = now_ms;
        }
        Ok(changed)
    }

    /// AddOffsetsToTxn: returns whether the metadata changed.
    pub fn add_offsets(&mut self, producer_id: i64, producer_epoch: i16, group: &str, now_ms: i64) -> Result<bool, TxnError> {
        let mut changed = self.begin(producer_id, producer_epoch, now_ms)?;
        changed |= self.groups.insert(group.to_string());
        if changed {
            self.last_update_ms = now_ms;
        }
        Ok(changed)
    }

    /// TxnOffsetCommit: holds the offsets until the transaction ends. The group must
    /// have been added with AddOffsetsToTxn.
    pub fn commit_offsets(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        offsets: Vec<PendingOffset>,
        now_ms: i64,
    ) -> Result<(), TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.state.is_preparing() {
            return Err(TxnError::ConcurrentTransactions);
        }
        if self.state != TxnState::Ongoing {
            return Err(TxnError::InvalidTxnState(format!("no transaction is open (state {})", self.state.name())));
        }
        for o in offsets {
            if !self.groups.contains(&o.group) {
                return Err(TxnError::InvalidTxnState(format!("group {} was not added to the transaction", o.group)));
            }
            self.pending_offsets.retain(|p| !(p.group == o.group && p.topic == o.topic && p.partition == o.partition));
            self.pending_offsets.push(o);
        }
        self.last_update_ms = now_ms;
        Ok(())
    }

    /// EndTxn (transactions v1).
    pub fn end(&mut self, producer_id: i64, producer_epoch: i16, commit: bool, now_ms: i64) -> Result<EndDecision, TxnError> {
        self.check_producer(producer_id, producer_epoch)?;
        let mismatch = |state: TxnState| TxnError::InvalidTxnState(format!("cannot {} in state {}", if commit { "commit" } else { "abort" }, state.name()));
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                self.state = if commit { TxnState::PrepareCommit } else { TxnState::PrepareAbort };
                self.last_update_ms = now_ms;
                Ok(EndDecision::WriteMarkers)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(EndDecision::AlreadyDone),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) | (TxnState::PrepareEpochFence, _) => {
                Err(TxnError::ConcurrentTransactions)
            }
            (state, _) => Err(mismatch(state)),
        }
    }

    /// The markers are written: CompleteCommit or CompleteAbort, nothing pending.
    pub fn complete(&mut self, now_ms: i64) {
        let done = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        self.reset(done, now_ms);
    }

    /// Whether an open transaction has passed its timeout at `now_ms`.
    pub fn timed_out(&self, now_ms: i64) -> bool {
        self.state == TxnState::Ongoing && self.txn_start_ms >= 0 && now_ms.saturating_sub(self.txn_start_ms) > self.timeout_ms
    }

    fn reset(&mut self, state: TxnState, now_ms: i64) {
        self.state = state;
        self.partitions.clear();
        self.groups.clear();
        self.pending_offsets.clear();
        self.txn_start_ms = -1;
        self.last_update_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ongoing() -> TxnMetadata {
        let mut m = TxnMetadata::new("t", 7, 60_000, 0);
        assert_eq!(m.add_partitions(7, 0, &[("a".into(), 0)], 10), Ok(true));
        m
    }

    #[test]
    fn a_transaction_runs_empty_ongoing_prepare_complete() {
        let mut m = ongoing();
        assert_eq!((m.state, m.txn_start_ms), (TxnState::Ongoing, 10));
        assert_eq!(m.add_partitions(7, 0, &[("a".into(), 0)], 11), Ok(false), "adding again changes nothing");
        assert_eq!(m.add_offsets(7, 0, "g", 12), Ok(true));
        let offset = PendingOffset { group: "g".into(), topic: "a".into(), partition: 0, offset: 5, leader_epoch: -1, metadata: String::new() };
        m.commit_offsets(7, 0, vec![offset.clone()], 13).unwrap();
        assert_eq!(m.end(7, 0, true, 14), Ok(EndDecision::WriteMarkers));
        assert_eq!(m.state, TxnState::PrepareCommit);
        assert_eq!(m.partitions.len(), 1, "the partitions stay until the markers are written");
        assert_eq!(m.pending_offsets, vec![offset]);
        assert_eq!(m.add_partitions(7, 0, &[("b".into(), 0)], 15), Err(TxnError::ConcurrentTransactions));
        assert_eq!(m.end(7, 0, true, 15), Err(TxnError::ConcurrentTransactions));
        m.complete(16);
        assert_eq!(m.state, TxnState::CompleteCommit);
        assert!(m.partitions.is_empty() && m.pending_offsets.is_empty() && m.groups.is_empty());
        assert_eq!(m.end(7, 0, true, 17), Ok(EndDecision::AlreadyDone), "a retried commit succeeds");
        assert!(matches!(m.end(7, 0, false, 17), Err(TxnError::InvalidTxnState(_))));
    }

    #[test]
    fn producers_are_checked_and_fenced() {
        let mut m = ongoing();
        assert_eq!(m.add_partitions(8, 0, &[], 1), Err(TxnError::InvalidProducerIdMapping));
        assert_eq!(m.add_partitions(7, 1, &[], 1), Err(TxnError::ProducerFenced));
        // A second producer with the same id: the open transaction is fenced and aborted.
        assert_eq!(m.init(60_000, None, 20), Ok(InitDecision::AbortFirst));
        assert_eq!((m.state, m.producer_epoch), (TxnState::PrepareAbort, 1));
        assert_eq!(m.end(7, 0, false, 21), Err(TxnError::ProducerFenced), "the old producer is fenced");
        assert_eq!(m.init(60_000, None, 21), Err(TxnError::ConcurrentTransactions));
        m.complete(22);
        assert_eq!(m.state, TxnState::CompleteAbort);
        assert_eq!(m.init(60_000, None, 23), Ok(InitDecision::Ready { changed: true }));
        assert_eq!((m.producer_id, m.producer_epoch, m.state), (7, 2, TxnState::Empty));
        // KIP-360: the client names its producer id and epoch.
        assert_eq!(m.init(60_000, Some((7, 1)), 24), Ok(InitDecision::Ready { changed: false }), "a retry");
        assert_eq!(m.init(60_000, Some((9, 2)), 24), Err(TxnError::InvalidProducerIdMapping));
        assert_eq!(m.init(60_000, Some((7, 0)), 24), Err(TxnError::ProducerFenced));
        assert_eq!(m.init(60_000, Some((7, 2)), 24), Ok(InitDecision::Ready { changed: true }));
        assert_eq!(m.producer_epoch, 3);
    }

    #[test]
    fn exhausted_epochs_need_a_new_producer_id() {
        let mut m = TxnMetadata::new("t", 7, 1000, 0);
        m.producer_epoch = i16::MAX - 1;
        assert_eq!(m.init(1000, None, 1), Ok(InitDecision::NewProducerId));
        m.rotate_producer_id(8, 1000, 1);
        assert_eq!((m.producer_id, m.producer_epoch, m.last_producer_id), (8, 0, 7));
    }

    #[test]
    fn timeouts_and_state_errors() {
        let mut m = ongoing();
        assert!(!m.timed_out(60_010));
        assert!(m.timed_out(60_011));
        let mut empty = TxnMetadata::new("t", 7, 1000, 0);
        assert!(matches!(empty.end(7, 0, true, 1), Err(TxnError::InvalidTxnState(_))));
        let offset = PendingOffset { group: "g".into(), topic: "a".into(), partition: 0, offset: 5, leader_epoch: -1, metadata: String::new() };
        assert!(matches!(empty.commit_offsets(7, 0, vec![offset.clone()], 1), Err(TxnError::InvalidTxnState(_))));
        assert!(matches!(m.commit_offsets(7, 0, vec![offset], 1), Err(TxnError::InvalidTxnState(_))), "group not added");
        assert!(!empty.timed_out(i64::MAX));
    }
}
