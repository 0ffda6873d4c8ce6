//! Palisade plugin SDK: write a broker plugin as one Rust type, compile it to a Wasm component,
//! unit-test it natively.
//!
//! ```
//! use palisade_sdk::{export_plugin, CallContext, Plugin, ProduceVerdict, RecordList, Rejection};
//!
//! struct NoEmptyValues;
//!
//! impl Plugin for NoEmptyValues {
//!     fn init(_config: &str) -> Result<Self, String> {
//!         Ok(NoEmptyValues)
//!     }
//!
//!     fn on_produce(&self, _ctx: &CallContext, records: &RecordList<'_>) -> ProduceVerdict {
//!         let rejections: Vec<Rejection> = records
//!             .iter()
//!             .enumerate()
//!             .filter(|(_, r)| r.value.map_or(true, <[u8]>::is_empty))
//!             .map(|(i, _)| Rejection::new(i, "empty value"))
//!             .collect();
//!         ProduceVerdict::reject_or_accept(rejections)
//!     }
//! }
//!
//! export_plugin!(NoEmptyValues);
//! ```
//!
//! # Layout
//! - `records`: the record-list encoding of `wit/plugin.wit`, read without copying and written
//!   by a builder. Shared by the broker (host) and plugins (guests) so both sides agree byte
//!   for byte. Built without the `guest` feature too (the broker's view).
//! - `signature`: the canonical bytes a record signature covers (no crypto; also built without
//!   `guest`, for producers and the broker's tests).
//!
//! Everything below needs the `guest` feature (on by default).
//! - `verdict`: the plain Rust types a plugin sees and returns (`CallContext`, the verdicts).
//! - `plugin`: the `Plugin` trait, one method per hook.
//! - `host`: the functions the broker gives plugins (logging, crypto by key id, authorization).
//!   On wasm32 they call the host through the component model; elsewhere they run in-process
//!   against the test keyring and answers set up with `stub`.
//! - `stub` (not on wasm32): set up the native stub's keyring, `authorize` answers and captured
//!   logs from a unit test.
//! - `export`: the `export_plugin!` macro and the glue between the WIT exports and `Plugin`.
//! - `bindings` (wasm32 only): the wit-bindgen output; the only unsafe code in the crate.
pub mod byte_list;
pub mod records;
pub mod signature;

#[cfg(feature = "guest")]
mod verdict;
#[cfg(feature = "guest")]
pub use verdict::{CallContext, FetchVerdict, LogLevel, ProduceVerdict, Rejection};

#[cfg(feature = "guest")]
mod plugin;
#[cfg(feature = "guest")]
pub use plugin::Plugin;

#[cfg(feature = "guest")]
pub mod host;

#[cfg(all(feature = "guest", not(target_arch = "wasm32")))]
pub mod stub;

#[cfg(feature = "guest")]
mod export;

#[cfg(all(feature = "guest", target_arch = "wasm32"))]
#[doc(hidden)]
pub mod bindings;

#[cfg(feature = "guest")]
pub use records::{OwnedRecord, Record, RecordList, RecordListBuilder};

/// What `export_plugin!` expands to refers to these; not part of the public API.
#[cfg(feature = "guest")]
#[doc(hidden)]
pub mod __private {
    /// The module the generated `export!` macro looks the binding types up in.
    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings;
    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::{export, Guest, WitCallContext, WitFetchVerdict, WitProduceVerdict};
    pub use crate::export::{on_fetch, on_init, on_produce};
    #[cfg(target_arch = "wasm32")]
    pub use crate::export::{wit_on_fetch, wit_on_produce};
    #[cfg(target_arch = "wasm32")]
    pub use wit_bindgen;
}

// Lets the wit-bindgen output name its runtime as `::palisade_sdk::__private::wit_bindgen`, a
// path that also resolves inside the plugin crates the export macro expands into.
#[cfg(all(feature = "guest", target_arch = "wasm32"))]
extern crate self as palisade_sdk;
