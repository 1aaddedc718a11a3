//! Several listeners: each tells its clients its own advertised address
//! (Metadata, FindCoordinator, DescribeCluster), like Kafka's advertised.listeners.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{DescribeClusterRequest, FindCoordinatorRequest, MetadataRequest};
use protocol_tests::{fluxo_bin, sb, Client};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "broker did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn each_listener_advertises_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let (outer, inner) = (free_port(), free_port());
    let child = Command::new(fluxo_bin())
        .args(["--listener", &format!("127.0.0.1:{outer}")])
        .args(["--advertised-listener", &format!("127.0.0.1:{outer}")])
        .args(["--extra-listener", &format!("127.0.0.1:{inner}=broker.internal:{inner}")])
        .args(["--metrics-listener", ""])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fluxo");
    let _guard = Guard(child);
    for (port, host) in [(outer, "127.0.0.1"), (inner, "broker.internal")] {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(addr);
        let mut client = Client::connect(addr);
        let metadata = client.call(12, &MetadataRequest::default().with_topics(Some(vec![])));
        assert_eq!(metadata.brokers.len(), 1);
        assert_eq!((metadata.brokers[0].host.as_str(), metadata.brokers[0].port), (host, port as i32));
        let cluster = client.call(1, &DescribeClusterRequest::default());
        assert_eq!((cluster.brokers[0].host.as_str(), cluster.brokers[0].port), (host, port as i32));
        let coordinator = client.call(3, &FindCoordinatorRequest::default().with_key(sb("g")));
        assert_eq!((coordinator.host.as_str(), coordinator.port), (host, port as i32));
    }
}
