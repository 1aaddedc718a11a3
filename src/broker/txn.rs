//! Transactions in the domain: the coordinator's decisions ([`TxnCoordinator`])
//! carried out on partitions and groups — markers written into every partition of an
//! ending transaction (through the normal append path, so they take offsets and wait
//! for durability), committed offsets made visible, transactional produce checked
//! against the coordinator, timed-out transactions aborted, and transactions a crash
//! left in Prepare* completed at start-up.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{AppendTicket, Broker, BrokerError, Partition};
use crate::coordinator::txn::{EndJob, EndOutcome, InitOutcome, PendingOffset, TxnCoordinator, TxnError};
use crate::coordinator::TxnCommitMember;
use crate::error::GroupError;
use crate::storage::batch::{BatchError, BatchHeader};
use crate::storage::partition_log::TxnMarker;

/// The coordinator epoch markers carry (one broker: never changes).
const COORDINATOR_EPOCH: i32 = 0;

impl Broker {
    /// The transaction coordinator.
    pub fn txns(&self) -> &TxnCoordinator {
        &self.txns
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use. An
    /// open transaction of the id is fenced and aborted first.
    pub async fn init_transactional_producer(
        &self,
        transactional_id: &str,
        timeout_ms: i64,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), TxnError> {
        // Twice at most: a fenced transaction is aborted, then the epoch is bumped.
        for _ in 0..2 {
            let outcome = self.txns.init_producer_id(transactional_id, timeout_ms, expected, || self.producer_ids.next())?;
            match outcome {
                InitOutcome::Ready(pid, epoch) => {
                    self.txns.wait_durable().await?;
                    return Ok((pid, epoch));
                }
                InitOutcome::AbortFirst(job) => self.finish(&job).await?,
            }
        }
        Err(TxnError::ConcurrentTransactions)
    }

    /// EndTxn: writes the markers (and commits the offsets) and completes the
    /// transaction before answering.
    pub async fn end_txn(&self, transactional_id: &str, producer_id: i64, producer_epoch: i16, commit: bool) -> Result<(), TxnError> {
        match self.txns.end_txn(transactional_id, producer_id, producer_epoch, commit)? {
            EndOutcome::Done => Ok(()),
            EndOutcome::Markers(job) => self.finish(&job).await,
        }
    }

    /// TxnOffsetCommit: the KIP-447 member checks, the per-partition checks, then the
    /// valid offsets are held in the transaction. Returns one result per offset.
    pub fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        member: TxnCommitMember<'_>,
        offsets: Vec<PendingOffset>,
    ) -> Result<Vec<Result<(), BrokerError>>, BrokerError> {
        self.groups.validate_txn_offset_commit(group_id, &member).map_err(group_error)?;
        let topics = self.topic_lookup();
        let mut results = Vec::with_capacity(offsets.len());
        let mut valid = Vec::with_capacity(offsets.len());
        for o in offsets {
            match self.groups.check_txn_offset(topics, &o.topic, o.partition, Some(o.metadata.as_str())) {
                Ok(()) => {
                    valid.push(o);
                    results.push(Ok(()));
                }
                Err(e) => results.push(Err(group_error(e))),
            }
        }
        self.txns.commit_offsets(transactional_id, producer_id, producer_epoch, valid)?;
        Ok(results)
    }

    /// Appends a produce's records; transactional batches only for a partition of the
    /// producer's open transaction, checked under the transaction's lock.
    pub fn append_produce(&self, partition: &Partition, records: Bytes) -> Result<AppendTicket, BrokerError> {
        let producer = transactional_producer(&records)
            .map_err(|e| BrokerError::Storage(crate::error::StorageError::Batch(e)))?;
        match producer {
            Some((pid, epoch)) => {
                let topic = partition.topic().name.clone();
                self.txns.with_ongoing(pid, epoch, &topic, partition.index(), || partition.append(records))?
            }
            None => partition.append(records),
        }
    }

