//! Transactions (KIP-98, v1): FindCoordinator for transactional ids, InitProducerId with
//! a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit at
//! every advertised version, transactional produce, markers, the last stable offset and
//! read_committed fetches, fencing, timeouts and restarts.

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
use kafka_protocol::messages::*;
use kafka_protocol::records::Record;
use protocol_tests::*;

const TIMEOUT_MS: i32 = 60_000;

fn init_txn(client: &mut Client, version: i16, id: &str, timeout_ms: i32, expected: Option<(i64, i16)>) -> InitProducerIdResponse {
    let (pid, epoch) = expected.unwrap_or((-1, -1));
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(sb(id))))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch);
    client.call(version, &req)
}

fn init_ok(client: &mut Client, id: &str) -> (i64, i16) {
    let resp = init_txn(client, 5, id, TIMEOUT_MS, None);
    assert_eq!(resp.error_code, code::NONE, "InitProducerId({id})");
    (resp.producer_id.0, resp.producer_epoch)
}

fn add_partitions(client: &mut Client, version: i16, id: &str, pid: i64, epoch: i16, topics: &[(&str, &[i32])]) -> Vec<(String, i32, i16)> {
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(sb(id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(
            topics
                .iter()
                .map(|(t, ps)| AddPartitionsToTxnTopic::default().with_name(topic_name(t)).with_partitions(ps.to_vec()))
                .collect(),
        );
    let resp = client.call(version, &req);
    let mut out: Vec<_> = resp
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| t.results_by_partition.iter().map(move |p| (t.name.0.to_string(), p.partition_index, p.partition_error_code)))
        .collect();
    out.sort();
    out
}

fn add_partitions_ok(client: &mut Client, id: &str, pid: i64, epoch: i16, topic: &str, partitions: &[i32]) {
    for (t, p, code) in add_partitions(client, 3, id, pid, epoch, &[(topic, partitions)]) {
        assert_eq!(code, code::NONE, "AddPartitionsToTxn {t}-{p}");
    }
}

fn end_txn(client: &mut Client, version: i16, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(sb(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    client.call(version, &req).error_code
}

fn add_offsets(client: &mut Client, version: i16, id: &str, pid: i64, epoch: i16, group: &str) -> i16 {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(sb(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(sb(group)));
    client.call(version, &req).error_code
}

#[allow(clippy::too_many_arguments)]
fn txn_offset_commit(
    client: &mut Client,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    group: &str,
    member: (&str, i32),
    topic: &str,
    offsets: &[(i32, i64)],
) -> Vec<(i32, i16)> {
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(sb(id)))
        .with_group_id(GroupId(sb(group)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_member_id(sb(member.0))
        .with_generation_id(member.1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default().with_name(topic_name(topic)).with_partitions(
            offsets
                .iter()
                .map(|(p, o)| {
                    TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(*p)
                        .with_committed_offset(*o)
                        .with_committed_metadata(Some(sb("txn-meta")))
                })
                .collect(),
        )]);
    let resp = client.call(version, &req);
    resp.topics.iter().flat_map(|t| t.partitions.iter().map(|p| (p.partition_index, p.error_code))).collect()
}

fn committed_offset(client: &mut Client, group: &str, topic: &str, partition: i32) -> i64 {
    let mut req = OffsetFetchRequest::default().with_group_id(GroupId(sb(group)));
    req.topics = Some(vec![OffsetFetchRequestTopic::default().with_name(topic_name(topic)).with_partition_indexes(vec![partition])]);
    let resp = client.call(7, &req);
    assert_eq!(resp.error_code, code::NONE, "OffsetFetch {group}");
    resp.topics[0].partitions[0].committed_offset
}

/// OffsetFetch of partition 0 with `require_stable` (v7 single group, v8+ groups form):
/// (partition error, committed offset).
fn stable_offset(client: &mut Client, version: i16, group: &str, topic: &str) -> (i16, i64) {
    if version < 8 {
        let mut req = OffsetFetchRequest::default().with_group_id(GroupId(sb(group))).with_require_stable(true);
        req.topics = Some(vec![OffsetFetchRequestTopic::default().with_name(topic_name(topic)).with_partition_indexes(vec![0])]);
        let resp = client.call(version, &req);
        let p = &resp.topics[0].partitions[0];
        return (p.error_code, p.committed_offset);
    }
    let req = OffsetFetchRequest::default().with_require_stable(true).with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(sb(group)))
        .with_topics(Some(vec![offset_fetch_request::OffsetFetchRequestTopics::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![0])]))]);
    let resp = client.call(version, &req);
    let p = &resp.groups[0].topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

/// Records marked transactional, encoded as one batch of `pid` at `epoch` from `sequence`.
fn txn_batch(tag: &str, n: usize, pid: i64, epoch: i16, sequence: i32) -> (Vec<Record>, Bytes) {
    let records: Vec<Record> = sample_records(tag, n).into_iter().map(|r| Record { transactional: true, ..r }).collect();
    let batch = encode_idempotent_batch(&records, pid, epoch, sequence);
    assert_eq!(batch[22] & 0x10, 0x10, "the test batch has the transactional bit");
    (records, batch)
}

/// A fetch of one partition at `isolation` (0 read_uncommitted, 1 read_committed), Fetch v`version`.
fn fetch_at(client: &mut Client, version: i16, topic: &str, topic_id: uuid::Uuid, offset: i64, isolation: i8) -> fetch_response::PartitionData {
    let req = fetch_request(version, topic, topic_id, 0, offset, 0, 0).with_isolation_level(isolation);
    let resp = client.call(version, &req);
    single_fetch_partition(&resp, &format!("fetch v{version} isolation {isolation}"))
}

fn list_latest(client: &mut Client, topic: &str, isolation: i8) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(isolation)
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-1)])]);
    let resp = client.call(10, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, code::NONE, "ListOffsets latest isolation {isolation}");
    p.offset
}

