//! Coordinator tests: each asserts on what a client would receive.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod helpers;
mod membership;
mod offsets;
