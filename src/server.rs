//! The accept loop: one task per connection, connection caps, graceful shutdown on a signal.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::broker::{Broker, Endpoint};
use crate::connection::{self, ConnectionSettings};
use crate::metrics::Metrics;
use crate::protocol::frames::FramePool;
use crate::security::ListenerSecurity;

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// File descriptors kept back from client connections for storage: RocksDB's
/// `max_open_files` (2048, set in `storage::Store::open`) plus headroom for what
/// it opens beyond its table cache (WAL files, MANIFEST, LOCK, info log, the
/// outputs of flushes and compactions in progress) and for the broker itself
/// (listeners, the metrics endpoint and its clients, the runtime's epoll and
/// event fds, stdio).
const STORAGE_FD_RESERVE: u64 = 2048 + 256;

/// At most one "connection refused" warning per this interval; the others are counted.
const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Raises the soft limit on open files to the hard limit, so that the
/// connection cap derived from it is as high as the system allows; returns the
/// limit now in force (`None` where it cannot be read).
pub fn raise_fd_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        Some(limit.rlim_cur as u64)
    }
}

/// The open-file limit in force, if it can be read.
fn fd_limit() -> Option<u64> {
    // SAFETY: getrlimit only writes the struct we pass.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        (libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0).then_some(limit.rlim_cur as u64)
    }
}

/// The most client connections an open-file limit of `limit` leaves room for:
/// the limit minus [`STORAGE_FD_RESERVE`], but never less than half of it (a
/// small limit still serves some clients and leaves storage the other half).
pub fn connection_cap_for_fd_limit(limit: u64) -> usize {
    let reserve = STORAGE_FD_RESERVE.min(limit / 2);
    usize::try_from(limit - reserve).unwrap_or(usize::MAX)
}

/// Which cap refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    Total,
    PerIp,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerIp => "max_connections_per_ip",
        }
    }
}

