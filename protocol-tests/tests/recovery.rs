//! Damaged storage and exhausted resources: the broker never serves a lie.
//!
//! - A torn or garbled write-ahead log (fsync on, records acknowledged with
//!   acks=all, then SIGKILL) is recovered to its last intact record, and the broker
//!   says so: an ERROR naming the file and, per partition, the offsets lost, plus
//!   metrics. The log end offset equals what is readable, byte for byte.
//! - A corrupted SST makes its partition answer KAFKA_STORAGE_ERROR (never empty
//!   reads), at read time and, with `--verify-on-start`, from start-up.
//! - After file descriptors ran out and RocksDB failed to create a file, produce
//!   works again by itself once they are freed, and nothing acknowledged is lost.
//!
//! These tests start the broker themselves (they need flags, SIGKILL, the data
//! directory and a file descriptor limit).

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol_tests::*;

/// KAFKA_STORAGE_ERROR.
const KAFKA_STORAGE_ERROR: i16 = 56;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A broker process started with extra flags and (optionally) a file descriptor limit.
struct Broker {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    metrics_port: u16,
    flags: Vec<String>,
    nofile: Option<u64>,
}

impl Broker {
    fn start(flags: &[&str]) -> Broker {
        Broker::start_limited(flags, None)
    }

    fn start_limited(flags: &[&str], nofile: Option<u64>) -> Broker {
        let dir = tempfile::Builder::new().prefix("fluxo-recovery-").tempdir().unwrap();
        let mut broker = Broker {
            child: None,
            dir,
            port: 0,
            metrics_port: 0,
            flags: flags.iter().map(|s| s.to_string()).collect(),
            nofile,
        };
        broker.spawn(&[]);
        broker
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("broker.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn client(&self) -> Client {
        Client::connect(self.addr())
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Starts the broker on the data dir with the stored flags plus `more`.
    fn spawn(&mut self, more: &[&str]) {
        let listening_before = self.log().matches("listening").count();
        self.port = free_port();
        self.metrics_port = free_port();
        let log = OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let listener = format!("127.0.0.1:{}", self.port);
        let mut cmd = Command::new(fluxo_bin());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLUXO_") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("RUST_LOG");
        cmd.args(["--listener", &listener, "--advertised-listener", &listener]);
        cmd.arg("--data-dir").arg(self.data_dir());
        cmd.args(["--metrics-listener", &format!("127.0.0.1:{}", self.metrics_port)]);
        cmd.args(["--auto-create-topics", "false"]);
        cmd.args(&self.flags);
        cmd.args(more);
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        if let Some(limit) = self.nofile {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(move || {
                    let rlim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &rlim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        self.child = Some(cmd.spawn().expect("spawn fluxo"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                panic!("broker exited during start-up: {status}\n{}", self.log());
            }
            let bound = self.log().matches("listening").count() > listening_before;
            if bound && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(Instant::now() < deadline, "broker not serving after {START_TIMEOUT:?}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "exit after SIGTERM: {status}\n{}", self.log());
    }

    /// The Prometheus text of /metrics.
    fn metrics(&self) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// The value of one sample line of /metrics (`name{labels}`), 0 when absent.
    fn metric(&self, sample: &str) -> u64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(sample).and_then(|v| v.strip_prefix(' ')))
            .map(|v| v.trim().parse::<f64>().unwrap() as u64)
            .unwrap_or(0)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("--- broker log (tail) ---\n{}", lines[lines.len().saturating_sub(60)..].join("\n"));
        }
    }
}

/// One produced batch: its bytes (as sent) and the offset it was acknowledged at.
type Produced = Vec<(i64, Bytes)>;

/// A batch of `n` records of about `value_len` bytes each.
fn batch(tag: &str, n: usize, value_len: usize) -> Bytes {
    let records: Vec<_> = (0..n)
        .map(|i| {
            let value: Vec<u8> = format!("{tag}-{i}-").into_bytes().into_iter().cycle().take(value_len).collect();
            record(Some(format!("k{i}").as_bytes()), Some(&value), &[], now_ms())
        })
        .collect();
    encode_batch(&records)
}

/// Every batch of a partition from offset 0 up to the high watermark.
fn fetch_all(client: &mut Client, topic: &str, partition: i32) -> (i64, Vec<Bytes>) {
    let mut batches = Vec::new();
    let mut offset = 0;
    loop {
        let data = client.fetch(topic, partition, offset);
        assert_eq!(data.error_code, code::NONE, "fetch {topic}/{partition}@{offset}");
        let got = raw_batches(data.records.as_ref().expect("records"));
        if got.is_empty() {
            assert_eq!(offset, data.high_watermark, "{topic}/{partition}: nothing readable below the high watermark at {offset}");
            return (data.high_watermark, batches);
        }
        for b in got {
            offset = batch_base_offset(&b) + batch_record_count(&b) as i64;
            batches.push(b);
        }
    }
}

/// Asserts that the readable log is a prefix of what was produced, byte for byte,
/// at the acknowledged offsets, and that the log end offset is where it stops.
fn assert_prefix(client: &mut Client, topic: &str, partition: i32, produced: &Produced) -> i64 {
    let (high_watermark, fetched) = fetch_all(client, topic, partition);
    assert!(fetched.len() <= produced.len(), "{topic}/{partition}: more batches than produced");
    for (i, (b, (base, sent))) in fetched.iter().zip(produced).enumerate() {
        assert_batch_bytes_eq(b, sent, *base, &format!("{topic}/{partition} batch {i}"));
    }
    let readable = fetched.last().map_or(0, |b| batch_base_offset(b) + batch_record_count(b) as i64);
    assert_eq!(high_watermark, readable, "{topic}/{partition}: high watermark = records readable");
    assert_eq!(client.log_end_offset(topic, partition), readable, "{topic}/{partition}: ListOffsets latest = records readable");
    readable
}

fn newest_wal(dir: &std::path::Path) -> PathBuf {
    let mut wals: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            Some((name.strip_suffix(".log")?.parse().ok()?, e.path()))
        })
        .collect();
    wals.sort();
    wals.pop().expect("a write-ahead log file").1
}

/// Produces to two partitions with fsync on, SIGKILLs, damages the newest WAL with
/// `damage`, restarts and checks what the broker serves and says.
fn damaged_wal_is_recovered_and_reported(damage: impl Fn(&mut Vec<u8>), exact_count: bool) {
    let mut broker = Broker::start(&["--fsync", "true"]);
    let mut client = broker.client();
    let topic_id = client.create_topic("wal", 2);
    let mut produced: Vec<Produced> = vec![Vec::new(), Vec::new()];
    for i in 0..120 {
        let p = i % 2;
        let b = batch(&format!("w{i}"), 10, 100);
        let base = client.produce_ok("wal", p as i32, b.clone());
        produced[p].push((base, b));
    }
    let acked: Vec<i64> = produced.iter().map(|p| p.last().map_or(0, |(base, _)| base + 10)).collect();
    drop(client);
    broker.kill();

    let wal = newest_wal(&broker.data_dir());
    let wal_name = wal.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(&wal).unwrap();
    damage(&mut bytes);
    std::fs::write(&wal, &bytes).unwrap();

    broker.spawn(&[]);
    let log = broker.log();
    let file_error = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains(&wal_name) && l.contains("damaged"))
        .unwrap_or_else(|| panic!("no ERROR naming {wal_name}\n{log}"));
    assert!(file_error.contains("lost"), "{file_error}");
    let mut client = broker.client();
    let mut lost_total = 0;
    for p in 0..2 {
        let readable = assert_prefix(&mut client, "wal", p as i32, &produced[p]);
        if readable < acked[p] {
            // Named per partition with the first offset lost (a torn tail cannot tell how many).
            let line = log
                .lines()
                .find(|l| {
                    l.contains("ERROR")
                        && l.contains(&format!("partition {topic_id}-{p} "))
                        && l.contains("lost acknowledged records")
                        && (l.contains(&format!("offsets {readable}..=")) || l.contains(&format!("from offset {readable} on")))
                })
                .unwrap_or_else(|| panic!("no ERROR for partition {p} from offset {readable}\n{log}"));
            if exact_count {
                assert!(line.contains(&format!("offsets {readable}..={} ", acked[p] - 1)), "{line}");
            }
            lost_total += acked[p] - readable;
        }
    }
    assert!(lost_total > 0, "the damage lost nothing: the test proves nothing");
    assert_eq!(broker.metric("fluxo_storage_corruption_total{kind=\"wal\"}"), 1);
    let counted = broker.metric("fluxo_storage_recovery_lost_records_total");
    if exact_count {
        assert_eq!(counted, lost_total as u64, "lost records counted");
    } else {
        assert!(counted >= 1 && counted <= lost_total as u64, "lost records counted: {counted} of {lost_total}");
    }
    let preserved = broker.data_dir().join("lost+found");
    let kept = std::fs::read_dir(&preserved).unwrap().flatten().any(|d| d.path().join(&wal_name).exists());
    assert!(kept, "a copy of {wal_name} in lost+found");
    // The log goes on from what is readable.
    let end0 = client.log_end_offset("wal", 0);
    assert_eq!(client.produce_ok("wal", 0, batch("after", 3, 50)), end0);
}

#[test]
fn garbled_wal_is_recovered_to_its_last_intact_record_and_reported() {
    damaged_wal_is_recovered_and_reported(
        |bytes| {
            let middle = bytes.len() / 2;
            for b in &mut bytes[middle..middle + 64] {
                *b ^= 0xa5;
            }
        },
        true,
    );
}

#[test]
fn truncated_wal_is_recovered_to_its_last_intact_record_and_reported() {
    // Cut inside a record (records are about 1.4 KB; 3,001 bytes never lands on a boundary
    // for all of them) so the tail is torn, as a crash mid-write leaves it.
    damaged_wal_is_recovered_and_reported(|bytes| bytes.truncate(bytes.len() - 3_001), false);
}

/// The biggest `.sst` file of the data directory.
fn biggest_sst(dir: &std::path::Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".sst"))
        .max_by_key(|e| e.metadata().unwrap().len())
        .expect("an sst file")
        .path()
}