/// (base offset, is control, is commit marker) of every batch fetched.
fn batches(records: &Option<Bytes>) -> Vec<(i64, bool, Option<bool>)> {
    raw_batches(records.as_ref().unwrap_or(&Bytes::new()))
        .iter()
        .map(|b| {
            let control = b[22] & 0x20 != 0;
            // Control record key: version (2 bytes), type (2 bytes) after 5 one-byte varints.
            let commit = control.then(|| i16::from_be_bytes([b[61 + 7], b[61 + 8]]) == 1);
            (batch_base_offset(b), control, commit)
        })
        .collect()
}

#[test]
fn find_coordinator_answers_this_broker_for_transactional_ids() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::FindCoordinator) {
        if version == 0 {
            continue; // v0 has no key type: groups only
        }
        let req = if version < 4 {
            FindCoordinatorRequest::default().with_key(sb("txn-a")).with_key_type(1)
        } else {
            FindCoordinatorRequest::default().with_coordinator_keys(vec![sb("txn-a"), sb("txn-b")]).with_key_type(1)
        };
        let resp = client.call(version, &req);
        if version < 4 {
            assert_eq!((resp.error_code, resp.node_id.0, resp.port), (code::NONE, 1, broker.port() as i32), "v{version}");
        } else {
            assert_eq!(resp.coordinators.len(), 2, "v{version}");
            for c in &resp.coordinators {
                assert_eq!((c.error_code, c.node_id.0, c.port), (code::NONE, 1, broker.port() as i32), "v{version} {:?}", c.key);
            }
        }
        let bad = if version < 4 {
            client.call(version, &FindCoordinatorRequest::default().with_key(sb("x")).with_key_type(7)).error_code
        } else {
            let resp = client.call(version, &FindCoordinatorRequest::default().with_coordinator_keys(vec![sb("x")]).with_key_type(7));
            resp.coordinators[0].error_code
        };
        assert_eq!(bad, code::INVALID_REQUEST, "v{version}: unknown key type");
    }
}

