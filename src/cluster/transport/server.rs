//! The inbound side: the internal listener's accept loop and one reader per connection,
//! dispatching requests by group id to the local replicas' handlers.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::frame::{self, Header, RpcKind, Status};
use super::handler::HandlerFuture;
use super::{io, Inner};

/// Accepts peers' connections until the transport shuts down; then closes them all.
pub(super) async fn accept_loop(inner: Arc<Inner>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    inner.stats.accepted.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%peer, "internal connection accepted");
                    connections.spawn(serve(inner.clone(), stream, peer));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "internal listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = inner.shutdown.cancelled() => break,
        }
    }
    drop(listener);
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Serves one inbound connection until it closes, breaks, sends a malformed frame, or the
/// transport shuts down.
async fn serve(inner: Arc<Inner>, stream: TcpStream, peer: SocketAddr) {
    let (read, write) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    let mut reader = io::framed_reader(read, inner.settings.max_frame_bytes);
    let mut requests = JoinSet::new();
    let read_requests = async {
        loop {
            let frame = match io::next_frame(&mut reader).await {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("bad frame: {e}")),
            };
            let (header, body) = frame::decode(frame).map_err(|e| format!("malformed frame: {e}"))?;
            if header.response {
                return Err(format!("unexpected response ({:?}) on an inbound connection", header.kind));
            }
            match dispatch(&inner, &header, body)? {
                Dispatch::Answer(frame) => {
                    let _ = tx.send(frame);
                }
                Dispatch::Work(work) => {
                    let tx = tx.clone();
                    requests.spawn(async move {
                        let frame = match work.await {
                            Ok(body) => frame::encode_raw(&header.answer(Status::Ok), &body),
                            Err(message) => frame::encode_raw(&header.answer(Status::Failed), message.as_bytes()),
                        };
                        let _ = tx.send(frame);
                    });
                }
            }
            // Reap finished request tasks so the set stays small.
            while requests.try_join_next().is_some() {}
        }
    };
    let outcome = tokio::select! {
        r = read_requests => r,
        r = io::write_frames(write, rx) => r.map_err(|e| format!("write failed: {e}")),
        _ = inner.shutdown.cancelled() => Ok(()),
    };
    if let Err(why) = outcome {
        inner.stats.connection_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%peer, reason = %why, "closing internal connection");
    } else {
        tracing::debug!(%peer, "internal connection closed");
    }
    requests.abort_all();
}

enum Dispatch {
    /// Answered at once.
    Answer(Bytes),
    /// Answered when the work completes.
    Work(HandlerFuture),
}

/// Routes one request; an error closes the connection (the request cannot be understood).
fn dispatch(inner: &Inner, header: &Header, body: Bytes) -> Result<Dispatch, String> {
    match header.kind {
        RpcKind::Ping => {
            let me = bincode::serialize(&inner.settings.node_id).map_err(|e| e.to_string())?;
            Ok(Dispatch::Answer(frame::encode_raw(&header.answer(Status::Ok), &me)))
        }
        RpcKind::App => match inner.app.read().clone() {
            None => Ok(Dispatch::Answer(frame::encode_raw(&header.answer(Status::NoHandler), b""))),
            Some(app) => app.handle(body).map(Dispatch::Work).map_err(|e| e.to_string()),
        },
        RpcKind::AppendEntries | RpcKind::Vote | RpcKind::InstallSnapshot => {
            // frame::decode guarantees Raft RPCs carry a group.
            let Some(group) = header.group else { return Err("raft rpc without a group".into()) };
            match inner.groups.read().get(&group).cloned() {
                None => Ok(Dispatch::Answer(frame::encode_raw(&header.answer(Status::UnknownGroup), b""))),
                Some(handler) => handler.handle(header.kind, body).map(Dispatch::Work).map_err(|e| e.to_string()),
            }
        }
    }
}
