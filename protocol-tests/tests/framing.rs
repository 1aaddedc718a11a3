//! Framing and connection handling: oversized frames, garbage, truncation, pipelining, concurrency, headers.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use protocol_tests::*;

/// Writes `bytes` on a fresh connection and asserts the broker closes it, then that it still serves.
fn expect_rejected(broker: &mut BrokerProcess, what: &str, bytes: &[u8]) {
    let mut client = broker.client();
    // The broker may reset the connection before everything is written; that is fine.
    let _ = client.write_raw(bytes);
    client.expect_closed(what);
    broker.assert_serving(what);
}

fn metadata_v1_request(correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(1)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(sb(CLIENT_ID)))
        .encode(&mut buf, 1)
        .unwrap();
    MetadataRequest::default()
        .with_topics(Some(vec![]))
        .encode(&mut buf, 1)
        .unwrap();
    buf
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.put_i32(payload.len() as i32);
    v.extend_from_slice(payload);
    v
}

#[test]
fn oversized_frames_close_the_connection() {
    let mut broker = BrokerProcess::start_with(BrokerOptions {
        max_frame_bytes: Some(1 << 20),
        ..Default::default()
    });
    // A length prefix over the limit, with only a few bytes following.
    let mut claim = Vec::new();
    claim.put_i32(2 << 20);
    claim.extend_from_slice(&metadata_v1_request(1));
    expect_rejected(
        &mut broker,
        "a 2 MiB length prefix with max-frame-bytes 1 MiB",
        &claim,
    );
    // Really sending 2 MiB.
    let mut big = metadata_v1_request(2).to_vec();
    big.resize(2 << 20, 0);
    expect_rejected(
        &mut broker,
        "a 2 MiB frame with max-frame-bytes 1 MiB",
        &framed(&big),
    );
    // Frames under the limit are fine: a produce of ~600 KiB.
    let mut client = broker.client();
    client.create_topic("big", 1);
    let value = vec![b'v'; 600 << 10];
    let records = vec![record(Some(b"k"), Some(&value), &[], now_ms())];
    assert_eq!(
        client.produce_ok("big", 0, encode_batch(&records)),
        0,
        "600 KiB produce under a 1 MiB frame limit"
    );
    assert_records_eq(
        &decode_records(&client.fetch("big", 0, 0).records),
        &records,
        0,
        "600 KiB record",
    );
}

