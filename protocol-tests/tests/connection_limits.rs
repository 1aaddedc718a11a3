//! Connection limits: the open-file reserve kept for storage, the idle timeout,
//! the total and per-IP caps, and the broker-wide budget for buffered request
//! frames. Each runs a real broker and checks that the limit bites where it
//! should and that clients within it keep being served (data read back).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::records::Record;
use protocol_tests::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The broker's Prometheus text, fetched over plain HTTP/1.0.
fn scrape(metrics: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&metrics, Duration::from_secs(5)).expect("connect to /metrics");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).expect("read /metrics");
    body
}

/// The value of the sample `series` (name with labels, exactly as exposed), 0 if absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Resident memory of a process, in KiB.
fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// What happened to a new connection that sent ApiVersions.
enum Probe {
    /// Answered: the connection is open and served.
    Served(Client),
    /// The broker closed it without an answer.
    Closed,
    /// No answer within the timeout (e.g. never accepted).
    TimedOut,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Probe::Served(_) => "Served",
            Probe::Closed => "Closed",
            Probe::TimedOut => "TimedOut",
        })
    }
}

/// Connects and sends ApiVersions; waits up to `timeout` for the answer.
fn probe(addr: SocketAddr, timeout: Duration) -> Probe {
    let mut client = Client::connect(addr);
    client.stream().set_read_timeout(Some(timeout)).unwrap();
    let (correlation_id, req) = client.encode(0, &ApiVersionsRequest::default());
    if client.write_frame(&req).is_err() {
        return Probe::Closed;
    }
    match client.read_frame() {
        Ok(frame) => {
            let resp = decode_response::<ApiVersionsRequest>(frame, 0, correlation_id);
            assert_eq!(resp.error_code, code::NONE, "ApiVersions on a new connection");
            client.stream().set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            Probe::Served(client)
        }
        Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => Probe::TimedOut,
        Err(_) => Probe::Closed,
    }
}

/// Asserts `client` still gets answers (Metadata naming this broker).
fn assert_answers(client: &mut Client, broker: &BrokerProcess, context: &str) {
    let resp = client.metadata(Some(&[]));
    assert_eq!(resp.brokers.len(), 1, "{context}: Metadata brokers");
    assert_eq!(resp.brokers[0].port, broker.port() as i32, "{context}: Metadata broker port");
}

/// Produces `count` single-record batches of `value_bytes` each (contents vary by
/// `tag` and index), asserting consecutive offsets from `first_offset`.
fn produce_batches(client: &mut Client, topic: &str, tag: &str, count: usize, value_bytes: usize, first_offset: i64) -> Vec<Record> {
    let mut produced = Vec::new();
    for i in 0..count {
        let key = format!("{tag}-{i}");
        let value: Vec<u8> = (0..value_bytes).map(|j| (j * 31 + i * 7 + tag.len()) as u8).collect();
        let records = vec![record(Some(key.as_bytes()), Some(&value), &[], now_ms())];
        let p = client.produce(topic, 0, encode_batch(&records));
        assert_eq!(p.error_code, code::NONE, "produce {key}: {:?}", p.error_message);
        assert_eq!(p.base_offset, first_offset + i as i64, "produce {key}: base offset");
        produced.extend(records);
    }
    produced
}

/// Every record of partition 0 of `topic` from offset 0, fetching until `end`.
fn read_all(client: &mut Client, topic: &str, end: i64) -> Vec<Record> {
    let mut records = Vec::new();
    let deadline = Instant::now() + IO_TIMEOUT;
    while (records.len() as i64) < end {
        assert!(Instant::now() < deadline, "fetching {topic} up to offset {end}: stuck at {}", records.len());
        let p = client.fetch(topic, 0, records.len() as i64);
        assert_eq!(p.error_code, code::NONE, "fetch {topic}@{}", records.len());
        records.extend(decode_records(&p.records));
    }
    records
}

