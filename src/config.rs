//! Broker settings: defaults, a YAML file, environment variables and flags, in
//! rising order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use serde::{Deserialize, Serialize};

/// Everything the broker can be configured with. Keys in YAML are the field names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This broker's node id, as clients see it in metadata.
    pub node_id: i32,
    /// Address the Kafka listener binds to.
    pub listener: String,
    /// `host:port` clients are told to connect to.
    pub advertised_listener: String,
    /// Directory holding the RocksDB database.
    pub data_dir: PathBuf,
    /// Create a topic when a client asks for metadata of or produces to an unknown one.
    pub auto_create_topics: bool,
    /// Partition count of auto-created topics and of CreateTopics asking for the default.
    pub num_partitions: i32,
    /// Largest request frame accepted, in bytes; larger frames close the connection.
    pub max_frame_bytes: usize,
    /// fsync the write-ahead log before acknowledging (group-committed across producers).
    pub fsync: bool,
    /// Log filter (`info`, `debug`, `fluxo=trace,…`); `RUST_LOG` overrides it.
    pub log_level: String,
    /// Log format: `plain` or `json`.
    pub log_format: LogFormat,
    /// Size of RocksDB's shared block cache, in MiB.
    pub block_cache_mb: usize,
    /// Total memtable memory across all partitions, in MiB.
    pub write_buffer_mb: usize,
    /// Address of the HTTP endpoint serving `/metrics` and `/health`; empty disables it.
    pub metrics_listener: String,
    /// More listeners, each `bind=advertised` (e.g. `0.0.0.0:29092=fluxo:29092` for
    /// clients inside a container network); clients are told the address of the
    /// listener they connected to, as with Kafka's `advertised.listeners`.
    pub extra_listeners: Vec<String>,
    /// Empty column families kept ready so that creating partitions is fast
    /// (RocksDB's cost of creating one grows with the number that exist).
    pub spare_column_families: usize,
    /// How long the first member of an empty classic group waits for others before the
    /// first rebalance completes (Kafka's `group.initial.rebalance.delay.ms`).
    pub group_initial_rebalance_delay_ms: i32,
    /// How long an empty group's committed offsets are kept (`offsets.retention.minutes`).
    pub offsets_retention_minutes: i64,
    /// Session timeout of KIP-848 consumer group members (`group.consumer.session.timeout.ms`).
    pub group_consumer_session_timeout_ms: i32,
    /// Heartbeat interval told to KIP-848 members (`group.consumer.heartbeat.interval.ms`).
    pub group_consumer_heartbeat_interval_ms: i32,
    /// A connection without a complete request for this long is closed
    /// (`connections.max.idle.ms`); a stalled partial frame counts as idle.
    pub connections_max_idle_ms: u64,
    /// Most client connections open at once (`max.connections`); 0 derives the cap
    /// from the open-file limit, keeping descriptors in reserve for storage.
    pub max_connections: usize,
    /// Most client connections from one IP address (`max.connections.per.ip`); 0: no cap.
    pub max_connections_per_ip: usize,
    /// Broker-wide cap on bytes buffered for request frames (`queued.max.request.bytes`);
    /// while it is reached, connections stop reading large frames (backpressure).
    pub queued_max_request_bytes: usize,
    /// Read every partition's stored data with checksums verified at start-up, and
    /// take partitions whose data is corrupted offline before serving.
    pub verify_on_start: bool,
    /// An idempotent producer's state on a partition is forgotten once its last append
    /// is this old (Kafka's `producer.id.expiration.ms`, KIP-854).
    pub producer_id_expiration_ms: i64,
    /// How often expired producer state is looked for
    /// (`producer.id.expiration.check.interval.ms`).
    pub producer_id_expiration_check_interval_ms: i64,
    /// Most partitions one CreateTopics or CreatePartitions request may create.
    pub max_partitions_per_request: usize,
    /// Most partitions the broker holds, all topics together.
    pub max_partitions: usize,
    /// How long a log keeps data when its topic sets no `retention.ms` (Kafka's
    /// `log.retention.ms`; -1: forever).
    pub log_retention_ms: i64,
    /// Most bytes a partition keeps when its topic sets no `retention.bytes` (Kafka's
    /// `log.retention.bytes`; -1: no limit).
    pub log_retention_bytes: i64,
    /// How often logs are checked for data past retention (`log.retention.check.interval.ms`).
    pub log_retention_check_interval_ms: i64,
    /// Run the log cleaner that compacts `cleanup.policy=compact` topics (`log.cleaner.enable`).
    pub log_cleaner_enable: bool,
    /// Pause between the log cleaner's passes over the compacted partitions, in ms
    /// (`log.cleaner.backoff.ms`).
    pub log_cleaner_backoff_ms: u64,
    /// A compacted partition is cleaned once dirty bytes / cleanable bytes exceeds this
    /// (`log.cleaner.min.cleanable.ratio`; topic `min.cleanable.dirty.ratio` overrides).
    pub log_cleaner_min_cleanable_ratio: f64,
    /// Records younger than this stay uncompacted, in ms (`log.cleaner.min.compaction.lag.ms`).
    pub log_cleaner_min_compaction_lag_ms: i64,
    /// A record stays uncompacted at most this long, whatever the dirty ratio, in ms
    /// (`log.cleaner.max.compaction.lag.ms`).
    pub log_cleaner_max_compaction_lag_ms: i64,
    /// Tombstones stay this long after the cleaning that first saw them, in ms
    /// (`log.cleaner.delete.retention.ms`).
    pub log_cleaner_delete_retention_ms: i64,
    /// Produce is refused (KAFKA_STORAGE_ERROR) while the data directory's filesystem
    /// has less free space than this, so the disk never fills in the middle of a
    /// write; 0 turns the check off.
    pub min_free_disk_bytes: u64,
    /// Kafka-style named listeners, `NAME://host:port` (e.g. `SSL://0.0.0.0:9093`); when
    /// set, they replace `listener`, `advertised_listener` and `extra_listeners`.
    pub listeners: Vec<String>,
    /// Advertised address of each named listener, `NAME://host:port`; a listener
    /// without one advertises its bind address (`localhost` for a wildcard).
    pub advertised_listeners: Vec<String>,
    /// Security protocol of each listener name, `NAME:PROTOCOL`; the names
    /// PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL map to themselves.
    pub listener_security_protocol_map: Vec<String>,
    /// PEM certificate chain of SSL/SASL_SSL listeners (reloaded on SIGHUP).
    pub ssl_certificate_pem: String,
    /// PEM private key of SSL/SASL_SSL listeners (reloaded on SIGHUP).
    pub ssl_key_pem: String,
    /// Client certificates: `none`, `requested` or `required` (`ssl.client.auth`).
    pub ssl_client_auth: String,
    /// PEM CA certificates that client certificates are verified against.
    pub ssl_truststore_pem: String,
    /// SASL mechanisms offered on SASL listeners (`sasl.enabled.mechanisms`):
    /// PLAIN, SCRAM-SHA-256, SCRAM-SHA-512.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// SASL users, `name:password`; only salted SCRAM credentials derived from the
    /// password are kept in memory.
    pub sasl_users: Vec<String>,
    /// Delay before answering a failed authentication, in ms
    /// (`connection.failed.authentication.delay.ms`).
    pub connection_failed_authentication_delay_ms: u64,
    /// Whether requests are authorized against ACLs (Kafka: `authorizer.class.name` set).
    pub authorizer_enabled: bool,
    /// Principals allowed everything, e.g. `User:admin` (`super.users`).
    pub super_users: Vec<String>,
    /// Whether a resource no ACL covers is open to everyone (`allow.everyone.if.no.acl.found`).
    pub allow_everyone_if_no_acl_found: bool,
    /// The largest `transaction.timeout.ms` a transactional producer may ask for
    /// (`transaction.max.timeout.ms`); more is refused with INVALID_TRANSACTION_TIMEOUT.
    pub transaction_max_timeout_ms: i64,
    /// How often open transactions past their timeout are looked for and aborted
    /// (`transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: i64,
    /// Bind address (`ip:port`) of the internal listener carrying broker-to-broker traffic
    /// (Raft RPCs of every group, liveness pings); empty: a single broker, no internal listener.
    pub internal_listener: String,
    /// `host:port` other brokers are told to reach the internal listener at; empty: the
    /// internal listener's address.
    pub internal_advertised_listener: String,
    /// Internal addresses (`host:port`) of the controller voters, which a broker contacts to
    /// join the cluster; empty: single-broker mode.
    pub cluster_seeds: Vec<String>,
    /// How often a broker pings every other broker on the internal listener, in ms; a peer
    /// missing three pings in a row is suspected dead (`cluster.liveness.interval.ms`).
    pub cluster_liveness_interval_ms: u64,
    /// When not empty, `/metrics` answers only requests carrying
    /// `Authorization: Bearer <metrics_token>` (401 otherwise); `/health` stays open.
    pub metrics_token: String,
    /// KIP-368 (`connections.max.reauth.ms`): an authentication on a SASL listener
    /// lasts this long (told to clients as `session_lifetime_ms`); the client must
    /// re-authenticate before then or its connection is closed. 0: forever.
    pub connections_max_reauth_ms: u64,
    /// Replicas of a topic created with replication factor -1 in cluster mode
    /// (`default.replication.factor`), capped at the number of live brokers.
    pub default_replication_factor: i32,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            listener: "0.0.0.0:9092".into(),
            advertised_listener: "localhost:9092".into(),
            data_dir: default_data_dir(),
            auto_create_topics: true,
            num_partitions: 1,
            max_frame_bytes: 100 * 1024 * 1024,
            fsync: false,
            log_level: "info".into(),
            log_format: LogFormat::Plain,
            block_cache_mb: 256,
            write_buffer_mb: 256,
            metrics_listener: "127.0.0.1:9644".into(),
            extra_listeners: Vec::new(),
            spare_column_families: 64,
            group_initial_rebalance_delay_ms: 3_000,
            offsets_retention_minutes: 7 * 24 * 60,
            group_consumer_session_timeout_ms: 45_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            connections_max_idle_ms: 600_000,
            max_connections: 0,
            max_connections_per_ip: 0,
            queued_max_request_bytes: 256 * 1024 * 1024,
            verify_on_start: false,
            producer_id_expiration_ms: 86_400_000,
            producer_id_expiration_check_interval_ms: 600_000,
            max_partitions_per_request: 2_000,
            max_partitions: 20_000,
            log_retention_ms: 604_800_000,
            log_retention_bytes: -1,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
            log_cleaner_min_cleanable_ratio: 0.5,
            log_cleaner_min_compaction_lag_ms: 0,
            log_cleaner_max_compaction_lag_ms: i64::MAX,
            log_cleaner_delete_retention_ms: 86_400_000,
            min_free_disk_bytes: 64 * 1024 * 1024,
            listeners: Vec::new(),
            advertised_listeners: Vec::new(),
            listener_security_protocol_map: Vec::new(),
            ssl_certificate_pem: String::new(),
            ssl_key_pem: String::new(),
            ssl_client_auth: "none".into(),
            ssl_truststore_pem: String::new(),
            sasl_enabled_mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-256".into(), "SCRAM-SHA-512".into()],
            sasl_users: Vec::new(),
            connection_failed_authentication_delay_ms: 100,
            authorizer_enabled: false,
            super_users: Vec::new(),
            allow_everyone_if_no_acl_found: false,
            transaction_max_timeout_ms: 900_000,
            transaction_abort_timed_out_transaction_cleanup_interval_ms: 10_000,
            internal_listener: String::new(),
            internal_advertised_listener: String::new(),
            cluster_seeds: Vec::new(),
            cluster_liveness_interval_ms: 100,
            metrics_token: String::new(),
            connections_max_reauth_ms: 0,
            default_replication_factor: 3,
        }
    }
}

