//! The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat, LeaveGroup and
//! the timers that drive them, following Kafka's group coordinator rules.
//!
//! A join or sync that has to wait parks a oneshot sender in the member; the
//! request's future resolves when the rebalance moves on.

use bytes::Bytes;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::group::{ClassicGroup, ClassicMember, ClassicState, JoinTimer};
use crate::coordinator::{ms, ClientInfo, Ctx, Pending};
use crate::error::GroupError;

/// A JoinGroup request.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Member id ("" on a first join).
    pub member_id: String,
    /// group.instance.id of a static member.
    pub instance_id: Option<String>,
    /// Protocol type ("consumer", …).
    pub protocol_type: String,
    /// Protocols (assignors) with metadata, most preferred first.
    pub protocols: Vec<(String, Bytes)>,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// JoinGroup v4+: a first join gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: a rejoining static leader may skip the assignment (KIP-814).
    pub supports_skip_assignment: bool,
    /// Who sent it.
    pub client: ClientInfo,
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    /// Why the request failed (None on success).
    pub error: Option<GroupError>,
    /// The generation joined (-1 on error).
    pub generation: i32,
    /// Protocol type of the group.
    pub protocol_type: Option<String>,
    /// Selected protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// The static leader keeps its assignment (KIP-814).
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// All members (leader only).
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    /// A failed join.
    pub fn failed(error: &GroupError, member_id: &str) -> JoinOutcome {
        JoinOutcome { error: Some(error.clone()), generation: -1, member_id: member_id.to_string(), ..Default::default() }
    }
}

/// A SyncGroup request.
#[derive(Debug, Clone)]
pub struct SyncParams {
    /// Generation the member joined.
    pub generation: i32,
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Protocol type (v5+).
    pub protocol_type: Option<String>,
    /// Protocol name (v5+).
    pub protocol_name: Option<String>,
    /// The leader's assignment per member id.
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    /// Why the request failed (None on success).
    pub error: Option<GroupError>,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Protocol name.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncOutcome {
    /// A failed sync.
    pub fn failed(error: &GroupError) -> SyncOutcome {
        SyncOutcome { error: Some(error.clone()), ..Default::default() }
    }
}

fn is_inconsistent(requested: &Option<String>, current: &Option<String>) -> bool {
    matches!((requested, current), (Some(r), Some(c)) if r != c)
}

impl ClassicGroup {
    /// Handles a JoinGroup.
    pub fn join(&mut self, ctx: &Ctx, p: JoinParams) -> Pending<JoinOutcome> {
        if !self.supports_protocols(&p.protocol_type, &p.protocols) {
            return Pending::Ready(JoinOutcome::failed(&GroupError::InconsistentGroupProtocol, &p.member_id));
        }
        if p.member_id.is_empty() {
            let prefix = p.instance_id.as_deref().unwrap_or(&p.client.client_id);
            let new_id = format!("{prefix}-{}", Uuid::new_v4());
            return match p.instance_id.clone() {
                Some(instance) => match self.static_members.get(&instance).cloned() {
                    Some(old_id) => self.replace_static_member(ctx, p, &old_id, new_id),
                    None => self.add_member(ctx, p, new_id),
                },
                None if p.require_known_member_id => {
                    self.pending_members.insert(new_id.clone(), ctx.now + ms(p.session_timeout_ms));
                    Pending::Ready(JoinOutcome::failed(&GroupError::MemberIdRequired, &new_id))
                }
                None => self.add_member(ctx, p, new_id),
            };
        }
        if self.pending_members.contains_key(&p.member_id) {
            let id = p.member_id.clone();
            return self.add_member(ctx, p, id);
        }
        if let Err(e) = self.validate_member(&p.member_id, p.instance_id.as_deref()) {
            return Pending::Ready(JoinOutcome::failed(&e, &p.member_id));
        }
        let is_leader = self.leader.as_deref() == Some(p.member_id.as_str());
        let unchanged = self.members[&p.member_id].matches(&p.protocols);
        match self.state {
            ClassicState::PreparingRebalance => self.update_member(ctx, p),
            // The member lost its JoinGroup response: resend it.
            ClassicState::CompletingRebalance if unchanged => {
                Pending::Ready(self.join_response(&p.member_id, is_leader, self.leader.clone().unwrap_or_default()))
            }
            // A follower rejoining with unchanged metadata gets the current generation.
            ClassicState::Stable if unchanged && !is_leader => {
                Pending::Ready(self.join_response(&p.member_id, false, self.leader.clone().unwrap_or_default()))
            }
            // Changed metadata, or the leader asking for a rebalance.
            ClassicState::CompletingRebalance | ClassicState::Stable => self.update_member(ctx, p),
            ClassicState::Empty => Pending::Ready(JoinOutcome::failed(&GroupError::UnknownMemberId, &p.member_id)),
        }
    }