#[test]
fn init_producer_id_keeps_the_producer_id_and_bumps_the_epoch_at_every_version() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::InitProducerId) {
        let id = format!("init-v{version}");
        let first = init_txn(&mut client, version, &id, TIMEOUT_MS, None);
        assert_eq!((first.error_code, first.producer_epoch), (code::NONE, 0), "v{version}: first init");
        let second = init_txn(&mut client, version, &id, TIMEOUT_MS, None);
        assert_eq!(
            (second.error_code, second.producer_id, second.producer_epoch),
            (code::NONE, first.producer_id, 1),
            "v{version}: a second init keeps the producer id and bumps the epoch"
        );
        let too_long = init_txn(&mut client, version, &id, 900_001, None);
        assert_eq!(too_long.error_code, code::INVALID_TRANSACTION_TIMEOUT, "v{version}: timeout above the maximum");
        assert_eq!(init_txn(&mut client, version, &id, 0, None).error_code, code::INVALID_TRANSACTION_TIMEOUT, "v{version}: zero timeout");
        assert_eq!(init_txn(&mut client, version, "", TIMEOUT_MS, None).error_code, code::INVALID_REQUEST, "v{version}: empty id");
        if version >= 3 {
            // KIP-360: the client names the producer id and epoch it has.
            let pid = first.producer_id.0;
            let bumped = init_txn(&mut client, version, &id, TIMEOUT_MS, Some((pid, 1)));
            assert_eq!((bumped.error_code, bumped.producer_id.0, bumped.producer_epoch), (code::NONE, pid, 2), "v{version}: KIP-360 bump");
            let stale = init_txn(&mut client, version, &id, TIMEOUT_MS, Some((pid, 0)));
            let fenced = if version >= 4 { code::PRODUCER_FENCED } else { code::INVALID_PRODUCER_EPOCH };
            assert_eq!(stale.error_code, fenced, "v{version}: stale epoch");
            let wrong = init_txn(&mut client, version, &id, TIMEOUT_MS, Some((pid + 1000, 2)));
            assert_eq!(wrong.error_code, code::INVALID_PRODUCER_ID_MAPPING, "v{version}: producer id of another id");
        }
    }
}

