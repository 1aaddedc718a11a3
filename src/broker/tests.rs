//! Domain tests on a real RocksDB directory: the append ticket is what makes a
//! write visible, and a long poll wakes for the partition that changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::storage::batch::tests::sample_batch;

fn broker(fsync: bool) -> (tempfile::TempDir, Arc<Broker>) {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { data_dir: dir.path().to_path_buf(), fsync, spare_column_families: 4, ..Config::default() };
    let broker = Broker::open(config).unwrap();
    (dir, broker)
}

fn partition(broker: &Broker, topic: &str, partitions: i32) -> Vec<Partition> {
    let topic = broker.create_topic(topic, partitions, BTreeMap::new()).unwrap();
    broker.partitions(&topic)
}

#[tokio::test]
async fn with_fsync_the_ticket_not_the_append_makes_records_visible() {
    let (_dir, broker) = broker(true);
    let p = partition(&broker, "t", 1).remove(0);
    let ticket = p.append(sample_batch(3, -1, -1).freeze()).unwrap();
    let offsets = p.offsets();
    assert_eq!((offsets.log_end, offsets.high_watermark), (3, 0), "appended, not yet durable");
    assert!(p.read(0, 1 << 20, true).unwrap().records.is_empty(), "nothing above the high watermark is served");
    let done = ticket.durable().await.unwrap();
    assert_eq!(done.base_offset, 0);
    assert_eq!(p.offsets().high_watermark, 3);
    let read = p.read(0, 1 << 20, true).unwrap();
    let mut expected = sample_batch(3, -1, -1);
    crate::storage::batch::assign(&mut expected, 0, 0);
    assert_eq!(read.records, Bytes::from(expected), "the stored batch is the one sent, offsets assigned");
}

#[tokio::test]
async fn a_dropped_ticket_still_advances_the_high_watermark() {
    let (_dir, broker) = broker(true);
    let p = partition(&broker, "t", 1).remove(0);
    drop(p.append(sample_batch(2, -1, -1).freeze()).unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while p.offsets().high_watermark != 2 {
        assert!(tokio::time::Instant::now() < deadline, "high watermark stuck at {}", p.offsets().high_watermark);
        let mut rx = p.subscribe();
        let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
    }
}

#[tokio::test]
async fn without_fsync_the_write_is_visible_at_once() {
    let (_dir, broker) = broker(false);
    let p = partition(&broker, "t", 1).remove(0);
    let _ticket = p.append(sample_batch(4, -1, -1).freeze()).unwrap();
    assert_eq!(p.offsets().high_watermark, 4);
}

#[tokio::test]
async fn a_long_poll_answers_with_the_partition_that_changed() {
    let (_dir, broker) = broker(false);
    let parts = partition(&broker, "t", 2);
    let target = |p: &Partition| FetchTarget { partition: Ok(p.clone()), offset: 0, max_bytes: 1 << 20, leader_epoch: -1 };
    let spec = FetchRequestSpec {
        targets: vec![target(&parts[0]), target(&parts[1])],
        min_bytes: 1,
        max_bytes: 1 << 20,
        max_wait: Duration::from_secs(10),
    };
    let poller = broker.clone();
    let fetch = tokio::spawn(async move { poller.fetch(spec).await });
    tokio::task::yield_now().await;
    parts[1].append(sample_batch(2, -1, -1).freeze()).unwrap().durable().await.unwrap();
    let fetched = tokio::time::timeout(Duration::from_secs(5), fetch).await.expect("woken by the append").unwrap();
    assert!(fetched[0].result.as_ref().unwrap().records.is_empty());
    let read = fetched[1].result.as_ref().unwrap();
    assert_eq!((read.batches, fetched[1].high_watermark), (1, 2));
}

#[tokio::test]
async fn policy_limits_are_domain_errors() {
    let (_dir, broker) = broker(false);
    let configs = [("max.message.bytes".to_string(), "10".to_string())].into_iter().collect();
    let topic = broker.create_topic("small", 1, configs).unwrap();
    let p = broker.partition(&topic, 0).unwrap();
    assert!(matches!(p.append(sample_batch(2, -1, -1).freeze()), Err(BrokerError::RecordTooLarge { limit: 10, .. })));
    assert!(matches!(broker.partition(&topic, 1), Err(BrokerError::UnknownTopicOrPartition)));
    assert!(matches!(broker.topic(TopicRef::Id(uuid::Uuid::new_v4())), Err(BrokerError::UnknownTopicId)));
    assert!(matches!(p.check_leader_epoch(1), Err(BrokerError::UnknownLeaderEpoch { .. })));
}

#[test]
fn node_id_is_stored_at_first_start_and_a_different_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = |node_id| Config { data_dir: dir.path().to_path_buf(), node_id, spare_column_families: 0, ..Config::default() };
    drop(Broker::open(config(7)).unwrap());
    drop(Broker::open(config(7)).expect("same node id: starts"));
    match Broker::open(config(8)) {
        Err(e @ StorageError::NodeIdMismatch { stored: 7, configured: 8 }) => {
            let msg = e.to_string();
            assert!(msg.contains("node id 7") && msg.contains("node_id is 8"), "{msg}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("a data dir of node 7 started as node 8"),
    }
    assert_eq!(Broker::open(config(7)).unwrap().node_id(), 7, "the refused start changed nothing");
}
