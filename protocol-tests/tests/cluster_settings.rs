//! Cluster settings on a real broker process: the node id is bound to the data directory,
//! and `--internal-listener` serves the internal transport (pings answered with the node
//! id, malformed frames close only their connection).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use protocol_tests::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects to `addr`, polling until the broker's internal listener accepts.
fn connect(addr: &str) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                return s;
            }
            Err(e) if Instant::now() > deadline => panic!("internal listener {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A ping request as the transport frames it: length, version 1, flags 0 (request),
/// kind 4 (ping), status 0, correlation id, group tag 0, body = sender node id (bincode u64).
fn ping_frame(correlation_id: u64, from: u64) -> Vec<u8> {
    let mut frame = vec![1u8, 0, 4, 0];
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.push(0);
    frame.extend_from_slice(&from.to_le_bytes());
    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
    out.extend(frame);
    out
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).unwrap();
    frame
}

#[test]
fn internal_listener_answers_pings_with_the_node_id_and_survives_garbage() {
    let internal = format!("127.0.0.1:{}", free_port());
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: vec!["--node-id".into(), "5".into(), "--internal-listener".into(), internal.clone()],
        ..BrokerOptions::default()
    });
    let mut s = connect(&internal);
    for correlation_id in [7u64, 8] {
        s.write_all(&ping_frame(correlation_id, 9)).unwrap();
        let answer = read_frame(&mut s);
        let mut expected = vec![1u8, 1, 4, 0];
        expected.extend_from_slice(&correlation_id.to_be_bytes());
        expected.push(0);
        expected.extend_from_slice(&5u64.to_le_bytes());
        assert_eq!(answer, expected, "pong {correlation_id}: response flag, same id, node id 5");
    }
    // Garbage closes that connection only.
    let mut bad = connect(&internal);
    bad.write_all(&[0, 0, 0, 16, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]).unwrap();
    let mut buf = [0u8; 16];
    assert!(matches!(bad.read(&mut buf), Ok(0) | Err(_)), "a garbage frame closes the connection");
    s.write_all(&ping_frame(10, 9)).unwrap();
    assert_eq!(read_frame(&mut s)[4..12], 10u64.to_be_bytes(), "the good connection still works");
    broker.assert_serving("garbage on the internal listener");
    let log = broker.log();
    assert!(log.contains("closing internal connection"), "the bad frame is logged:\n{log}");
    assert!(broker.stop().success());
    broker.assert_no_panic("internal listener");
}

#[test]
fn a_data_dir_refuses_to_start_as_another_node() {
    let dir = tempfile::tempdir().unwrap();
    let options = BrokerOptions {
        extra_args: vec!["--node-id".into(), "3".into()],
        data_dir: Some(dir.path().join("data")),
        ..BrokerOptions::default()
    };
    let mut broker = BrokerProcess::start_with(options.clone());
    assert!(broker.stop().success());
    let out = Command::new(fluxo_bin())
        .env_remove("FLUXO_CONFIG")
        .args(["--listener", &format!("127.0.0.1:{}", free_port()), "--metrics-listener", ""])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--node-id", "4"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code; stderr: {stderr}");
    assert!(
        stderr.contains("data_dir belongs to node id 3, but node_id is 4"),
        "one clear line: {stderr}"
    );
    // The stored id still starts.
    let mut again = BrokerProcess::start_with(options);
    again.assert_serving("restart with the stored node id");
    assert!(again.stop().success());
}
