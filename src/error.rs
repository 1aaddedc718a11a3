//! Error types of the storage layer, the group coordinator and connections.
//! None of them knows a Kafka error code: `handlers::error` maps them, in one place.

use crate::storage::batch::BatchError;

/// Errors raised by the storage layer (topics, partition logs, producer state).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// RocksDB refused an operation.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A record batch failed validation.
    #[error("invalid record batch: {0}")]
    Batch(#[from] BatchError),
    /// The topic does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The topic id does not exist.
    #[error("unknown topic id")]
    UnknownTopicId,
    /// The topic already exists.
    #[error("topic already exists")]
    TopicAlreadyExists,
    /// The topic name is not a legal Kafka topic name.
    #[error("invalid topic name: {0}")]
    InvalidTopic(String),
    /// The partition count is not acceptable.
    #[error("invalid partitions: {0}")]
    InvalidPartitions(String),
    /// The replication factor cannot be satisfied by this cluster.
    #[error("invalid replication factor: {0}")]
    InvalidReplicationFactor(String),
    /// A manual replica assignment names brokers that do not exist.
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    /// The request is well-formed but its fields contradict each other.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A topic config key or value is not acceptable.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The requested offset is outside the log.
    #[error("offset out of range")]
    OffsetOutOfRange,
    /// An idempotent producer skipped a sequence number.
    #[error("out of order sequence number: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The sequence the log expected next.
        expected: i32,
        /// The sequence the batch carried.
        got: i32,
    },
    /// The producer epoch is older than the one the log has seen.
    #[error("producer epoch {got} is fenced by epoch {current}")]
    InvalidProducerEpoch {
        /// The epoch the log knows.
        current: i16,
        /// The epoch the batch carried.
        got: i16,
    },
    /// Stored metadata could not be decoded.
    #[error("corrupt stored metadata: {0}")]
    CorruptMetadata(String),
    /// The broker is shutting down.
    #[error("broker is shutting down")]
    ShuttingDown,
    /// fsync of the write-ahead log failed: the write may not survive a power loss.
    #[error("write-ahead log fsync failed")]
    FsyncFailed,
    /// Stored data failed its checksums: the partition is offline until repaired.
    #[error("partition {partition} is offline: corrupted data: {detail}")]
    Corruption {
        /// The partition (topic id and index).
        partition: String,
        /// What RocksDB reported, naming the file.
        detail: String,
    },
    /// The storage engine is being reopened after a failure; retry shortly.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Creating these partitions would exceed the broker's `max_partitions`.
    #[error("{0}")]
    PartitionLimitReached(String),
    /// The data directory's filesystem has less free space than writes need.
    #[error("disk full: {free} bytes free, below min_free_disk_bytes {reserve}")]
    DiskFull {
        /// Free bytes on the filesystem.
        free: u64,
        /// The configured reserve (`min_free_disk_bytes`).
        reserve: u64,
    },
    /// The data directory was first started as another node: a start-up error, never
    /// seen by a client (a broker must not change identity under the cluster's feet).
    #[error("data_dir belongs to node id {stored}, but node_id is {configured}: start with --node-id {stored}, or use another data_dir")]
    NodeIdMismatch {
        /// The node id stored at first start.
        stored: i32,
        /// The node id configured now.
        configured: i32,
    },
}

/// Errors that end a client connection (the protocol cannot continue on it).
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Socket I/O failed or a frame exceeded the size limit.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The request header or body could not be decoded.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The client used an API key this broker does not know.
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    /// The client used an API version this broker does not implement.
    #[error("unsupported version {version} of api {api_key}")]
    UnsupportedVersion {
        /// The API key of the request.
        api_key: i16,
        /// The version the client asked for.
        version: i16,
    },
    /// A response could not be encoded (a broker bug, reported rather than panicking).
    #[error("cannot encode response: {0}")]
    Encode(String),
    /// A request other than ApiVersions and the SASL ones on a SASL listener
    /// before the client authenticated (or after it failed to).
    #[error("api {api_key} before SASL authentication")]
    NotAuthenticated {
        /// The API key of the request.
        api_key: i16,
    },
}

/// Errors raised by the group coordinator (consumer groups and committed offsets).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroupError {
    /// The group id is empty.
    #[error("the group id is empty")]
    InvalidGroupId,
    /// The session timeout is outside the broker's allowed range.
    #[error("session timeout {0} ms is outside the allowed range")]
    InvalidSessionTimeout(i32),
    /// The member id is not (or no longer) known to the group.
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    /// A first JoinGroup (v4+) must be retried with the member id the response carries.
    #[error("a member id is required: rejoin with the one assigned")]
    MemberIdRequired,
    /// The generation is not the group's current one.
    #[error("the generation is not the group's current one")]
    IllegalGeneration,
    /// The group is rebalancing; the member must rejoin.
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    /// Another member with the same group.instance.id replaced this one.
    #[error("the static member was fenced by a newer instance")]
    FencedInstanceId,
    /// The protocol type or protocols do not match the group's.
    #[error("the protocol type or protocols do not match the group's")]
    InconsistentGroupProtocol,
    /// The group was deleted or is being unloaded; the client should retry.
    #[error("the group is not available")]
    CoordinatorNotAvailable,
    /// The group does not exist (or is not of the kind the request needs).
    #[error("{0}")]
    GroupIdNotFound(String),
    /// The group still has members.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// The group's members are subscribed to the topic.
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// The offset metadata string is longer than allowed.
    #[error("offset metadata is too large")]
    OffsetMetadataTooLarge,
    /// The topic or partition does not exist.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The member epoch is fenced (KIP-848): the member must rejoin with epoch 0.
    #[error("{0}")]
    FencedMemberEpoch(String),
    /// The member epoch of an offset commit or fetch is not the member's current one.
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    /// The requested server-side assignor does not exist.
    #[error("{0}")]
    UnsupportedAssignor(String),
    /// The static member's instance id is still held by another member.
    #[error("{0}")]
    UnreleasedInstanceId(String),
    /// The request is malformed for this API.
    #[error("{0}")]
    InvalidRequest(String),
    /// The request version cannot be used with this group.
    #[error("{0}")]
    UnsupportedVersion(String),
    /// Persisting group state failed.
    #[error("storage: {0}")]
    Storage(std::sync::Arc<StorageError>),
    /// The authorizer refused the request (handlers only; the coordinator never raises it).
    #[error(transparent)]
    NotAuthorized(crate::security::acl::AuthorizationError),
}

impl From<StorageError> for GroupError {
    fn from(e: StorageError) -> Self {
        GroupError::Storage(std::sync::Arc::new(e))
    }
}
