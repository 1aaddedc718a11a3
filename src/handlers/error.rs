//! The one place where errors of every layer become Kafka error codes.

use kafka_protocol::error::ResponseError;

use crate::broker::{BatchError, BrokerError};
use crate::error::{GroupError, StorageError};

/// An error a client can be told about with a Kafka error code.
pub trait KafkaError {
    /// The Kafka error this maps to.
    fn kafka_error(&self) -> ResponseError;

    /// The Kafka error code a client sees.
    fn code(&self) -> i16 {
        self.kafka_error().code()
    }
}

impl KafkaError for StorageError {
    fn kafka_error(&self) -> ResponseError {
        match self {
            StorageError::Rocks(_) | StorageError::CorruptMetadata(_) | StorageError::FsyncFailed => {
                ResponseError::KafkaStorageError
            }
            StorageError::Batch(e) => e.kafka_error(),
            StorageError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            StorageError::UnknownTopicId => ResponseError::UnknownTopicId,
            StorageError::TopicAlreadyExists => ResponseError::TopicAlreadyExists,
            StorageError::InvalidTopic(_) => ResponseError::InvalidTopicException,
            StorageError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            StorageError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            StorageError::InvalidConfig(_) => ResponseError::InvalidConfig,
            StorageError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
            StorageError::InvalidRequest(_) => ResponseError::InvalidRequest,
            StorageError::OffsetOutOfRange => ResponseError::OffsetOutOfRange,
            StorageError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
            StorageError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            StorageError::ShuttingDown => ResponseError::NotLeaderOrFollower,
            StorageError::Corruption { .. } | StorageError::Unavailable(_) => ResponseError::KafkaStorageError,
            StorageError::PartitionLimitReached(_) => ResponseError::PolicyViolation,
            // Kafka answers a produce to a failed (e.g. full) log directory this way.
            StorageError::DiskFull { .. } => ResponseError::KafkaStorageError,
            // Start-up only (Broker::open refuses to start); never reaches a client.
            StorageError::NodeIdMismatch { .. } => ResponseError::KafkaStorageError,
        }
    }
}

impl KafkaError for BatchError {
    fn kafka_error(&self) -> ResponseError {
        match self {
            BatchError::CrcMismatch { .. } | BatchError::Truncated { .. } => ResponseError::CorruptMessage,
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            // Payloads that do not decompress are corrupt data (Kafka: CorruptRecordException).
            BatchError::Decompression { .. } | BatchError::DecompressedTooLarge { .. } => ResponseError::CorruptMessage,
            // Kafka: InvalidRecordException from its record readers and log validator. An
            // unknown codec is an IllegalArgumentException in Kafka; the client's data is
            // at fault, so it is answered as an invalid record too.
            BatchError::UnknownCodec(_)
            | BatchError::ControlBatch
            | BatchError::TransactionalBatch
            | BatchError::RecordCountMismatch { .. }
            | BatchError::TrailingBytes { .. }
            | BatchError::InvalidRecord { .. }
            | BatchError::OffsetDelta { .. }
            | BatchError::TimestampOverflow { .. } => ResponseError::InvalidRecord,
            _ => ResponseError::InvalidRecord,
        }
    }
}

impl KafkaError for BrokerError {
    fn kafka_error(&self) -> ResponseError {
        match self {
            BrokerError::Storage(e) => e.kafka_error(),
            BrokerError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            BrokerError::UnknownTopicId => ResponseError::UnknownTopicId,
            BrokerError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            BrokerError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch,
            BrokerError::RecordTooLarge { .. } => ResponseError::MessageTooLarge,
            BrokerError::KeylessRecordsInCompactedTopic(_) => ResponseError::InvalidRecord,
            BrokerError::UnknownOffsetSpec(_) => ResponseError::InvalidRequest,
            // Clients retry a produce on a storage error; the write may or may not be there.
            BrokerError::NotDurable(_) => ResponseError::KafkaStorageError,
            BrokerError::ShuttingDown => ResponseError::NotLeaderOrFollower,
            BrokerError::NotAuthorized(e) => e.kafka_error(),
            BrokerError::Txn(e) => e.kafka_error(),
            BrokerError::Group(e) => e.kafka_error(),
            BrokerError::NotLeader { .. } => ResponseError::NotLeaderOrFollower,
            BrokerError::Controller(e) => e.kafka_error(),
        }
    }
}

impl KafkaError for crate::cluster::metadata::ControllerError {
    fn kafka_error(&self) -> ResponseError {
        use crate::cluster::metadata::{ControllerError, MetadataError};
        match self {
            ControllerError::NotController { .. } => ResponseError::NotController,
            // The controller did not commit in time (no quorum, or still electing).
            ControllerError::Unavailable(_) => ResponseError::RequestTimedOut,
            ControllerError::Rejected(e) => match e {
                MetadataError::UnknownBroker(_) => ResponseError::BrokerNotAvailable,
                MetadataError::TopicAlreadyExists(_) | MetadataError::TopicIdInUse(_) => ResponseError::TopicAlreadyExists,
                MetadataError::UnknownTopicId(_) => ResponseError::UnknownTopicId,
                MetadataError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
                MetadataError::InvalidReplicaAssignment(_) => ResponseError::InvalidReplicaAssignment,
                MetadataError::InvalidReplicationFactor { .. } => ResponseError::InvalidReplicationFactor,
                MetadataError::ProducerIdsExhausted => ResponseError::UnknownServerError,
            },
        }
    }
}