#[test]
fn default_limit_rejects_huge_and_negative_lengths() {
    let mut broker = BrokerProcess::start();
    let mut huge = Vec::new();
    huge.put_i32(200 << 20);
    huge.extend_from_slice(&[0; 64]);
    expect_rejected(
        &mut broker,
        "a 200 MiB length prefix (default limit 100 MiB)",
        &huge,
    );
    expect_rejected(
        &mut broker,
        "HTTP request instead of Kafka",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    );
    expect_rejected(
        &mut broker,
        "negative length -1",
        &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
    );
    expect_rejected(&mut broker, "length i32::MIN", &[0x80, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn garbage_and_truncated_requests_close_the_connection() {
    let mut broker = BrokerProcess::start();
    expect_rejected(&mut broker, "an empty frame", &framed(&[]));
    expect_rejected(
        &mut broker,
        "a 3-byte frame (partial header)",
        &framed(&[0, 3, 0]),
    );
    expect_rejected(
        &mut broker,
        "random bytes",
        &framed(&[
            0x7f, 0x13, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x05,
        ]),
    );
    expect_rejected(
        &mut broker,
        "unknown api key 999",
        &framed(&raw_request(999, 0, 1, false, &[])),
    );
    expect_rejected(
        &mut broker,
        "negative api key",
        &framed(&raw_request(-5, 0, 1, false, &[])),
    );
    let full = metadata_v1_request(7);
    expect_rejected(
        &mut broker,
        "header only, body missing",
        &framed(&full[..full.len() - 4]),
    );
    // Client id length larger than the frame.
    let mut bad_client_id = raw_request(ApiKey::Metadata as i16, 1, 9, false, &[0, 0, 0, 0]);
    bad_client_id[8..10].copy_from_slice(&500i16.to_be_bytes());
    expect_rejected(
        &mut broker,
        "client id longer than the frame",
        &framed(&bad_client_id),
    );
    // A Produce whose topic array claims a million entries.
    let mut body = Vec::new();
    body.put_i16(-1); // transactional id: null
    body.put_i16(-1);
    body.put_i32(1000);
    body.put_i32(1_000_000);
    expect_rejected(
        &mut broker,
        "Produce v3 with a huge topic count",
        &framed(&raw_request(0, 3, 11, false, &body)),
    );
}

/// Array counts of about 2^31 must not make the broker allocate for them (or abort trying):
/// each case gets its own broker so every failing one is reported.
fn huge_count(what: &str, frame: Vec<u8>) {
    let mut broker = BrokerProcess::start();
    expect_rejected(&mut broker, what, &framed(&frame));
}

#[test]
fn huge_array_count_in_produce() {
    let mut body = Vec::new();
    body.put_i16(-1); // transactional id: null
    body.put_i16(-1); // acks
    body.put_i32(1000); // timeout
    body.put_i32(i32::MAX); // topic count
    huge_count(
        "Produce v3 with topic count i32::MAX",
        raw_request(0, 3, 12, false, &body),
    );
}

#[test]
fn huge_array_count_in_metadata() {
    huge_count(
        "Metadata v1 with topic count i32::MAX",
        raw_request(3, 1, 13, false, &i32::MAX.to_be_bytes()),
    );
}

#[test]
fn huge_compact_array_count_in_metadata() {
    // Unsigned varint 2^31 - 2 as the compact array length (count + 1), then nothing.
    let body = [0xfe, 0xff, 0xff, 0xff, 0x07, 0];
    huge_count(
        "Metadata v12 with a compact topic count near 2^31",
        raw_request(3, 12, 14, true, &body),
    );
}

#[test]
fn huge_record_count_in_a_batch() {
    // A valid batch whose record count claims i32::MAX records (CRC fixed up so only the count is wrong).
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("count", 1);
    let mut batch = encode_batch(&sample_records("c", 2)).to_vec();
    batch[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
    let crc = crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let p = client.produce("count", 0, batch.into());
    assert_ne!(
        p.error_code,
        code::NONE,
        "a batch claiming i32::MAX records must be rejected"
    );
    assert_eq!(
        client.log_end_offset("count", 0),
        0,
        "log end offset after the bad batch"
    );
    broker.assert_serving("a batch with record count i32::MAX");
}

/// CRC-32C (Castagnoli), as used by record batches.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn abandoned_connections_do_not_hurt() {
    let mut broker = BrokerProcess::start();
    for cut in [2, 4, 10] {
        let mut client = broker.client();
        let frame = framed(&metadata_v1_request(1));
        client.write_raw(&frame[..cut]).unwrap();
        client.stream().shutdown(std::net::Shutdown::Both).unwrap();
        drop(client);
        broker.assert_serving(&format!("a client disconnected after {cut} bytes"));
    }
    // A connection that sends a request and closes without reading the answer.
    let mut client = broker.client();
    client.write_frame(&metadata_v1_request(1)).unwrap();
    drop(client);
    broker.assert_serving("a client closed before reading its response");
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("pipe", 1);
    let id = client.topic_id("pipe");
    let idle = client.create_topic("idle", 1);
    // Encode everything first, write it in one go, then read all responses.
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let mut push = |key: ApiKey, version: i16, encoded: (i32, BytesMut)| {
        wire.extend_from_slice(&framed(&encoded.1));
        expected.push((key, version, encoded.0));
    };
    // A long poll (on a topic nobody writes) first: faster requests queued behind it must not overtake it.
    push(
        ApiKey::Fetch,
        12,
        client.encode(12, &fetch_request(12, "idle", idle, 0, 0, 500, 1)),
    );
    for v in 0..=4 {
        let req = ApiVersionsRequest::default();
        let req = if v >= 3 {
            req.with_client_software_name(sb("t"))
                .with_client_software_version(sb("1"))
        } else {
            req
        };
        push(ApiKey::ApiVersions, v, client.encode(v, &req));
        push(
            ApiKey::Metadata,
            12 - v,
            client.encode(12 - v, &MetadataRequest::default().with_topics(None)),
        );
    }
    push(
        ApiKey::DescribeCluster,
        0,
        client.encode(0, &DescribeClusterRequest::default()),
    );
    let batch = encode_batch(&sample_records("pipe", 2));
    push(
        ApiKey::Produce,
        9,
        client.encode(9, &produce_request(9, "pipe", id, 0, batch, -1)),
    );
    push(
        ApiKey::Fetch,
        13,
        client.encode(13, &fetch_request(13, "pipe", id, 0, 0, 0, 0)),
    );
    client.write_raw(&wire).unwrap();
    for (i, (key, version, correlation_id)) in expected.into_iter().enumerate() {
        let frame = client
            .read_frame()
            .unwrap_or_else(|e| panic!("pipelined response #{i} ({key:?} v{version}): {e}"));
        let got = i32::from_be_bytes(frame[..4].try_into().unwrap());
        assert_eq!(
            got, correlation_id,
            "pipelined response #{i} should answer {key:?} v{version}"
        );
        match key {
            ApiKey::Fetch => {
                let resp = decode_response::<FetchRequest>(frame, version, correlation_id);
                let p = single_fetch_partition(&resp, &format!("pipelined Fetch v{version}"));
                let expect = if i == 0 { 0 } else { 2 }; // the idle long poll, then a fetch after the produce
                assert_eq!(
                    decode_records(&p.records).len(),
                    expect,
                    "pipelined Fetch #{i}: records"
                );
            }
            ApiKey::ApiVersions => assert_eq!(
                decode_response::<ApiVersionsRequest>(frame, version, correlation_id).error_code,
                0
            ),
            ApiKey::Metadata => assert_eq!(
                decode_response::<MetadataRequest>(frame, version, correlation_id)
                    .topics
                    .len(),
                2 // "pipe" and "idle"
            ),
            ApiKey::DescribeCluster => assert_eq!(
                decode_response::<DescribeClusterRequest>(frame, version, correlation_id)
                    .error_code,
                0
            ),
            ApiKey::Produce => {
                let resp = decode_response::<ProduceRequest>(frame, version, correlation_id);
                assert_eq!(
                    single_produce_partition(&resp, "pipelined Produce").base_offset,
                    0
                );
            }
            _ => unreachable!(),
        }
    }
}

#[test]
fn pipelined_requests_are_processed_in_order() {
    // Kafka protocol guide: "requests will be processed in the order they are sent". A long poll
    // pipelined before a produce on the same connection must not see that produce's records.
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("order", 1);
    let (fetch_id, fetch) = client.encode(12, &fetch_request(12, "order", id, 0, 0, 1000, 1));
    let (produce_id, produce) = client.encode(
        12,
        &produce_request(
            12,
            "order",
            id,
            0,
            encode_batch(&sample_records("o", 1)),
            -1,
        ),
    );
    client
        .write_raw(&[framed(&fetch), framed(&produce)].concat())
        .unwrap();
    let resp = decode_response::<FetchRequest>(client.read_frame().unwrap(), 12, fetch_id);
    let p = single_fetch_partition(&resp, "long poll pipelined before a produce");
    assert!(
        decode_records(&p.records).is_empty(),
        "the long poll returned records of the produce pipelined after it (requests processed out of order)"
    );
    let resp = decode_response::<ProduceRequest>(client.read_frame().unwrap(), 12, produce_id);
    assert_eq!(
        single_produce_partition(&resp, "produce after the long poll").base_offset,
        0
    );
}

#[test]
fn many_concurrent_connections() {
    let mut broker = BrokerProcess::start();
    broker.client().create_topic("conc", 4);
    let addr = broker.addr();
    let handles: Vec<_> = (0..16)
        .map(|t| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let mut offsets = Vec::new();
                for i in 0..10 {
                    let resp = client.call(12, &MetadataRequest::default().with_topics(None));
                    assert_eq!(resp.topics.len(), 1, "thread {t} request {i}: metadata");
                    offsets.push(client.produce_ok(
                        "conc",
                        t % 4,
                        encode_batch(&sample_records(&format!("c{t}-{i}"), 1)),
                    ));
                }
                offsets
            })
        })
        .collect();
    let mut per_partition = vec![Vec::new(); 4];
    for (t, h) in handles.into_iter().enumerate() {
        per_partition[t % 4].extend(h.join().unwrap());
    }
    for (p, mut offsets) in per_partition.into_iter().enumerate() {
        offsets.sort();
        assert_eq!(
            offsets,
            (0..40).collect::<Vec<i64>>(),
            "partition {p}: every produce got a distinct offset"
        );
    }
    broker.assert_serving("16 concurrent connections");
}