/// `$XDG_DATA_HOME/fluxo`, else `~/.local/share/fluxo`, else `./fluxo-data`.
fn default_data_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("fluxo");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home).join(".local/share/fluxo");
    }
    PathBuf::from("fluxo-data")
}

/// Command-line flags; each also reads an environment variable `FLUXO_<NAME>`.
#[derive(Debug, Parser)]
#[command(name = "fluxo", version, about = "A Kafka-wire-compatible broker on RocksDB")]
pub struct Cli {
    /// What to do instead of running the broker.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// YAML config file (see config/fluxo.yaml).
    #[arg(long, env = "FLUXO_CONFIG")]
    pub config: Option<PathBuf>,
    /// This broker's node id.
    #[arg(long, env = "FLUXO_NODE_ID")]
    pub node_id: Option<i32>,
    /// Bind address of the Kafka listener.
    #[arg(long, env = "FLUXO_LISTENER")]
    pub listener: Option<String>,
    /// host:port advertised to clients.
    #[arg(long, env = "FLUXO_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// Data directory.
    #[arg(long, env = "FLUXO_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Auto-create unknown topics.
    #[arg(long, env = "FLUXO_AUTO_CREATE_TOPICS")]
    pub auto_create_topics: Option<bool>,
    /// Default partition count.
    #[arg(long, env = "FLUXO_NUM_PARTITIONS")]
    pub num_partitions: Option<i32>,
    /// Largest accepted request frame in bytes.
    #[arg(long, env = "FLUXO_MAX_FRAME_BYTES")]
    pub max_frame_bytes: Option<usize>,
    /// fsync the WAL before acknowledging.
    #[arg(long, env = "FLUXO_FSYNC")]
    pub fsync: Option<bool>,
    /// Log filter.
    #[arg(long, env = "FLUXO_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Log format.
    #[arg(long, env = "FLUXO_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// RocksDB block cache in MiB.
    #[arg(long, env = "FLUXO_BLOCK_CACHE_MB")]
    pub block_cache_mb: Option<usize>,
    /// Total memtable memory in MiB.
    #[arg(long, env = "FLUXO_WRITE_BUFFER_MB")]
    pub write_buffer_mb: Option<usize>,
    /// Address of the /metrics and /health endpoint (empty: off).
    #[arg(long, env = "FLUXO_METRICS_LISTENER")]
    pub metrics_listener: Option<String>,
    /// Another listener as bind=advertised (repeatable; env: comma-separated).
    #[arg(long = "extra-listener", env = "FLUXO_EXTRA_LISTENERS", value_delimiter = ',')]
    pub extra_listeners: Option<Vec<String>>,
    /// Empty column families kept ready for new partitions.
    #[arg(long, env = "FLUXO_SPARE_COLUMN_FAMILIES")]
    pub spare_column_families: Option<usize>,
    /// Classic groups: delay of the first rebalance of an empty group, in ms.
    #[arg(long, env = "FLUXO_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    pub group_initial_rebalance_delay_ms: Option<i32>,
    /// Retention of an empty group's committed offsets, in minutes.
    #[arg(long, env = "FLUXO_OFFSETS_RETENTION_MINUTES")]
    pub offsets_retention_minutes: Option<i64>,
    /// KIP-848 groups: member session timeout in ms.
    #[arg(long, env = "FLUXO_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    pub group_consumer_session_timeout_ms: Option<i32>,
    /// KIP-848 groups: heartbeat interval in ms.
    #[arg(long, env = "FLUXO_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    pub group_consumer_heartbeat_interval_ms: Option<i32>,
    /// Close connections without a complete request for this many ms.
    #[arg(long, env = "FLUXO_CONNECTIONS_MAX_IDLE_MS")]
    pub connections_max_idle_ms: Option<u64>,
    /// Most open client connections (0: derived from the open-file limit).
    #[arg(long, env = "FLUXO_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most open client connections per IP address (0: no cap).
    #[arg(long, env = "FLUXO_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Broker-wide cap on bytes buffered for request frames.
    #[arg(long, env = "FLUXO_QUEUED_MAX_REQUEST_BYTES")]
    pub queued_max_request_bytes: Option<usize>,
    /// Verify the checksums of all stored data at start-up.
    #[arg(long, env = "FLUXO_VERIFY_ON_START")]
    pub verify_on_start: Option<bool>,
    /// Idempotent producer state expires after this long without an append, in ms.
    #[arg(long, env = "FLUXO_PRODUCER_ID_EXPIRATION_MS")]
    pub producer_id_expiration_ms: Option<i64>,
    /// How often expired producer state is looked for, in ms.
    #[arg(long, env = "FLUXO_PRODUCER_ID_EXPIRATION_CHECK_INTERVAL_MS")]
    pub producer_id_expiration_check_interval_ms: Option<i64>,
    /// Most partitions one CreateTopics/CreatePartitions request may create.
    #[arg(long, env = "FLUXO_MAX_PARTITIONS_PER_REQUEST")]
    pub max_partitions_per_request: Option<usize>,
    /// Most partitions the broker holds in all.
    #[arg(long, env = "FLUXO_MAX_PARTITIONS")]
    pub max_partitions: Option<usize>,
    /// Retention of topics without retention.ms, in ms (-1: forever).
    #[arg(long, env = "FLUXO_LOG_RETENTION_MS", allow_negative_numbers = true)]
    pub log_retention_ms: Option<i64>,
    /// Bytes kept per partition of topics without retention.bytes (-1: no limit).
    #[arg(long, env = "FLUXO_LOG_RETENTION_BYTES", allow_negative_numbers = true)]
    pub log_retention_bytes: Option<i64>,
    /// How often retention is enforced, in ms.
    #[arg(long, env = "FLUXO_LOG_RETENTION_CHECK_INTERVAL_MS")]
    pub log_retention_check_interval_ms: Option<i64>,
    /// Run the log cleaner (compaction of cleanup.policy=compact topics).
    #[arg(long, env = "FLUXO_LOG_CLEANER_ENABLE")]
    pub log_cleaner_enable: Option<bool>,
    /// Pause between log cleaner passes, in ms.
    #[arg(long, env = "FLUXO_LOG_CLEANER_BACKOFF_MS")]
    pub log_cleaner_backoff_ms: Option<u64>,
    /// Dirty ratio above which a compacted partition is cleaned.
    #[arg(long, env = "FLUXO_LOG_CLEANER_MIN_CLEANABLE_RATIO")]
    pub log_cleaner_min_cleanable_ratio: Option<f64>,
    /// Records younger than this are not compacted, in ms.
    #[arg(long, env = "FLUXO_LOG_CLEANER_MIN_COMPACTION_LAG_MS")]
    pub log_cleaner_min_compaction_lag_ms: Option<i64>,
    /// Records are compacted at the latest this long after being written, in ms.
    #[arg(long, env = "FLUXO_LOG_CLEANER_MAX_COMPACTION_LAG_MS")]
    pub log_cleaner_max_compaction_lag_ms: Option<i64>,
    /// Tombstones stay this long after the cleaning that first saw them, in ms.
    #[arg(long, env = "FLUXO_LOG_CLEANER_DELETE_RETENTION_MS")]
    pub log_cleaner_delete_retention_ms: Option<i64>,
    /// Refuse produce while the data directory has less free space than this (0: off).
    #[arg(long, env = "FLUXO_MIN_FREE_DISK_BYTES")]
    pub min_free_disk_bytes: Option<u64>,
    /// Named listeners NAME://host:port (comma-separated); replace --listener/--extra-listener.
    #[arg(long, env = "FLUXO_LISTENERS", value_delimiter = ',')]
    pub listeners: Option<Vec<String>>,
    /// Advertised addresses of named listeners, NAME://host:port (comma-separated).
    #[arg(long, env = "FLUXO_ADVERTISED_LISTENERS", value_delimiter = ',')]
    pub advertised_listeners: Option<Vec<String>>,
    /// Listener name to security protocol, NAME:PROTOCOL (comma-separated).
    #[arg(long, env = "FLUXO_LISTENER_SECURITY_PROTOCOL_MAP", value_delimiter = ',')]
    pub listener_security_protocol_map: Option<Vec<String>>,
    /// PEM certificate chain for TLS listeners.
    #[arg(long, env = "FLUXO_SSL_CERTIFICATE_PEM")]
    pub ssl_certificate_pem: Option<String>,
    /// PEM private key for TLS listeners.
    #[arg(long, env = "FLUXO_SSL_KEY_PEM")]
    pub ssl_key_pem: Option<String>,
    /// Client certificates: none, requested or required.
    #[arg(long, env = "FLUXO_SSL_CLIENT_AUTH")]
    pub ssl_client_auth: Option<String>,
    /// PEM CA certificates for verifying client certificates.
    #[arg(long, env = "FLUXO_SSL_TRUSTSTORE_PEM")]
    pub ssl_truststore_pem: Option<String>,
    /// SASL mechanisms offered (comma-separated).
    #[arg(long, env = "FLUXO_SASL_ENABLED_MECHANISMS", value_delimiter = ',')]
    pub sasl_enabled_mechanisms: Option<Vec<String>>,
    /// A SASL user as name:password (repeatable; env: comma-separated).
    #[arg(long = "sasl-user", env = "FLUXO_SASL_USERS", value_delimiter = ',')]
    pub sasl_users: Option<Vec<String>>,
    /// Delay before answering a failed authentication, in ms.
    #[arg(long, env = "FLUXO_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS")]
    pub connection_failed_authentication_delay_ms: Option<u64>,
    /// Authorize requests against ACLs.
    #[arg(long, env = "FLUXO_AUTHORIZER_ENABLED")]
    pub authorizer_enabled: Option<bool>,
    /// Principals allowed everything (repeatable; env: comma-separated).
    #[arg(long = "super-users", env = "FLUXO_SUPER_USERS", value_delimiter = ',')]
    pub super_users: Option<Vec<String>>,
    /// Allow everyone on resources no ACL covers.
    #[arg(long, env = "FLUXO_ALLOW_EVERYONE_IF_NO_ACL_FOUND")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
    /// Largest transaction timeout a producer may ask for, in ms.
    #[arg(long, env = "FLUXO_TRANSACTION_MAX_TIMEOUT_MS")]
    pub transaction_max_timeout_ms: Option<i64>,
    /// How often timed-out transactions are looked for and aborted, in ms.
    #[arg(long, env = "FLUXO_TRANSACTION_ABORT_TIMED_OUT_TRANSACTION_CLEANUP_INTERVAL_MS")]
    pub transaction_abort_timed_out_transaction_cleanup_interval_ms: Option<i64>,
    /// Bind address (ip:port) of the broker-to-broker listener (empty: single broker).
    #[arg(long, env = "FLUXO_INTERNAL_LISTENER")]
    pub internal_listener: Option<String>,
    /// host:port other brokers use to reach the internal listener.
    #[arg(long, env = "FLUXO_INTERNAL_ADVERTISED_LISTENER")]
    pub internal_advertised_listener: Option<String>,
    /// Internal host:port of the controller voters (comma-separated).
    #[arg(long, env = "FLUXO_CLUSTER_SEEDS", value_delimiter = ',')]
    pub cluster_seeds: Option<Vec<String>>,
    /// Interval of the liveness pings between brokers, in ms.
    #[arg(long, env = "FLUXO_CLUSTER_LIVENESS_INTERVAL_MS")]
    pub cluster_liveness_interval_ms: Option<u64>,
    /// Bearer token /metrics requires (empty: none).
    #[arg(long, env = "FLUXO_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Re-authentication interval of SASL sessions in ms (0: never).
    #[arg(long, env = "FLUXO_CONNECTIONS_MAX_REAUTH_MS")]
    pub connections_max_reauth_ms: Option<u64>,
    /// Replicas of a topic created with replication factor -1 (cluster mode).
    #[arg(long, env = "FLUXO_DEFAULT_REPLICATION_FACTOR")]
    pub default_replication_factor: Option<i32>,
}

