//! The `fluxo` binary: parse settings, open the data directory, serve Kafka clients.

use std::process::ExitCode;

use clap::Parser;

use fluxo::broker::Broker;
use fluxo::config::{Cli, Command, Config};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: fluxo::alloc::BrokerAllocator = fluxo::alloc::BrokerAllocator;

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    let command = cli.command.take();
    let config = match Config::load(cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fluxo: {e}");
            // Docker reserves health check exit code 2: unhealthy is 1.
            return ExitCode::from(if command == Some(Command::Healthcheck) { 1 } else { 2 });
        }
    };
    if command == Some(Command::Healthcheck) {
        // On stdout, where `docker inspect` shows the last probes' output.
        return match fluxo::healthcheck::probe(&config) {
            Ok(what) => {
                println!("healthy: {what}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                println!("unhealthy: {why}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = fluxo::telemetry::init(&config) {
        eprintln!("fluxo: cannot set up logging: {e}");
    }
    // Client connections and RocksDB share the open-file limit: take all the
    // system allows; the connection cap (server.rs) keeps a reserve for storage.
    match fluxo::server::raise_fd_limit() {
        Some(limit) => tracing::info!(fd_limit = limit, "open-file limit"),
        None => tracing::warn!("cannot read the open-file limit; connections are not capped by it"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fluxo: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    if let Err(e) = std::fs::create_dir_all(&config.data_dir) {
        eprintln!("fluxo: data_dir {}: {e}", config.data_dir.display());
        return ExitCode::from(2);
    }
    let broker = match Broker::open(config) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("fluxo: cannot open data_dir: {e}");
            return ExitCode::from(2);
        }
    };
    let listeners = match fluxo::security::bind_listeners(broker.config(), broker.scram_users()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fluxo: {e}");
            return ExitCode::from(2);
        }
    };
    // Cluster mode (docs/cluster.md §3, §15): with cluster_seeds, the internal transport and
    // this broker's member of the metadata group; joining runs in the background.
    let cluster = match fluxo::broker::cluster::start_cluster(&broker).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fluxo: cannot join the cluster: {e}");
            return ExitCode::from(2);
        }
    };
    // Without seeds, an internal listener alone serves the transport (no metadata group).
    let transport = match fluxo::cluster::transport::TransportSettings::from_config(broker.config()) {
        Some(settings) if cluster.is_none() => match fluxo::cluster::transport::Transport::start(settings).await {
            Ok(t) => Some(t),
            Err(e) => {
                eprintln!("fluxo: internal_listener {}: {e}", broker.config().internal_listener);
                return ExitCode::from(2);
            }
        },
        _ => None,
    };
    let tls: Vec<_> = listeners.iter().filter_map(|(_, _, s)| s.tls.clone()).collect();
    if !tls.is_empty() {
        tokio::spawn(fluxo::security::tls::reload_on_sighup(tls));
    }
    tracing::info!(
        data_dir = %broker.config().data_dir.display(),
        node_id = broker.node_id(),
        fsync = broker.config().fsync,
        "fluxo broker started"
    );
    if !broker.config().metrics_listener.is_empty() {
        let addr = broker.config().metrics_listener.clone();
        match TcpListener::bind(&addr).await {
            Ok(l) => {
                tracing::info!(metrics = %addr, "metrics endpoint started");
                if let Ok(bound) = l.local_addr() {
                    fluxo::http::warn_if_exposed(&bound, &broker.config().metrics_token);
                }
                tokio::spawn(fluxo::http::serve(broker.clone(), l));
            }
            // Metrics are not worth refusing Kafka traffic for (a second local
            // broker on the default port, say): say so loudly and go on.
            Err(e) => tracing::error!(metrics = %addr, error = %e, "metrics endpoint disabled: cannot bind"),
        }
    }
    let check = std::time::Duration::from_millis(broker.config().producer_id_expiration_check_interval_ms as u64);
    tokio::spawn(fluxo::storage::topic_store::expire_producers_every(broker.clone(), |b: &Broker| b.topic_lookup(), check, broker.shutdown_signal().clone()));
    let retention = std::time::Duration::from_millis(broker.config().log_retention_check_interval_ms as u64);
    tokio::spawn(fluxo::broker::retention::enforce_retention_every(broker.clone(), retention));
    tokio::spawn(fluxo::broker::compaction::run_cleaner(broker.clone(), broker.shutdown_signal().clone()));
    let txn_check = std::time::Duration::from_millis(broker.config().transaction_abort_timed_out_transaction_cleanup_interval_ms as u64);
    tokio::spawn(fluxo::broker::txn::run_txn_timers(broker.clone(), txn_check));
    fluxo::server::run(broker, listeners, shutdown_signal()).await;
    if let Some(t) = transport {
        t.shutdown().await;
    }
    if let Some(node) = cluster {
        node.shutdown().await;
    }
    ExitCode::SUCCESS
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown signal received");
}
