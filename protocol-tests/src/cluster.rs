//! Several broker processes forming one Fluxo cluster on loopback ports: node ids
//! 1..=n, each with its own data dir, Kafka listener and internal (Raft) listener,
//! every internal listener a seed. Brokers can be killed (`kill -9`), paused and
//! started again one by one; dropping the cluster kills every broker.

use std::time::{Duration, Instant};

use kafka_protocol::messages::MetadataResponse;

use crate::{free_port, BrokerOptions, BrokerProcess, Client};

/// A running cluster of broker processes.
pub struct Cluster {
    brokers: Vec<BrokerProcess>,
}

impl Cluster {
    /// Starts `n` brokers with default options (auto-create off, 1 partition).
    pub fn start(n: usize) -> Cluster {
        Cluster::start_with(n, BrokerOptions::default())
    }

    /// Starts `n` brokers, each with `options` plus its cluster flags, one after the
    /// other (a broker serves its Kafka listener before the cluster has formed).
    pub fn start_with(n: usize, options: BrokerOptions) -> Cluster {
        let internal: Vec<String> = (0..n).map(|_| format!("127.0.0.1:{}", free_port())).collect();
        let seeds = internal.join(",");
        let brokers = internal
            .iter()
            .enumerate()
            .map(|(i, addr)| {
                let mut options = options.clone();
                options.extra_args.extend([
                    "--node-id".to_string(),
                    (i + 1).to_string(),
                    "--internal-listener".to_string(),
                    addr.clone(),
                    "--cluster-seeds".to_string(),
                    seeds.clone(),
                ]);
                BrokerProcess::start_with(options)
            })
            .collect();
        Cluster { brokers }
    }

    /// The broker with node id `node` (1-based).
    pub fn broker(&mut self, node: i32) -> &mut BrokerProcess {
        &mut self.brokers[(node - 1) as usize]
    }

    /// Node ids of the brokers whose process is running.
    pub fn running(&self) -> Vec<i32> {
        (1..=self.brokers.len() as i32).filter(|&n| self.brokers[(n - 1) as usize].pid().is_some()).collect()
    }

    /// A client connected to broker `node`.
    pub fn client(&self, node: i32) -> Client {
        self.brokers[(node - 1) as usize].client()
    }

    /// Metadata for `topics` from the first running broker that answers.
    pub fn metadata(&self, topics: Option<&[&str]>) -> MetadataResponse {
        let node = *self.running().first().expect("no broker is running");
        self.client(node).metadata(topics)
    }

    /// Polls Metadata (from any running broker) until `done` holds, or panics with
    /// `what` after `timeout`; returns the answer that satisfied it.
    pub fn wait_for_metadata(
        &self,
        topics: Option<&[&str]>,
        timeout: Duration,
        what: &str,
        done: impl Fn(&MetadataResponse) -> bool,
    ) -> MetadataResponse {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        loop {
            for node in self.running() {
                if let Ok(mut client) = Client::try_connect(self.brokers[(node - 1) as usize].addr()) {
                    let answer = client.metadata(topics);
                    if done(&answer) {
                        return answer;
                    }
                    last = Some(answer);
                }
            }
            if Instant::now() > deadline {
                panic!("{what}: not within {timeout:?}; last metadata: {last:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every running broker is listed in Metadata.
    pub fn wait_for_brokers(&self, timeout: Duration) {
        let want = self.running();
        self.wait_for_metadata(None, timeout, "every broker registered", |m| {
            want.iter().all(|id| m.brokers.iter().any(|b| b.node_id.0 == *id))
        });
    }

    /// The current leader (node id) and leader epoch of `topic`/`partition` as
    /// Metadata reports it, once it names a running broker.
    pub fn leader_of(&self, topic: &str, partition: i32, timeout: Duration) -> (i32, i32) {
        let running = self.running();
        let answer = self.wait_for_metadata(Some(&[topic]), timeout, "a running leader", |m| {
            leader(m, topic, partition).is_some_and(|(l, _)| running.contains(&l))
        });
        leader(&answer, topic, partition).unwrap()
    }
}

fn leader(m: &MetadataResponse, topic: &str, partition: i32) -> Option<(i32, i32)> {
    let t = m.topics.iter().find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic))?;
    let p = t.partitions.iter().find(|p| p.partition_index == partition)?;
    (p.error_code == 0 && p.leader_id.0 >= 0).then_some((p.leader_id.0, p.leader_epoch))
}
