//! The getrandom 0.3 backend for this plugin (selected by `--cfg getrandom_backend="custom"`,
//! set for wasm32-wasip2 in the repository's `.cargo/config.toml`).
//!
//! Plugins get no randomness from the broker: WASI's random imports trap. The only user here is
//! ahash, inside `jsonschema`, which seeds the hash maps of the compiled schema. Those maps are
//! keyed by the schema's own names, not by record data, so a fixed, public seed costs nothing;
//! a varying sequence keeps maps created one after another from sharing a seed. Nothing in this
//! plugin needs unpredictable bytes, and nothing else may use these.

use std::sync::atomic::{AtomicU64, Ordering};

static STATE: AtomicU64 = AtomicU64::new(0x5061_6c69_7361_6465); // "Palisade"

/// SplitMix64: a fixed sequence of well-mixed 64-bit words.
fn next_word() -> u64 {
    let mut z = STATE
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn fill(dest: &mut [u8]) {
    for chunk in dest.chunks_mut(8) {
        let word = next_word().to_le_bytes();
        for (d, s) in chunk.iter_mut().zip(word) {
            *d = s;
        }
    }
}

/// # Safety
/// getrandom calls this with a pointer to `len` writable bytes.
#[allow(unsafe_code)]
#[no_mangle]
unsafe extern "Rust" fn __getrandom_v03_custom(
    dest: *mut u8,
    len: usize,
) -> Result<(), getrandom::Error> {
    // SAFETY: getrandom passes a valid, exclusive buffer of `len` bytes.
    let dest = unsafe { std::slice::from_raw_parts_mut(dest, len) };
    fill(dest);
    Ok(())
}
