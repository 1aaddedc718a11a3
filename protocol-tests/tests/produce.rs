//! Produce (0): offsets and data at every version, topic ids (v13), acks=0, errors, CRC checks.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, CreateTopicsRequest, ProduceRequest};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use protocol_tests::*;

#[test]
fn every_version_appends_at_the_next_offset_and_data_reads_back() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::Produce) {
        let ctx = format!("Produce v{version}");
        let topic = format!("produce-v{version}");
        let id = client.create_topic(&topic, 2);
        let first = sample_records(&format!("{topic}-a"), 3);
        let second = sample_records(&format!("{topic}-b"), 4);
        let (b1, b2) = (encode_batch(&first), encode_batch(&second));
        let mut base = Vec::new();
        for batch in [&b1, &b2] {
            let resp = client.call(
                version,
                &produce_request(version, &topic, id, 1, batch.clone(), -1),
            );
            assert_eq!(resp.responses.len(), 1, "{ctx}: topics");
            let t = &resp.responses[0];
            if version >= 13 {
                assert_eq!(t.topic_id, id, "{ctx}: topic id in response");
            } else {
                assert_eq!(t.name.0.as_str(), topic, "{ctx}: topic name in response");
            }
            let p = single_produce_partition(&resp, &ctx);
            assert_eq!(p.index, 1, "{ctx}: partition index");
            assert_eq!(
                p.error_code,
                code::NONE,
                "{ctx}: error ({:?})",
                p.error_message
            );
            assert_eq!(
                p.log_append_time_ms, -1,
                "{ctx}: log_append_time_ms for CreateTime topics"
            );
            if version >= 5 {
                assert_eq!(p.log_start_offset, 0, "{ctx}: log_start_offset");
            }
            if version >= 8 {
                assert!(
                    p.record_errors.is_empty(),
                    "{ctx}: record errors {:?}",
                    p.record_errors
                );
            }
            base.push(p.base_offset);
        }
        assert_eq!(
            base,
            vec![0, 3],
            "{ctx}: base offsets of two batches (3 then 4 records)"
        );
        assert_eq!(client.log_end_offset(&topic, 1), 7, "{ctx}: log end offset");
        assert_eq!(
            client.log_end_offset(&topic, 0),
            0,
            "{ctx}: other partition untouched"
        );

        let data = client.fetch(&topic, 1, 0);
        assert_eq!(data.error_code, code::NONE, "{ctx}: fetch back");
        let fetched = raw_batches(data.records.as_ref().expect("records"));
        assert_eq!(fetched.len(), 2, "{ctx}: batches fetched back");
        assert_batch_bytes_eq(&fetched[0], &b1, 0, &ctx);
        assert_batch_bytes_eq(&fetched[1], &b2, 3, &ctx);
        let records = decode_records(&data.records);
        assert_records_eq(&records[..3], &first, 0, &ctx);
        assert_records_eq(&records[3..], &second, 3, &ctx);
    }
}

#[test]
fn acks_1_and_multiple_partitions_in_one_request() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("multi", 3);
    let batches: Vec<_> = (0..3)
        .map(|p| encode_batch(&sample_records(&format!("p{p}"), p + 1)))
        .collect();
    let mut req = produce_request(12, "multi", Uuid::nil(), 0, batches[0].clone(), 1);
    for (p, batch) in batches.iter().enumerate().skip(1) {
        let extra = produce_request(12, "multi", Uuid::nil(), p as i32, batch.clone(), 1);
        req.topic_data[0]
            .partition_data
            .push(extra.topic_data[0].partition_data[0].clone());
    }
    let resp = client.call(12, &req);
    let mut parts: Vec<(i32, i16, i64)> = resp.responses[0]
        .partition_responses
        .iter()
        .map(|p| (p.index, p.error_code, p.base_offset))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        vec![(0, 0, 0), (1, 0, 0), (2, 0, 0)],
        "Produce v12 acks=1 to three partitions"
    );
    for p in 0..3 {
        assert_eq!(
            client.log_end_offset("multi", p),
            p as i64 + 1,
            "log end offset of partition {p}"
        );
    }
}

