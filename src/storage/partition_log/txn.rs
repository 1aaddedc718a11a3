//! Transactions on a partition: markers, open transactions (the last stable offset) and
//! the aborted-transaction index read_committed fetches report.

use super::*;

/// One aborted transaction of a partition, as read_committed fetches report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer that aborted.
    pub producer_id: i64,
    /// Offset of its first batch in the transaction.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
}

/// How a transaction ended, for the marker written into a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// The producer whose transaction ended.
    pub producer_id: i64,
    /// Its epoch (the marker's).
    pub producer_epoch: i16,
    /// COMMIT (true) or ABORT.
    pub commit: bool,
    /// The coordinator epoch that wrote it.
    pub coordinator_epoch: i32,
}

impl PartitionLog {
    /// Appends a transaction marker (a control batch the broker builds) and, in the
    /// same write, closes the producer's open transaction here: an ABORT adds it to the
    /// aborted-transaction index. The last stable offset moves past it once written.
    pub fn append_marker(&self, marker: TxnMarker, defer_high_watermark: bool) -> Result<AppendResult, StorageError> {
        let now = producer_state::now_ms();
        let batch = batch::control_batch(marker.producer_id, marker.producer_epoch, marker.commit, marker.coordinator_epoch, now);
        self.append(vec![batch], defer_high_watermark)
    }

    /// Whether `producer_id` has an open transaction on this partition.
    pub fn has_open_txn(&self, producer_id: i64) -> bool {
        self.state.lock().open_txns.contains_key(&producer_id)
    }

    /// The last stable offset: the first offset of the earliest open transaction, or
    /// the high watermark when none is open (or all start above it).
    pub fn last_stable_offset(&self) -> i64 {
        let state = self.state.lock();
        let high_watermark = *self.high_watermark.borrow();
        state.open_txns.values().copied().min().map_or(high_watermark, |first| first.min(high_watermark))
    }

    /// The aborted transactions whose markers are at or after `from` and whose first
    /// offset is below `below` (what a read_committed fetch of `from..below` reports).
    pub fn aborted_txns(&self, from: i64, below: i64) -> Result<Vec<AbortedTxn>, StorageError> {
        let db = self.store.try_db()?;
        let meta = db.cf_handle(META_CF).expect("meta cf");
        let prefix = keys::aborted_txn_prefix(self.topic_id, Some(self.partition));
        let mut iter = db.raw_iterator_cf(&meta);
        iter.seek(keys::aborted_txn(self.topic_id, self.partition, from.max(0)));
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            let corrupt = || StorageError::CorruptMetadata("aborted transaction index".into());
            let last_offset = i64::from_be_bytes(k[prefix.len()..].try_into().map_err(|_| corrupt())?);
            if v.len() != 16 {
                return Err(corrupt());
            }
            let producer_id = i64::from_be_bytes(v[0..8].try_into().map_err(|_| corrupt())?);
            let first_offset = i64::from_be_bytes(v[8..16].try_into().map_err(|_| corrupt())?);
            if first_offset < below {
                out.push(AbortedTxn { producer_id, first_offset, last_offset });
            }
            iter.next();
        }
        iter.status()?;
        Ok(out)
    }
}