impl KafkaError for GroupError {
    fn kafka_error(&self) -> ResponseError {
        match self {
            GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
            GroupError::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
            GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
            GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
            GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
            GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
            GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
            GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
            GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
            GroupError::GroupIdNotFound(_) => ResponseError::GroupIdNotFound,
            GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
            GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
            GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
            GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
            GroupError::FencedMemberEpoch(_) => ResponseError::FencedMemberEpoch,
            GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
            GroupError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
            GroupError::UnreleasedInstanceId(_) => ResponseError::UnreleasedInstanceId,
            GroupError::InvalidRequest(_) => ResponseError::InvalidRequest,
            GroupError::UnsupportedVersion(_) => ResponseError::UnsupportedVersion,
            // Clients retry a commit or join on COORDINATOR_NOT_AVAILABLE; a storage error
            // code would be fatal to most of them.
            GroupError::Storage(_) => ResponseError::CoordinatorNotAvailable,
            GroupError::NotAuthorized(e) => e.kafka_error(),
        }
    }
}

/// The error code of an optional error (0: none).
pub fn code_of<E: KafkaError>(error: Option<&E>) -> i16 {
    error.map_or(0, KafkaError::code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_failures_are_storage_errors_and_batch_errors_are_record_errors() {
        assert_eq!(StorageError::FsyncFailed.kafka_error(), ResponseError::KafkaStorageError);
        let crc = StorageError::Batch(BatchError::CrcMismatch { stored: 1, computed: 2 });
        assert_eq!(BrokerError::from(crc).kafka_error(), ResponseError::CorruptMessage);
        assert_eq!(BrokerError::RecordTooLarge { size: 2, limit: 1 }.kafka_error(), ResponseError::MessageTooLarge);
        assert_eq!(GroupError::Storage(std::sync::Arc::new(StorageError::FsyncFailed)).code(), ResponseError::CoordinatorNotAvailable.code());
    }
}

impl KafkaError for crate::security::sasl::SaslError {
    fn kafka_error(&self) -> ResponseError {
        use crate::security::sasl::SaslError;
        match self {
            SaslError::UnsupportedMechanism(_) => ResponseError::UnsupportedSaslMechanism,
            SaslError::AuthenticationFailed(_) => ResponseError::SaslAuthenticationFailed,
            SaslError::IllegalState(_) => ResponseError::IllegalSaslState,
        }
    }
}

impl KafkaError for crate::security::acl::AuthorizationError {
    fn kafka_error(&self) -> ResponseError {
        use crate::security::acl::AuthorizationError;
        match self {
            AuthorizationError::Topic => ResponseError::TopicAuthorizationFailed,
            AuthorizationError::Group => ResponseError::GroupAuthorizationFailed,
            AuthorizationError::Cluster => ResponseError::ClusterAuthorizationFailed,
            AuthorizationError::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
        }
    }
}

impl KafkaError for crate::security::acl::AclError {
    fn kafka_error(&self) -> ResponseError {
        ResponseError::InvalidRequest
    }
}

impl KafkaError for crate::security::sasl::ScramUserError {
    fn kafka_error(&self) -> ResponseError {
        use crate::security::sasl::ScramUserError;
        match self {
            ScramUserError::UnknownMechanism(_) => ResponseError::UnsupportedSaslMechanism,
            ScramUserError::TooFewIterations
            | ScramUserError::TooManyIterations
            | ScramUserError::EmptyUser
            | ScramUserError::EmptyCredential => ResponseError::UnacceptableCredential,
            ScramUserError::DeleteNotFound | ScramUserError::DescribeNotFound(_) => ResponseError::ResourceNotFound,
            ScramUserError::AlteredTwice | ScramUserError::DescribedTwice(_) => ResponseError::DuplicateResource,
        }
    }
}

impl KafkaError for crate::coordinator::txn::TxnError {
    fn kafka_error(&self) -> ResponseError {
        use crate::coordinator::txn::TxnError;
        match self {
            TxnError::InvalidTransactionTimeout(..) => ResponseError::InvalidTransactionTimeout,
            TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
            TxnError::ProducerFenced => ResponseError::ProducerFenced,
            TxnError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
            TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
            TxnError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
            TxnError::InvalidRequest(_) => ResponseError::InvalidRequest,
            // Retriable: the client tries again (Kafka answers NOT_COORDINATOR or
            // COORDINATOR_NOT_AVAILABLE when its log cannot be written).
            TxnError::Storage(_) => ResponseError::CoordinatorNotAvailable,
        }
    }
}

/// The code of a transaction error for a request version that predates
/// PRODUCER_FENCED (KIP-588): older clients know it as INVALID_PRODUCER_EPOCH.
pub fn txn_code(e: &crate::coordinator::txn::TxnError, producer_fenced_known: bool) -> i16 {
    match e {
        crate::coordinator::txn::TxnError::ProducerFenced if !producer_fenced_known => ResponseError::InvalidProducerEpoch.code(),
        e => e.code(),
    }
}
