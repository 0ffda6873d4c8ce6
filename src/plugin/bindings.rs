//! Host bindings generated from the contract, `sdk/wit/plugin.wit`.

#![allow(missing_docs, clippy::all)]

wasmtime::component::bindgen!({
    world: "plugin",
    path: "sdk/wit/plugin.wit",
});

pub use self::palisade::plugin::types::{LogLevel, RecordRejection};