#[test]
fn connections_cannot_use_the_file_descriptors_storage_needs() {
    const NOFILE: u64 = 256;
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        nofile_limit: Some(NOFILE),
        // A 1 MiB memtable budget: the produces below flush memtables, which
        // creates SST and WAL files, i.e. needs free file descriptors.
        extra_args: args(&["--write-buffer-mb", "1", "--metrics-listener", ""]),
        ..Default::default()
    });
    let mut producer = broker.client();
    producer.create_topic("fds", 1);

    let mut idle = Vec::new();
    let refusal = loop {
        assert!(
            idle.len() <= NOFILE as usize,
            "{} connections served under an open-file limit of {NOFILE}",
            idle.len()
        );
        match probe(broker.addr(), Duration::from_secs(3)) {
            Probe::Served(client) => idle.push(client),
            other => break other,
        }
    };
    assert!(idle.len() >= 32, "only {} idle connections served before a refusal ({refusal:?})", idle.len());
    eprintln!("{} idle connections served under an open-file limit of {NOFILE}, then {refusal:?}", idle.len());

    // Storage still has descriptors: 3 MiB through a 1 MiB memtable budget, read back.
    let first = produce_batches(&mut producer, "fds", "full", 24, 128 << 10, 0);
    assert_records_eq(&read_all(&mut producer, "fds", 24), &first, 0, "records produced while connections were at the cap");
    // The idle connections were served all along.
    for (i, client) in idle.iter_mut().enumerate().step_by(17) {
        assert_answers(client, &broker, &format!("idle connection #{i} at the cap"));
    }

    drop(idle);
    let second = produce_batches(&mut producer, "fds", "after", 8, 128 << 10, 24);
    let all: Vec<Record> = first.into_iter().chain(second).collect();
    assert_records_eq(&read_all(&mut producer, "fds", 32), &all, 0, "records produced after the idle connections closed");
    // Their places are free again: new connections are served (the broker frees them asynchronously).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match probe(broker.addr(), Duration::from_secs(3)) {
            Probe::Served(_) => break,
            other => assert!(Instant::now() < deadline, "no new connection served after closing the idle ones: {other:?}"),
        }
    }
    broker.assert_serving("the open-file cap was reached and released");
    assert!(
        matches!(refusal, Probe::Closed),
        "the connection over the cap must be closed at once, got {refusal:?}"
    );
    assert!(broker.log().contains("connection limit reached"), "the refusal is logged");
}

