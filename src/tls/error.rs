//! Errors of the TLS layer. Messages are lowercase, name the file, and quote user input in
//! backticks. No variant carries key material: PEM errors keep only the parser's description.

use std::path::{Path, PathBuf};

/// Loading, validating or watching TLS material failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("invalid tls settings: {0}")]
    Settings(String),
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid pem in `{path}`: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("no certificate in `{path}`")]
    NoCertificate { path: PathBuf },
    #[error("no private key in `{path}`")]
    NoKey { path: PathBuf },
    #[error("invalid certificate #{index} in `{path}`: {message}")]
    BadCertificate {
        path: PathBuf,
        index: usize,
        message: String,
    },
    #[error("certificate in `{path}` expired at {not_after} (unix time)")]
    CertificateExpired { path: PathBuf, not_after: i64 },
    #[error("unusable private key in `{path}`: {message}")]
    BadKey { path: PathBuf, message: String },
    #[error("private key `{key}` does not match the certificate in `{cert}`")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("invalid crl in `{path}`: {message}")]
    BadCrl { path: PathBuf, message: String },
    #[error("crl in `{path}` expired: its nextUpdate ({next_update}, unix time) is in the past")]
    CrlExpired { path: PathBuf, next_update: i64 },
    #[error("crl in `{path}` has no nextUpdate: its freshness cannot be checked")]
    CrlNoNextUpdate { path: PathBuf },
    #[error("crl in `{path}` was issued by `{issuer}`, which is not a ca of `{client_ca}`")]
    CrlUnknownIssuer {
        path: PathBuf,
        issuer: String,
        client_ca: PathBuf,
    },
    #[error("cannot build the tls config from `{path}`: {message}")]
    Build { path: PathBuf, message: String },
    #[error("cannot watch `{path}`: {message}")]
    Watch { path: PathBuf, message: String },
}

impl TlsError {
    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Settings(_) => None,
            Self::Read { path, .. }
            | Self::Pem { path, .. }
            | Self::NoCertificate { path }
            | Self::NoKey { path }
            | Self::BadCertificate { path, .. }
            | Self::CertificateExpired { path, .. }
            | Self::BadKey { path, .. }
            | Self::BadCrl { path, .. }
            | Self::CrlExpired { path, .. }
            | Self::CrlNoNextUpdate { path }
            | Self::CrlUnknownIssuer { path, .. }
            | Self::Build { path, .. }
            | Self::Watch { path, .. } => Some(path),
            Self::KeyMismatch { key, .. } => Some(key),
        }
    }
}

/// The peer certificate cannot be turned into a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    #[error("cannot parse the client certificate: {0}")]
    Parse(String),
    #[error("invalid principal mapping rule `{rule}`: {message}")]
    BadRule { rule: String, message: String },
    #[error("no principal mapping rule matches `{0}`")]
    NoRuleMatched(String),
    #[error("the client certificate has no uri subject alternative name{}", prefix_note(.0))]
    NoSanUri(Option<String>),
    #[error("the client certificate has {count} uri subject alternative names{}", prefix_note(.prefix))]
    AmbiguousSanUri {
        count: usize,
        prefix: Option<String>,
    },
    #[error("principal `{0}` has characters outside letters, digits, space and `-_.@=,:/`")]
    UnsafePrincipal(String),
    #[error("principal is empty")]
    Empty,
    #[error("principal is longer than {max} bytes")]
    TooLong { max: usize },
}

fn prefix_note(prefix: &Option<String>) -> String {
    match prefix {
        Some(p) => format!(" starting with `{p}`"),
        None => String::new(),
    }
}

impl From<PrincipalError> for TlsError {
    fn from(e: PrincipalError) -> Self {
        TlsError::Settings(e.to_string())
    }
}
