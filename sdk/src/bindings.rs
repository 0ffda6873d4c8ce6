//! The wit-bindgen output for `wit/plugin.wit` (world `plugin`). Generated ABI code is unsafe by
//! nature; this module is the only place the crate allows it.
#![allow(unsafe_code)]
#![allow(
    clippy::all,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

wit_bindgen::generate!({
    path: "wit",
    world: "plugin",
    pub_export_macro: true,
    export_macro_name: "export",
    runtime_path: "::palisade_sdk::__private::wit_bindgen::rt",
    default_bindings_module: "::palisade_sdk::__private::bindings",
});

pub use palisade::plugin::types::{
    CallContext as WitCallContext, FetchVerdict as WitFetchVerdict,
    ProduceVerdict as WitProduceVerdict,
};
