//! Broker liveness (docs/cluster.md §10): every broker pings every peer once per interval
//! over its connection; a peer answering is live, a peer missing [`MISSED_TO_DEAD`] pings
//! in a row is suspected dead. Partition groups watch the live set to trigger elections.

use std::sync::Arc;

use tokio::time::MissedTickBehavior;

use super::peer::Peer;
use super::Inner;

/// Consecutive missed pings after which a peer is suspected dead.
pub const MISSED_TO_DEAD: u32 = 3;
/// Consecutive missed pings after which the connection to a peer is replaced (a busy peer
/// may miss a few; one that misses this many is not reading its socket).
pub const MISSED_TO_RECONNECT: u32 = 10;

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
                // A connected peer that does not answer (stopped process, full socket):
                // start over on a new connection rather than queue behind the old one.
                if missed % MISSED_TO_RECONNECT == 0 {
                    peer.reset_connection();
                }
            }
        }
    }
    inner.set_live(peer.node, false);
}