#[test]
fn commit_and_abort_with_markers_lso_and_read_committed_fetches() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let topic_id = client.create_topic("txn-data", 1);
    let (pid, epoch) = init_ok(&mut client, "tx-1");
    // Plain records before the transactions.
    let plain = sample_records("plain", 2);
    assert_eq!(client.produce_ok("txn-data", 0, encode_batch(&plain)), 0);

    let mut sequence = 0;
    let mut expected_committed: Vec<(i64, Vec<Record>)> = Vec::new();
    let mut aborted: Vec<(i64, i64)> = Vec::new();
    let mut next = 2i64;
    // One transaction per AddPartitionsToTxn and EndTxn version; odd ones abort.
    for (round, (add_version, end_version)) in [(0, 0), (1, 1), (2, 2), (3, 3), (3, 4)].into_iter().enumerate() {
        let commit = round % 2 == 0;
        let added = add_partitions(&mut client, add_version, "tx-1", pid, epoch, &[("txn-data", &[0])]);
        assert_eq!(added, vec![("txn-data".to_string(), 0, code::NONE)], "AddPartitionsToTxn v{add_version}");
        let (records, batch) = txn_batch(&format!("r{round}"), 3, pid, epoch, sequence);
        sequence += 3;
        let first = client.produce_ok("txn-data", 0, batch);
        assert_eq!(first, next, "round {round}: offset of the transactional batch");
        // Open: read_committed stops at the transaction's first offset, read_uncommitted does not.
        assert_eq!(list_latest(&mut client, "txn-data", 1), first, "round {round}: LSO while open");
        assert_eq!(list_latest(&mut client, "txn-data", 0), first + 3, "round {round}: HW while open");
        let committed = fetch_at(&mut client, 12, "txn-data", topic_id, first, 1);
        assert_eq!((committed.last_stable_offset, batch_summary(&committed.records)), (first, vec![]), "round {round}: read_committed while open");
        let uncommitted = fetch_at(&mut client, 12, "txn-data", topic_id, first, 0);
        assert_eq!(batch_summary(&uncommitted.records), vec![(first, 3)], "round {round}: read_uncommitted while open");
        assert_eq!(end_txn(&mut client, end_version, "tx-1", pid, epoch, commit), code::NONE, "EndTxn v{end_version}");
        assert_eq!(end_txn(&mut client, end_version, "tx-1", pid, epoch, commit), code::NONE, "EndTxn v{end_version}: a retry succeeds");
        assert_eq!(end_txn(&mut client, end_version, "tx-1", pid, epoch, !commit), code::INVALID_TXN_STATE, "EndTxn v{end_version}: the other outcome");
        // The marker takes the next offset; the LSO moves past it.
        assert_eq!(list_latest(&mut client, "txn-data", 1), first + 4, "round {round}: LSO after the marker");
        let after = fetch_at(&mut client, 12, "txn-data", topic_id, first, 0);
        assert_eq!(batches(&after.records), vec![(first, false, None), (first + 3, true, Some(commit))], "round {round}: data then marker");
        if commit {
            expected_committed.push((first, records));
        } else {
            aborted.push((pid, first));
        }
        next = first + 4;
    }
    // A read_committed fetch of everything: all batches up to the LSO and the aborted list.
    for version in [4i16, 12, 17] {
        let all = fetch_at(&mut client, version, "txn-data", topic_id, 0, 1);
        assert_eq!(all.last_stable_offset, next, "v{version}: LSO");
        let listed: Vec<(i64, i64)> = all.aborted_transactions.unwrap_or_default().iter().map(|a| (a.producer_id.0, a.first_offset)).collect();
        assert_eq!(listed, aborted, "v{version}: aborted transactions");
        let decoded = decode_records(&all.records);
        let data: Vec<Record> = decoded.into_iter().filter(|r| !r.control).collect();
        assert_eq!(data.len(), 2 + 5 * 3, "v{version}: every data record (aborted ones are dropped by the client)");
        // read_uncommitted: no aborted list.
        let plain_fetch = fetch_at(&mut client, version, "txn-data", topic_id, 0, 0);
        assert!(plain_fetch.aborted_transactions.is_none(), "v{version}: read_uncommitted has no aborted list");
    }
    // The committed transactions' records, as produced.
    for (first, records) in &expected_committed {
        let f = fetch_at(&mut client, 12, "txn-data", topic_id, *first, 1);
        let got: Vec<Record> = decode_records(&f.records).into_iter().take(3).collect();
        assert_records_eq(&got, records, *first, "committed records");
    }
    // Aborted ranges are reported from the fetch offset on only.
    let late = fetch_at(&mut client, 12, "txn-data", topic_id, aborted[1].1 + 3, 1);
    let listed: Vec<i64> = late.aborted_transactions.unwrap_or_default().iter().map(|a| a.first_offset).collect();
    assert_eq!(listed, vec![aborted[1].1], "a fetch from the last abort's marker");
    broker.assert_no_panic("transactions");
}

