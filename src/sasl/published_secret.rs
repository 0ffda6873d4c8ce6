//! Fake-salt secrets that were made public and must never guard a store.
//!
//! Early versions of Palisade's repository tracked a `credentials.json`, so every checkout of
//! them shared its secret: with it, anyone can compute the fake salt an unknown user gets and
//! tell which user names exist. Only the SHA-256 of such a secret is kept here, never the value.

use sha2::{Digest, Sha256};

/// SHA-256 (hex) of each secret that was published.
const PUBLISHED_SECRET_SHA256: &[&str] =
    &["37e11c8f43262f13f0d9ffef40fd1e64d6795b40193326345ef78dfb7a65f3a5"];

/// True if `secret` is one that was published.
pub fn is_published(secret: &[u8]) -> bool {
    let digest = hex::encode(Sha256::digest(secret));
    PUBLISHED_SECRET_SHA256.contains(&digest.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_secrets_are_not_published() {
        for _ in 0..8 {
            let secret = crate::sasl::mechanism::random_bytes(32).unwrap();
            assert!(!is_published(&secret));
        }
    }

    #[test]
    fn digests_are_lowercase_sha256_hex() {
        for digest in PUBLISHED_SECRET_SHA256 {
            assert_eq!(digest.len(), 64);
            assert!(digest
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        }
    }
}
