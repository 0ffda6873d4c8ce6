//! SASL authentication: SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN, checked against a credential
//! store that never holds a password.
//!
//! # Layout
//!
//! - [`mechanism`]: [`Mechanism`] and the SCRAM key derivations, generic over the hash.
//! - [`scram_messages`]: parsing and formatting of the SCRAM messages (RFC 5802 section 7).
//! - [`scram`]: [`ScramServer`], a sans-io, single-use server state machine.
//! - [`plain`]: [`PlainServer`] (RFC 4616), checking the password against the stored SCRAM keys.
//! - [`session`]: [`Authenticator`], one per connection, chosen by the SaslHandshake mechanism.
//! - [`credentials`]: [`CredentialStore`], users and their `{salt, iterations, StoredKey,
//!   ServerKey}` per mechanism, plus fake credentials for unknown users.
//! - [`store_file`]: the JSON file: mode 0600, written atomically, refused when group/other
//!   readable or when its secret is one that was published ([`published_secret`]).
//! - [`shared`]: [`SharedCredentials`], the live store with `reload()`, `watch()` (through
//!   [`crate::reload`]) and a change watch.
//!
//! # Security properties
//!
//! - An unknown user gets a deterministic fake salt and the default iteration count, the same
//!   proof computation and the same error text as a wrong password ([`SaslError::AuthenticationFailed`]).
//! - The client-final nonce must equal the server nonce exactly, or (librdkafka) the client nonce
//!   followed by the server nonce; nothing looser.
//! - Each server is single-use: any step after success or failure is refused.
//! - Errors and `Debug` output never contain passwords, proofs or keys.

pub mod credentials;
pub mod mechanism;
pub mod plain;
pub mod published_secret;
pub mod scram;
pub mod scram_messages;
pub mod session;
pub mod shared;
pub mod store_file;

#[cfg(test)]
pub(crate) mod test_client;

pub use credentials::{CredentialError, CredentialStore, ScramCredential, UserFingerprint};
pub use mechanism::Mechanism;
pub use plain::PlainServer;
pub use scram::ScramServer;
pub use session::Authenticator;
pub use shared::SharedCredentials;

/// Where `palisade serve` (dev default) and `palisade user` keep credentials, relative to the
/// working directory.
pub const DEFAULT_CREDENTIALS_PATH: &str = "./credentials.json";

/// Fewest PBKDF2 iterations accepted when storing a credential (RFC 7677 and Kafka).
pub const MIN_ITERATIONS: u32 = 4096;

/// Most PBKDF2 iterations accepted (Kafka's limit); bounds the server's work for PLAIN.
pub const MAX_ITERATIONS: u32 = 16384;

/// Iterations used by `add_user` unless told otherwise, and for unknown users' fake exchanges.
pub const DEFAULT_ITERATIONS: u32 = 8192;

/// Length of generated salts (and of fake salts) in bytes.
pub const SALT_LEN: usize = 32;

/// Largest client message accepted by any mechanism, in bytes.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 8192;

/// Mechanism names for the SaslHandshake response, in order of preference.
pub const SUPPORTED_MECHANISMS: [&str; 3] = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];

/// The result of one successful step of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this message to the client and wait for its next message.
    Continue(Vec<u8>),
    /// Authenticated: send `server_final` (may be empty) and treat the connection as `principal`.
    Done {
        server_final: Vec<u8>,
        principal: String,
    },
}

/// Why an exchange failed. Messages are safe to send to the client and to log: they never
/// contain passwords, proofs, nonces or keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// Wrong password, unknown user, bad proof or nonce: deliberately one message for all.
    #[error("authentication failed")]
    AuthenticationFailed,
    /// The client message does not follow the mechanism's grammar.
    #[error("malformed SASL message: {0}")]
    Malformed(&'static str),
    /// A valid feature this server refuses (channel binding, delegation tokens, ...).
    #[error("unsupported SASL feature: {0}")]
    Unsupported(&'static str),
    /// The mechanism named in SaslHandshake is not offered.
    #[error("unsupported SASL mechanism `{0}`")]
    UnsupportedMechanism(String),
    /// A step after the exchange ended (success or failure): replays land here.
    #[error("the SASL exchange is already finished")]
    ExchangeFinished,
    /// An internal failure (random source, ...); the exchange fails closed.
    #[error("internal SASL error: {0}")]
    Internal(&'static str),
}

impl SaslError {
    /// The Kafka error code for a SaslAuthenticate/SaslHandshake response.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            SaslError::UnsupportedMechanism(_) => 33, // UNSUPPORTED_SASL_MECHANISM
            SaslError::ExchangeFinished => 34,        // ILLEGAL_SASL_STATE
            _ => 58,                                  // SASL_AUTHENTICATION_FAILED
        }
    }
}
