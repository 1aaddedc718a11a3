//! Errors of internal calls.

use std::time::Duration;

use crate::cluster::{GroupId, NodeId};

use super::frame::RpcKind;

/// Why a call to another broker did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The peer is not known to this transport (never added, or removed).
    #[error("node {0} is not a known peer")]
    UnknownPeer(NodeId),
    /// No connection to the peer right now (it is being re-dialled with backoff).
    #[error("node {0} is not connected")]
    NotConnected(NodeId),
    /// The connection broke while the call was in flight.
    #[error("connection to node {0} was lost")]
    ConnectionLost(NodeId),
    /// No answer within the call's timeout.
    #[error("no answer from node {node} within {timeout:?}")]
    Timeout {
        /// The peer.
        node: NodeId,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The peer has no replica of the group.
    #[error("node {node} has no replica of group {group}")]
    UnknownGroup {
        /// The peer.
        node: NodeId,
        /// The group.
        group: GroupId,
    },
    /// The peer has no handler for this kind of request.
    #[error("node {node} has no handler for {kind:?} requests")]
    NoHandler {
        /// The peer.
        node: NodeId,
        /// The request kind.
        kind: RpcKind,
    },
    /// The peer's handler failed.
    #[error("node {node} failed the request: {message}")]
    Failed {
        /// The peer.
        node: NodeId,
        /// Its explanation.
        message: String,
    },
    /// The request is larger than a frame may be.
    #[error("request of {size} bytes exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// `max_frame_bytes`.
        max: usize,
    },
    /// The request could not be encoded (a bug in a message type).
    #[error("cannot encode request: {0}")]
    Encode(String),
    /// The answer could not be decoded.
    #[error("cannot decode the answer of node {node}: {detail}")]
    Decode {
        /// The peer.
        node: NodeId,
        /// bincode's explanation.
        detail: String,
    },
    /// The answer came from another node than the one called (wrong address).
    #[error("node {expected} answered as node {actual}")]
    WrongNode {
        /// The node called.
        expected: NodeId,
        /// The node that answered.
        actual: NodeId,
    },
    /// This transport is shutting down.
    #[error("transport is shut down")]
    Shutdown,
}

/// Why a request body could not be handled: the connection it came on is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The body does not decode as the request its kind announces.
    #[error("malformed {kind:?} body: {detail}")]
    Malformed {
        /// The request kind.
        kind: RpcKind,
        /// bincode's explanation.
        detail: String,
    },
    /// The handler does not serve this kind.
    #[error("{0:?} requests are not served by this handler")]
    Unsupported(RpcKind),
}
