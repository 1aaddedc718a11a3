//! FindCoordinator (10): this broker is the coordinator, single key (v0-3) and batched keys (v4+).

use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest};
use protocol_tests::*;

#[test]
fn every_version_returns_this_broker() {
    let broker = BrokerProcess::start();
    let mut client = broker.client();
    let port = broker.port() as i32;
    for version in versions(ApiKey::FindCoordinator) {
        let ctx = format!("FindCoordinator v{version}");
        if version <= 3 {
            let resp = client.call(
                version,
                &FindCoordinatorRequest::default()
                    .with_key(sb("my-group"))
                    .with_key_type(0),
            );
            assert_eq!(
                resp.error_code,
                code::NONE,
                "{ctx}: error ({:?})",
                resp.error_message
            );
            assert_eq!(
                (resp.node_id, resp.host.as_str(), resp.port),
                (BrokerId(1), "127.0.0.1", port),
                "{ctx}: coordinator"
            );
        } else {
            let keys = vec![sb("group-a"), sb("group-b"), sb("group-c")];
            let resp = client.call(
                version,
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(keys),
            );
            let mut got: Vec<(String, i16, i32, String, i32)> = resp
                .coordinators
                .iter()
                .map(|c| {
                    (
                        c.key.to_string(),
                        c.error_code,
                        c.node_id.0,
                        c.host.to_string(),
                        c.port,
                    )
                })
                .collect();
            got.sort();
            let want: Vec<_> = ["group-a", "group-b", "group-c"]
                .iter()
                .map(|k| (k.to_string(), 0, 1, "127.0.0.1".to_string(), port))
                .collect();
            assert_eq!(
                got, want,
                "{ctx}: (key, error, node, host, port) per coordinator key"
            );
        }
    }
}
