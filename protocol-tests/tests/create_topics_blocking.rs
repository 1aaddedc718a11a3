//! A big CreateTopics does not stall other clients (issue 11, item 9): creating 500 partitions
//! without spare column families takes many seconds, during which another connection's
//! requests must still be answered. The broker runs one runtime worker thread
//! (`TOKIO_WORKER_THREADS=1`), so column-family work done on the request path would stall
//! every connection and the test cannot pass by luck of scheduling. The topic is then
//! complete: 500 partitions that take and return data.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiVersionsRequest, CreateTopicsRequest};
use protocol_tests::*;

const PARTITIONS: i32 = 500;

#[test]
fn other_connections_are_served_while_a_big_create_topics_runs() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: vec!["--spare-column-families".into(), "0".into()],
        env: vec![("TOKIO_WORKER_THREADS".into(), "1".into())],
        ..Default::default()
    });
    let mut other = broker.client();
    other.stream().set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    other.call(3, &ApiVersionsRequest::default());
    let mut admin = broker.client();
    admin.stream().set_read_timeout(Some(Duration::from_secs(600))).unwrap();

    let req = CreateTopicsRequest::default().with_timeout_ms(600_000).with_topics(vec![CreatableTopic::default()
        .with_name(topic_name("wide"))
        .with_num_partitions(PARTITIONS)
        .with_replication_factor(1)]);
    let correlation_id = admin.send(7, &req);
    // Answers the other connection received to requests sent after the CreateTopics.
    let answered = Arc::new(AtomicUsize::new(0));
    let created = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (answered, created) = (answered.clone(), created.clone());
        std::thread::spawn(move || {
            let resp = admin.receive::<CreateTopicsRequest>(7, correlation_id);
            let answered_before = answered.load(Ordering::SeqCst);
            created.store(true, Ordering::SeqCst);
            (resp, answered_before)
        })
    };
    let mut round = 0;
    while !created.load(Ordering::SeqCst) {
        if round % 2 == 0 {
            other.call(3, &ApiVersionsRequest::default());
        } else {
            other.metadata(None);
        }
        answered.fetch_add(1, Ordering::SeqCst);
        round += 1;
        // Pacing only (the assertion is on ordering): leave the CPU to the create.
        std::thread::sleep(Duration::from_millis(20));
    }
    let (resp, answered_before) = waiter.join().unwrap();
    assert_eq!(resp.topics[0].error_code, code::NONE, "CreateTopics: {:?}", resp.topics[0].error_message);
    assert!(
        answered_before >= 3,
        "only {answered_before} requests of another connection were answered before the CreateTopics \
         response: the create blocked the broker"
    );

    assert_eq!(other.topic_metadata("wide").partitions.len(), PARTITIONS as usize);
    for p in [0, 250, PARTITIONS - 1] {
        let records = sample_records(&format!("p{p}"), 3);
        assert_eq!(other.produce_ok("wide", p, encode_batch(&records)), 0);
        let data = other.fetch("wide", p, 0);
        assert_records_eq(&decode_records(&data.records), &records, 0, &format!("partition {p}"));
    }
}
