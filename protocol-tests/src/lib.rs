//! Wire-level test harness for Fluxo.
//!
//! [`BrokerProcess`] spawns the real broker binary on a free loopback port with its own data
//! directory; [`Client`] talks to it over blocking TCP, framing requests and encoding/decoding
//! them with the `kafka-protocol` crate at an explicit version. The remaining helpers build and
//! check record batches and common requests.
//!
//! Run (the broker binary is built separately, e.g. `cargo build --release`):
//! `FLUXO_BIN=target/release/fluxo cargo test -p protocol-tests`

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub use kafka_protocol;

pub mod cluster;
pub use uuid::Uuid;

/// How long one read from or write to the broker may block before the test fails.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the broker may take to accept connections (or to exit after SIGTERM).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Name sent as `client_id` in request headers.
pub const CLIENT_ID: &str = "fluxo-protocol-tests";

/// Kafka error codes used by the tests.
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// OFFSET_OUT_OF_RANGE.
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    /// CORRUPT_MESSAGE.
    pub const CORRUPT_MESSAGE: i16 = 2;
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// LEADER_NOT_AVAILABLE.
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    /// INVALID_TOPIC_EXCEPTION.
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    /// UNSUPPORTED_VERSION.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// TOPIC_ALREADY_EXISTS.
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    /// INVALID_PARTITIONS.
    pub const INVALID_PARTITIONS: i16 = 37;
    /// INVALID_REPLICATION_FACTOR.
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    /// INVALID_CONFIG.
    pub const INVALID_CONFIG: i16 = 40;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// OUT_OF_ORDER_SEQUENCE_NUMBER.
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    /// INVALID_RECORD.
    pub const INVALID_RECORD: i16 = 87;
    /// UNKNOWN_TOPIC_ID.
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    /// INVALID_PRODUCER_EPOCH.
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    /// INVALID_TXN_STATE.
    pub const INVALID_TXN_STATE: i16 = 48;
    /// INVALID_PRODUCER_ID_MAPPING.
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    /// INVALID_TRANSACTION_TIMEOUT.
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    /// CONCURRENT_TRANSACTIONS.
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    /// OPERATION_NOT_ATTEMPTED.
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    /// PRODUCER_FENCED.
    pub const PRODUCER_FENCED: i16 = 90;
    /// UNKNOWN_MEMBER_ID.
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    /// ILLEGAL_GENERATION.
    pub const ILLEGAL_GENERATION: i16 = 22;
    /// UNSTABLE_OFFSET_COMMIT.
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
}

/// Every API Fluxo advertises, with its (min, max) version.
pub const ADVERTISED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 13),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 0),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
];

/// The advertised version range of `key` (panics for APIs Fluxo does not advertise).
pub fn versions(key: ApiKey) -> RangeInclusive<i16> {
    let (_, min, max) = ADVERTISED
        .iter()
        .find(|(k, _, _)| *k == key)
        .unwrap_or_else(|| panic!("{key:?} is not advertised"));
    *min..=*max
}

/// The highest advertised version of `key`.
pub fn max_version(key: ApiKey) -> i16 {
    *versions(key).end()
}

/// Path of the broker binary: `$FLUXO_BIN`, else `${CARGO_TARGET_DIR:-<workspace>/target}/release/fluxo`.
pub fn fluxo_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FLUXO_BIN") {
        return bin.into();
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release/fluxo")
}

/// Command-line options a [`BrokerProcess`] is started with.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// `--num-partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `--auto-create-topics`.
    pub auto_create_topics: bool,
    /// `--max-frame-bytes`, or the broker's default when `None`.
    pub max_frame_bytes: Option<u64>,
    /// More command-line arguments, appended after the ones above.
    pub extra_args: Vec<String>,
    /// Open-file limit (soft and hard `RLIMIT_NOFILE`) of the broker process, if set.
    pub nofile_limit: Option<u64>,
    /// Environment variables set for the broker process.
    pub env: Vec<(String, String)>,
    /// `--data-dir`: where the broker keeps its data; a fresh temp dir when `None`.
    pub data_dir: Option<PathBuf>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        Self {
            num_partitions: 1,
            auto_create_topics: false,
            max_frame_bytes: None,
            extra_args: Vec::new(),
            nofile_limit: None,
            env: Vec::new(),
            data_dir: None,
        }
    }
}

