//! Palisade: a Kafka-compatible message broker with security built in.
//!
//! # Layout
//!
//! The data path reads top to bottom:
//!
//! - [`server::listener`]: accepts TCP connections, bounded by a semaphore.
//! - [`server::connection`]: one task per connection; reads frames ([`server::frame`]: the
//!   size prefix checked before any allocation), writes responses in order.
//! - [`memory_budget`]: request and response bytes held in memory, bounded broker-wide.
//! - [`protocol`]: sans-io: the API table ([`protocol::apis`]), frame size checks, request
//!   decoding and response encoding ([`protocol::codec`]).
//! - [`api::router`]: the one router (SASL included) and the one encode point.
//! - [`api`]: one module per Kafka API family (`produce`, `fetch`, `metadata`, ...);
//!   [`api::produce`] owns the produce path (checks, plugins, pipeline, append order).
//! - [`records`]: record batch validation (CRC-32C, lengths, bounded decompression); the one
//!   v2 header layout ([`records::layout`]) that storage and plugins read too.
//! - [`storage`]: partition logs on disk, group commit, recovery, retention, tamper chain.
//! - [`group`]: the consumer group coordinator and committed offsets.
//! - [`plugin`]: WebAssembly plugin chains run on produce and fetch.
//! - [`gateway`]: gateway mode's addressing: a port or an SNI name per upstream node, and every
//!   broker address in upstream responses rewritten to the gateway's.
//!
//! [`topic_tags`]: the tags policies key on, kept in front of the backend (in the log's
//! topic configs in broker mode, in a file of their own in gateway mode).
//!
//! Who asks: [`principal`] (an identity and how it was established) and [`request::Caller`]
//! (that identity with its connection), read by [`api::access`] (the one authorization
//! enforcement point), [`authz`], [`audit`] and [`plugin`].
//!
//! Gateway mode: [`upstream`] reaches an existing Kafka cluster (connections, login, the node
//! map from its Metadata, the `[gateway]` settings).
//!
//! [`broker::Broker`] holds the shared state; [`config`] the TOML configuration;
//! [`cli`] the `palisade` subcommands. [`reload`] watches the files the broker serves from
//! (policies, TLS material, credentials, plugins) and swaps in each new generation.
//! Files on disk are replaced through [`atomic_file`] only.

pub mod api;
pub mod atomic_file;
pub mod audit;
pub mod authz;
pub mod backend;
pub mod broker;
pub mod cli;
pub mod config;
pub mod frame_io;
pub mod gateway;
pub mod group;
pub mod log_escape;
pub mod memory_budget;
pub mod metrics;
pub mod plugin;
pub mod principal;
pub mod private_file;
pub mod protocol;
pub mod quota;
pub mod records;
pub mod reload;
pub mod request;
pub mod sasl;
pub mod server;
pub mod storage;
pub mod tls;
pub mod topic_tags;
pub mod upstream;
