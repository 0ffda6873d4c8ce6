//! The SCRAM mechanisms and the key derivations they share (RFC 5802 section 3).
//!
//! The derivations are generic over [`ScramHash`]; [`Mechanism`] picks the hash at run time.
//! Nothing here keeps a password: callers pass it in and drop it.

use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};

use super::SaslError;

/// A SCRAM mechanism: SCRAM-SHA-256 (RFC 7677) or SCRAM-SHA-512.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Mechanism {
    /// Both mechanisms, strongest first.
    pub const ALL: [Mechanism; 2] = [Mechanism::ScramSha512, Mechanism::ScramSha256];

    /// The IANA name, as sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    /// Parses an IANA name (exact, upper case as Kafka sends it).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::ScramSha256),
            "SCRAM-SHA-512" => Some(Mechanism::ScramSha512),
            _ => None,
        }
    }

    /// The `mechanism` byte of Alter/DescribeUserScramCredentials (1 = SHA-256, 2 = SHA-512).
    pub fn kafka_type(self) -> i8 {
        match self {
            Mechanism::ScramSha256 => 1,
            Mechanism::ScramSha512 => 2,
        }
    }

    /// Parses the `mechanism` byte of Alter/DescribeUserScramCredentials.
    pub fn from_kafka_type(value: i8) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.kafka_type() == value)
    }

    /// Output length of the hash in bytes (the length of every key).
    pub fn key_len(self) -> usize {
        match self {
            Mechanism::ScramSha256 => Sha256::OUTPUT_LEN,
            Mechanism::ScramSha512 => Sha512::OUTPUT_LEN,
        }
    }

    /// `Hi(password, salt, iterations)`: PBKDF2 with HMAC of this hash.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Mechanism::ScramSha256 => Sha256::pbkdf2(password, salt, iterations),
            Mechanism::ScramSha512 => Sha512::pbkdf2(password, salt, iterations),
        }
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError> {
        match self {
            Mechanism::ScramSha256 => Sha256::hmac(key, data),
            Mechanism::ScramSha512 => Sha512::hmac(key, data),
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Mechanism::ScramSha256 => Sha256::digest(data).to_vec(),
            Mechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// `(StoredKey, ServerKey)` from a SaltedPassword.
    pub fn keys_from_salted_password(
        self,
        salted_password: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SaslError> {
        match self {
            Mechanism::ScramSha256 => keys::<Sha256>(salted_password),
            Mechanism::ScramSha512 => keys::<Sha512>(salted_password),
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A hash usable by SCRAM: PBKDF2 and HMAC over it.
pub trait ScramHash: Digest {
    /// Output length in bytes.
    const OUTPUT_LEN: usize;
    /// `Hi()`: PBKDF2-HMAC with this hash, output as long as the hash.
    fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8>;
    /// `HMAC(key, data)`.
    fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError>;
}

macro_rules! scram_hash {
    ($hash:ty, $len:expr) => {
        impl ScramHash for $hash {
            const OUTPUT_LEN: usize = $len;

            fn pbkdf2(password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
                let mut out = vec![0u8; $len];
                pbkdf2::pbkdf2_hmac::<$hash>(password, salt, iterations, &mut out);
                out
            }

            fn hmac(key: &[u8], data: &[u8]) -> Result<Vec<u8>, SaslError> {
                // HMAC accepts keys of any length; the error branch is unreachable in practice
                // and fails the exchange closed if it ever happened.
                let mut mac = <Hmac<$hash> as Mac>::new_from_slice(key)
                    .map_err(|_| SaslError::Internal("hmac key"))?;
                mac.update(data);
                Ok(mac.finalize().into_bytes().to_vec())
            }
        }
    };
}

scram_hash!(Sha256, 32);
scram_hash!(Sha512, 64);

/// `ClientKey = HMAC(SaltedPassword, "Client Key")`, `StoredKey = H(ClientKey)`,
/// `ServerKey = HMAC(SaltedPassword, "Server Key")`.
fn keys<H: ScramHash>(salted_password: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SaslError> {
    let client_key = H::hmac(salted_password, b"Client Key")?;
    let stored_key = H::digest(&client_key).to_vec();
    let server_key = H::hmac(salted_password, b"Server Key")?;
    Ok((stored_key, server_key))
}

/// Fills a buffer from the operating system's CSPRNG.
pub fn random_bytes(len: usize) -> Result<Vec<u8>, SaslError> {
    let mut buf = vec![0u8; len];
    getrandom::fill(&mut buf).map_err(|_| SaslError::Internal("random source"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn names_round_trip() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
            assert_eq!(m.key_len(), m.hash(b"").len());
            assert_eq!(Mechanism::from_kafka_type(m.kafka_type()), Some(m));
        }
        assert_eq!(Mechanism::from_name("scram-sha-256"), None);
        assert_eq!(Mechanism::from_name("PLAIN"), None);
        assert_eq!(Mechanism::from_kafka_type(0), None);
    }

    #[test]
    fn rfc7677_keys() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let m = Mechanism::ScramSha256;
        let sp = m.salted_password(b"pencil", &salt, 4096);
        let (stored, server) = m.keys_from_salted_password(&sp).unwrap();
        assert_eq!(stored.len(), 32);
        assert_eq!(server.len(), 32);
        // ServerSignature of the RFC 7677 exchange is checked end to end in `scram.rs`.
    }
}