/// A running broker process on a loopback port with its own data dir; killed on drop.
pub struct BrokerProcess {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    options: BrokerOptions,
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl BrokerProcess {
    /// Starts a broker with default options (1 partition, auto-create off).
    pub fn start() -> Self {
        Self::start_with(BrokerOptions::default())
    }

    /// Starts a broker with the given options and waits until it accepts connections.
    pub fn start_with(options: BrokerOptions) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fluxo-pt-")
            .tempdir()
            .unwrap();
        let mut broker = Self {
            child: None,
            port: free_port(),
            dir,
            options,
        };
        broker.spawn();
        broker
    }

    /// The port the broker listens on (and advertises).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's listener address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The options the broker was started with.
    pub fn options(&self) -> &BrokerOptions {
        &self.options
    }

    /// Opens a new client connection to the broker.
    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    fn data_dir(&self) -> PathBuf {
        self.options.data_dir.clone().unwrap_or_else(|| self.dir.path().join("data"))
    }

    /// The broker's data directory (`--data-dir`).
    pub fn data_path(&self) -> PathBuf {
        self.data_dir()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    /// The broker process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The broker's combined stdout/stderr so far (every start of this broker).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Lines of the broker log reporting a panic, each with the line after it
    /// (where the panic message is).
    pub fn panic_lines(&self) -> Vec<String> {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let mut found = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            if line.contains("panicked at") {
                found.push(line.to_string());
                if let Some(next) = lines.get(i + 1) {
                    found.push(format!("    {next}"));
                }
            }
        }
        found
    }

    /// Panics if the broker log reports a panic (of any thread or task).
    pub fn assert_no_panic(&self, context: &str) {
        let panics = self.panic_lines();
        assert!(
            panics.is_empty(),
            "{context}: the broker panicked ({} panic(s)):\n{}",
            panics.len() / 2,
            panics.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
        );
    }