    /// The JoinGroup response of the current generation.
    fn join_response(&self, member_id: &str, with_members: bool, leader: String) -> JoinOutcome {
        JoinOutcome {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader,
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: if with_members { self.current_members() } else { Vec::new() },
        }
    }

    /// Members with their metadata for the selected protocol, for the leader.
    fn current_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember { member_id: m.id.clone(), instance_id: m.instance_id.clone(), metadata: m.metadata(&protocol) })
            .collect()
    }

    fn add_member(&mut self, ctx: &Ctx, p: JoinParams, id: String) -> Pending<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        if self.state == ClassicState::PreparingRebalance && self.previous_state == ClassicState::Empty {
            self.new_member_added = true;
        }
        if let Some(instance) = &p.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        // A new member cannot heartbeat before its first response; it is dropped if
        // the rebalance does not complete within the new-member join timeout.
        let member = ClassicMember {
            id: id.clone(),
            instance_id: p.instance_id,
            client_id: p.client.client_id,
            client_host: p.client.client_host,
            session_timeout_ms: p.session_timeout_ms,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            protocols: p.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            heartbeat_deadline: Some(ctx.now + ms(ctx.settings.new_member_join_timeout_ms)),
            is_new: true,
        };
        self.members.insert(id.clone(), member);
        self.pending_members.remove(&id);
        self.maybe_prepare_rebalance_or_complete_join(ctx);
        Pending::Wait(rx)
    }

    fn update_member(&mut self, ctx: &Ctx, p: JoinParams) -> Pending<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let member = self.members.get_mut(&p.member_id).expect("validated member");
        member.protocols = p.protocols;
        member.rebalance_timeout_ms = p.rebalance_timeout_ms;
        member.session_timeout_ms = p.session_timeout_ms;
        member.awaiting_join = Some(tx);
        self.maybe_prepare_rebalance_or_complete_join(ctx);
        Pending::Wait(rx)
    }

    /// A static member rejoined with an unknown member id: it takes over the old
    /// member (which is fenced). In Stable with unchanged protocols there is no rebalance.
    fn replace_static_member(&mut self, ctx: &Ctx, p: JoinParams, old_id: &str, new_id: String) -> Pending<JoinOutcome> {
        let current_leader = self.leader.clone().unwrap_or_default();
        let mut old = self.members.remove(old_id).expect("static member");
        if let Some(tx) = old.awaiting_join.take() {
            let _ = tx.send(JoinOutcome::failed(&GroupError::FencedInstanceId, old_id));
        }
        if let Some(tx) = old.awaiting_sync.take() {
            let _ = tx.send(SyncOutcome::failed(&GroupError::FencedInstanceId));
        }
        self.pending_sync.remove(old_id);
        let (tx, rx) = oneshot::channel();
        let member = ClassicMember {
            id: new_id.clone(),
            instance_id: old.instance_id.clone(),
            client_id: old.client_id,
            client_host: old.client_host,
            session_timeout_ms: p.session_timeout_ms,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            protocols: p.protocols,
            assignment: old.assignment,
            awaiting_join: Some(tx),
            awaiting_sync: None,
            heartbeat_deadline: Some(ctx.now + ms(p.session_timeout_ms)),
            is_new: false,
        };
        self.members.insert(new_id.clone(), member);
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        if let Some(instance) = &old.instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        match self.state {
            ClassicState::Stable if self.select_protocol() == self.protocol_name => {
                self.dirty = true;
                let is_leader = self.leader.as_deref() == Some(new_id.as_str());
                let outcome = if p.supports_skip_assignment {
                    let mut r = self.join_response(&new_id, is_leader, self.leader.clone().unwrap_or_default());
                    r.skip_assignment = is_leader;
                    r
                } else {
                    // Older clients must not reassign: they are told the old id leads.
                    self.join_response(&new_id, false, current_leader)
                };
                let tx = self.members.get_mut(&new_id).and_then(|m| m.awaiting_join.take());
                if let Some(tx) = tx {
                    let _ = tx.send(outcome);
                }
            }
            ClassicState::Stable => self.maybe_prepare_rebalance_or_complete_join(ctx),
            // The leader may already have computed an assignment for the old id.
            ClassicState::CompletingRebalance => self.prepare_rebalance(ctx),
            _ => self.maybe_complete_join_phase(ctx),
        }
        Pending::Wait(rx)
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, ctx: &Ctx) {
        if matches!(self.state, ClassicState::Stable | ClassicState::CompletingRebalance | ClassicState::Empty) {
            self.prepare_rebalance(ctx);
        } else {
            self.maybe_complete_join_phase(ctx);
        }
    }

    /// Starts a rebalance: parked syncs are told to rejoin; the join phase waits for
    /// every member (or the rebalance timeout), or the initial delay for a new group.
    pub(crate) fn prepare_rebalance(&mut self, ctx: &Ctx) {
        if self.state == ClassicState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
            }
            self.propagate_assignment(ctx, Some(&GroupError::RebalanceInProgress));
        }
        self.pending_sync.clear();
        self.sync_timer = None;
        let initial = self.state == ClassicState::Empty;
        if initial {
            let delay = ctx.settings.initial_rebalance_delay_ms as i64;
            let remaining = (self.rebalance_timeout_ms() as i64 - delay).max(0);
            self.join_timer = Some(JoinTimer::Initial { deadline: ctx.now + ms(delay), delay_ms: delay, remaining_ms: remaining });
        }
        self.transition(ClassicState::PreparingRebalance, ctx);
        if !initial {
            if self.has_all_members_joined() {
                self.complete_join(ctx);
            } else {
                self.join_timer = Some(JoinTimer::Rebalance { deadline: ctx.now + ms(self.rebalance_timeout_ms()) });
            }
        }
    }

    fn maybe_complete_join_phase(&mut self, ctx: &Ctx) {
        if self.state == ClassicState::PreparingRebalance
            && self.previous_state != ClassicState::Empty
            && self.has_all_members_joined()
        {
            self.complete_join(ctx);
        }
    }

    /// Ends the join phase: dynamic members that did not rejoin are removed, the
    /// generation advances and every parked join is answered.
    pub(crate) fn complete_join(&mut self, ctx: &Ctx) {
        self.join_timer = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            tracing::info!(member = %id, "member did not rejoin in time; removed");
            self.remove(&id);
        }
        if !self.maybe_elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for them.
            self.join_timer = Some(JoinTimer::Rebalance { deadline: ctx.now + ms(self.rebalance_timeout_ms()) });
            return;
        }
        self.generation += 1;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(ClassicState::Empty, ctx);
            self.dirty = true;
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(ClassicState::CompletingRebalance, ctx);
        let leader = self.leader.clone().unwrap_or_default();
        let everyone = self.current_members();
        let (generation, protocol_type, protocol_name) = (self.generation, self.protocol_type.clone(), self.protocol_name.clone());
        for m in self.members.values_mut() {
            let outcome = JoinOutcome {
                error: None,
                generation,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                leader: leader.clone(),
                skip_assignment: false,
                member_id: m.id.clone(),
                members: if m.id == leader { everyone.clone() } else { Vec::new() },
            };
            if let Some(tx) = m.awaiting_join.take() {
                let _ = tx.send(outcome);
            }
            m.reschedule_heartbeat(ctx.now);
            m.is_new = false;
            self.pending_sync.insert(m.id.clone());
        }
        self.sync_timer = Some((ctx.now + ms(self.rebalance_timeout_ms()), self.generation));
        tracing::info!(generation, members = self.members.len(), protocol = ?self.protocol_name, "group rebalanced");
    }

    /// Keeps the leader if it rejoined, else picks a member that did.
    fn maybe_elect_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader else { return false };
        if self.members.get(leader).map(|m| m.is_awaiting_join()).unwrap_or(false) {
            return true;
        }
        match self.members.values().find(|m| m.is_awaiting_join()) {
            Some(m) => {
                self.leader = Some(m.id.clone());
                true
            }
            None => false,
        }
    }

    /// Answers every parked SyncGroup with the members' assignments (or `error`).
    fn propagate_assignment(&mut self, ctx: &Ctx, error: Option<&GroupError>) {
        for m in self.members.values_mut() {
            if let Some(tx) = m.awaiting_sync.take() {
                let outcome = match error {
                    None => SyncOutcome {
                        error: None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment: m.assignment.clone(),
                    },
                    Some(e) => SyncOutcome::failed(e),
                };
                let _ = tx.send(outcome);
                m.reschedule_heartbeat(ctx.now);
            }
        }
    }

    /// Handles a SyncGroup.
    pub fn sync(&mut self, ctx: &Ctx, p: SyncParams) -> Pending<SyncOutcome> {
        if self.state == ClassicState::Empty {
            return Pending::Ready(SyncOutcome::failed(&GroupError::UnknownMemberId));
        }
        if let Err(e) = self.validate_member(&p.member_id, p.instance_id.as_deref()) {
            return Pending::Ready(SyncOutcome::failed(&e));
        }
        if p.generation != self.generation {
            return Pending::Ready(SyncOutcome::failed(&GroupError::IllegalGeneration));
        }
        if is_inconsistent(&p.protocol_type, &self.protocol_type) || is_inconsistent(&p.protocol_name, &self.protocol_name) {
            return Pending::Ready(SyncOutcome::failed(&GroupError::InconsistentGroupProtocol));
        }
        match self.state {
            ClassicState::PreparingRebalance => Pending::Ready(SyncOutcome::failed(&GroupError::RebalanceInProgress)),
            ClassicState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                self.members.get_mut(&p.member_id).expect("validated").awaiting_sync = Some(tx);
                self.synced(&p.member_id);
                if self.leader.as_deref() == Some(p.member_id.as_str()) {
                    let mut assignments: std::collections::HashMap<String, Bytes> = p.assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = assignments.remove(&m.id).unwrap_or_default();
                    }
                    self.dirty = true;
                    self.propagate_assignment(ctx, None);
                    self.transition(ClassicState::Stable, ctx);
                }
                Pending::Wait(rx)
            }
            ClassicState::Stable => {
                self.synced(&p.member_id);
                let m = &self.members[&p.member_id];
                Pending::Ready(SyncOutcome {
                    error: None,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                })
            }
            ClassicState::Empty => unreachable!("handled above"),
        }
    }

    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_timer = None;
        }
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(&mut self, ctx: &Ctx, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), GroupError> {
        self.validate_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match self.state {
            ClassicState::Empty => Err(GroupError::UnknownMemberId),
            ClassicState::PreparingRebalance => {
                self.members.get_mut(member_id).expect("validated").reschedule_heartbeat(ctx.now);
                Err(GroupError::RebalanceInProgress)
            }
            ClassicState::CompletingRebalance | ClassicState::Stable => {
                self.members.get_mut(member_id).expect("validated").reschedule_heartbeat(ctx.now);
                Ok(())
            }
        }
    }

    /// Handles a LeaveGroup of one or more members: (member id, instance id) each.
    pub fn leave(&mut self, ctx: &Ctx, members: &[(String, Option<String>)]) -> Vec<Result<(), GroupError>> {
        let mut results = Vec::with_capacity(members.len());
        for (member_id, instance_id) in members {
            let result = if member_id.is_empty() {
                // Administrative removal of a static member by instance id.
                match instance_id.as_ref().and_then(|i| self.static_members.get(i)).cloned() {
                    Some(id) => {
                        self.remove_current_member(&id);
                        Ok(())
                    }
                    None => Err(GroupError::UnknownMemberId),
                }
            } else if self.pending_members.remove(member_id).is_some() {
                Ok(())
            } else {
                self.validate_member(member_id, instance_id.as_deref()).map(|()| self.remove_current_member(member_id))
            };
            results.push(result);
        }
        if results.iter().any(Result::is_ok) {
            match self.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => self.maybe_prepare_rebalance_or_complete_join(ctx),
                ClassicState::PreparingRebalance => self.maybe_complete_join_phase(ctx),
                ClassicState::Empty => {}
            }
        }
        results
    }

    /// Removes a member, answering its parked join with UNKNOWN_MEMBER_ID.
    fn remove_current_member(&mut self, member_id: &str) {
        if let Some(tx) = self.members.get_mut(member_id).and_then(|m| m.awaiting_join.take()) {
            let _ = tx.send(JoinOutcome::failed(&GroupError::UnknownMemberId, ""));
        }
        self.remove(member_id);
    }

    /// Runs every due timer: initial delay, rebalance and sync timeouts, sessions.
    pub fn on_timer(&mut self, ctx: &Ctx) {
        if let Some(timer) = self.join_timer.filter(|t| t.deadline() <= ctx.now) {
            match timer {
                JoinTimer::Initial { delay_ms, remaining_ms, .. } if self.new_member_added && remaining_ms != 0 => {
                    // Members are still arriving: extend the delay (up to the rebalance timeout).
                    self.new_member_added = false;
                    let next = (ctx.settings.initial_rebalance_delay_ms as i64).min(remaining_ms);
                    self.join_timer = Some(JoinTimer::Initial {
                        deadline: ctx.now + ms(next),
                        delay_ms: next,
                        remaining_ms: (remaining_ms - delay_ms).max(0),
                    });
                }
                _ => self.complete_join(ctx),
            }
        }
        if let Some((deadline, generation)) = self.sync_timer {
            if deadline <= ctx.now {
                self.sync_timer = None;
                let syncing = matches!(self.state, ClassicState::CompletingRebalance | ClassicState::Stable);
                if generation == self.generation && syncing && !self.pending_sync.is_empty() {
                    let missing: Vec<String> = self.pending_sync.iter().cloned().collect();
                    tracing::info!(members = ?missing, "members did not sync in time; removed");
                    for id in missing {
                        self.remove(&id);
                    }
                    self.prepare_rebalance(ctx);
                }
            }
        }
        let expired: Vec<String> =
            self.pending_members.iter().filter(|(_, d)| **d <= ctx.now).map(|(id, _)| id.clone()).collect();
        for id in expired {
            self.pending_members.remove(&id);
            if self.state == ClassicState::PreparingRebalance && self.has_all_members_joined() {
                self.complete_join(ctx);
            }
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= ctx.now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            let Some(member) = self.members.get_mut(&id) else { continue };
            if member.has_satisfied_heartbeat() {
                member.heartbeat_deadline = None;
                continue;
            }
            tracing::info!(member = %id, "session expired; member removed");
            self.remove_current_member(&id);
            match self.state {
                ClassicState::Stable | ClassicState::CompletingRebalance => self.maybe_prepare_rebalance_or_complete_join(ctx),
                ClassicState::PreparingRebalance if self.has_all_members_joined() => self.complete_join(ctx),
                _ => {}
            }
        }
    }

    /// Whether an offset commit with this generation and member is accepted.
    pub fn validate_offset_commit(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> Result<(), GroupError> {
        if generation < 0 && self.state == ClassicState::Empty {
            // An admin client or a consumer without group management.
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
            self.validate_member(member_id, instance_id)?;
            if generation != self.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if self.state != ClassicState::Empty {
            return Err(GroupError::UnknownMemberId);
        }
        if self.state == ClassicState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        Ok(())
    }

    /// The DescribeGroups view: members with metadata and assignment when Stable.
    pub fn describe(&self) -> crate::coordinator::GroupDescription {
        let stable = self.state == ClassicState::Stable;
        let protocol = self.protocol_name.clone().unwrap_or_default();
        crate::coordinator::GroupDescription {
            state: self.state.name().to_string(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable { protocol.clone() } else { String::new() },
            members: self
                .members
                .values()
                .map(|m| crate::coordinator::MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable { m.metadata(&protocol) } else { Bytes::new() },
                    assignment: if stable { m.assignment.clone() } else { Bytes::new() },
                })
                .collect(),
        }
    }

    /// A commit in Stable or PreparingRebalance keeps the member's session alive.
    pub fn commit_keeps_alive(&mut self, ctx: &Ctx, member_id: &str) {
        if matches!(self.state, ClassicState::Stable | ClassicState::PreparingRebalance) {
            if let Some(m) = self.members.get_mut(member_id) {
                m.reschedule_heartbeat(ctx.now);
            }
        }
    }
}
