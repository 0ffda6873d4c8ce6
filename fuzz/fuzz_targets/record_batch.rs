//! Feeds arbitrary bytes to record batch validation: it must return, never panic, and never
//! allocate beyond the input plus the 1 MiB decompression cap (run with `-rss_limit_mb` to
//! check the latter).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let records = bytes::Bytes::copy_from_slice(data);
    let _ = palisade::records::validate_batches(&records, 1024 * 1024);
});