#[test]
fn transactional_produce_needs_the_partition_in_an_open_transaction() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("txn-p", 2);
    let (pid, epoch) = init_ok(&mut client, "tx-p");
    let (_, batch) = txn_batch("a", 2, pid, epoch, 0);
    assert_eq!(client.produce("txn-p", 0, batch.clone()).error_code, code::INVALID_TXN_STATE, "no transaction open");
    add_partitions_ok(&mut client, "tx-p", pid, epoch, "txn-p", &[0]);
    assert_eq!(client.produce("txn-p", 1, batch.clone()).error_code, code::INVALID_TXN_STATE, "partition 1 was not added");
    let (_, stale) = txn_batch("a", 2, pid, epoch - 1, 0);
    assert_eq!(client.produce("txn-p", 0, stale).error_code, code::INVALID_PRODUCER_EPOCH, "an older epoch");
    let (_, unknown) = txn_batch("a", 2, pid + 5000, 0, 0);
    assert_eq!(client.produce("txn-p", 0, unknown).error_code, code::INVALID_TXN_STATE, "a producer id without transactional id");
    assert_eq!(client.produce_ok("txn-p", 0, batch), 0, "partition 0 was added");
    // Nothing was written to partition 1: its log is empty and stable.
    assert_eq!(client.log_end_offset("txn-p", 1), 0);
    // A client may not write control batches (transaction markers).
    let mut control = txn_batch("c", 1, pid, epoch, 2).1.to_vec();
    control[22] |= 0x20;
    let crc = crc32c::crc32c(&control[21..]);
    control[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(client.produce("txn-p", 0, Bytes::from(control)).error_code, code::INVALID_RECORD, "control batch from a client");
    assert_eq!(end_txn(&mut client, 4, "tx-p", pid, epoch, true), code::NONE);
    // After the commit the partition is no longer in a transaction.
    let (_, later) = txn_batch("b", 1, pid, epoch, 2);
    assert_eq!(client.produce("txn-p", 0, later).error_code, code::INVALID_TXN_STATE, "after the commit");
}

#[test]
fn coordinator_error_paths_at_every_version() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("txn-e", 1);
    let (pid, epoch) = init_ok(&mut client, "tx-e");
    for version in versions(ApiKey::AddPartitionsToTxn) {
        let fenced = if version >= 2 { code::PRODUCER_FENCED } else { code::INVALID_PRODUCER_EPOCH };
        let got = add_partitions(&mut client, version, "tx-e", pid, epoch + 1, &[("txn-e", &[0])]);
        assert_eq!(got, vec![("txn-e".to_string(), 0, fenced)], "AddPartitionsToTxn v{version}: wrong epoch");
        let got = add_partitions(&mut client, version, "tx-e", pid + 1, epoch, &[("txn-e", &[0])]);
        assert_eq!(got, vec![("txn-e".to_string(), 0, code::INVALID_PRODUCER_ID_MAPPING)], "v{version}: wrong producer id");
        let got = add_partitions(&mut client, version, "no-such-txn", pid, epoch, &[("txn-e", &[0])]);
        assert_eq!(got, vec![("txn-e".to_string(), 0, code::INVALID_PRODUCER_ID_MAPPING)], "v{version}: unknown transactional id");
        let got = add_partitions(&mut client, version, "tx-e", pid, epoch, &[("txn-e", &[0, 7]), ("missing", &[0])]);
        assert_eq!(
            got,
            vec![
                ("missing".to_string(), 0, code::UNKNOWN_TOPIC_OR_PARTITION),
                ("txn-e".to_string(), 0, code::OPERATION_NOT_ATTEMPTED),
                ("txn-e".to_string(), 7, code::UNKNOWN_TOPIC_OR_PARTITION),
            ],
            "v{version}: unknown partitions stop the whole request"
        );
    }
    for version in versions(ApiKey::EndTxn) {
        let fenced = if version >= 2 { code::PRODUCER_FENCED } else { code::INVALID_PRODUCER_EPOCH };
        assert_eq!(end_txn(&mut client, version, "tx-e", pid, epoch, true), code::INVALID_TXN_STATE, "EndTxn v{version}: nothing open");
        assert_eq!(end_txn(&mut client, version, "tx-e", pid, epoch + 1, true), fenced, "EndTxn v{version}: wrong epoch");
        assert_eq!(end_txn(&mut client, version, "nope", pid, epoch, true), code::INVALID_PRODUCER_ID_MAPPING, "EndTxn v{version}: unknown id");
    }
    for version in versions(ApiKey::AddOffsetsToTxn) {
        let fenced = if version >= 2 { code::PRODUCER_FENCED } else { code::INVALID_PRODUCER_EPOCH };
        assert_eq!(add_offsets(&mut client, version, "tx-e", pid, epoch + 1, "g"), fenced, "AddOffsetsToTxn v{version}: wrong epoch");
        assert_eq!(add_offsets(&mut client, version, "nope", pid, epoch, "g"), code::INVALID_PRODUCER_ID_MAPPING, "v{version}: unknown id");
    }
    for version in versions(ApiKey::TxnOffsetCommit) {
        let got = txn_offset_commit(&mut client, version, "tx-e", pid, epoch, "g-e", ("", -1), "txn-e", &[(0, 1)]);
        assert_eq!(got, vec![(0, code::INVALID_TXN_STATE)], "TxnOffsetCommit v{version}: no transaction open");
        let fenced = if version >= 3 { code::PRODUCER_FENCED } else { code::INVALID_PRODUCER_EPOCH };
        let got = txn_offset_commit(&mut client, version, "tx-e", pid, epoch + 1, "g-e", ("", -1), "txn-e", &[(0, 1)]);
        assert_eq!(got, vec![(0, fenced)], "TxnOffsetCommit v{version}: wrong epoch");
    }
    broker.assert_no_panic("error paths");
}

