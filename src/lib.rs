//! Fluxo: a message broker that speaks the Apache Kafka wire protocol and keeps
//! its logs in RocksDB.
//!
//! The modules mirror the data path, and data flows one way:
//!
//! ```text
//! server (accept loop) → connection (frames, request order) → protocol (headers, codec)
//!   → handlers (one module per Kafka API: decode, call the domain, encode; the only
//!     place Kafka error codes are decided — handlers::error)
//!   → broker (the domain: Partition, append tickets, fetch, topics)
//!     coordinator (consumer groups and committed offsets)
//!   → storage (RocksDB: key layout, record batches, partition logs, group commit)
//! ```
#![warn(missing_docs)]

pub mod alloc;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod error;
pub mod handlers;
pub mod healthcheck;
pub mod http;
pub mod metrics;
pub mod protocol;
pub mod security;
pub mod server;
pub mod storage;
pub mod telemetry;
