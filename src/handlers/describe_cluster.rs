//! DescribeCluster: cluster id, controller and brokers (this one).

use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::{auth, Session, Versions};
use crate::broker::Broker;
use crate::security::acl::{ResourceType, CLUSTER_NAME};

const ENDPOINT_BROKERS: i8 = 1;

/// The DescribeCluster versions this broker answers (each has wire-level tests).
pub const VERSIONS: Versions = Versions::new(0, 2);

/// Describes the (single-node) cluster.
pub async fn handle(
    broker: Arc<Broker>,
    session: Session,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id()))
        .with_controller_id(BrokerId(super::metadata::controller_id(&broker)))
        .with_endpoint_type(ENDPOINT_BROKERS)
        .with_cluster_authorized_operations(auth::operations_if(
            request.include_cluster_authorized_operations,
            &broker,
            &session,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ));
    let endpoint = &session.endpoint;
    if version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        return response
            .with_error_code(ResponseError::MismatchedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str("this listener serves brokers, not controllers")));
    }
    // Cluster mode: every registered, unfenced broker (this one alone until registered).
    if let Some(all) = broker.cluster_brokers(&endpoint.host, endpoint.port) {
        return response.with_brokers(
            all.into_iter()
                .map(|b| {
                    DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(b.node_id))
                        .with_host(StrBytes::from_string(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(StrBytes::from_string))
                })
                .collect(),
        );
    }
    response.with_brokers(vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(broker.node_id()))
        .with_host(StrBytes::from_string(endpoint.host.clone()))
        .with_port(endpoint.port)])
}
