//! Classic consumer groups: the group's data and persisted form (`group`) and the
//! rebalance protocol that drives it (`protocol`: JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup and their timers).

mod group;
mod protocol;

pub use group::*;
pub use protocol::*;