#[test]
fn acks_0_gets_no_response() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("acks0", 1);
    for version in versions(ApiKey::Produce) {
        let before = client.log_end_offset("acks0", 0);
        let id = client.topic_id("acks0");
        let records = sample_records("acks0", 2);
        client.send(
            version,
            &produce_request(version, "acks0", id, 0, encode_batch(&records), 0),
        );
        // The next response on this connection must belong to the next request.
        let correlation_id = client.send(0, &ApiVersionsRequest::default());
        let resp = client.receive::<ApiVersionsRequest>(0, correlation_id);
        assert_eq!(
            resp.error_code,
            code::NONE,
            "Produce v{version} acks=0: following ApiVersions"
        );
        assert_eq!(
            client.log_end_offset("acks0", 0),
            before + 2,
            "Produce v{version} acks=0: records appended"
        );
        let data = client.fetch("acks0", 0, before);
        assert_records_eq(
            &decode_records(&data.records),
            &records,
            before,
            &format!("Produce v{version} acks=0"),
        );
    }
}

#[test]
fn every_version_rejects_unknown_topic_and_partition() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let id = client.create_topic("known", 2);
    let batch = encode_batch(&sample_records("x", 1));
    for version in versions(ApiKey::Produce) {
        let ctx = format!("Produce v{version}");
        if version < 13 {
            let resp = client.call(
                version,
                &produce_request(version, "unknown-topic", Uuid::nil(), 0, batch.clone(), -1),
            );
            assert_eq!(
                single_produce_partition(&resp, &ctx).error_code,
                code::UNKNOWN_TOPIC_OR_PARTITION,
                "{ctx}: unknown topic"
            );
        } else {
            let resp = client.call(
                version,
                &produce_request(version, "", Uuid::new_v4(), 0, batch.clone(), -1),
            );
            assert_eq!(
                single_produce_partition(&resp, &ctx).error_code,
                code::UNKNOWN_TOPIC_ID,
                "{ctx}: unknown topic id"
            );
        }
        let resp = client.call(
            version,
            &produce_request(version, "known", id, 2, batch.clone(), -1),
        );
        assert_eq!(
            single_produce_partition(&resp, &ctx).error_code,
            code::UNKNOWN_TOPIC_OR_PARTITION,
            "{ctx}: partition 2 of 2"
        );
    }
    assert_eq!(
        client.topic_metadata("unknown-topic").error_code,
        code::UNKNOWN_TOPIC_OR_PARTITION,
        "produce must not auto-create"
    );
    assert_eq!(client.log_end_offset("known", 0), 0);
    assert_eq!(client.log_end_offset("known", 1), 0);
}

#[test]
fn corrupted_crc_is_rejected_and_log_unchanged() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("crc", 1);
    client.produce_ok("crc", 0, encode_batch(&sample_records("good", 2)));
    for version in versions(ApiKey::Produce) {
        let id = client.topic_id("crc");
        let mut bad = encode_batch(&sample_records("bad", 3)).to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0xff; // flip bits in the last record: the CRC no longer matches
        let resp = client.call(
            version,
            &produce_request(version, "crc", id, 0, bad.into(), -1),
        );
        let p = single_produce_partition(&resp, &format!("Produce v{version}"));
        assert_eq!(
            p.error_code,
            code::CORRUPT_MESSAGE,
            "Produce v{version}: corrupted CRC"
        );
        assert_eq!(
            client.log_end_offset("crc", 0),
            2,
            "Produce v{version}: log end offset after a corrupt batch"
        );
    }
    // A CRC field that is itself wrong (data intact).
    let mut bad = encode_batch(&sample_records("bad", 1)).to_vec();
    bad[17] ^= 0x01;
    assert_eq!(
        client.produce("crc", 0, bad.into()).error_code,
        code::CORRUPT_MESSAGE,
        "wrong CRC field"
    );
    assert_eq!(client.log_end_offset("crc", 0), 2);
    assert_eq!(
        client.produce_ok("crc", 0, encode_batch(&sample_records("after", 1))),
        2,
        "a good batch still appends at 2"
    );
}