/// Subcommands; without one, `fluxo` runs the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Exit 0 if the broker this configuration describes answers 200 on /health
    /// (its metrics_listener, a wildcard address probed on loopback), 1 otherwise.
    /// Reads the same config file, environment and flags as the broker: the
    /// container image's HEALTHCHECK.
    Healthcheck,
}

/// Why a configuration was rejected; one line, naming the key or path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid YAML for these settings.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// serde_yaml's explanation, naming the key.
        message: String,
    },
    /// A setting has an unacceptable value.
    #[error("invalid value for {key}: {message}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// Why.
        message: String,
    },
}

impl Config {
    /// Builds the configuration from defaults, the optional YAML file, env and flags.
    pub fn load(cli: Cli) -> Result<Config, ConfigError> {
        let mut config = match &cli.config {
            Some(path) => Config::from_yaml_file(path)?,
            None => Config::default(),
        };
        macro_rules! overlay {
            ($($field:ident),*) => { $( if let Some(v) = cli.$field { config.$field = v; } )* };
        }
        overlay!(
            node_id,
            listener,
            advertised_listener,
            data_dir,
            auto_create_topics,
            num_partitions,
            max_frame_bytes,
            fsync,
            log_level,
            log_format,
            block_cache_mb,
            write_buffer_mb,
            metrics_listener,
            extra_listeners,
            spare_column_families,
            group_initial_rebalance_delay_ms,
            offsets_retention_minutes,
            group_consumer_session_timeout_ms,
            group_consumer_heartbeat_interval_ms,
            connections_max_idle_ms,
            max_connections,
            max_connections_per_ip,
            queued_max_request_bytes,
            verify_on_start,
            producer_id_expiration_ms,
            producer_id_expiration_check_interval_ms,
            max_partitions_per_request,
            max_partitions,
            log_retention_ms,
            log_retention_bytes,
            log_retention_check_interval_ms,
            log_cleaner_enable,
            log_cleaner_backoff_ms,
            log_cleaner_min_cleanable_ratio,
            log_cleaner_min_compaction_lag_ms,
            log_cleaner_max_compaction_lag_ms,
            log_cleaner_delete_retention_ms,
            min_free_disk_bytes,
            listeners,
            advertised_listeners,
            listener_security_protocol_map,
            ssl_certificate_pem,
            ssl_key_pem,
            ssl_client_auth,
            ssl_truststore_pem,
            sasl_enabled_mechanisms,
            sasl_users,
            connection_failed_authentication_delay_ms,
            authorizer_enabled,
            super_users,
            allow_everyone_if_no_acl_found,
            transaction_max_timeout_ms,
            transaction_abort_timed_out_transaction_cleanup_interval_ms,
            internal_listener,
            internal_advertised_listener,
            cluster_seeds,
            cluster_liveness_interval_ms,
            metrics_token,
            connections_max_reauth_ms,
            default_replication_factor
        );
        config.validate()?;
        Ok(config)
    }

