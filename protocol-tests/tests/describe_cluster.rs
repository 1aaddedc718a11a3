//! DescribeCluster (60): cluster id, controller and the single broker at every version.

use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use protocol_tests::*;

fn describe(client: &mut Client, version: i16) -> DescribeClusterResponse {
    let req = DescribeClusterRequest::default().with_include_cluster_authorized_operations(false);
    client.call(version, &req)
}

#[test]
fn every_version_describes_the_cluster() {
    let mut broker = BrokerProcess::start();
    let mut client = broker.client();
    let metadata_cluster_id = client
        .metadata(None)
        .cluster_id
        .expect("Metadata v12 cluster id")
        .to_string();
    for version in versions(ApiKey::DescribeCluster) {
        let ctx = format!("DescribeCluster v{version}");
        let resp = describe(&mut client, version);
        assert_eq!(
            resp.error_code,
            code::NONE,
            "{ctx}: error ({:?})",
            resp.error_message
        );
        assert!(!resp.cluster_id.is_empty(), "{ctx}: empty cluster id");
        assert_eq!(
            resp.cluster_id.as_str(),
            metadata_cluster_id,
            "{ctx}: cluster id equals Metadata's"
        );
        assert_eq!(resp.controller_id, BrokerId(1), "{ctx}: controller id");
        if version >= 1 {
            assert_eq!(resp.endpoint_type, 1, "{ctx}: endpoint type (brokers)");
        }
        let brokers: Vec<(i32, String, i32)> = resp
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
            .collect();
        assert_eq!(
            brokers,
            vec![(1, "127.0.0.1".to_string(), broker.port() as i32)],
            "{ctx}: brokers"
        );
        if version >= 2 {
            assert!(!resp.brokers[0].is_fenced, "{ctx}: broker is fenced");
        }
    }
    // The cluster id is persistent.
    drop(client);
    broker.restart();
    let resp = describe(&mut broker.client(), 0);
    assert_eq!(
        resp.cluster_id.as_str(),
        metadata_cluster_id,
        "cluster id after restart"
    );
}
