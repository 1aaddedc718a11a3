//! Fuzzing of what a client controls: request frames (header, then the body decoded
//! as the API's request type at its version, exactly as the dispatcher does) and
//! record batches (framing, decompression and the record walk).
//!
//! `replay_corpus` runs every committed seed under `fuzz/corpus/` (request frames and
//! raw batches, plus any crasher found since); `bounded_mutation_session` mutates the
//! seeds with a fixed-seed generator for a fixed number of iterations (bit flips,
//! truncations, length and count fields set to extremes, garbage in compressed
//! payloads, batch CRCs recomputed so the mutation reaches the record walk). A panic
//! anywhere fails the test and prints the input that caused it. The broker's global
//! allocator is installed so that wire-sized `Vec::with_capacity` behaves as in the
//! broker. `generate_corpus` (ignored) rewrites the seeds.

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use fluxo::handlers::SUPPORTED_APIS;
use fluxo::protocol::Request;
use fluxo::storage::batch;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

#[global_allocator]
static ALLOCATOR: fluxo::alloc::BrokerAllocator = fluxo::alloc::BrokerAllocator;

fn corpus_dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(kind)
}

macro_rules! decode_body {
    ($request:expr, $($key:ident => $ty:ty),* $(,)?) => {
        match $request.api_key {
            ApiKey::Produce => {
                let produce: ProduceRequest = $request.decode().map_err(|e| e.to_string())?;
                Ok(Some(produce))
            }
            $(ApiKey::$key => $request.decode::<$ty>().map(|_| None).map_err(|e| e.to_string()),)*
            other => Err(format!("{other:?} is not routed")),
        }
    };
}

/// What the broker does with one frame before a handler runs: parse the header, check
/// the version is advertised, decode the body; for Produce, validate every batch.
fn process_frame(frame: Bytes) -> Result<(), String> {
    let mut request = Request::parse(frame).map_err(|e| e.to_string())?;
    let Some(fluxo::handlers::Versions { min, max }) = fluxo::handlers::supported_versions(request.api_key) else {
        return Err("unsupported api".into());
    };
    if !(min..=max).contains(&request.version) {
        return Err("unsupported version".into());
    }
    let produce: Result<Option<ProduceRequest>, String> = decode_body!(request,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        FindCoordinator => FindCoordinatorRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        InitProducerId => InitProducerIdRequest,
        DescribeConfigs => DescribeConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        DescribeCluster => DescribeClusterRequest,
        OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest,
        JoinGroup => JoinGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        SyncGroup => SyncGroupRequest,
        DescribeGroups => DescribeGroupsRequest,
        ListGroups => ListGroupsRequest,
        DeleteGroups => DeleteGroupsRequest,
        OffsetDelete => OffsetDeleteRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        DeleteRecords => DeleteRecordsRequest,
        AlterConfigs => AlterConfigsRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        SaslHandshake => SaslHandshakeRequest,
        SaslAuthenticate => SaslAuthenticateRequest,
        CreateAcls => CreateAclsRequest,
        DescribeAcls => DescribeAclsRequest,
        DeleteAcls => DeleteAclsRequest,
        DescribeUserScramCredentials => DescribeUserScramCredentialsRequest,
        AlterUserScramCredentials => AlterUserScramCredentialsRequest,
        AddPartitionsToTxn => AddPartitionsToTxnRequest,
        AddOffsetsToTxn => AddOffsetsToTxnRequest,
        EndTxn => EndTxnRequest,
        TxnOffsetCommit => TxnOffsetCommitRequest,
    );
    if let Some(produce) = produce? {
        for topic in produce.topic_data {
            for partition in topic.partition_data {
                if let Some(records) = partition.records {
                    let _ = process_batches(records);
                }
            }
        }
    }
    Ok(())
}