    /// The last lines of the broker's combined stdout/stderr.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Spawns the binary on the same data dir; tries a fresh port if the current one is taken.
    fn spawn(&mut self) {
        let bin = fluxo_bin();
        assert!(
            bin.exists(),
            "broker binary {} not found (set FLUXO_BIN)",
            bin.display()
        );
        let mut last_error = String::new();
        for attempt in 0..3 {
            if attempt > 0 {
                self.port = free_port();
            }
            let listening_before = self.listening_lines();
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .unwrap();
            let listener = format!("127.0.0.1:{}", self.port);
            let mut cmd = Command::new(&bin);
            // Only the flags below configure the broker: drop FLUXO_* settings from the environment.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("FLUXO_") {
                    cmd.env_remove(key);
                }
            }
            cmd.arg("--listener").arg(&listener);
            cmd.arg("--advertised-listener").arg(&listener);
            cmd.arg("--data-dir").arg(self.data_dir());
            cmd.arg("--num-partitions")
                .arg(self.options.num_partitions.to_string());
            cmd.arg("--auto-create-topics")
                .arg(self.options.auto_create_topics.to_string());
            if let Some(max) = self.options.max_frame_bytes {
                cmd.arg("--max-frame-bytes").arg(max.to_string());
            }
            cmd.args(&self.options.extra_args);
            // Panics carry a backtrace into the log, where Drop looks for them.
            cmd.env("RUST_BACKTRACE", "1");
            if let Some(limit) = self.options.nofile_limit {
                use std::os::unix::process::CommandExt;
                let rlimit = libc::rlimit { rlim_cur: limit as libc::rlim_t, rlim_max: limit as libc::rlim_t };
                // SAFETY: setrlimit is async-signal-safe and touches only this struct.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            cmd.envs(self.options.env.iter().map(|(k, v)| (k, v)));
            cmd.stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            self.child = Some(
                cmd.spawn()
                    .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display())),
            );
            match self.wait_ready(listening_before) {
                Ok(()) => return,
                Err(e) => last_error = e,
            }
        }
        panic!(
            "broker failed to start: {last_error}\n--- broker log ---\n{}",
            self.log_tail()
        );
    }

    /// How many "listening" lines (one per bound listener) the broker log holds.
    fn listening_lines(&self) -> usize {
        std::fs::read_to_string(self.log_path())
            .map(|log| log.lines().filter(|l| l.contains("listening")).count())
            .unwrap_or(0)
    }

    /// Polls until the broker accepts TCP connections; Err if it exits or the deadline passes.
    fn wait_ready(&mut self, listening_before: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("broker exited during startup: {status}"));
            }
            // Our broker logs "listening" once it has bound the port; connecting alone
            // could reach another test's broker that took the same port first.
            let bound = self.listening_lines() > listening_before;
            if bound && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let mut child = self.child.take().unwrap();
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("not accepting connections after {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panics (with the broker log) if the broker process has exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("broker is not running");
        if let Some(status) = child.try_wait().unwrap() {
            self.child = None;
            panic!(
                "broker died: {status}\n--- broker log ---\n{}",
                self.log_tail()
            );
        }
    }

    /// Asserts the broker process is alive and answers ApiVersions on a new connection;
    /// `context` says what just happened (for the failure message).
    pub fn assert_serving(&mut self, context: &str) {
        let outcome = (|| -> io::Result<()> {
            let mut client = Client::try_connect(self.addr())?;
            let (correlation_id, req) = client.encode(0, &ApiVersionsRequest::default());
            client.write_frame(&req)?;
            let frame = client.read_frame()?;
            let resp = decode_response::<ApiVersionsRequest>(frame, 0, correlation_id);
            assert_eq!(resp.error_code, code::NONE, "ApiVersions after {context}");
            Ok(())
        })();
        if let Err(e) = outcome {
            // Give a dying process a moment to be reaped so its exit status can be reported.
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut status = None;
            while let Some(child) = self.child.as_mut() {
                status = child.try_wait().unwrap();
                if status.is_some() || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let state = match status {
                Some(s) => {
                    self.child = None;
                    format!("the broker process exited: {s}")
                }
                None => "the broker process is still running".to_string(),
            };
            panic!("after {context}: broker not serving a new connection ({e}); {state}\n--- broker log ---\n{}", self.log_tail());
        }
        self.assert_running();
    }

    /// Sends SIGTERM and waits for the process to exit; returns its exit status.
    pub fn stop(&mut self) -> ExitStatus {
        self.assert_running();
        let mut child = self.child.take().unwrap();
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker ignored SIGTERM for {START_TIMEOUT:?}\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the broker with SIGKILL (`kill -9`: no shutdown, no flush) and reaps it.
    pub fn kill(&mut self) {
        self.assert_running();
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Sends SIGSTOP (the process freezes: sockets stay open, nothing answers) or,
    /// with `false`, SIGCONT.
    pub fn pause(&mut self, paused: bool) {
        let child = self.child.as_ref().expect("broker is not running");
        let signal = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    }

    /// Starts a broker that was killed or stopped again, on the same data dir and options.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "broker is still running");
        self.spawn();
    }

    /// Stops the broker with SIGTERM (asserting exit code 0) and starts it again on the same data dir.
    pub fn restart(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "broker exit status after SIGTERM: {status}\n{}",
            self.log_tail()
        );
        self.spawn();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        // A panic in the broker fails the test even when the broker survived it
        // (a connection task's panic only ends that connection).
        let panics = self.panic_lines();
        if !panics.is_empty() && std::thread::panicking() {
            eprintln!("--- the broker panicked too ---\n{}", panics.iter().take(40).cloned().collect::<Vec<_>>().join("\n"));
        }
        if !panics.is_empty() && !std::thread::panicking() {
            if let Some(mut child) = self.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!(
                "the broker panicked during the test (log {}):\n{}",
                self.log_path().display(),
                panics.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
            );
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        let exited = child.try_wait().ok().flatten();
        let _ = child.kill();
        let _ = child.wait();
        if std::thread::panicking() {
            let state = exited.map_or("running".to_string(), |s| format!("had exited: {s}"));
            eprintln!(
                "--- broker (port {}) {state}; log ---\n{}",
                self.port,
                self.log_tail()
            );
        } else if let Some(status) = exited {
            panic!("broker died during the test: {status}\n{}", self.log_tail());
        }
    }
}

/// A blocking client connection that frames requests and decodes responses with kafka-protocol.
pub struct Client {
    stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    /// Connects to `addr` with read/write timeouts of [`IO_TIMEOUT`].
    pub fn connect(addr: SocketAddr) -> Self {
        Self::try_connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
    }

    /// Like [`Client::connect`], returning the error instead of panicking.
    pub fn try_connect(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            next_correlation_id: 1,
        })
    }

    /// The underlying socket, e.g. to change timeouts or shut it down.
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Returns a fresh correlation id.
    pub fn next_correlation_id(&mut self) -> i32 {
        self.next_correlation_id += 1;
        self.next_correlation_id * 7 // not sequential, so echoing a counter would be caught
    }

    /// Encodes `req` with its header at `version` (no length prefix); returns (correlation id, bytes).
    pub fn encode<R: Request>(&mut self, version: i16, req: &R) -> (i32, BytesMut) {
        let correlation_id = self.next_correlation_id();
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let mut buf = BytesMut::new();
        header.encode(&mut buf, R::header_version(version)).unwrap();
        req.encode(&mut buf, version)
            .unwrap_or_else(|e| panic!("encode {:?} v{version}: {e:#}", api_key::<R>()));
        (correlation_id, buf)
    }

    /// Sends `req` at `version`; returns its correlation id.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let (correlation_id, buf) = self.encode(version, req);
        self.write_frame(&buf)
            .unwrap_or_else(|e| panic!("send {:?} v{version}: {e}", api_key::<R>()));
        correlation_id
    }

    /// Reads the next response and decodes it as the response to `R` at `version`.
    pub fn receive<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let frame = self.read_frame().unwrap_or_else(|e| {
            panic!(
                "{:?} v{version}: no response (correlation id {correlation_id}): {e}",
                api_key::<R>()
            )
        });
        decode_response::<R>(frame, version, correlation_id)
    }

    /// Sends `req` at `version` and returns the decoded response.
    pub fn call<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let correlation_id = self.send(version, req);
        self.receive::<R>(version, correlation_id)
    }

    /// Writes `payload` prefixed with its 4-byte big-endian length.
    pub fn write_frame(&mut self, payload: &[u8]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(payload.len() + 4);
        buf.put_i32(payload.len() as i32);
        buf.extend_from_slice(payload);
        self.write_raw(&buf)
    }

    /// Writes raw bytes to the socket.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one length-prefixed frame (without the prefix).
    pub fn read_frame(&mut self) -> io::Result<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(0..=256 << 20).contains(&len) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad response length {len}"),
            ));
        }
        let mut buf = vec![0u8; len as usize];
        self.stream.read_exact(&mut buf)?;
        Ok(buf.into())
    }

    /// Asserts the broker closes this connection (EOF or reset) without sending anything.
    pub fn expect_closed(&mut self, context: &str) {
        let mut buf = [0u8; 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "{context}: expected the connection to close, got {n} bytes: {:02x?}",
                &buf[..n]
            ),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => panic!("{context}: expected the connection to close, got {e}"),
        }
    }
}