/// Open connections, in total and per client IP, against their caps.
#[derive(Debug)]
struct ConnectionLimits {
    max_total: usize,
    /// 0: no per-IP cap.
    max_per_ip: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One admitted connection; gives its place back on drop.
struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Counts a connection from `ip` in, or says which cap it would exceed.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self.open.lock();
        let (total, per_ip) = &mut *open;
        if *total >= self.max_total {
            return Err(Refusal::Total);
        }
        let from_ip = per_ip.entry(ip).or_insert(0);
        if self.max_per_ip > 0 && *from_ip >= self.max_per_ip {
            return Err(Refusal::PerIp);
        }
        *from_ip += 1;
        *total += 1;
        Ok(Slot { limits: self.clone(), ip })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock();
        let (total, per_ip) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

/// A warning that is logged at most once per [`REJECT_LOG_INTERVAL`], with the
/// number of occurrences it stands for.
#[derive(Default)]
struct RateLimitedWarn {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedWarn {
    fn refused(&mut self, refusal: Refusal, peer: std::net::SocketAddr, limit: usize) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < REJECT_LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            %peer,
            reason = refusal.reason(),
            limit,
            suppressed_since_last = self.suppressed,
            "connection limit reached: closing new connection"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// The connection caps this configuration asks for: `max_connections`, else one
/// derived from the open-file limit in force.
fn limits_from_config(broker: &Broker) -> ConnectionLimits {
    let config = broker.config();
    let fd_cap = fd_limit().map(connection_cap_for_fd_limit);
    let max_total = match (config.max_connections, fd_cap) {
        (0, Some(cap)) => cap,
        (0, None) => usize::MAX,
        (n, Some(cap)) if n > cap => {
            tracing::warn!(
                max_connections = n,
                fd_limit = fd_limit().unwrap_or(0),
                "max_connections leaves storage fewer than {STORAGE_FD_RESERVE} spare file descriptors"
            );
            n
        }
        (n, _) => n,
    };
    tracing::info!(
        max_connections = max_total,
        max_connections_per_ip = config.max_connections_per_ip,
        connections_max_idle_ms = config.connections_max_idle_ms,
        queued_max_request_bytes = config.queued_max_request_bytes,
        fd_limit = fd_limit().unwrap_or(0),
        "connection limits"
    );
    ConnectionLimits { max_total, max_per_ip: config.max_connections_per_ip, open: Mutex::new((0, HashMap::new())) }
}

/// Accepts connections on every listener until `shutdown` resolves, then stops
/// accepting, lets connections answer what they have in flight, and flushes.
/// Each listener carries the address its clients are told to use. A connection
/// over `max_connections` or `max_connections_per_ip` is accepted and closed at once.
pub async fn run(
    broker: Arc<Broker>,
    listeners: Vec<(TcpListener, Arc<Endpoint>, Arc<ListenerSecurity>)>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let limits = Arc::new(limits_from_config(&broker));
    let settings = ConnectionSettings {
        // Clamped to a year: beyond that it only risks overflowing a deadline.
        max_idle: Duration::from_millis(broker.config().connections_max_idle_ms.min(365 * 24 * 3600 * 1000)),
        pool: FramePool::new(broker.config().queued_max_request_bytes, broker.metrics().request_pool_bytes.clone()),
    };
    let mut refusals = RateLimitedWarn::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            (accepted, endpoint, security) = accept_any(&listeners) => match accepted {
                Ok((socket, peer)) => match limits.admit(peer.ip()) {
                    Ok(slot) => {
                        let span = tracing::info_span!("conn", %peer);
                        let serve = connection::serve(broker.clone(), endpoint, security, socket, peer, stop_rx.clone(), settings.clone());
                        connections.spawn(async move {
                            serve.await;
                            drop(slot);
                        }.instrument(span));
                    }
                    Err(refusal) => {
                        // Counted before the close, so whoever sees the close sees the count.
                        broker.metrics().connections_rejected.get_or_create(&Metrics::reason(refusal.reason())).inc();
                        drop(socket);
                        let limit = match refusal {
                            Refusal::Total => limits.max_total,
                            Refusal::PerIp => limits.max_per_ip,
                        };
                        refusals.refused(refusal, peer, limit);
                    }
                },
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    tracing::info!(connections = connections.len(), "shutting down: draining connections");
    drop(listeners);
    let _ = stop_tx.send(true);
    broker.begin_shutdown();
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!("connections still busy after {DRAIN_TIMEOUT:?}; closing them");
        connections.abort_all();
    }
    if let Err(e) = broker.flush() {
        tracing::error!(error = %e, "final flush failed");
    }
    tracing::info!("shutdown complete");
}

/// The next connection on any listener, with that listener's endpoint.
#[allow(clippy::type_complexity)]
async fn accept_any(
    listeners: &[(TcpListener, Arc<Endpoint>, Arc<ListenerSecurity>)],
) -> (std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)>, Arc<Endpoint>, Arc<ListenerSecurity>) {
    let accepts =
        listeners.iter().map(|(l, e, s)| Box::pin(async move { (l.accept().await, e.clone(), s.clone()) }));
    futures::future::select_all(accepts).await.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_cap_keeps_storage_reserve_or_half_of_a_small_limit() {
        assert_eq!(connection_cap_for_fd_limit(1_048_576), 1_048_576 - 2304);
        assert_eq!(connection_cap_for_fd_limit(65_536), 65_536 - 2304);
        assert_eq!(connection_cap_for_fd_limit(1024), 512);
        assert_eq!(connection_cap_for_fd_limit(256), 128);
        assert_eq!(connection_cap_for_fd_limit(0), 0);
    }

    #[test]
    fn limits_count_total_and_per_ip_and_release_on_drop() {
        let limits =
            Arc::new(ConnectionLimits { max_total: 3, max_per_ip: 2, open: Mutex::new((0, HashMap::new())) });
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Refusal::PerIp));
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Refusal::Total));
        drop(a1);
        let _a3 = limits.admit(a).unwrap();
        assert_eq!(limits.open.lock().1.get(&a), Some(&2));
    }
}
