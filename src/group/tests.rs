//! Coordinator tests: each asserts on what a client would receive.

mod helpers;
mod membership;
mod offsets;