fn api_key<R: Request>() -> ApiKey {
    ApiKey::try_from(R::KEY).unwrap()
}

/// Decodes a response frame for `R` at `version`, checking the correlation id and that no bytes are left over.
pub fn decode_response<R: Request>(frame: Bytes, version: i16, correlation_id: i32) -> R::Response {
    let api = api_key::<R>();
    let mut buf = frame.clone();
    let header_version = R::Response::header_version(version);
    let header = ResponseHeader::decode(&mut buf, header_version).unwrap_or_else(|e| {
        panic!("{api:?} v{version}: response header v{header_version}: {e:#}; frame {frame:02x?}")
    });
    assert_eq!(
        header.correlation_id, correlation_id,
        "{api:?} v{version}: correlation id"
    );
    let body = R::Response::decode(&mut buf, version).unwrap_or_else(|e| {
        panic!("{api:?} v{version}: response body does not decode: {e:#}; frame {frame:02x?}")
    });
    assert_eq!(
        buf.remaining(),
        0,
        "{api:?} v{version}: trailing bytes after the response body; frame {frame:02x?}"
    );
    body
}

/// Encodes a request header by hand (for versions kafka-protocol cannot encode): header v1, or v2 when `flexible`.
pub fn raw_request(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    flexible: bool,
    body: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_i16(CLIENT_ID.len() as i16);
    buf.extend_from_slice(CLIENT_ID.as_bytes());
    if flexible {
        buf.put_u8(0); // no tagged fields
    }
    buf.extend_from_slice(body);
    buf
}

