//! Behaviour tests of the storage engine, on real files in temporary directories.

mod batch_header;
mod durability;
mod log;
mod producers;
mod recovery;
mod retention;
mod topics;
mod verify;

use std::path::Path;

use super::test_util::{batch_bytes, Spec};
use super::{Durability, Partition, TopicConfig};

pub fn small_segments(bytes: u64) -> TopicConfig {
    TopicConfig {
        segment_bytes: bytes,
        ..TopicConfig::default()
    }
}

pub fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(&format!(".{ext}")))
        .collect();
    names.sort();
    names
}

pub async fn append_n(p: &Partition, n: usize, value_len: usize) -> Vec<Vec<u8>> {
    let mut originals = Vec::new();
    for i in 0..n {
        let bytes = batch_bytes(Spec::new(3, value_len).fill(b'a' + (i % 26) as u8));
        let info = p
            .append(super::test_util::append_batch(&bytes), Durability::Durable)
            .await
            .unwrap();
        assert_eq!(info.base_offset, (i * 3) as i64);
        originals.push(bytes);
    }
    originals
}

/// The stored form of an original batch: only the base offset differs.
pub fn same_batch(stored: &[u8], original: &[u8]) -> bool {
    stored.len() == original.len() && stored[8..] == original[8..]
}
