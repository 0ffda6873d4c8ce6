//! Any bytes as a request frame body: header peek, table lookup and full decode must never
//! panic or allocate beyond the frame (see vendor/kafka-protocol/PATCHED.md).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use palisade::protocol::{apis, codec};

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    let Ok(prefix) = codec::peek_header(&frame) else { return };
    let Some(entry) = apis::lookup(prefix.api_key) else { return };
    if prefix.api_version < entry.min || prefix.api_version > entry.max {
        return;
    }
    let _ = codec::decode_request(entry.key, prefix.api_version, frame);
});
