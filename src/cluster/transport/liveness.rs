//! Broker liveness (docs/cluster.md §10): every broker pings every peer once per interval
//! over its connection; a peer answering is live, a peer missing [`MISSED_TO_DEAD`] pings
//! in a row is suspected dead. Partition groups watch the live set to trigger elections.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;

use super::peer::Peer;
use super::Inner;

/// Consecutive missed pings after which a peer is suspected dead.
pub const MISSED_TO_DEAD: u32 = 3;

/// Pings `peer` every liveness interval until it is removed or the transport stops,
/// keeping its membership of the live set current.
pub(super) async fn watch_peer(inner: Arc<Inner>, peer: Arc<Peer>) {
    let interval = inner.settings.liveness_interval;
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut missed = 0u32;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = peer.stop.cancelled() => break,
        }
        // A ping answered later than the interval counts as missed.
        match inner.ping(&peer, interval).await {
            Ok(()) => {
                missed = 0;
                if inner.set_live(peer.node, true) {
                    tracing::info!(peer = peer.node, "peer is alive");
                }
            }
            Err(e) => {
                missed = missed.saturating_add(1);
                if missed >= MISSED_TO_DEAD && inner.set_live(peer.node, false) {
                    tracing::warn!(peer = peer.node, missed, error = %e, "peer suspected dead");
                }
            }
        }
    }
    inner.set_live(peer.node, false);
}