#[test]
fn transactional_offsets_are_visible_only_after_commit() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("txn-o", 1);
    let (pid, epoch) = init_ok(&mut client, "tx-o");
    let add_versions = versions(ApiKey::AddOffsetsToTxn).collect::<Vec<_>>();
    for version in versions(ApiKey::TxnOffsetCommit) {
        let group = format!("g-o-{version}");
        let add_version = add_versions[(version as usize).min(add_versions.len() - 1)];
        assert_eq!(add_offsets(&mut client, add_version, "tx-o", pid, epoch, &group), code::NONE, "AddOffsetsToTxn v{add_version}");
        // KIP-447 (v3+): a generation of a group that does not exist is refused.
        if version >= 3 {
            let got = txn_offset_commit(&mut client, version, "tx-o", pid, epoch, &group, ("m-1", 3), "txn-o", &[(0, 5)]);
            assert_eq!(got, vec![(0, code::ILLEGAL_GENERATION)], "v{version}: unknown generation");
        }
        let got = txn_offset_commit(&mut client, version, "tx-o", pid, epoch, &group, ("", -1), "txn-o", &[(0, 10 + version as i64), (9, 1)]);
        assert_eq!(got, vec![(0, code::NONE), (9, code::UNKNOWN_TOPIC_OR_PARTITION)], "TxnOffsetCommit v{version}");
        assert_eq!(committed_offset(&mut client, &group, "txn-o", 0), -1, "v{version}: not visible before the commit");
        // KIP-447: a consumer asking for stable offsets is told to retry.
        assert_eq!(stable_offset(&mut client, 7, &group, "txn-o"), (code::UNSTABLE_OFFSET_COMMIT, -1), "v{version}: OffsetFetch v7 require_stable");
        assert_eq!(stable_offset(&mut client, 9, &group, "txn-o"), (code::UNSTABLE_OFFSET_COMMIT, -1), "v{version}: OffsetFetch v9 require_stable");
        let commit = version % 2 == 0;
        assert_eq!(end_txn(&mut client, 4, "tx-o", pid, epoch, commit), code::NONE);
        let want = if commit { 10 + version as i64 } else { -1 };
        assert_eq!(committed_offset(&mut client, &group, "txn-o", 0), want, "v{version}: after {}", if commit { "commit" } else { "abort" });
        assert_eq!(stable_offset(&mut client, 7, &group, "txn-o"), (code::NONE, want), "v{version}: stable once ended");
        assert_eq!(stable_offset(&mut client, 9, &group, "txn-o"), (code::NONE, want), "v{version}: stable once ended (v9)");
    }
}

