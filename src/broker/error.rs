//! The domain layer's error type.

use crate::error::StorageError;

/// Why the domain refused or failed an operation. Handlers map each variant to a
/// Kafka error code (`handlers::error`); nothing here knows the codes.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The storage layer failed or refused the operation.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The topic (by name) or the partition does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// No topic has this id.
    #[error("unknown topic id")]
    UnknownTopicId,
    /// The client's leader epoch is older than the partition's.
    #[error("leader epoch {requested} is older than the current {current}")]
    FencedLeaderEpoch {
        /// The epoch the client sent.
        requested: i32,
        /// The partition's epoch.
        current: i32,
    },
    /// The client's leader epoch is newer than the partition's.
    #[error("leader epoch {requested} is newer than the current {current}")]
    UnknownLeaderEpoch {
        /// The epoch the client sent.
        requested: i32,
        /// The partition's epoch.
        current: i32,
    },
    /// A record batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes is larger than max.message.bytes {limit}")]
    RecordTooLarge {
        /// Size of the batch.
        size: usize,
        /// The topic's limit.
        limit: usize,
    },
    /// Records without a key were sent to a compacted topic (their indexes in the request).
    #[error("compacted topic cannot accept records without key ({} such record(s))", .0.len())]
    KeylessRecordsInCompactedTopic(Vec<i32>),
    /// A ListOffsets timestamp that is neither a time nor a known special value.
    #[error("unknown offset spec {0}")]
    UnknownOffsetSpec(i64),
    /// The write was accepted but could not be made durable.
    #[error("write not durable: {0}")]
    NotDurable(StorageError),
    /// The broker is shutting down.
    #[error("broker is shutting down")]
    ShuttingDown,
    /// The authorizer refused the operation.
    #[error(transparent)]
    NotAuthorized(#[from] crate::security::acl::AuthorizationError),
    /// The transaction coordinator refused the operation (or a transactional write).
    #[error(transparent)]
    Txn(#[from] crate::coordinator::txn::TxnError),
    /// The group coordinator refused the operation (a transactional offset commit).
    #[error(transparent)]
    Group(crate::error::GroupError),
    /// Cluster mode: this broker does not lead the partition (`leader`, when known, does).
    #[error("not the leader of this partition (leader: {leader:?})")]
    NotLeader {
        /// The partition's leader, when known.
        leader: Option<i32>,
    },
    /// Cluster mode: the controller refused the change or could not be reached.
    #[error(transparent)]
    Controller(#[from] crate::cluster::metadata::ControllerError),
}

impl BrokerError {
    /// The same topic-lookup error again, for each partition of a topic that
    /// could not be found (lookup errors carry no data, so this loses nothing).
    pub fn clone_lookup(&self) -> BrokerError {
        match self {
            BrokerError::UnknownTopicId => BrokerError::UnknownTopicId,
            BrokerError::NotAuthorized(e) => BrokerError::NotAuthorized(*e),
            BrokerError::NotLeader { leader } => BrokerError::NotLeader { leader: *leader },
            _ => BrokerError::UnknownTopicOrPartition,
        }
    }
}
