//! Feeds arbitrary bytes to the byte-list decoder (`palisade_sdk::byte_list`) the host reads a
//! plugin's `encrypt-many` / `decrypt-many` arguments with: a hostile plugin controls these
//! bytes. It must return, never panic, never allocate from an unchecked length, and every list
//! it accepts must re-encode to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_sdk::byte_list::{encode, ByteList};

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = ByteList::parse(data) {
        assert_eq!(list.iter().len(), list.len());
        assert_eq!(encode(list.iter()).unwrap(), data);
    }
});