/// `s` as a StrBytes.
pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// `s` as a TopicName.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A plain record (offset and sequence are assigned when a batch is encoded).
pub fn record(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[(&str, Option<&[u8]>)],
    timestamp: i64,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: key.map(Bytes::copy_from_slice),
        value: value.map(Bytes::copy_from_slice),
        headers: headers
            .iter()
            .map(|(k, v)| (sb(k), v.map(Bytes::copy_from_slice)))
            .collect::<IndexMap<_, _>>(),
    }
}

/// `n` varied records tagged with `tag`: some with null keys, null values, and several headers.
pub fn sample_records(tag: &str, n: usize) -> Vec<Record> {
    let ts = now_ms();
    (0..n)
        .map(|i| {
            let key = format!("{tag}-key-{i}");
            let value = format!("{tag}-value-{i}-{}", "x".repeat(i * 7));
            let idx = i.to_string();
            let headers: Vec<(&str, Option<&[u8]>)> = match i % 3 {
                0 => vec![],
                1 => vec![
                    ("idx", Some(idx.as_bytes())),
                    ("empty", Some(b"")),
                    ("null", None),
                ],
                _ => vec![("idx", Some(idx.as_bytes()))],
            };
            let key = (i % 4 != 3).then_some(key.as_bytes());
            let value = (i % 5 != 4).then_some(value.as_bytes());
            record(key, value, &headers, ts + i as i64)
        })
        .collect()
}

/// Encodes `records` as one uncompressed magic-2 batch without a producer id.
pub fn encode_batch(records: &[Record]) -> Bytes {
    encode_batch_with(records, -1, -1, -1)
}

/// Encodes `records` as one idempotent batch for `producer_id`/`epoch` starting at `base_sequence`.
pub fn encode_idempotent_batch(
    records: &[Record],
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Bytes {
    encode_batch_with(records, producer_id, epoch, base_sequence)
}

fn encode_batch_with(
    records: &[Record],
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as i64,
            sequence: base_sequence.wrapping_add(i as i32),
            producer_id,
            producer_epoch: epoch,
            ..r.clone()
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    let buf = buf.freeze();
    assert_eq!(
        raw_batches(&buf).len(),
        1,
        "records did not encode into a single batch"
    );
    buf
}

/// Splits a records blob into its raw batches (by each batch's length field); a truncated tail is dropped.
pub fn raw_batches(records: &Bytes) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut pos = 0;
    while records.len() >= pos + 12 {
        let len = i32::from_be_bytes(records[pos + 8..pos + 12].try_into().unwrap()) as usize;
        if records.len() < pos + 12 + len {
            break;
        }
        out.push(records.slice(pos..pos + 12 + len));
        pos += 12 + len;
    }
    out
}

