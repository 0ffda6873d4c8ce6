//! Feeds arbitrary bytes to the plugin record-list decoder (`palisade_sdk::records`): the host
//! parses what plugins return, so a hostile plugin controls these bytes. It must return, never
//! panic, never allocate from an unchecked length, and every list it accepts must re-encode to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use palisade_sdk::records::{RecordList, RecordListBuilder};

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = RecordList::parse(data) {
        let mut again = RecordListBuilder::new();
        for record in &list {
            again.push_record(&record).unwrap();
        }
        assert_eq!(again.finish(), data);
    }
});