    /// Reads a YAML file; unknown keys are an error.
    pub fn from_yaml_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_yaml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses YAML text (an empty document gives the defaults).
    pub fn from_yaml(text: &str) -> Result<Config, String> {
        if text.trim().is_empty() {
            return Ok(Config::default());
        }
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            key,
            message: message.to_string(),
        };
        if self.listener.parse::<SocketAddr>().is_err() {
            return Err(invalid("listener", "expected ip:port, e.g. 0.0.0.0:9092"));
        }
        if !self.metrics_listener.is_empty() && self.metrics_listener.parse::<SocketAddr>().is_err() {
            return Err(invalid("metrics_listener", "expected ip:port, or empty to disable"));
        }
        if self.metrics_token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("metrics_token", "must not contain spaces or control characters"));
        }
        if self.connections_max_reauth_ms > i64::MAX as u64 {
            return Err(invalid("connections_max_reauth_ms", "too large"));
        }
        for extra in &self.extra_listeners {
            if parse_extra_listener(extra).is_none() {
                return Err(invalid("extra_listeners", &format!("{extra:?}: expected bind_ip:port=host:port")));
            }
        }
        if self.advertised_host_port().is_none() {
            return Err(invalid("advertised_listener", "expected host:port"));
        }
        if self.node_id < 0 {
            return Err(invalid("node_id", "must be >= 0"));
        }
        if self.num_partitions < 1 {
            return Err(invalid("num_partitions", "must be >= 1"));
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > i32::MAX as usize {
            return Err(invalid("max_frame_bytes", "must be between 1024 and 2147483647"));
        }
        if self.group_initial_rebalance_delay_ms < 0 {
            return Err(invalid("group_initial_rebalance_delay_ms", "must be >= 0"));
        }
        if self.offsets_retention_minutes < 1 {
            return Err(invalid("offsets_retention_minutes", "must be >= 1"));
        }
        if self.group_consumer_heartbeat_interval_ms < 1
            || self.group_consumer_session_timeout_ms <= self.group_consumer_heartbeat_interval_ms
        {
            return Err(invalid(
                "group_consumer_session_timeout_ms",
                "must be greater than group_consumer_heartbeat_interval_ms (> 0)",
            ));
        }
        if self.block_cache_mb == 0 || self.write_buffer_mb == 0 {
            return Err(invalid("block_cache_mb/write_buffer_mb", "must be > 0"));
        }
        if self.connections_max_idle_ms == 0 {
            return Err(invalid("connections_max_idle_ms", "must be > 0"));
        }
        if self.queued_max_request_bytes < 1024 {
            return Err(invalid("queued_max_request_bytes", "must be >= 1024"));
        }
        if self.producer_id_expiration_ms < 1 {
            return Err(invalid("producer_id_expiration_ms", "must be >= 1"));
        }
        if self.producer_id_expiration_check_interval_ms < 1 {
            return Err(invalid("producer_id_expiration_check_interval_ms", "must be >= 1"));
        }
        if self.max_partitions_per_request < self.num_partitions as usize {
            return Err(invalid("max_partitions_per_request", "must be >= num_partitions"));
        }
        if self.max_partitions < self.max_partitions_per_request {
            return Err(invalid("max_partitions", "must be >= max_partitions_per_request"));
        }
        if self.log_retention_ms < -1 {
            return Err(invalid("log_retention_ms", "must be >= -1"));
        }
        if self.log_retention_bytes < -1 {
            return Err(invalid("log_retention_bytes", "must be >= -1"));
        }
        if self.log_retention_check_interval_ms < 1 {
            return Err(invalid("log_retention_check_interval_ms", "must be >= 1"));
        }
        if self.log_cleaner_backoff_ms < 1 {
            return Err(invalid("log_cleaner_backoff_ms", "must be >= 1"));
        }
        if !(0.0..=1.0).contains(&self.log_cleaner_min_cleanable_ratio) {
            return Err(invalid("log_cleaner_min_cleanable_ratio", "must be between 0 and 1"));
        }
        if self.log_cleaner_min_compaction_lag_ms < 0 {
            return Err(invalid("log_cleaner_min_compaction_lag_ms", "must be >= 0"));
        }
        if self.log_cleaner_max_compaction_lag_ms < 1 {
            return Err(invalid("log_cleaner_max_compaction_lag_ms", "must be >= 1"));
        }
        if self.log_cleaner_delete_retention_ms < 0 {
            return Err(invalid("log_cleaner_delete_retention_ms", "must be >= 0"));
        }
        if self.transaction_max_timeout_ms < 1 {
            return Err(invalid("transaction_max_timeout_ms", "must be >= 1"));
        }
        if self.transaction_abort_timed_out_transaction_cleanup_interval_ms < 1 {
            return Err(invalid("transaction_abort_timed_out_transaction_cleanup_interval_ms", "must be >= 1"));
        }
        self.validate_security()?;
        self.validate_cluster()?;
        Ok(())
    }

    /// The transaction coordinator's settings from this configuration.
    pub fn txn_settings(&self) -> crate::coordinator::txn::TxnSettings {
        crate::coordinator::txn::TxnSettings { max_timeout_ms: self.transaction_max_timeout_ms }
    }

    /// The advertised listener split into host and port.
    pub fn advertised_host_port(&self) -> Option<(String, i32)> {
        split_host_port(&self.advertised_listener)
    }

    /// The group coordinator's settings from this configuration.
    pub fn group_settings(&self) -> crate::coordinator::GroupSettings {
        crate::coordinator::GroupSettings {
            initial_rebalance_delay_ms: self.group_initial_rebalance_delay_ms,
            offsets_retention_ms: self.offsets_retention_minutes.saturating_mul(60_000),
            consumer_session_timeout_ms: self.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: self.group_consumer_heartbeat_interval_ms,
            ..Default::default()
        }
    }

    /// The topic store's settings from this configuration.
    pub fn topic_settings(&self) -> crate::storage::topic_store::TopicSettings {
        crate::storage::topic_store::TopicSettings {
            max_partitions: self.max_partitions,
            producer_id_expiration_ms: self.producer_id_expiration_ms,
        }
    }

    /// Every listener: (bind address, advertised host, advertised port), primary first.
    pub fn listeners(&self) -> Vec<(String, String, i32)> {
        let mut all = Vec::with_capacity(1 + self.extra_listeners.len());
        if let Some((host, port)) = self.advertised_host_port() {
            all.push((self.listener.clone(), host, port));
        }
        all.extend(self.extra_listeners.iter().filter_map(|e| parse_extra_listener(e)));
        all
    }
}