/// The batch validator, then the stored-batch walks (ListOffsets, compaction check).
fn process_batches(records: Bytes) -> Result<(), String> {
    for stored in [&records[..]] {
        let _ = batch::record_timestamps(stored);
        let _ = batch::keyless_records(stored);
        let _ = batch::count_records(stored);
    }
    let batches = batch::split_and_validate(records).map_err(|e| e.to_string())?;
    for (_, bytes) in &batches {
        assert!(batch::record_timestamps(bytes).is_some(), "a validated batch must be walkable");
        assert!(batch::keyless_records(bytes).is_some(), "a validated batch must be walkable");
    }
    Ok(())
}

/// Runs `f` on `input`; a panic fails the test with the input in hex.
fn no_panic(kind: &str, input: &[u8], f: fn(Bytes) -> Result<(), String>) -> bool {
    let owned = Bytes::copy_from_slice(input);
    match panic::catch_unwind(AssertUnwindSafe(|| f(owned))) {
        Ok(result) => result.is_ok(),
        Err(_) => {
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashers");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{kind}-{:016x}", fxhash(input)));
            let _ = std::fs::write(&path, input);
            panic!("{kind} input panicked (saved to {}): {}", path.display(), hex(input));
        }
    }
}

fn fxhash(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100000001b3))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn load(kind: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(corpus_dir(kind))
        .unwrap_or_else(|e| panic!("corpus {kind}: {e}"))
        .map(|entry| {
            let path = entry.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn replay_corpus() {
    let requests = load("request");
    let batches = load("batch");
    // Every advertised API and version has a seed, and the seeds are what they claim.
    for (api, versions) in SUPPORTED_APIS {
        for version in versions.min..=versions.max {
            let name = format!("{api:?}-v{version}");
            assert!(requests.iter().any(|(n, _)| n.starts_with(&format!("{name}.")) || n.starts_with(&format!("{name}-"))), "no seed for {name}");
        }
    }
    let mut decoded = 0;
    for (name, frame) in &requests {
        let ok = no_panic("request", frame, process_frame);
        if !name.starts_with("crash-") {
            assert!(ok, "seed {name} must decode");
            decoded += 1;
        }
    }
    let mut valid = 0;
    for (name, bytes) in &batches {
        let ok = no_panic("batch", bytes, process_batches);
        if name.starts_with("valid-") {
            assert!(ok, "seed {name} must validate: {:?}", batch::split_and_validate(Bytes::copy_from_slice(bytes)).err());
            valid += 1;
        } else if name.starts_with("poison-") {
            assert!(!ok, "seed {name} must be refused");
        }
    }
    assert!(decoded > 100 && valid >= 6, "{decoded} request seeds, {valid} valid batches");
}

/// xorshift64*: a fixed seed makes every run mutate the same way.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const EXTREMES_32: [u32; 7] = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff_fffe, 0x0000_ffff];

/// One random mutation of `input` in place.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
    if input.is_empty() {
        input.push(rng.next() as u8);
        return;
    }
    let at = rng.below(input.len());
    match rng.below(9) {
        0 => input[at] ^= 1 << rng.below(8),
        1 => input[at] = rng.next() as u8,
        2 => input.truncate(at),
        3 => {
            // A 4-byte length or count set to an extreme.
            let v = EXTREMES_32[rng.below(EXTREMES_32.len())].to_be_bytes();
            let end = (at + 4).min(input.len());
            input[at..end].copy_from_slice(&v[..end - at]);
        }
        4 => {
            // A 2-byte length (string, compact array) set to an extreme.
            let v = [0u16, 0x7fff, 0x8000, 0xffff][rng.below(4)].to_be_bytes();
            let end = (at + 2).min(input.len());
            input[at..end].copy_from_slice(&v[..end - at]);
        }
        5 => {
            // An unsigned varint (compact lengths, tagged fields) set to a huge value.
            let big = [0xffu8, 0xff, 0xff, 0xff, 0x0f];
            let end = (at + big.len()).min(input.len());
            input[at..end].copy_from_slice(&big[..end - at]);
        }
        6 => {
            let n = 1 + rng.below(16);
            let garbage: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            input.splice(at..at, garbage);
        }
        7 => {
            let n = rng.below(16).min(input.len() - at);
            input.drain(at..at + n);
        }
        _ => {
            // Duplicate a slice (repeated records, headers, array elements).
            let n = rng.below(32).min(input.len() - at);
            let copy = input[at..at + n].to_vec();
            input.splice(at..at, copy);
        }
    }
}

/// Batch-aware mutations: header fields and compressed payload bytes, then (usually)
/// the CRC and length recomputed so the batch reaches the record walk.
fn mutate_batch(rng: &mut Rng, input: &mut Vec<u8>) {
    if input.len() >= 61 && rng.below(2) == 0 {
        match rng.below(6) {
            // record count, last offset delta
            0 => input[57..61].copy_from_slice(&EXTREMES_32[rng.below(EXTREMES_32.len())].to_be_bytes()),
            1 => input[23..27].copy_from_slice(&EXTREMES_32[rng.below(EXTREMES_32.len())].to_be_bytes()),
            // attributes: codec 0-7, control and transactional bits, timestamp type
            2 => input[22] = rng.next() as u8,
            // garbage run in the (possibly compressed) payload
            3 if input.len() > 62 => {
                let at = 61 + rng.below(input.len() - 61);
                let n = (1 + rng.below(8)).min(input.len() - at);
                for b in &mut input[at..at + n] {
                    *b = rng.next() as u8;
                }
            }
            // base timestamp near the overflow edge
            4 => input[27..35].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff - rng.below(4) as u8]),
            _ => mutate(rng, input),
        }
    } else {
        mutate(rng, input);
    }
    if input.len() >= 61 && rng.below(8) != 0 {
        let len = (input.len() - 12) as i32;
        if rng.below(4) != 0 {
            input[8..12].copy_from_slice(&len.to_be_bytes());
        }
        let crc = crc32c::crc32c(&input[21..]);
        input[17..21].copy_from_slice(&crc.to_be_bytes());
    }
}

