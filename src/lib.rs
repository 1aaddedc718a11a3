//! Fluxo: a message broker that speaks the Apache Kafka wire protocol and keeps
//! its logs in RocksDB.
//!
//! The modules mirror the data path:
//! `server` (accept loop) → `connection` (frames, ordering) → `protocol`
//! (headers, codec) → `handlers` (one module per Kafka API) → `broker`
//! (shared state, coordinators) → `storage` (RocksDB-backed partition logs).

pub mod alloc;
pub mod broker;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod error;
pub mod handlers;
pub mod healthcheck;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod server;
pub mod storage;
pub mod telemetry;
