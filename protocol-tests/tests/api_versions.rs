//! ApiVersions (18): the advertised table at every version, KIP-511 fallback, unsupported versions of other APIs.

use bytes::{BufMut, Bytes};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::{Decodable, Encodable};
use protocol_tests::*;

fn request(version: i16) -> ApiVersionsRequest {
    let req = ApiVersionsRequest::default();
    if version >= 3 {
        req.with_client_software_name(sb("fluxo-protocol-tests"))
            .with_client_software_version(sb("0.1.0"))
    } else {
        req
    }
}

fn assert_table(resp: &ApiVersionsResponse, context: &str) {
    let mut got: Vec<(i16, i16, i16)> = resp
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    got.sort();
    let mut want: Vec<(i16, i16, i16)> = ADVERTISED
        .iter()
        .map(|(k, min, max)| (*k as i16, *min, *max))
        .collect();
    want.sort();
    assert_eq!(got, want, "{context}: advertised (api key, min, max)");
}

#[test]
fn every_version_lists_exactly_the_advertised_apis() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    for version in versions(ApiKey::ApiVersions) {
        let resp = client.call(version, &request(version));
        assert_eq!(
            resp.error_code,
            code::NONE,
            "ApiVersions v{version}: error code"
        );
        assert_table(&resp, &format!("ApiVersions v{version}"));
        assert_eq!(resp.throttle_time_ms, 0, "ApiVersions v{version}: throttle");
    }
}

#[test]
fn every_advertised_version_is_encodable_by_the_client_library() {
    // Guards the test suite itself: each advertised range must be within kafka-protocol's.
    for (key, min, max) in ADVERTISED {
        let lib = key.valid_versions();
        assert!(
            lib.min <= *min && *max <= lib.max,
            "{key:?} {min}..={max} outside kafka-protocol's {lib}"
        );
    }
}

/// Sends ApiVersions with an unsupported version: the reply must be a v0 body (KIP-511).
fn unsupported_api_versions(client: &mut Client, version: i16) {
    let mut body = Vec::new();
    request(4).encode(&mut body, 4).unwrap();
    let correlation_id = client.next_correlation_id();
    client
        .write_frame(&raw_request(18, version, correlation_id, true, &body))
        .unwrap();
    let frame = client
        .read_frame()
        .unwrap_or_else(|e| panic!("ApiVersions v{version}: no response: {e}"));
    // Response header v0 (correlation id only), then a v0 body.
    let mut buf: Bytes = frame.clone();
    assert!(
        buf.len() >= 4,
        "ApiVersions v{version}: short frame {frame:02x?}"
    );
    let got_id = i32::from_be_bytes(buf[..4].try_into().unwrap());
    assert_eq!(
        got_id, correlation_id,
        "ApiVersions v{version}: correlation id"
    );
    buf = buf.slice(4..);
    let resp = ApiVersionsResponse::decode(&mut buf, 0).unwrap_or_else(|e| {
        panic!("ApiVersions v{version}: response is not a v0 body: {e:#}; frame {frame:02x?}")
    });
    assert!(
        buf.is_empty(),
        "ApiVersions v{version}: trailing bytes after v0 body; frame {frame:02x?}"
    );
    assert_eq!(
        resp.error_code,
        code::UNSUPPORTED_VERSION,
        "ApiVersions v{version}: error code"
    );
    let own = resp.api_keys.iter().find(|k| k.api_key == 18);
    let own = own.unwrap_or_else(|| {
        panic!("ApiVersions v{version}: ApiVersions missing from the api list: {resp:?}")
    });
    assert_eq!(
        (own.min_version, own.max_version),
        (0, 4),
        "ApiVersions v{version}: ApiVersions range"
    );
    for k in &resp.api_keys {
        assert!(
            ADVERTISED
                .iter()
                .any(|(key, min, max)| (*key as i16, *min, *max)
                    == (k.api_key, k.min_version, k.max_version)),
            "ApiVersions v{version}: listed {k:?} is not in the advertised table"
        );
    }
}