#[test]
fn malformed_record_sets_are_rejected() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("malformed", 1);
    let good = encode_batch(&sample_records("m", 2));
    // Batch length field claims more bytes than are present.
    let mut long = good.to_vec();
    long[8..12].copy_from_slice(&((good.len() as i32) * 2).to_be_bytes());
    // Magic byte 1 (legacy message format), not accepted by Produce v3+.
    let mut magic1 = good.to_vec();
    magic1[16] = 1;
    // Truncated batch.
    let truncated = good.slice(..good.len() - 5);
    for (what, bytes) in [
        ("over-long batch length", long),
        ("magic 1", magic1),
        ("truncated batch", truncated.to_vec()),
    ] {
        let p = client.produce("malformed", 0, bytes.into());
        assert!(
            [code::CORRUPT_MESSAGE, code::INVALID_REQUEST, 43, 87].contains(&p.error_code),
            "{what}: expected CORRUPT_MESSAGE (2), INVALID_REQUEST (42), UNSUPPORTED_FOR_MESSAGE_FORMAT (43) or INVALID_RECORD (87), got {}",
            p.error_code
        );
        assert_eq!(
            client.log_end_offset("malformed", 0),
            0,
            "{what}: log end offset"
        );
    }
    // Null records for a partition.
    let mut req: ProduceRequest =
        produce_request(12, "malformed", Uuid::nil(), 0, good.clone(), -1);
    req.topic_data[0].partition_data[0].records = None;
    let p = single_produce_partition(&client.call(12, &req), "null records");
    assert_ne!(p.error_code, code::NONE, "null records must not succeed");
    assert_eq!(client.log_end_offset("malformed", 0), 0);
    assert_eq!(
        client.produce_ok("malformed", 0, good),
        0,
        "connection and partition still usable"
    );
}

#[test]
fn pipelined_produces_get_ordered_offsets_and_responses() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("pipe", 1);
    let batches: Vec<_> = (0..20)
        .map(|i| encode_batch(&sample_records(&format!("pipe{i}"), 1 + i % 3)))
        .collect();
    let ids: Vec<i32> = batches
        .iter()
        .map(|b| {
            client.send(
                12,
                &produce_request(12, "pipe", Uuid::nil(), 0, b.clone(), -1),
            )
        })
        .collect();
    let mut expected = 0;
    for (i, id) in ids.into_iter().enumerate() {
        let p = single_produce_partition(
            &client.receive::<ProduceRequest>(12, id),
            "pipelined produce",
        );
        assert_eq!(
            (p.error_code, p.base_offset),
            (0, expected),
            "pipelined produce #{i}"
        );
        expected += 1 + (i as i64) % 3;
    }
    let data = client.fetch("pipe", 0, 0);
    let fetched = raw_batches(data.records.as_ref().unwrap());
    assert_eq!(fetched.len(), 20, "batches in the log");
    for (i, (f, b)) in fetched.iter().zip(&batches).enumerate() {
        assert_eq!(&f[17..], &b[17..], "batch {i} bytes");
    }
}

