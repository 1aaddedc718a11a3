//! One module per Kafka API behind a thin dispatcher. A handler is a function from
//! (broker, decoded request, version) to the decoded response.

mod admin;
mod alter_configs;
pub mod api_versions;
mod create_partitions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_topics;
mod delete_groups;
mod delete_records;
mod delete_topics;
mod describe_groups;
mod describe_cluster;
mod describe_configs;
pub mod error;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_groups;
mod list_offsets;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod produce;
mod sync_group;
mod offset_for_leader_epoch;
pub mod sasl_authenticate;
mod sasl_handshake;
mod acls;
mod auth;
mod alter_user_scram_credentials;
mod describe_user_scram_credentials;
mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod end_txn;
mod txn_offset_commit;
use acls::{create as create_acls, delete as delete_acls, describe as describe_acls};

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;

use crate::broker::{Broker, Endpoint};
use crate::coordinator::ClientInfo;
use crate::error::ConnectionError;
use crate::protocol::{encode_response, encode_response_sharing, Frame, Request};

/// The version range of one API that its handler answers; each handler module
/// declares its own as `VERSIONS`, next to its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    /// Oldest version answered.
    pub min: i16,
    /// Newest version answered.
    pub max: i16,
}

impl Versions {
    /// The range `min..=max`.
    pub const fn new(min: i16, max: i16) -> Versions {
        Versions { min, max }
    }

    /// Whether `version` is in the range.
    pub fn contains(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// What a handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Session {
    /// The address this connection's listener advertises (Metadata, FindCoordinator).
    pub endpoint: Arc<Endpoint>,
    /// The client's address (group members' `client_host`).
    pub peer: SocketAddr,
    /// The listener's security protocol and settings.
    pub listener: Arc<crate::security::ListenerSecurity>,
    /// The connection's SASL state (who it authenticated as).
    pub sasl: Arc<parking_lot::Mutex<crate::security::sasl::SaslSession>>,
    /// On an SSL listener, the principal of the client's certificate
    /// (`User:<subject DN>`), if it presented one.
    pub tls_principal: Option<Arc<str>>,
}

/// The response of one request: an encoded frame, or nothing (produce with acks=0).
pub type Reply = Result<Option<Frame>, ConnectionError>;

/// A handler's answer: a response body, encoded into a frame, or no frame at all
/// (a produce with acks=0 is not answered).
pub trait Answer: Send + 'static {
    /// Encodes the answer for the request it replies to.
    fn into_reply(self, api_key: ApiKey, version: i16, correlation_id: i32) -> Reply;
}

impl<R: Encodable + Send + 'static> Answer for R {
    fn into_reply(self, api_key: ApiKey, version: i16, correlation_id: i32) -> Reply {
        encode_response(api_key, version, correlation_id, &self).map(|b| Some(Frame::Contiguous(b)))
    }
}

/// An answer carrying record batches that go to the socket by reference: the
/// response is encoded around them and written with one vectored write.
pub struct Sharing<R> {
    /// The response.
    pub body: R,
    /// The record batches the body contains.
    pub shared: Vec<Bytes>,
}

impl<R: Encodable + Send + 'static> Answer for Sharing<R> {
    fn into_reply(self, api_key: ApiKey, version: i16, correlation_id: i32) -> Reply {
        encode_response_sharing(api_key, version, correlation_id, &self.body, self.shared).map(Some)
    }
}

/// An answer the client may not want: `None` sends nothing.
pub struct Optional<R>(pub Option<R>);

impl<R: Encodable + Send + 'static> Answer for Optional<R> {
    fn into_reply(self, api_key: ApiKey, version: i16, correlation_id: i32) -> Reply {
        self.0.map_or(Ok(None), |body| body.into_reply(api_key, version, correlation_id))
    }
}

/// Declares every API this broker implements, once: the module that handles it
/// and how it is called. From this one list come the table ApiVersions advertises
/// (each module's `VERSIONS`) and the dispatcher, so adding an API is one line here
/// plus its module.
macro_rules! apis {
    ($($key:ident => $module:ident $(with $extra:ident)?),* $(,)?) => {
        /// Every API this broker implements with the version range it answers: exactly
        /// what ApiVersions advertises.
        pub const SUPPORTED_APIS: &[(ApiKey, Versions)] = &[$((ApiKey::$key, $module::VERSIONS)),*];

        fn route(
            broker: &Arc<Broker>,
            session: &Session,
            mut request: Request,
        ) -> Result<BoxFuture<'static, Reply>, ConnectionError> {
            let (api_key, version, correlation_id) = (request.api_key, request.version, request.correlation_id);
            Ok(match api_key {
                $(ApiKey::$key => {
                    let body = request.decode()?;
                    let response = call!($module, broker, session, &request, body, version $(, $extra)?);
                    async move { response.await.into_reply(api_key, version, correlation_id) }.boxed()
                })*
                other => return Err(ConnectionError::UnsupportedVersion { api_key: other as i16, version }),
            })
        }
    };
}