    /// Carries out the end of a transaction: a marker in every partition (awaited until
    /// durable), the offsets of a commit made visible, then the coordinator completes it.
    pub(crate) async fn finish(&self, job: &EndJob) -> Result<(), TxnError> {
        let marker = TxnMarker {
            producer_id: job.producer_id,
            producer_epoch: job.producer_epoch,
            commit: job.commit,
            coordinator_epoch: COORDINATOR_EPOCH,
        };
        let mut tickets = Vec::with_capacity(job.partitions.len());
        for (topic, index) in &job.partitions {
            let Some(topic_ref) = self.topic_lookup().get(topic) else {
                tracing::warn!(topic = %topic, "a transaction's topic was deleted: no marker");
                continue;
            };
            let partition = match self.partition(&topic_ref, *index) {
                Ok(p) => p,
                Err(_) => continue,
            };
            let ticket = partition.append_marker(marker).map_err(marker_error)?;
            tickets.push(ticket);
        }
        for ticket in tickets {
            ticket.durable().await.map_err(marker_error)?;
        }
        if job.commit {
            let mut by_group: std::collections::BTreeMap<&str, Vec<_>> = Default::default();
            for o in &job.offsets {
                by_group.entry(o.group.as_str()).or_default().push((
                    o.topic.clone(),
                    o.partition,
                    o.offset,
                    o.leader_epoch,
                    o.metadata.clone(),
                ));
            }
            for (group, offsets) in by_group {
                self.groups.commit_txn_offsets(group, offsets).map_err(|e| match e {
                    GroupError::Storage(s) => TxnError::Storage(s),
                    other => TxnError::InvalidRequest(other.to_string()),
                })?;
            }
        }
        self.txns.complete(job)?;
        self.txns.wait_durable().await?;
        tracing::debug!(transactional_id = %job.transactional_id, commit = job.commit, partitions = job.partitions.len(), "transaction completed");
        Ok(())
    }
}

/// Completes the transactions a crash left in Prepare*, then every `interval` aborts
/// the open transactions past their timeout (and retries endings that failed).
pub async fn run_txn_timers(broker: Arc<Broker>, interval: Duration) {
    let mut retry: Vec<EndJob> = broker.txns.unfinished();
    if !retry.is_empty() {
        tracing::info!(transactions = retry.len(), "completing transactions left unfinished by the last run");
    }
    let shutdown = broker.shutdown_signal().clone();
    loop {
        let jobs: Vec<EndJob> = std::mem::take(&mut retry).into_iter().chain(broker.txns.expire()).collect();
        for job in jobs {
            if let Err(e) = broker.finish(&job).await {
                tracing::warn!(transactional_id = %job.transactional_id, error = %e, "could not complete a transaction; will retry");
                retry.push(job);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// The producer id and epoch of the transactional batches of a produce, if any. Every
/// batch must then be transactional with the same producer and epoch, so that the one
/// check covers them all. Framing errors are left to the append's validation.
fn transactional_producer(records: &[u8]) -> Result<Option<(i64, i16)>, BatchError> {
    let mut rest = records;
    let mut seen: Option<Option<(i64, i16)>> = None;
    while let Ok(header) = BatchHeader::parse(rest) {
        let this = (header.is_transactional() && header.has_producer_id()).then_some((header.producer_id, header.producer_epoch));
        match seen {
            None => seen = Some(this),
            Some(first) if first != this && (first.is_some() || this.is_some()) => return Err(BatchError::MixedTransactionalBatches),
            Some(_) => {}
        }
        let len = header.total_len();
        if len <= crate::storage::batch::LOG_OVERHEAD || len > rest.len() {
            break;
        }
        rest = &rest[len..];
    }
    Ok(seen.flatten())
}

fn marker_error(e: BrokerError) -> TxnError {
    match e {
        BrokerError::Storage(s) | BrokerError::NotDurable(s) => TxnError::Storage(Arc::new(s)),
        other => TxnError::InvalidRequest(other.to_string()),
    }
}

fn group_error(e: GroupError) -> BrokerError {
    BrokerError::Group(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::sample_batch;

    fn txn(pid: i64) -> Vec<u8> {
        let mut b = sample_batch(2, pid, 0);
        b[21..23].copy_from_slice(&0x10i16.to_be_bytes());
        b.to_vec()
    }

    #[test]
    fn transactional_batches_of_a_produce_belong_to_one_producer() {
        assert_eq!(transactional_producer(&sample_batch(2, 5, 0)), Ok(None), "idempotent, not transactional");
        assert_eq!(transactional_producer(&[txn(5), txn(5)].concat()), Ok(Some((5, 0))));
        assert_eq!(transactional_producer(&[txn(5), txn(6)].concat()), Err(BatchError::MixedTransactionalBatches));
        assert_eq!(transactional_producer(&[sample_batch(2, 5, 0).to_vec(), txn(5)].concat()), Err(BatchError::MixedTransactionalBatches));
        assert_eq!(transactional_producer(&[txn(5), sample_batch(2, -1, -1).to_vec()].concat()), Err(BatchError::MixedTransactionalBatches));
        assert_eq!(transactional_producer(&[1, 2, 3]), Ok(None), "framing is the append's to judge");
    }
}