#[test]
fn header_variants_are_accepted() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    // Null client id (header v1 and v2), and unknown tagged fields in a v2 header.
    for (version, client_id, tagged) in
        [(1i16, None, false), (12, None, false), (12, Some(""), true)]
    {
        let correlation_id = client.next_correlation_id();
        let mut header = RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(client_id.map(StrBytes::from_static_str));
        if tagged {
            header
                .unknown_tagged_fields
                .insert(7, bytes::Bytes::from_static(b"ignored"));
        }
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, MetadataRequest::header_version(version))
            .unwrap();
        MetadataRequest::default()
            .with_topics(Some(vec![]))
            .encode(&mut buf, version)
            .unwrap();
        client.write_frame(&buf).unwrap();
        let frame = client.read_frame().unwrap_or_else(|e| {
            panic!("Metadata v{version} client_id={client_id:?} tagged={tagged}: {e}")
        });
        let resp = decode_response::<MetadataRequest>(frame, version, correlation_id);
        assert_eq!(
            resp.brokers.len(),
            1,
            "Metadata v{version} client_id={client_id:?} tagged={tagged}"
        );
    }
    // An idle connection stays open for a while (no premature idle timeout).
    std::thread::sleep(Duration::from_millis(1500));
    let resp = client.call(0, &ApiVersionsRequest::default());
    assert_eq!(resp.error_code, code::NONE, "ApiVersions after 1.5 s idle");
}