/// How a handler is called: with the broker, the decoded body and the version, plus
/// the listener's endpoint or the client's identity where its answer depends on them.
macro_rules! call {
    ($module:ident, $broker:expr, $session:expr, $request:expr, $body:expr, $version:expr) => {
        $module::handle($broker.clone(), $body, $version)
    };
    ($module:ident, $broker:expr, $session:expr, $request:expr, $body:expr, $version:expr, endpoint) => {
        $module::handle($broker.clone(), $session.endpoint.clone(), $body, $version)
    };
    ($module:ident, $broker:expr, $session:expr, $request:expr, $body:expr, $version:expr, client) => {
        $module::handle($broker.clone(), $body, $version, client_info($request, $session))
    };
    ($module:ident, $broker:expr, $session:expr, $request:expr, $body:expr, $version:expr, session) => {
        $module::handle($broker.clone(), $session.clone(), $body, $version)
    };
    ($module:ident, $broker:expr, $session:expr, $request:expr, $body:expr, $version:expr, session_client) => {
        $module::handle($broker.clone(), $session.clone(), $body, $version, client_info($request, $session))
    };
}

apis! {
    Produce => produce with session,
    Fetch => fetch with session,
    ListOffsets => list_offsets with session,
    Metadata => metadata with session,
    FindCoordinator => find_coordinator with session,
    ApiVersions => api_versions,
    CreateTopics => create_topics with session,
    DeleteTopics => delete_topics with session,
    InitProducerId => init_producer_id with session,
    DescribeConfigs => describe_configs with session,
    CreatePartitions => create_partitions with session,
    DescribeCluster => describe_cluster with session,
    OffsetCommit => offset_commit with session,
    OffsetFetch => offset_fetch with session,
    JoinGroup => join_group with session_client,
    Heartbeat => heartbeat with session,
    LeaveGroup => leave_group with session,
    SyncGroup => sync_group with session,
    DescribeGroups => describe_groups with session,
    ListGroups => list_groups with session,
    DeleteGroups => delete_groups with session,
    OffsetDelete => offset_delete with session,
    ConsumerGroupHeartbeat => consumer_group_heartbeat with session_client,
    ConsumerGroupDescribe => consumer_group_describe with session,
    IncrementalAlterConfigs => incremental_alter_configs with session,
    DeleteRecords => delete_records with session,
    AlterConfigs => alter_configs with session,
    OffsetForLeaderEpoch => offset_for_leader_epoch with session,
    SaslHandshake => sasl_handshake with session,
    SaslAuthenticate => sasl_authenticate with session,
    CreateAcls => create_acls with session,
    DescribeAcls => describe_acls with session,
    DeleteAcls => delete_acls with session,
    DescribeUserScramCredentials => describe_user_scram_credentials with session,
    AlterUserScramCredentials => alter_user_scram_credentials with session,
    AddPartitionsToTxn => add_partitions_to_txn with session,
    AddOffsetsToTxn => add_offsets_to_txn with session,
    EndTxn => end_txn with session,
    TxnOffsetCommit => txn_offset_commit with session,
}

/// The supported version range of an API, if it is implemented.
pub fn supported_versions(api_key: ApiKey) -> Option<Versions> {
    SUPPORTED_APIS.iter().find(|(k, _)| *k == api_key).map(|(_, v)| *v)
}

/// Decodes a request and starts its handler. The returned future yields the
/// encoded response; work that must happen in request order (produce appends)
/// is done before this returns.
pub fn dispatch(
    broker: &Arc<Broker>,
    session: &Session,
    request: Request,
) -> Result<BoxFuture<'static, Reply>, ConnectionError> {
    let (api_key, version, correlation_id) = (request.api_key, request.version, request.correlation_id);
    let in_range = supported_versions(api_key).map(|v| v.contains(version));
    if api_key == ApiKey::ApiVersions && in_range != Some(true) {
        // KIP-511: answer an unknown ApiVersions version with a v0 body.
        let body = api_versions::unsupported_version_response();
        return Ok(async move { body.into_reply(api_key, 0, correlation_id) }.boxed());
    }
    if in_range != Some(true) {
        return Err(ConnectionError::UnsupportedVersion { api_key: api_key as i16, version });
    }
    route(broker, session, request)
}

/// Who a group member is: the client id from the request header and the
/// connection's peer address, as DescribeGroups reports them.
fn client_info(request: &Request, session: &Session) -> ClientInfo {
    ClientInfo {
        client_id: request.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{}", session.peer.ip()),
    }
}