/// True once the broker has closed `stream` (EOF or reset); false if it is still open.
fn closed_by_broker(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let closed = match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("unexpected {n} bytes from the broker"),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(_) => true,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn idle_and_stalled_connections_are_closed_active_ones_are_not() {
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: args(&["--connections-max-idle-ms", "500", "--metrics-listener", ""]),
        ..Default::default()
    });
    let started = Instant::now();
    let mut idle = Client::connect(broker.addr());
    let mut stalled = Client::connect(broker.addr());
    // A 1000-byte frame of which only the length and 10 bytes arrive.
    let mut partial = 1000i32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0, 3, 0, 12, 0, 0, 0, 1, 0, 0]);
    stalled.write_raw(&partial).unwrap();
    // A large frame (it holds room in the request pool) of which 100 KiB arrive.
    let mut stalled_large = Client::connect(broker.addr());
    let mut partial = (4i32 << 20).to_be_bytes().to_vec();
    partial.extend(vec![0u8; 100 << 10]);
    stalled_large.write_raw(&partial).unwrap();
    let mut active = broker.client();

    let mut closed_at: [Option<Duration>; 3] = [None; 3];
    let deadline = started + Duration::from_secs(15);
    // Until all three are closed and the active one has outlived the timeout three times over.
    while closed_at.iter().any(Option::is_none) || started.elapsed() < Duration::from_millis(1500) {
        assert!(Instant::now() < deadline, "idle connections still open after 15 s: {closed_at:?}");
        assert_answers(&mut active, &broker, &format!("active connection at {:?}", started.elapsed()));
        for (i, client) in [&mut idle, &mut stalled, &mut stalled_large].into_iter().enumerate() {
            if closed_at[i].is_none() && closed_by_broker(client.stream()) {
                closed_at[i] = Some(started.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (i, at) in closed_at.iter().enumerate() {
        let at = at.unwrap();
        assert!(at >= Duration::from_millis(450), "connection {i} closed after {at:?}, before the 500 ms idle timeout");
    }
    assert_answers(&mut active, &broker, "active connection after the idle ones were closed");
    assert!(broker.log().contains("closing idle connection"), "idle closes are logged");
    broker.assert_serving("idle connections closed");
}

#[test]
fn connections_over_the_total_or_per_ip_cap_are_closed_at_once() {
    for (flag, cap, reason) in [("--max-connections", 4, "max_connections"), ("--max-connections-per-ip", 3, "max_connections_per_ip")] {
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut broker = BrokerProcess::start_with(BrokerOptions {
            extra_args: args(&[flag, &cap.to_string(), "--metrics-listener", &metrics.to_string()]),
            ..Default::default()
        });
        // The harness's readiness probe is a connection too: wait until the broker has
        // seen it close, so that exactly `cap` connections of this test fit.
        let deadline = Instant::now() + Duration::from_secs(10);
        while sample(&scrape(metrics), "fluxo_connections") != 0.0 {
            assert!(Instant::now() < deadline, "{flag}: the readiness probe's connection never closed");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut open: Vec<Client> = (0..cap)
            .map(|i| match probe(broker.addr(), Duration::from_secs(5)) {
                Probe::Served(c) => c,
                other => panic!("{flag} {cap}: connection #{i} not served: {other:?}"),
            })
            .collect();
        for extra in 0..2 {
            let mut over = Client::connect(broker.addr());
            over.stream().set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            over.expect_closed(&format!("{flag} {cap}: connection #{} over the cap", cap + extra));
        }
        for (i, client) in open.iter_mut().enumerate() {
            assert_answers(client, &broker, &format!("{flag} {cap}: connection #{i} within the cap"));
        }
        // The refusal is counted as the socket closes: poll until both are.
        let series = format!("fluxo_connections_rejected_total{{reason=\"{reason}\"}}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = scrape(metrics);
            let rejected = sample(&text, &series);
            assert!(rejected <= 2.0, "{flag}: more refusals than connections over the cap: {text}");
            if rejected == 2.0 {
                break;
            }
            assert!(Instant::now() < deadline, "{flag}: refusals not counted: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // A closed connection frees its place (asynchronously: poll).
        open.pop();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut replacement = loop {
            match probe(broker.addr(), Duration::from_secs(5)) {
                Probe::Served(c) => break c,
                other => assert!(Instant::now() < deadline, "{flag} {cap}: no place freed by a close: {other:?}"),
            }
        };
        assert_answers(&mut replacement, &broker, &format!("{flag} {cap}: connection in a freed place"));
        assert!(broker.log().contains("connection limit reached"), "{flag}: the refusal is logged");
        drop(open);
        drop(replacement);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !matches!(probe(broker.addr(), Duration::from_secs(5)), Probe::Served(_)) {
            assert!(Instant::now() < deadline, "{flag} {cap}: not serving after every connection closed");
        }
        broker.assert_running();
    }
}

#[test]
fn stalled_large_frames_cannot_pin_unbounded_memory() {
    const STALLED: usize = 16;
    const FRAME: usize = 4 << 20;
    let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: args(&["--queued-max-request-bytes", &(8 << 20).to_string(), "--metrics-listener", &metrics.to_string()]),
        ..Default::default()
    });
    let pid = broker.pid().unwrap();
    let mut client = broker.client();
    client.create_topic("pool", 1);
    let before = produce_batches(&mut client, "pool", "before", 2, 1000, 0);
    let baseline = vm_rss_kib(pid);

    // Each stalled connection sends a 4 MiB frame's length and all but its last byte.
    let mut streams = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..STALLED {
        let stream = TcpStream::connect(broker.addr()).unwrap();
        let mut writer = stream.try_clone().unwrap();
        writers.push(std::thread::spawn(move || {
            let mut bytes = (FRAME as i32).to_be_bytes().to_vec();
            bytes.resize(4 + FRAME - 1, 0x5a);
            let _ = writer.write_all(&bytes); // fails once the test shuts the socket down
        }));
        streams.push(stream);
    }
    // Until the pool is full and the other connections wait for it (or a deadline).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut peak = baseline;
    loop {
        peak = peak.max(vm_rss_kib(pid));
        let text = scrape(metrics);
        let full = sample(&text, "fluxo_request_pool_bytes") >= (8 << 20) as f64
            && sample(&text, "fluxo_request_pool_waits_total") >= (STALLED - 2) as f64;
        if full || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Watch the memory a while longer: it must stay bounded, not creep up.
    let watch_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        peak = peak.max(vm_rss_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let growth_mib = (peak.saturating_sub(baseline)) / 1024;
    eprintln!("broker RSS {baseline} KiB -> peak {peak} KiB with {STALLED} stalled frames");
    // 8 MiB of pool plus per-connection read buffers and slack; without the
    // pool the broker buffers all 16 × 4 MiB.
    assert!(
        growth_mib < 28,
        "resident memory grew by {growth_mib} MiB ({baseline} KiB -> {peak} KiB) with {STALLED} stalled 4 MiB frames and an 8 MiB pool"
    );
    let text = scrape(metrics);
    assert_eq!(sample(&text, "fluxo_request_pool_bytes"), (8 << 20) as f64, "pool fully reserved: {text}");
    assert!(sample(&text, "fluxo_request_pool_waits_total") >= (STALLED - 2) as f64, "connections waited for the pool: {text}");

    // A client on another connection is still served, small requests included.
    let mut other = broker.client();
    let during = produce_batches(&mut other, "pool", "during", 3, 1000, 2);
    let expected: Vec<Record> = before.iter().cloned().chain(during.iter().cloned()).collect();
    assert_records_eq(&read_all(&mut other, "pool", 5), &expected, 0, "records produced while the pool was full");

    // Closing the stalled connections returns their room: a large produce gets through.
    for s in &streams {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    for w in writers {
        w.join().unwrap();
    }
    let big = produce_batches(&mut other, "pool", "after", 1, 900 << 10, 5);
    let expected: Vec<Record> = expected.into_iter().chain(big).collect();
    assert_records_eq(&read_all(&mut other, "pool", 6), &expected, 0, "a 900 KiB produce after the stalled frames went away");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sample(&scrape(metrics), "fluxo_request_pool_bytes") != 0.0 {
        assert!(Instant::now() < deadline, "request pool not released after the connections closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    broker.assert_serving("stalled large frames");
}