#[test]
fn bounded_mutation_session() {
    let requests: Vec<Vec<u8>> = load("request").into_iter().map(|(_, b)| b).collect();
    let batches: Vec<Vec<u8>> = load("batch").into_iter().map(|(_, b)| b).collect();
    let iterations: usize = std::env::var("FLUXO_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(400_000);
    let budget = Duration::from_secs(20);
    let mut rng = Rng(0x5eed_f1c0_0000_0011);
    let started = Instant::now();
    let (mut done, mut accepted) = (0usize, 0usize);
    for i in 0..iterations {
        if started.elapsed() > budget {
            break;
        }
        let rounds = 1 + rng.below(4);
        if i % 2 == 0 {
            let mut input = requests[rng.below(requests.len())].clone();
            for _ in 0..rounds {
                mutate(&mut rng, &mut input);
            }
            accepted += no_panic("request", &input, process_frame) as usize;
        } else {
            let mut input = batches[rng.below(batches.len())].clone();
            for _ in 0..rounds {
                mutate_batch(&mut rng, &mut input);
            }
            accepted += no_panic("batch", &input, process_batches) as usize;
        }
        done += 1;
    }
    eprintln!("fuzz: {done} inputs in {:?}, {accepted} accepted", started.elapsed());
    assert!(done >= 5_000, "only {done} inputs ran within the time budget");
}

// ---- corpus generation (run once by hand: cargo test --release --test fuzz -- --ignored) ----

fn frame<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, api.request_header_version(version)).ok()?;
    body.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push(u as u8 | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn seed_records(n: i32) -> Vec<u8> {
    let mut raw = Vec::new();
    for i in 0..n {
        let mut body = vec![0u8];
        varint(&mut body, i as i64 * 3);
        varint(&mut body, i as i64);
        if i % 3 == 2 {
            varint(&mut body, -1);
        } else {
            varint(&mut body, 2);
            body.extend_from_slice(format!("k{}", i % 10).as_bytes());
        }
        let value = format!("value-{i}-{}", "ab".repeat(i as usize * 5));
        varint(&mut body, value.len() as i64);
        body.extend_from_slice(value.as_bytes());
        varint(&mut body, (i % 2) as i64);
        if i % 2 == 1 {
            varint(&mut body, 1);
            body.push(b'h');
            varint(&mut body, -1);
        }
        varint(&mut raw, body.len() as i64);
        raw.extend(body);
    }
    raw
}

fn compress(codec: u8, raw: &[u8]) -> (i16, Vec<u8>) {
    match codec {
        1 => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(raw).unwrap();
            (1, e.finish().unwrap())
        }
        2 => (2, snap::raw::Encoder::new().compress_vec(raw).unwrap()),
        3 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(raw).unwrap();
            (3, e.finish().unwrap())
        }
        4 => (4, fluxo::storage::records::zstd_compress(raw, 3)),
        5 => {
            let mut out = b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01".to_vec();
            for chunk in raw.chunks(64) {
                let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            (2, out)
        }
        _ => (0, raw.to_vec()),
    }
}