#[test]
fn unsupported_api_versions_version_gets_v0_error_with_api_list() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    unsupported_api_versions(&mut client, 99);
    // The connection stays usable (Kafka clients retry on it with v0).
    let resp = client.call(0, &request(0));
    assert_eq!(resp.error_code, code::NONE, "ApiVersions v0 after v99");
    assert_table(&resp, "ApiVersions v0 after v99");
    let mut client = broker.client();
    unsupported_api_versions(&mut client, 5);
    let resp = client.call(3, &request(3));
    assert_table(&resp, "ApiVersions v3 after v5");
}

/// Sends api `key` at unsupported `version` (hand-built header, arbitrary body). The broker may
/// close the connection or answer; an answer must carry the correlation id and error 35.
fn unsupported_version_of(broker: &mut BrokerProcess, key: ApiKey, version: i16, body: &[u8]) {
    let context = format!("{key:?} v{version} (unsupported)");
    let mut client = broker.client();
    let correlation_id = client.next_correlation_id();
    let flexible = key.request_header_version(version) >= 2;
    client
        .write_frame(&raw_request(
            key as i16,
            version,
            correlation_id,
            flexible,
            body,
        ))
        .unwrap();
    match client.read_frame() {
        Ok(frame) => {
            assert!(frame.len() >= 4, "{context}: short frame {frame:02x?}");
            let got_id = i32::from_be_bytes(frame[..4].try_into().unwrap());
            assert_eq!(
                got_id, correlation_id,
                "{context}: correlation id of the error response"
            );
            assert!(
                body_contains_error_35(&frame),
                "{context}: response without error code 35: {frame:02x?}"
            );
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{context}: expected a response or a closed connection, got {e}"
        ),
    }
    broker.assert_running();
    let resp = broker.client().call(3, &request(3));
    assert_table(
        &resp,
        &format!("ApiVersions on a new connection after {context}"),
    );
}

/// Whether the body holds the error code 35 as a big-endian i16. (Decoding an unknown body
/// layout with kafka-protocol could trigger huge allocations from garbage lengths, so scan.)
fn body_contains_error_35(frame: &Bytes) -> bool {
    frame[4..].windows(2).any(|w| w == [0, 35])
}

#[test]
fn unsupported_versions_of_other_apis_are_rejected_and_broker_keeps_serving() {
    let mut broker = BrokerProcess::start();
    // Produce v2 (below the advertised 3): a v2-shaped body (acks, timeout, empty topic array).
    let mut produce_body = Vec::new();
    produce_body.put_i16(-1);
    produce_body.put_i32(1000);
    produce_body.put_i32(0);
    unsupported_version_of(&mut broker, ApiKey::Produce, 2, &produce_body);
    // Metadata v99: body of a v13 all-topics request.
    let mut metadata_body = Vec::new();
    kafka_protocol::messages::MetadataRequest::default()
        .with_topics(None)
        .encode(&mut metadata_body, 13)
        .unwrap();
    unsupported_version_of(&mut broker, ApiKey::Metadata, 99, &metadata_body);
    // Fetch v3 (below 4) and v18 (above 17, but the client library speaks it).
    let mut fetch_body = Vec::new();
    fetch_request(4, "t", Uuid::nil(), 0, 0, 0, 0)
        .encode(&mut fetch_body, 4)
        .unwrap();
    unsupported_version_of(&mut broker, ApiKey::Fetch, 3, &fetch_body);
    let mut fetch18 = Vec::new();
    fetch_request(18, "t", Uuid::nil(), 0, 0, 0, 0)
        .encode(&mut fetch18, 18)
        .unwrap();
    unsupported_version_of(&mut broker, ApiKey::Fetch, 18, &fetch18);
    // InitProducerId v6 (advertised up to 5).
    let mut init6 = Vec::new();
    kafka_protocol::messages::InitProducerIdRequest::default()
        .with_transactional_id(None)
        .encode(&mut init6, 5) // the library cannot encode v6 requests; the body is never read
        .unwrap();
    unsupported_version_of(&mut broker, ApiKey::InitProducerId, 6, &init6);
}
