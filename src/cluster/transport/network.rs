//! openraft's network for one group over the shared per-peer connections.

use std::marker::PhantomData;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::RaftTypeConfig;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::TransportError;
use super::frame::RpcKind;
use super::Transport;
use crate::cluster::{GroupId, Node, NodeId};

/// openraft's `RaftNetworkFactory` for one group: every client it makes shares the
/// transport's connection to its target (no connection per group).
pub struct GroupNetworkFactory<C> {
    transport: Transport,
    group: GroupId,
    _config: PhantomData<fn() -> C>,
}

impl<C> GroupNetworkFactory<C> {
    /// The factory of `group`'s replicas on this broker.
    pub fn new(transport: Transport, group: GroupId) -> Self {
        GroupNetworkFactory { transport, group, _config: PhantomData }
    }
}

impl<C> RaftNetworkFactory<C> for GroupNetworkFactory<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = Node>,
{
    type Network = GroupNetwork<C>;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> GroupNetwork<C> {
        // A member's address comes from the group's membership; the transport keeps one
        // connection per broker whichever groups name it.
        if !node.addr.is_empty() {
            self.transport.add_peer(target, &node.addr);
        }
        GroupNetwork { transport: self.transport.clone(), group: self.group, target, _config: PhantomData }
    }
}

/// openraft's `RaftNetwork` from one replica of a group to one target broker.
pub struct GroupNetwork<C> {
    transport: Transport,
    group: GroupId,
    target: NodeId,
    _config: PhantomData<fn() -> C>,
}

impl<C> GroupNetwork<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = Node>,
{
    /// One RPC: the request in bincode, the answer openraft's `Result` in bincode.
    async fn rpc<Req, Resp, E>(
        &self,
        kind: RpcKind,
        action: RPCTypes,
        req: &Req,
        option: &RPCOption,
        entries: usize,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let ttl = option.hard_ttl();
        let body = self.transport.call(self.target, Some(self.group), kind, req, ttl).await.map_err(|e| {
            self.rpc_error(e, action, ttl, entries)
        })?;
        let answer: Result<Resp, RaftError<NodeId, E>> = bincode::deserialize(&body).map_err(|e| {
            let e = TransportError::Decode { node: self.target, detail: e.to_string() };
            RPCError::Network(NetworkError::new(&e))
        })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    fn rpc_error<E: std::error::Error>(
        &self,
        e: TransportError,
        action: RPCTypes,
        timeout: Duration,
        entries: usize,
    ) -> RPCError<NodeId, Node, E> {
        match e {
            TransportError::Timeout { .. } => {
                RPCError::Timeout(Timeout { action, id: self.transport.node_id(), target: self.target, timeout })
            }
            // openraft retries with fewer entries.
            TransportError::TooLarge { .. } if action == RPCTypes::AppendEntries && entries > 1 => {
                RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint((entries / 2) as u64))
            }
            // Not connected, connection lost, no such group there (yet), …: openraft
            // backs off before retrying.
            e => RPCError::Unreachable(Unreachable::new(&e)),
        }
    }
}

impl<C> RaftNetwork<C> for GroupNetwork<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = Node>,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        let entries = rpc.entries.len();
        self.rpc(RpcKind::AppendEntries, RPCTypes::AppendEntries, &rpc, &option, entries).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>> {
        self.rpc(RpcKind::InstallSnapshot, RPCTypes::InstallSnapshot, &rpc, &option, 0).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc(RpcKind::Vote, RPCTypes::Vote, &rpc, &option, 0).await
    }
}