fn seed_batch(codec: u8, count: i32, attributes_extra: i16) -> Vec<u8> {
    let (attributes, payload) = compress(codec, &seed_records(count));
    let mut b = Vec::new();
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + payload.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&0u32.to_be_bytes());
    b.extend_from_slice(&(attributes | attributes_extra).to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&1_700_000_000_000i64.to_be_bytes());
    b.extend_from_slice(&(1_700_000_000_000i64 + 3 * (count as i64 - 1)).to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&payload);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn seed_request(api: ApiKey, version: i16, codec: u8) -> Option<Vec<u8>> {
    use kafka_protocol::messages as m;
    let topic = TopicName(name("fuzz-topic"));
    let id = uuid::Uuid::from_u128(0x1234);
    macro_rules! try_frames {
        ($populated:expr, $ty:ty) => {
            frame(api, version, &$populated).or_else(|| frame(api, version, &<$ty>::default()))
        };
    }
    match api {
        ApiKey::Produce => {
            let td = m::produce_request::TopicProduceData::default().with_partition_data(vec![
                m::produce_request::PartitionProduceData::default().with_index(0).with_records(Some(Bytes::from(seed_batch(codec, 4, 0)))),
            ]);
            let td = if version >= 13 { td.with_topic_id(id) } else { td.with_name(topic) };
            try_frames!(ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![td]), ProduceRequest)
        }
        ApiKey::Fetch => {
            let ft = m::fetch_request::FetchTopic::default().with_partitions(vec![m::fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(3)
                .with_partition_max_bytes(1 << 20)]);
            let ft = if version >= 13 { ft.with_topic_id(id) } else { ft.with_topic(topic) };
            try_frames!(FetchRequest::default().with_max_bytes(1 << 20).with_topics(vec![ft]), FetchRequest)
        }
        ApiKey::ListOffsets => try_frames!(
            ListOffsetsRequest::default().with_topics(vec![m::list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic)
                .with_partitions(vec![m::list_offsets_request::ListOffsetsPartition::default().with_timestamp(-3)])]),
            ListOffsetsRequest
        ),
        ApiKey::Metadata => try_frames!(
            MetadataRequest::default()
                .with_topics(Some(vec![m::metadata_request::MetadataRequestTopic::default().with_name(Some(topic))])),
            MetadataRequest
        ),
        ApiKey::CreateTopics => try_frames!(
            CreateTopicsRequest::default().with_topics(vec![m::create_topics_request::CreatableTopic::default()
                .with_name(topic)
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_configs(vec![m::create_topics_request::CreatableTopicConfig::default()
                    .with_name(name("cleanup.policy"))
                    .with_value(Some(name("compact")))])]),
            CreateTopicsRequest
        ),
        ApiKey::JoinGroup => try_frames!(
            JoinGroupRequest::default()
                .with_group_id(GroupId(name("g")))
                .with_session_timeout_ms(10_000)
                .with_protocol_type(name("consumer"))
                .with_protocols(vec![m::join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(name("range"))
                    .with_metadata(Bytes::from_static(b"\0\x01\0\0\0\x01\0\x01t"))]),
            JoinGroupRequest
        ),
        ApiKey::OffsetCommit => try_frames!(
            OffsetCommitRequest::default().with_group_id(GroupId(name("g"))).with_topics(vec![
                m::offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(topic)
                    .with_partitions(vec![m::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_committed_offset(5)
                        .with_committed_metadata(Some(name("meta")))])
            ]),
            OffsetCommitRequest
        ),
        ApiKey::IncrementalAlterConfigs => try_frames!(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                m::incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(name("fuzz-topic"))
                    .with_configs(vec![m::incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(name("retention.ms"))
                        .with_value(Some(name("1000")))])
            ]),
            IncrementalAlterConfigsRequest
        ),
        ApiKey::FindCoordinator => frame(api, version, &FindCoordinatorRequest::default()),
        ApiKey::ApiVersions => frame(api, version, &ApiVersionsRequest::default()),
        ApiKey::DeleteTopics => frame(api, version, &DeleteTopicsRequest::default()),
        ApiKey::InitProducerId => frame(api, version, &InitProducerIdRequest::default()),
        ApiKey::DescribeConfigs => frame(api, version, &DescribeConfigsRequest::default()),
        ApiKey::CreatePartitions => frame(api, version, &CreatePartitionsRequest::default()),
        ApiKey::DescribeCluster => frame(api, version, &DescribeClusterRequest::default()),
        ApiKey::OffsetFetch => frame(api, version, &OffsetFetchRequest::default()),
        ApiKey::Heartbeat => frame(api, version, &HeartbeatRequest::default()),
        ApiKey::LeaveGroup => frame(api, version, &LeaveGroupRequest::default()),
        ApiKey::SyncGroup => frame(api, version, &SyncGroupRequest::default()),
        ApiKey::DescribeGroups => frame(api, version, &DescribeGroupsRequest::default()),
        ApiKey::ListGroups => frame(api, version, &ListGroupsRequest::default()),
        ApiKey::DeleteGroups => frame(api, version, &DeleteGroupsRequest::default()),
        ApiKey::OffsetDelete => frame(api, version, &OffsetDeleteRequest::default()),
        ApiKey::ConsumerGroupHeartbeat => frame(api, version, &ConsumerGroupHeartbeatRequest::default()),
        ApiKey::ConsumerGroupDescribe => frame(api, version, &ConsumerGroupDescribeRequest::default()),
        ApiKey::DeleteRecords => frame(api, version, &DeleteRecordsRequest::default()),
        ApiKey::AlterConfigs => frame(api, version, &AlterConfigsRequest::default()),
        ApiKey::OffsetForLeaderEpoch => try_frames!(
            OffsetForLeaderEpochRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                m::offset_for_leader_epoch_request::OffsetForLeaderTopic::default().with_topic(topic).with_partitions(vec![
                    m::offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_current_leader_epoch(0)
                        .with_leader_epoch(0),
                ]),
            ]),
            OffsetForLeaderEpochRequest
        ),
        ApiKey::SaslHandshake => frame(
            api,
            version,
            &SaslHandshakeRequest::default().with_mechanism(kafka_protocol::protocol::StrBytes::from_static_str("SCRAM-SHA-512")),
        ),
        ApiKey::SaslAuthenticate => frame(
            api,
            version,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL")),
        ),
        ApiKey::CreateAcls => frame(
            api,
            version,
            &CreateAclsRequest::default().with_creations(vec![m::create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_resource_pattern_type(3)
                .with_principal(StrBytes::from_static_str("User:alice"))
                .with_host(StrBytes::from_static_str("*"))
                .with_operation(3)
                .with_permission_type(3)]),
        ),
        ApiKey::DescribeAcls => frame(api, version, &DescribeAclsRequest::default().with_resource_type_filter(1).with_pattern_type_filter(1).with_operation(1).with_permission_type(1)),
        ApiKey::DeleteAcls => frame(
            api,
            version,
            &DeleteAclsRequest::default().with_filters(vec![m::delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1)]),
        ),
        ApiKey::DescribeUserScramCredentials => frame(
            api,
            version,
            &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                m::describe_user_scram_credentials_request::UserName::default().with_name(StrBytes::from_static_str("alice")),
            ])),
        ),
        ApiKey::AlterUserScramCredentials => frame(
            api,
            version,
            &AlterUserScramCredentialsRequest::default()
                .with_deletions(vec![m::alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                    .with_name(StrBytes::from_static_str("bob"))
                    .with_mechanism(1)])
                .with_upsertions(vec![m::alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                    .with_name(StrBytes::from_static_str("alice"))
                    .with_mechanism(2)
                    .with_iterations(4096)
                    .with_salt(Bytes::from_static(b"0123456789abcdef"))
                    .with_salted_password(Bytes::from_static(&[7u8; 64]))]),
        ),
        ApiKey::AddPartitionsToTxn => frame(
            api,
            version,
            &AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(m::TransactionalId(StrBytes::from_static_str("tx")))
                .with_v3_and_below_producer_id(m::ProducerId(7))
                .with_v3_and_below_producer_epoch(1)
                .with_v3_and_below_topics(vec![m::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(m::TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![0, 1])]),
        ),
        ApiKey::AddOffsetsToTxn => frame(
            api,
            version,
            &AddOffsetsToTxnRequest::default()
                .with_transactional_id(m::TransactionalId(StrBytes::from_static_str("tx")))
                .with_producer_id(m::ProducerId(7))
                .with_producer_epoch(1)
                .with_group_id(m::GroupId(StrBytes::from_static_str("g"))),
        ),
        ApiKey::EndTxn => frame(
            api,
            version,
            &EndTxnRequest::default()
                .with_transactional_id(m::TransactionalId(StrBytes::from_static_str("tx")))
                .with_producer_id(m::ProducerId(7))
                .with_producer_epoch(1)
                .with_committed(true),
        ),
        ApiKey::TxnOffsetCommit => frame(
            api,
            version,
            &TxnOffsetCommitRequest::default()
                .with_transactional_id(m::TransactionalId(StrBytes::from_static_str("tx")))
                .with_group_id(m::GroupId(StrBytes::from_static_str("g")))
                .with_producer_id(m::ProducerId(7))
                .with_producer_epoch(1)
                .with_generation_id(if version >= 3 { 2 } else { -1 })
                .with_member_id(StrBytes::from_static_str(""))
                .with_topics(vec![m::txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                    .with_name(m::TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![m::txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(42)
                        .with_committed_metadata(Some(StrBytes::from_static_str("m")))])]),
        ),
        _ => None,
    }
}

