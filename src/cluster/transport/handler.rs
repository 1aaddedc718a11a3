//! The server side's handlers: one per local Raft replica (by group id), and one for
//! group-less application requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use openraft::{Raft, RaftTypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::HandlerError;
use super::frame::RpcKind;
use crate::cluster::{Node, NodeId};

/// The work of one request: resolves to the encoded answer body, or a message when the
/// handler failed (sent back as a `Failed` answer).
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;

/// A local Raft replica as the internal listener sees it. Decoding happens in `handle`
/// (on the connection's reader, so a malformed body closes the connection); the returned
/// future runs on its own task, so many groups' RPCs are served at once.
pub trait GroupHandler: Send + Sync + 'static {
    /// Decodes a request of `kind` and returns the work that answers it.
    fn handle(&self, kind: RpcKind, body: Bytes) -> Result<HandlerFuture, HandlerError>;
}

fn decode<T: DeserializeOwned>(kind: RpcKind, body: &[u8]) -> Result<T, HandlerError> {
    bincode::deserialize(body).map_err(|e| HandlerError::Malformed { kind, detail: e.to_string() })
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, String> {
    bincode::serialize(value).map_err(|e| format!("cannot encode answer: {e}"))
}

/// Any openraft group whose members are brokers: the body is the openraft request in
/// bincode, the answer openraft's `Result` (a `RaftError` reaches the caller as a
/// `RemoteError`).
impl<C> GroupHandler for Raft<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = Node>,
    C::SnapshotData: tokio::io::AsyncRead + tokio::io::AsyncWrite + tokio::io::AsyncSeek + Unpin,
{
    fn handle(&self, kind: RpcKind, body: Bytes) -> Result<HandlerFuture, HandlerError> {
        let raft = self.clone();
        match kind {
            RpcKind::AppendEntries => {
                let req: AppendEntriesRequest<C> = decode(kind, &body)?;
                Ok(Box::pin(async move { encode(&raft.append_entries(req).await) }))
            }
            RpcKind::Vote => {
                let req: VoteRequest<NodeId> = decode(kind, &body)?;
                Ok(Box::pin(async move { encode(&raft.vote(req).await) }))
            }
            RpcKind::InstallSnapshot => {
                let req: InstallSnapshotRequest<C> = decode(kind, &body)?;
                Ok(Box::pin(async move { encode(&raft.install_snapshot(req).await) }))
            }
            RpcKind::Ping | RpcKind::App => Err(HandlerError::Unsupported(kind)),
        }
    }
}

/// Group-less application requests (the metadata group's "register broker", "forward
/// this proposal to the leader", …): the body and the answer are the application's.
pub trait AppHandler: Send + Sync + 'static {
    /// Decodes a request and returns the work that answers it.
    fn handle(&self, body: Bytes) -> Result<HandlerFuture, HandlerError>;
}

/// An [`AppHandler`] from an async function of a bincode request to a bincode answer.
pub fn app_handler<Req, Resp, F, Fut>(f: F) -> Arc<dyn AppHandler>
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    struct Typed<F, Req>(F, std::marker::PhantomData<fn(Req)>);
    impl<Req, Resp, F, Fut> AppHandler for Typed<F, Req>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Resp> + Send + 'static,
    {
        fn handle(&self, body: Bytes) -> Result<HandlerFuture, HandlerError> {
            let req: Req = decode(RpcKind::App, &body)?;
            let work = (self.0)(req);
            Ok(Box::pin(async move { encode(&work.await) }))
        }
    }
    Arc::new(Typed(f, std::marker::PhantomData))
}
