//! The Kafka wire protocol, sans-io: which APIs and versions are served ([`apis`]), frame size
//! checks ([`frame`]), request decoding and response encoding ([`codec`]). Nothing here reads a
//! socket or knows a handler: `server` does the I/O, `api::router` the routing.

pub mod apis;
pub mod codec;
pub mod frame;