#[test]
fn corrupted_sst_takes_its_partition_offline_with_storage_errors() {
    let mut broker = Broker::start(&[]);
    let mut client = broker.client();
    client.create_topic("big", 1);
    client.create_topic("small", 1);
    let mut big: Produced = Vec::new();
    for i in 0..40 {
        let b = batch(&format!("b{i}"), 20, 2_000);
        big.push((client.produce_ok("big", 0, b.clone()), b));
    }
    let mut small: Produced = Vec::new();
    for i in 0..3 {
        let b = batch(&format!("s{i}"), 2, 20);
        small.push((client.produce_ok("small", 0, b.clone()), b));
    }
    drop(client);
    // Replaying the WAL at the next start flushes every partition to its own SST.
    broker.stop();
    broker.spawn(&[]);
    broker.stop();
    let sst = biggest_sst(&broker.data_dir());
    let sst_name = sst.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = std::fs::read(&sst).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0xa5;
    }
    std::fs::write(&sst, &bytes).unwrap();

    broker.spawn(&[]);
    let mut client = broker.client();
    // Reading through the damaged block: a storage error, not an empty answer.
    let mut offset = 0;
    let error = loop {
        let data = client.fetch("big", 0, offset);
        if data.error_code != code::NONE {
            break data.error_code;
        }
        let got = raw_batches(data.records.as_ref().expect("records"));
        assert!(!got.is_empty(), "empty read at {offset} below the high watermark {}", data.high_watermark);
        offset = got.last().map(|b| batch_base_offset(b) + batch_record_count(b) as i64).unwrap();
    };
    assert_eq!(error, KAFKA_STORAGE_ERROR, "fetch through the corrupted block");
    // Offline from now on, even below the damage; appends too.
    assert_eq!(client.fetch("big", 0, 0).error_code, KAFKA_STORAGE_ERROR, "fetch at 0 after the damage was found");
    assert_eq!(client.produce("big", 0, batch("x", 1, 10)).error_code, KAFKA_STORAGE_ERROR, "produce to the offline partition");
    let log = broker.log();
    let line = log
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("offline") && l.contains(&sst_name))
        .unwrap_or_else(|| panic!("no ERROR naming {sst_name}\n{log}"));
    assert_eq!(log.matches("is offline").count(), 1, "reported once: {line}");
    assert_eq!(broker.metric("fluxo_storage_corruption_total{kind=\"sst\"}"), 1);
    // Other partitions serve as before.
    assert_prefix(&mut client, "small", 0, &small);
    assert_eq!(fetch_all(&mut client, "small", 0).1.len(), small.len());
    drop(client);
    broker.stop();

    // With --verify-on-start the partition is offline before anything reads it.
    let before = broker.log().len();
    broker.spawn(&["--verify-on-start", "true"]);
    let startup = broker.log()[before..].to_string();
    let offline = startup.find(&format!("offline: its stored data in {}", sst.display()));
    let listening = startup.find("listening");
    assert!(
        matches!((offline, listening), (Some(o), Some(l)) if o < l),
        "ERROR naming {sst_name} before serving\n{startup}"
    );
    let mut client = broker.client();
    assert_eq!(client.fetch("big", 0, 0).error_code, KAFKA_STORAGE_ERROR, "fetch at 0 after verify-on-start");
    assert_eq!(broker.metric("fluxo_storage_corruption_total{kind=\"sst\"}"), 1);
    assert_prefix(&mut client, "small", 0, &small);
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn produce_recovers_by_itself_after_file_descriptors_ran_out() {
    const LIMIT: u64 = 256;
    // The connection cap normally keeps descriptors in reserve for storage; it is
    // lifted here so that storage does run out and its recovery can be seen.
    let broker = Broker::start_limited(&["--write-buffer-mb", "1", "--fsync", "true", "--max-connections", "1000"], Some(LIMIT));
    let mut client = broker.client();
    client.create_topic("fds", 1);
    let mut acked: BTreeMap<i64, Bytes> = BTreeMap::new();
    let mut n = 0;
    let mut produce = |client: &mut Client, acked: &mut BTreeMap<i64, Bytes>| {
        n += 1;
        let b = batch(&format!("f{n}"), 10, 10_000);
        let p = client.produce("fds", 0, b.clone());
        if p.error_code == code::NONE {
            acked.insert(p.base_offset, b);
        }
        p.error_code
    };
    for _ in 0..5 {
        assert_eq!(produce(&mut client, &mut acked), code::NONE);
    }
    // Idle connections until the broker has no file descriptor left.
    let pid = broker.pid();
    let mut idle = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while (open_fds(pid) as u64) < LIMIT {
        assert!(Instant::now() < deadline, "broker fds stuck at {}", open_fds(pid));
        if idle.len() < 2 * LIMIT as usize {
            idle.push(TcpStream::connect(broker.addr()).unwrap());
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Produce until RocksDB needs a new file and fails.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let error = produce(&mut client, &mut acked);
        if error != code::NONE {
            assert_eq!(error, KAFKA_STORAGE_ERROR);
            break;
        }
        assert!(Instant::now() < deadline, "produce never failed while out of file descriptors");
    }
    drop(idle);
    // It recovers by itself once the descriptors are free again.
    let deadline = Instant::now() + Duration::from_secs(30);
    while produce(&mut client, &mut acked) != code::NONE {
        assert!(Instant::now() < deadline, "produce still failing 30 s after the file descriptors were freed");
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        assert_eq!(produce(&mut client, &mut acked), code::NONE, "produce after recovery");
    }
    // Every acknowledged batch is read back at its offset, byte for byte.
    let (_, fetched) = fetch_all(&mut client, "fds", 0);
    let by_base: BTreeMap<i64, Bytes> = fetched.into_iter().map(|b| (batch_base_offset(&b), b)).collect();
    for (base, sent) in &acked {
        let got = by_base.get(base).unwrap_or_else(|| panic!("acknowledged batch at {base} missing"));
        assert_batch_bytes_eq(got, sent, *base, &format!("batch at {base}"));
    }
    assert!(broker.metric("fluxo_storage_reopens_total") >= 1, "{}", broker.metrics());
    let log = broker.log();
    assert!(log.contains("storage stopped accepting writes"), "WARN when it breaks");
    assert!(log.contains("storage recovered"), "INFO when it recovers");
}
