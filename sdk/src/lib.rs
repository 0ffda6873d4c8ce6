//! Palisade plugin SDK.
//!
//! # Layout
//! - `records`: the record-list encoding of `wit/plugin.wit`, read without copying and written
//!   by a builder. Shared by the broker (host) and plugins (guests) so both sides agree byte
//!   for byte.
pub mod records;