#[test]
#[ignore = "rewrites the committed corpus; run by hand"]
fn generate_corpus() {
    let (req_dir, batch_dir) = (corpus_dir("request"), corpus_dir("batch"));
    std::fs::create_dir_all(&req_dir).unwrap();
    std::fs::create_dir_all(&batch_dir).unwrap();
    for (api, versions) in SUPPORTED_APIS {
        for version in versions.min..=versions.max {
            let bytes = seed_request(*api, version, (version % 6) as u8).unwrap_or_else(|| panic!("{api:?} v{version} does not encode"));
            std::fs::write(req_dir.join(format!("{api:?}-v{version}.bin")), bytes).unwrap();
        }
    }
    for (codec, label) in [(0u8, "none"), (1, "gzip"), (2, "snappy"), (3, "lz4"), (4, "zstd"), (5, "snappy-xerial")] {
        std::fs::write(batch_dir.join(format!("valid-{label}.bin")), seed_batch(codec, 6, 0)).unwrap();
    }
    std::fs::write(batch_dir.join("poison-control.bin"), seed_batch(0, 2, 0x20)).unwrap();
    std::fs::write(batch_dir.join("poison-transactional.bin"), seed_batch(3, 2, 0x10)).unwrap();
    let mut header_only = seed_batch(0, 1, 0);
    header_only.truncate(61);
    header_only[8..12].copy_from_slice(&49i32.to_be_bytes());
    header_only[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
    header_only[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c::crc32c(&header_only[21..]);
    header_only[17..21].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(batch_dir.join("poison-count-2e31.bin"), header_only).unwrap();
}