/// Base offset of a raw batch.
pub fn batch_base_offset(batch: &[u8]) -> i64 {
    i64::from_be_bytes(batch[0..8].try_into().unwrap())
}

/// Number of records in a raw batch.
pub fn batch_record_count(batch: &[u8]) -> i32 {
    i32::from_be_bytes(batch[57..61].try_into().unwrap())
}

/// Decodes all (complete) batches in a fetched records blob into records.
pub fn decode_records(records: &Option<Bytes>) -> Vec<Record> {
    let Some(bytes) = records else { return vec![] };
    let mut out = Vec::new();
    for batch in raw_batches(bytes) {
        let mut buf = batch.clone();
        let set = RecordBatchDecoder::decode(&mut buf)
            .unwrap_or_else(|e| panic!("fetched batch does not decode: {e:#}"));
        out.extend(set.records);
    }
    out
}

/// Asserts `actual` are `expected` at consecutive offsets from `first_offset` (key, value, headers, timestamp).
pub fn assert_records_eq(actual: &[Record], expected: &[Record], first_offset: i64, context: &str) {
    assert_eq!(actual.len(), expected.len(), "{context}: record count");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(
            a.offset,
            first_offset + i as i64,
            "{context}: offset of record {i}"
        );
        assert_eq!(a.key, e.key, "{context}: key of record {i}");
        assert_eq!(a.value, e.value, "{context}: value of record {i}");
        assert_eq!(a.headers, e.headers, "{context}: headers of record {i}");
        assert_eq!(
            a.timestamp, e.timestamp,
            "{context}: timestamp of record {i}"
        );
    }
}

/// Asserts a fetched raw batch is the produced one byte for byte, except its base offset and leader epoch.
pub fn assert_batch_bytes_eq(fetched: &[u8], produced: &[u8], base_offset: i64, context: &str) {
    assert_eq!(
        batch_base_offset(fetched),
        base_offset,
        "{context}: batch base offset"
    );
    assert_eq!(fetched.len(), produced.len(), "{context}: batch length");
    assert_eq!(fetched[16], 2, "{context}: magic");
    assert!(
        fetched[17..] == produced[17..],
        "{context}: batch bytes (crc onwards) differ from what was produced"
    );
}

/// Splits a records blob into batches and returns (base offset, record count) of each.
pub fn batch_summary(records: &Option<Bytes>) -> Vec<(i64, i32)> {
    records
        .as_ref()
        .map(|r| {
            raw_batches(r)
                .iter()
                .map(|b| (batch_base_offset(b), batch_record_count(b)))
                .collect()
        })
        .unwrap_or_default()
}

/// A ProduceRequest for one partition at `version` (by name below v13, by topic id from v13).
pub fn produce_request(
    version: i16,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    records: Bytes,
    acks: i16,
) -> ProduceRequest {
    let mut data =
        TopicProduceData::default().with_partition_data(vec![PartitionProduceData::default()
            .with_index(partition)
            .with_records(Some(records))]);
    if version >= 13 {
        data.topic_id = topic_id;
    } else {
        data.name = topic_name(topic);
    }
    ProduceRequest::default()
        .with_transactional_id(None)
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![data])
}

/// A FetchRequest for one partition at `version` (by name below v13, by topic id from v13).
pub fn fetch_request(
    version: i16,
    topic: &str,
    topic_id: Uuid,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    let mut t = FetchTopic::default().with_partitions(vec![FetchPartition::default()
        .with_partition(partition)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(10 << 20)]);
    if version >= 13 {
        t.topic_id = topic_id;
    } else {
        t.topic = topic_name(topic);
    }
    FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(50 << 20)
        .with_topics(vec![t])
}

/// The only partition of the only topic in a fetch response (panics otherwise).
pub fn single_fetch_partition(resp: &FetchResponse, context: &str) -> PartitionData {
    assert_eq!(
        resp.error_code,
        code::NONE,
        "{context}: top-level fetch error"
    );
    assert_eq!(
        resp.responses.len(),
        1,
        "{context}: topics in fetch response"
    );
    assert_eq!(
        resp.responses[0].partitions.len(),
        1,
        "{context}: partitions in fetch response"
    );
    resp.responses[0].partitions[0].clone()
}

