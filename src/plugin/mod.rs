//! WebAssembly plugins: per-topic chains that see every produced batch before it is stored and
//! every fetched batch before it is returned (issue 5). The contract is `sdk/wit/plugin.wit`.
//!
//! # Layout
//!
//! - [`engine`]: the process's wasmtime engine (epoch ticker, pooling allocator).
//! - [`bindings`]: host bindings generated from the WIT.
//! - [`validate`]: which imports and exports a component may have; the contract version.
//! - [`manifest`] and [`glob`]: `NAME.toml` beside `NAME.wasm`; topic patterns.
//! - [`state`] and [`host_fns`]: a store's data and the host functions (logging, crypto by
//!   key id, the policy question) with their permission checks.
//! - [`loaded`]: one compiled, pre-instantiated plugin with its instance pool, deadline and
//!   memory limit.
//! - [`registry`], [`loader`], [`host`]: generations of plugins, loading the folder, the
//!   [`PluginHost`] the broker holds (hot reload through [`crate::reload`]).
//! - [`keyring`], [`envelope`]: named keys (0600 file) and per-topic wrapped data keys.
//! - [`oracle`]: [`PolicyOracle`], the `authorize` host call's question; the broker answers it
//!   at its one enforcement point (`api::access::PluginAccess`).
//! - [`batch`], [`chain`]: v2 batches <-> record lists, running a chain (the produce and fetch
//!   handlers call it: `api::plugins`, `api::produce::plugins`).
//! - [`settings`]: the `[plugins]` config section.

pub mod batch;
pub mod bindings;
pub mod chain;
pub mod engine;
pub mod envelope;
pub mod glob;
pub mod host;
pub mod host_fns;
pub mod keyring;
pub mod loaded;
pub mod loader;
pub mod manifest;
pub mod oracle;
pub mod registry;
pub mod settings;
pub mod state;
pub mod validate;

pub use chain::Rejection;
pub use host::{PluginError, PluginHost, PluginHostBuilder};
pub use keyring::{Keyring, SharedKeyring};
pub use loaded::{CallError, CallInput, CallLimits, LoadedPlugin};
pub use manifest::Manifest;
pub use oracle::PolicyOracle;
pub use settings::PluginSettings;