#[test]
fn invalid_acks_and_oversized_batches_are_rejected() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("acks", 1);
    let batch = encode_batch(&sample_records("a", 1));
    for acks in [2, -2, 5] {
        let resp = client.call(
            12,
            &produce_request(12, "acks", Uuid::nil(), 0, batch.clone(), acks),
        );
        let p = single_produce_partition(&resp, &format!("acks={acks}"));
        assert_eq!(p.error_code, 21, "acks={acks}: INVALID_REQUIRED_ACKS");
    }
    assert_eq!(
        client.log_end_offset("acks", 0),
        0,
        "nothing appended with invalid acks"
    );

    // A batch larger than the topic's max.message.bytes: MESSAGE_TOO_LARGE (10).
    let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
        .with_name(topic_name("small"))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(vec![CreatableTopicConfig::default()
            .with_name(sb("max.message.bytes"))
            .with_value(Some(sb("1000")))])]);
    assert_eq!(
        client.call(7, &req).topics[0].error_code,
        code::NONE,
        "create topic with max.message.bytes=1000"
    );
    let big = vec![b'x'; 2000];
    let p = client.produce(
        "small",
        0,
        encode_batch(&[record(None, Some(&big), &[], now_ms())]),
    );
    assert_eq!(
        p.error_code, 10,
        "2000-byte batch with max.message.bytes=1000: MESSAGE_TOO_LARGE"
    );
    assert_eq!(client.log_end_offset("small", 0), 0);
    assert_eq!(
        client.produce_ok("small", 0, encode_batch(&sample_records("s", 1))),
        0,
        "a small batch still fits"
    );
}

#[test]
fn compressed_batches_are_stored_and_returned_verbatim() {
    // A gzip batch (deflate "stored" blocks, so no compression library is needed): the broker
    // must accept it, assign offsets for every inner record, and return it byte for byte.
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    client.create_topic("gz", 1);
    let plain = sample_records("plain", 2);
    let zipped = sample_records("gzip", 5);
    client.produce_ok("gz", 0, encode_batch(&plain));
    let batch = encode_gzip_batch(&zipped);
    assert_eq!(
        client.produce_ok("gz", 0, batch.clone()),
        2,
        "gzip batch base offset"
    );
    assert_eq!(
        client.log_end_offset("gz", 0),
        7,
        "log end offset counts the compressed records"
    );
    let data = client.fetch("gz", 0, 2);
    let fetched = raw_batches(data.records.as_ref().unwrap());
    assert_batch_bytes_eq(&fetched[0], &batch, 2, "gzip batch");
    let mut buf = fetched[0].clone();
    let set =
        RecordBatchDecoder::decode_with_custom_compression(&mut buf, Some(gunzip_stored)).unwrap();
    assert_eq!(set.compression, Compression::Gzip);
    assert_records_eq(&set.records, &zipped, 2, "gzip batch records");
}

fn encode_gzip_batch(records: &[Record]) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset: i as i64,
            sequence: i as i32 - 1,
            ..r.clone()
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::Gzip,
    };
    let compressor =
        |plain: &mut BytesMut, out: &mut BytesMut, _: Compression| -> anyhow::Result<()> {
            out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
            let chunks: Vec<&[u8]> = plain.chunks(65535).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                out.put_u8((i + 1 == chunks.len()) as u8); // BFINAL, BTYPE=00 (stored)
                out.put_u16_le(chunk.len() as u16);
                out.put_u16_le(!(chunk.len() as u16));
                out.extend_from_slice(chunk);
            }
            out.put_u32_le(kafka_protocol::records::IEEE.checksum(plain));
            out.put_u32_le(plain.len() as u32);
            Ok(())
        };
    RecordBatchEncoder::encode_with_custom_compression(
        &mut buf,
        &records,
        &options,
        Some(compressor),
    )
    .unwrap();
    buf.freeze()
}

fn gunzip_stored(data: &mut Bytes, compression: Compression) -> anyhow::Result<Bytes> {
    anyhow::ensure!(
        compression == Compression::Gzip,
        "unexpected {compression:?}"
    );
    anyhow::ensure!(
        data.len() >= 18 && data[..4] == [0x1f, 0x8b, 8, 0],
        "not a plain gzip member"
    );
    let mut pos = 10;
    let mut out = Vec::new();
    loop {
        let header = data[pos];
        anyhow::ensure!(header & 0b110 == 0, "not a stored deflate block");
        let len = u16::from_le_bytes([data[pos + 1], data[pos + 2]]) as usize;
        out.extend_from_slice(&data[pos + 5..pos + 5 + len]);
        pos += 5 + len;
        if header & 1 == 1 {
            break;
        }
    }
    Ok(out.into())
}