/// The only partition result of a produce response (panics otherwise).
pub fn single_produce_partition(resp: &ProduceResponse, context: &str) -> PartitionProduceResponse {
    assert_eq!(
        resp.responses.len(),
        1,
        "{context}: topics in produce response"
    );
    assert_eq!(
        resp.responses[0].partition_responses.len(),
        1,
        "{context}: partitions in produce response"
    );
    resp.responses[0].partition_responses[0].clone()
}

/// Convenience calls at the highest advertised versions, asserting success.
impl Client {
    /// Creates `name` with `partitions` partitions (CreateTopics v7) and returns its topic id.
    pub fn create_topic(&mut self, name: &str, partitions: i32) -> Uuid {
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1)]);
        let resp = self.call(7, &req);
        let t = &resp.topics[0];
        assert_eq!(
            t.error_code,
            code::NONE,
            "create topic {name}: {:?}",
            t.error_message
        );
        assert!(!t.topic_id.is_nil(), "create topic {name}: nil topic id");
        t.topic_id
    }

    /// Metadata (v12) for the given topics, or all topics when `None`.
    pub fn metadata(&mut self, topics: Option<&[&str]>) -> MetadataResponse {
        let topics = topics.map(|ts| {
            ts.iter()
                .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                .collect()
        });
        let req = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        self.call(12, &req)
    }

    /// Metadata (v12) of one topic, whatever its error code.
    pub fn topic_metadata(&mut self, name: &str) -> MetadataResponseTopic {
        let resp = self.metadata(Some(&[name]));
        assert_eq!(resp.topics.len(), 1, "metadata for {name}: topic count");
        resp.topics[0].clone()
    }

    /// The topic id of an existing topic (Metadata v12).
    pub fn topic_id(&mut self, name: &str) -> Uuid {
        let t = self.topic_metadata(name);
        assert_eq!(t.error_code, code::NONE, "metadata for {name}");
        t.topic_id
    }

    /// Produces one records blob with acks=-1 (Produce v12) and returns the partition result.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        records: Bytes,
    ) -> PartitionProduceResponse {
        let resp = self.call(
            12,
            &produce_request(12, topic, Uuid::nil(), partition, records, -1),
        );
        single_produce_partition(&resp, &format!("produce to {topic}/{partition}"))
    }

    /// Produces and asserts success; returns the base offset.
    pub fn produce_ok(&mut self, topic: &str, partition: i32, records: Bytes) -> i64 {
        let p = self.produce(topic, partition, records);
        assert_eq!(
            p.error_code,
            code::NONE,
            "produce to {topic}/{partition}: {:?}",
            p.error_message
        );
        p.base_offset
    }

    /// Fetches from `offset` without waiting (Fetch v12) and returns the partition data.
    pub fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> PartitionData {
        let resp = self.call(
            12,
            &fetch_request(12, topic, Uuid::nil(), partition, offset, 0, 0),
        );
        single_fetch_partition(&resp, &format!("fetch {topic}/{partition}@{offset}"))
    }

    /// ListOffsets (v10) for one partition at `timestamp` (-1 latest, -2 earliest, -3 max timestamp).
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64, i64) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_timestamp(timestamp)])]);
        let resp = self.call(10, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    }

    /// The log end offset (ListOffsets latest) of a partition.
    pub fn log_end_offset(&mut self, topic: &str, partition: i32) -> i64 {
        let (err, offset, _) = self.list_offset(topic, partition, -1);
        assert_eq!(err, code::NONE, "list latest offset of {topic}/{partition}");
        offset
    }

    /// A fresh idempotent producer id and epoch (InitProducerId v5).
    pub fn init_producer_id(&mut self) -> (i64, i16) {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000);
        let resp = self.call(5, &req);
        assert_eq!(resp.error_code, code::NONE, "InitProducerId");
        (resp.producer_id.0, resp.producer_epoch)
    }
}