impl Config {
    /// The internal listener's advertised `host:port`: `internal_advertised_listener`, else
    /// the bind address; `None` in single-broker mode (no internal listener).
    pub fn internal_advertised(&self) -> Option<String> {
        if self.internal_listener.is_empty() {
            return None;
        }
        Some(if self.internal_advertised_listener.is_empty() {
            self.internal_listener.clone()
        } else {
            self.internal_advertised_listener.clone()
        })
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid { key, message };
        if self.internal_listener.is_empty() {
            if !self.internal_advertised_listener.is_empty() {
                return Err(invalid("internal_advertised_listener", "needs internal_listener".into()));
            }
            if !self.cluster_seeds.is_empty() {
                return Err(invalid("cluster_seeds", "needs internal_listener".into()));
            }
        } else {
            if self.internal_listener.parse::<SocketAddr>().is_err() {
                return Err(invalid("internal_listener", "expected ip:port, e.g. 0.0.0.0:9093, or empty".into()));
            }
            if self.listener_specs()?.iter().any(|s| s.bind == self.internal_listener) {
                return Err(invalid("internal_listener", "must differ from the Kafka listeners".into()));
            }
        }
        if !self.internal_advertised_listener.is_empty() && split_host_port(&self.internal_advertised_listener).is_none() {
            return Err(invalid("internal_advertised_listener", "expected host:port".into()));
        }
        for seed in &self.cluster_seeds {
            if split_host_port(seed.trim()).is_none() {
                return Err(invalid("cluster_seeds", format!("{seed:?}: expected host:port")));
            }
        }
        if !(10..=60_000).contains(&self.cluster_liveness_interval_ms) {
            return Err(invalid("cluster_liveness_interval_ms", "must be between 10 and 60000".into()));
        }
        if !(1..=i32::from(i16::MAX)).contains(&self.default_replication_factor) {
            return Err(invalid("default_replication_factor", "must be between 1 and 32767".into()));
        }
        Ok(())
    }
}

mod listeners;
pub use listeners::ListenerSpec;
use listeners::{parse_extra_listener, split_host_port};

#[cfg(test)]
mod tests;