#[test]
fn a_second_producer_fences_the_first_and_aborts_its_transaction() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let topic_id = client.create_topic("txn-f", 1);
    let (pid, epoch) = init_ok(&mut client, "tx-f");
    add_partitions_ok(&mut client, "tx-f", pid, epoch, "txn-f", &[0]);
    let (_, batch) = txn_batch("zombie", 2, pid, epoch, 0);
    assert_eq!(client.produce_ok("txn-f", 0, batch), 0);
    let (pid2, epoch2) = init_ok(&mut client, "tx-f");
    assert_eq!(pid2, pid, "same producer id");
    assert_eq!(epoch2, epoch + 2, "one bump fences and aborts, one is the new producer's");
    // The open transaction was aborted: marker at 2, LSO past it, aborted list.
    assert_eq!(list_latest(&mut client, "txn-f", 1), 3);
    let f = fetch_at(&mut client, 12, "txn-f", topic_id, 0, 1);
    assert_eq!(batches(&f.records), vec![(0, false, None), (2, true, Some(false))]);
    let listed: Vec<(i64, i64)> = f.aborted_transactions.unwrap_or_default().iter().map(|a| (a.producer_id.0, a.first_offset)).collect();
    assert_eq!(listed, vec![(pid, 0)]);
    // The zombie is fenced everywhere.
    assert_eq!(end_txn(&mut client, 4, "tx-f", pid, epoch, true), code::PRODUCER_FENCED);
    let (_, late) = txn_batch("zombie", 1, pid, epoch, 2);
    assert_eq!(client.produce("txn-f", 0, late).error_code, code::INVALID_PRODUCER_EPOCH);
    assert_eq!(add_partitions(&mut client, 3, "tx-f", pid, epoch, &[("txn-f", &[0])])[0].2, code::PRODUCER_FENCED);
}

#[test]
fn a_timed_out_transaction_is_aborted_and_its_producer_fenced() {
    let broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: vec!["--transaction-abort-timed-out-transaction-cleanup-interval-ms".into(), "100".into()],
        ..Default::default()
    });
    let mut client = broker.client();
    let topic_id = client.create_topic("txn-t", 1);
    let resp = init_txn(&mut client, 5, "tx-t", 500, None);
    assert_eq!(resp.error_code, code::NONE);
    let (pid, epoch) = (resp.producer_id.0, resp.producer_epoch);
    add_partitions_ok(&mut client, "tx-t", pid, epoch, "txn-t", &[0]);
    let (_, batch) = txn_batch("slow", 2, pid, epoch, 0);
    assert_eq!(client.produce_ok("txn-t", 0, batch), 0);
    assert_eq!(list_latest(&mut client, "txn-t", 1), 0, "LSO held by the open transaction");
    let deadline = Instant::now() + Duration::from_secs(20);
    while list_latest(&mut client, "txn-t", 1) != 3 {
        assert!(Instant::now() < deadline, "the timed-out transaction was not aborted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = fetch_at(&mut client, 12, "txn-t", topic_id, 0, 1);
    assert_eq!(batches(&f.records), vec![(0, false, None), (2, true, Some(false))]);
    assert_eq!(end_txn(&mut client, 4, "tx-t", pid, epoch, true), code::PRODUCER_FENCED, "the timed-out producer is fenced");
    let (pid2, epoch2) = init_ok(&mut client, "tx-t");
    assert_eq!((pid2, epoch2), (pid, epoch + 2), "the next producer gets the epoch after the fence");
}

#[test]
fn open_transactions_and_coordinator_state_survive_a_restart() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    let topic_id = client.create_topic("txn-r", 1);
    let (pid, epoch) = init_ok(&mut client, "tx-r");
    add_partitions_ok(&mut client, "tx-r", pid, epoch, "txn-r", &[0]);
    let (_, batch) = txn_batch("r", 3, pid, epoch, 0);
    assert_eq!(client.produce_ok("txn-r", 0, batch), 0);
    assert_eq!(add_offsets(&mut client, 4, "tx-r", pid, epoch, "g-r"), code::NONE);
    assert_eq!(txn_offset_commit(&mut client, 4, "tx-r", pid, epoch, "g-r", ("", -1), "txn-r", &[(0, 3)]), vec![(0, code::NONE)]);
    drop(client);
    broker.restart();
    let mut client = broker.client();
    assert_eq!(list_latest(&mut client, "txn-r", 1), 0, "the LSO is still held after the restart");
    assert_eq!(committed_offset(&mut client, "g-r", "txn-r", 0), -1);
    assert_eq!(end_txn(&mut client, 4, "tx-r", pid, epoch, true), code::NONE, "the transaction is still open and commits");
    assert_eq!(list_latest(&mut client, "txn-r", 1), 4);
    assert_eq!(committed_offset(&mut client, "g-r", "txn-r", 0), 3, "the pending offset became visible");
    let f = fetch_at(&mut client, 12, "txn-r", topic_id, 0, 1);
    assert_eq!(batches(&f.records), vec![(0, false, None), (3, true, Some(true))]);
    assert!(f.aborted_transactions.unwrap_or_default().is_empty());
    drop(client);
    broker.restart();
    let mut client = broker.client();
    assert_eq!(init_ok(&mut client, "tx-r"), (pid, epoch + 1), "the producer id survives, the epoch moves on");
}

