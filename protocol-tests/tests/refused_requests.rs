//! Requests the broker refuses (an API version it does not implement, a body
//! that does not decode) close the connection cleanly, after the requests
//! pipelined before them are answered, without a panic in the broker.

use bytes::BytesMut;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;
use protocol_tests::*;

/// `payload` with its 4-byte length prefix.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

/// A Metadata v12 request for no topics, header included.
fn metadata_v12(client: &mut Client) -> (i32, BytesMut) {
    client.encode(12, &MetadataRequest::default().with_topics(Some(vec![])))
}

/// The kinds of refused request the tests pipeline after good ones.
#[derive(Clone, Copy, Debug)]
enum Refused {
    /// A SaslHandshake version beyond the advertised 0-1.
    SaslHandshakeV2,
    /// A version far beyond any schema (only the header prefix can be read).
    ProduceV99,
    /// A known API at a version below what Fluxo advertises.
    ProduceV2,
    /// Metadata v12 with its body cut in half.
    TruncatedMetadata,
    /// A Produce v9 whose body is three garbage bytes.
    GarbageProduceBody,
}

impl Refused {
    const ALL: [Refused; 5] = [
        Refused::SaslHandshakeV2,
        Refused::ProduceV99,
        Refused::ProduceV2,
        Refused::TruncatedMetadata,
        Refused::GarbageProduceBody,
    ];

    /// The refused request (header and body, without length prefix).
    fn payload(self, client: &mut Client) -> Vec<u8> {
        let correlation_id = client.next_correlation_id();
        match self {
            Refused::SaslHandshakeV2 => {
                raw_request(ApiKey::SaslHandshake as i16, 2, correlation_id, false, b"\x00\x05PLAIN")
            }
            Refused::ProduceV99 => raw_request(ApiKey::Produce as i16, 99, correlation_id, false, &[]),
            // kafka-protocol cannot encode v2 (Kafka 4 dropped it); its header is v1 like v3's.
            Refused::ProduceV2 => raw_request(ApiKey::Produce as i16, 2, correlation_id, false, &[0, 1, 0, 0, 0x75, 0x30]),
            Refused::TruncatedMetadata => {
                let mut body = BytesMut::new();
                MetadataRequest::default()
                    .with_topics(Some(vec![
                        metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name("some-topic")))
                    ]))
                    .with_allow_auto_topic_creation(false)
                    .encode(&mut body, 12)
                    .unwrap();
                raw_request(ApiKey::Metadata as i16, 12, correlation_id, true, &body[..body.len() / 2])
            }
            Refused::GarbageProduceBody => {
                raw_request(ApiKey::Produce as i16, 9, correlation_id, true, &[0xff, 0xfe, 0xfd])
            }
        }
    }
}

/// Pipelines [ApiVersions, Metadata, `refused`, Metadata] in one write and
/// asserts the first two are answered, then the connection closes.
fn pipeline_with_refused(broker: &BrokerProcess, refused: Refused, round: usize) {
    let context = format!("round {round}: {refused:?} after ApiVersions and Metadata");
    let mut client = broker.client();
    let (api_versions_id, api_versions) = client.encode(3, &ApiVersionsRequest::default()
        .with_client_software_name(sb("fluxo-protocol-tests"))
        .with_client_software_version(sb("1")));
    let (metadata_id, metadata) = metadata_v12(&mut client);
    let bad = refused.payload(&mut client);
    let (_, after) = metadata_v12(&mut client);
    let mut bytes = framed(&api_versions);
    bytes.extend(framed(&metadata));
    bytes.extend(framed(&bad));
    bytes.extend(framed(&after));
    client.write_raw(&bytes).unwrap_or_else(|e| panic!("{context}: write: {e}"));

    let frame = client.read_frame().unwrap_or_else(|e| panic!("{context}: no ApiVersions response: {e}"));
    let resp = decode_response::<ApiVersionsRequest>(frame, 3, api_versions_id);
    assert_eq!(resp.error_code, code::NONE, "{context}: ApiVersions error");
    assert!(
        resp.api_keys.iter().any(|k| k.api_key == ApiKey::Metadata as i16),
        "{context}: ApiVersions lists Metadata"
    );
    let frame = client.read_frame().unwrap_or_else(|e| panic!("{context}: no Metadata response: {e}"));
    let resp = decode_response::<MetadataRequest>(frame, 12, metadata_id);
    assert_eq!(resp.brokers.len(), 1, "{context}: Metadata brokers");
    assert_eq!(resp.brokers[0].port, broker.port() as i32, "{context}: Metadata broker port");
    // Nothing for the refused request nor the one after it: the broker closes.
    client.expect_closed(&context);
}

#[test]
fn refused_request_after_pipelined_ones_closes_cleanly() {
    let mut broker = BrokerProcess::start();
    for (round, refused) in Refused::ALL.into_iter().enumerate() {
        pipeline_with_refused(&broker, refused, round);
        broker.assert_no_panic(&format!("{refused:?}"));
    }
    broker.assert_serving("one refused request of each kind");
}

#[test]
fn many_refused_requests_do_not_hurt_the_broker() {
    let mut broker = BrokerProcess::start();
    for round in 0..200 {
        pipeline_with_refused(&broker, Refused::ALL[round % Refused::ALL.len()], round);
    }
    broker.assert_serving("200 connections each ending in a refused request");
    broker.assert_no_panic("200 refused requests");
}

#[test]
fn undecodable_body_alone_closes_cleanly() {
    let mut broker = BrokerProcess::start();
    for refused in [Refused::TruncatedMetadata, Refused::GarbageProduceBody] {
        let mut client = broker.client();
        let payload = refused.payload(&mut client);
        client.write_frame(&payload).unwrap();
        client.expect_closed(&format!("{refused:?} as the first request"));
        broker.assert_no_panic(&format!("{refused:?} as the first request"));
        broker.assert_serving(&format!("{refused:?}"));
    }
}
