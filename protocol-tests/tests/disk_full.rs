//! A full disk: the broker's data directory on a small tmpfs, produced into until
//! produce is refused with KAFKA_STORAGE_ERROR. The broker must stay up, serve every
//! acknowledged batch byte for byte, and accept produce again by itself once space
//! is freed, with nothing acknowledged lost. Once with the `min_free_disk_bytes`
//! guard refusing first, once with the guard off so that RocksDB itself runs out of
//! space. Needs root (mount); skipped with a message otherwise.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use protocol_tests::*;

/// A tmpfs mounted for one test, unmounted on drop (also when the test fails).
struct TmpfsMount {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TmpfsMount {
    /// Mounts a tmpfs of `mib` MiB; None (with a message) where mounting is not permitted.
    fn new(mib: u64) -> Option<TmpfsMount> {
        let dir = tempfile::Builder::new().prefix("fluxo-diskfull-").tempdir().unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(TmpfsMount { path, _dir: dir }),
            Ok(o) => {
                eprintln!("SKIPPED: cannot mount a tmpfs ({}); the disk-full test needs root", String::from_utf8_lossy(&o.stderr).trim());
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount ({e}); the disk-full test needs root");
                None
            }
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let ok = Command::new("umount").arg(&self.path).status().map(|s| s.success()).unwrap_or(false);
        if !ok {
            // Something still holds it: detach it so it goes once released.
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value of an unlabelled metric on the broker's /metrics endpoint.
fn metric(addr: SocketAddr, name: &str) -> Option<f64> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// A batch of `n` records of `size` incompressible bytes each (xorshift from `seed`).
fn batch(seed: u64, n: usize, size: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let records: Vec<_> = (0..n)
        .map(|i| {
            let value: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            record(Some(format!("k{seed}-{i}").as_bytes()), Some(&value), &[], now_ms())
        })
        .collect();
    encode_batch(&records)
}

/// Fetches partition 0 of `topic` from 0 to the high watermark and asserts every
/// acknowledged batch is there, at its offset, byte for byte.
fn assert_acknowledged_intact(client: &mut Client, topic: &str, acked: &[(i64, Bytes)], context: &str) {
    let mut fetched = std::collections::HashMap::new();
    let mut offset = 0;
    loop {
        let p = client.fetch(topic, 0, offset);
        assert_eq!(p.error_code, code::NONE, "{context}: fetch at {offset}");
        let records = p.records.clone().unwrap_or_default();
        let batches = raw_batches(&records);
        if batches.is_empty() {
            assert!(offset >= p.high_watermark, "{context}: nothing fetched at {offset} below the high watermark {}", p.high_watermark);
            break;
        }
        for b in batches {
            offset = batch_base_offset(&b) + batch_record_count(&b) as i64;
            fetched.insert(batch_base_offset(&b), b);
        }
    }
    for (i, (base, produced)) in acked.iter().enumerate() {
        let got = fetched.get(base).unwrap_or_else(|| panic!("{context}: acknowledged batch {i} at offset {base} is missing"));
        assert_batch_bytes_eq(got, produced, *base, &format!("{context}: acknowledged batch {i}"));
    }
}

fn fill_and_recover(min_free_disk_bytes: u64, expect_log: &str) {
    let Some(mount) = TmpfsMount::new(64) else { return };
    // Space to give back later, taken before the broker starts.
    let filler = mount.path.join("filler");
    std::fs::write(&filler, vec![0x5au8; 20 << 20]).unwrap();
    let metrics_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        data_dir: Some(mount.path.join("data")),
        extra_args: [
            "--min-free-disk-bytes",
            &min_free_disk_bytes.to_string(),
            "--write-buffer-mb",
            "4",
            "--block-cache-mb",
            "8",
            "--spare-column-families",
            "2",
            "--metrics-listener",
            &metrics_addr.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Default::default()
    });
    let mut client = broker.client();
    client.create_topic("full", 1);

    // Produce 256 KiB batches until the disk is full.
    let storage_error = ResponseError::KafkaStorageError.code();
    let mut acked: Vec<(i64, Bytes)> = Vec::new();
    let mut seed = 0;
    let refused = loop {
        assert!(seed < 1000, "64 MiB never filled up after {seed} batches");
        seed += 1;
        let records = batch(seed, 4, 64 << 10);
        let p = client.produce("full", 0, records.clone());
        match p.error_code {
            code::NONE => acked.push((p.base_offset, records)),
            e if e == storage_error => break seed,
            e => panic!("produce {seed}: unexpected error {e}\n{}", broker.log_tail()),
        }
    };
    assert!(acked.len() >= 10, "only {} batches fitted before produce was refused", acked.len());
    broker.assert_serving("the disk filled up");
    // The storage watchdog notices a failed write in the background: poll.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(broker.log().contains(expect_log) && metric(metrics_addr, "fluxo_storage_disk_full") == Some(1.0)) {
        assert!(
            Instant::now() < deadline,
            "no WARN line `{expect_log}` or fluxo_storage_disk_full not 1 (it is {:?}):\n{}",
            metric(metrics_addr, "fluxo_storage_disk_full"),
            broker.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Reads go on, and everything acknowledged is there.
    assert_acknowledged_intact(&mut client, "full", &acked, "disk full");
    // Still refused while nothing was freed (free space wavers as RocksDB flushes and
    // drops logs, so a batch may still fit now and then, but the disk stays full).
    let mut still_refused = false;
    for attempt in 0..50 {
        let records = batch(refused + 1 + attempt, 4, 64 << 10);
        let p = client.produce("full", 0, records.clone());
        match p.error_code {
            code::NONE => acked.push((p.base_offset, records)),
            e if e == storage_error => {
                still_refused = true;
                break;
            }
            e => panic!("produce while full: unexpected error {e}"),
        }
    }
    assert!(still_refused, "produce accepted 50 times in a row while the disk is full");

    // Free space: produce works again by itself.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0u64;
    let resumed = loop {
        attempt += 1;
        let records = batch(10_000 + attempt, 4, 64 << 10);
        let p = client.produce("full", 0, records.clone());
        if p.error_code == code::NONE {
            break (p.base_offset, records);
        }
        assert_eq!(p.error_code, storage_error, "produce after space was freed: error");
        assert!(Instant::now() < deadline, "produce still refused 30 s after space was freed\n{}", broker.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    };
    let last_acked_end = acked.last().map(|(base, _)| base + 4).unwrap_or(0);
    assert!(resumed.0 >= last_acked_end, "the new batch at {} does not overwrite acknowledged ones (end {last_acked_end})", resumed.0);
    acked.push(resumed);
    broker.assert_serving("space was freed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(broker.log().contains("disk space available again") && metric(metrics_addr, "fluxo_storage_disk_full") == Some(0.0)) {
        assert!(Instant::now() < deadline, "no INFO line says writes resumed, or fluxo_storage_disk_full not 0:\n{}", broker.log_tail());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_acknowledged_intact(&mut client, "full", &acked, "after recovery");

    // And it all survives a restart.
    broker.restart();
    let mut client = broker.client();
    assert_acknowledged_intact(&mut client, "full", &acked, "after restart");
    drop(client);
    drop(broker);
    assert!(Path::new(&mount.path).exists());
}

#[test]
fn produce_is_refused_below_min_free_disk_bytes_and_resumes_when_space_returns() {
    fill_and_recover(16 << 20, "disk full: free space below min_free_disk_bytes");
}

#[test]
fn rocksdb_out_of_space_stops_writes_not_reads_and_recovers() {
    fill_and_recover(0, "disk full: storage stopped accepting writes");
}