#[test]
fn a_transaction_open_when_the_broker_is_killed_is_aborted_after_the_restart() {
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        extra_args: vec!["--transaction-abort-timed-out-transaction-cleanup-interval-ms".into(), "100".into()],
        ..Default::default()
    });
    let mut client = broker.client();
    let topic_id = client.create_topic("txn-k", 1);
    // A committed transaction, then one left open (1 s timeout) when the broker dies.
    let (pid_c, epoch_c) = init_ok(&mut client, "tx-k-done");
    add_partitions_ok(&mut client, "tx-k-done", pid_c, epoch_c, "txn-k", &[0]);
    let (committed, batch) = txn_batch("done", 3, pid_c, epoch_c, 0);
    assert_eq!(client.produce_ok("txn-k", 0, batch), 0);
    assert_eq!(end_txn(&mut client, 4, "tx-k-done", pid_c, epoch_c, true), code::NONE); // marker at 3
    let resp = init_txn(&mut client, 5, "tx-k-open", 1_000, None);
    assert_eq!(resp.error_code, code::NONE);
    let (pid, epoch) = (resp.producer_id.0, resp.producer_epoch);
    add_partitions_ok(&mut client, "tx-k-open", pid, epoch, "txn-k", &[0]);
    for (i, seq) in [0, 2].into_iter().enumerate() {
        let (_, batch) = txn_batch(&format!("open{i}"), 2, pid, epoch, seq);
        assert_eq!(client.produce_ok("txn-k", 0, batch), 4 + 2 * i as i64);
    }
    drop(client);
    broker.kill();
    broker.start_again();
    let mut client = broker.client();
    // The open transaction holds the LSO until it times out; then it is aborted.
    let deadline = Instant::now() + Duration::from_secs(20);
    while list_latest(&mut client, "txn-k", 1) != 9 {
        assert!(Instant::now() < deadline, "the transaction open at the crash was never aborted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let f = fetch_at(&mut client, 12, "txn-k", topic_id, 0, 1);
    assert_eq!(
        batches(&f.records),
        vec![(0, false, None), (3, true, Some(true)), (4, false, None), (6, false, None), (8, true, Some(false))]
    );
    let listed: Vec<(i64, i64)> = f.aborted_transactions.unwrap_or_default().iter().map(|a| (a.producer_id.0, a.first_offset)).collect();
    assert_eq!(listed, vec![(pid, 4)], "the crashed transaction is listed as aborted");
    let got: Vec<Record> = decode_records(&f.records).into_iter().take(3).collect();
    assert_records_eq(&got, &committed, 0, "the committed transaction survived the crash");
    assert_eq!(end_txn(&mut client, 4, "tx-k-open", pid, epoch, true), code::PRODUCER_FENCED);
    assert_eq!(init_ok(&mut client, "tx-k-done"), (pid_c, epoch_c + 1));
}
