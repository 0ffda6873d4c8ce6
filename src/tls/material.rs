//! Loading and validating the PEM files of [`TlsSettings`] into a `rustls::ServerConfig`.
//!
//! Every file is read once into memory, fingerprinted, then parsed from those bytes, so the
//! fingerprint describes exactly what was loaded. Validation: the chain parses and its leaf has
//! not expired, the key parses and matches the leaf, the client CA bundle is non-empty and every
//! certificate in it is a usable trust anchor, every CRL is fresh and issued by one of those CAs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::crl::parse_crls;
use super::error::TlsError;
use super::settings::{ClientAuth, TlsSettings};

/// Validated TLS material, ready to serve.
#[derive(Debug, Clone)]
pub struct TlsMaterial {
    /// The server config built from the files.
    pub config: Arc<ServerConfig>,
    /// SHA-256 over every file's path and bytes: equal fingerprints mean identical material.
    pub fingerprint: [u8; 32],
    /// When each certificate and CRL of it stops being usable.
    pub expiries: Vec<Expiry>,
}

/// What expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryKind {
    /// The server's own certificate: clients refuse the broker once it expires.
    Certificate,
    /// An intermediate certificate of the server's chain.
    Chain,
    /// A CA clients' certificates are verified against.
    ClientCa,
    /// A CRL past its next update refuses every client certificate (fail closed).
    Crl,
}

impl ExpiryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryKind::Certificate => "certificate",
            ExpiryKind::Chain => "chain",
            ExpiryKind::ClientCa => "client_ca",
            ExpiryKind::Crl => "crl",
        }
    }
}

/// When one certificate (notAfter) or CRL (nextUpdate) of the material stops being usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub kind: ExpiryKind,
    pub path: PathBuf,
    /// The certificate's subject, or the CRL's issuer.
    pub subject: String,
    /// Unix seconds.
    pub not_after: i64,
}

impl Expiry {
    /// Whole days left at `now` (negative once past).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }
}

/// The protocol versions offered: TLS 1.3 and TLS 1.2, nothing older.
pub const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// The crypto provider of the whole layer: `ring`.
///
/// rustls 0.23.48 deprecates it because ring has no post-quantum key exchange
/// (X25519MLKEM768 needs aws-lc-rs, a C build); moving is a separate, measured decision, and
/// tests and benches take the provider from here so there is one place to change.
#[allow(
    deprecated,
    reason = "ring until the aws-lc-rs move is measured; see above"
)]
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads, validates and builds everything `settings` names. Errors name the offending file.
pub fn load_material(settings: &TlsSettings) -> Result<TlsMaterial, TlsError> {
    settings.validate()?;
    let provider = provider();
    let mut hasher = Sha256::new();
    let mut read = |path: &Path| -> Result<Vec<u8>, TlsError> {
        let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        hasher.update(path.as_os_str().as_encoded_bytes());
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(&bytes);
        Ok(bytes)
    };
    let now = now_unix();
    let mut expiries = Vec::new();

    let chain_pem = read(&settings.cert)?;
    let key_pem = read(&settings.key)?;
    let chain = parse_chain(&settings.cert, &chain_pem, now, &mut expiries)?;
    let key = parse_key(&settings.key, &key_pem)?;
    check_key_matches(settings, &chain, &key, &provider)?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| build_error(&settings.cert, e))?;
    let builder = match (settings.client_auth, &settings.client_ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => {
            return Err(TlsError::Settings(
                "`client_ca` is required unless `client_auth = \"none\"`".to_string(),
            ))
        }
        (mode, Some(ca_path)) => {
            let ca_pem = read(ca_path)?;
            let (roots, subjects) = parse_roots(ca_path, &ca_pem, &mut expiries)?;
            let mut crls = Vec::new();
            for crl_path in &settings.crls {
                let pem = read(crl_path)?;
                crls.extend(parse_crls(
                    crl_path,
                    &pem,
                    &subjects,
                    ca_path,
                    now,
                    &mut expiries,
                )?);
            }
            let mut vb = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .with_crls(crls)
                .enforce_revocation_expiration();
            if mode == ClientAuth::Requested {
                vb = vb.allow_unauthenticated();
            }
            let first_crl = settings.crls.first().unwrap_or(ca_path);
            let verifier = vb.build().map_err(|e| build_error(first_crl, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| build_error(&settings.key, e))?;
    Ok(TlsMaterial {
        config: Arc::new(config),
        fingerprint: hasher.finalize().into(),
        expiries,
    })
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn parse_chain(
    path: &Path,
    pem: &[u8],
    now: i64,
    expiries: &mut Vec<Expiry>,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = parse_certs(path, pem)?;
    for (index, der) in chain.iter().enumerate() {
        let (_, parsed) =
            X509Certificate::from_der(der.as_ref()).map_err(|e| bad_cert(path, index, e))?;
        let not_after = parsed.validity().not_after.timestamp();
        if index == 0 && not_after <= now {
            return Err(TlsError::CertificateExpired {
                path: path.to_path_buf(),
                not_after,
            });
        }
        expiries.push(Expiry {
            kind: if index == 0 {
                ExpiryKind::Certificate
            } else {
                ExpiryKind::Chain
            },
            path: path.to_path_buf(),
            subject: parsed.subject().to_string(),
            not_after,
        });
    }
    Ok(chain)
}

/// Every certificate of a PEM file, each checked to parse as X.509; at least one.
fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut certs = Vec::new();
    for (index, item) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let der = item.map_err(|e| pem_error(path, &e))?;
        X509Certificate::from_der(der.as_ref()).map_err(|e| bad_cert(path, index, e))?;
        certs.push(der);
    }
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_path_buf(),
        },
        other => pem_error(path, &other),
    })
}

fn check_key_matches(
    settings: &TlsSettings,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    provider: &CryptoProvider,
) -> Result<(), TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsError::BadKey {
            path: settings.key.clone(),
            message: e.to_string(),
        })?;
    rustls::sign::CertifiedKey::new(chain.to_vec(), signing_key)
        .keys_match()
        .map_err(|_| TlsError::KeyMismatch {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
        })
}

/// The CA bundle as trust anchors, plus each CA's raw DER subject (to match CRL issuers).
fn parse_roots(
    path: &Path,
    pem: &[u8],
    expiries: &mut Vec<Expiry>,
) -> Result<(RootCertStore, Vec<Vec<u8>>), TlsError> {
    let mut roots = RootCertStore::empty();
    let mut subjects = Vec::new();
    for (index, der) in parse_certs(path, pem)?.into_iter().enumerate() {
        let (_, parsed) =
            X509Certificate::from_der(der.as_ref()).map_err(|e| bad_cert(path, index, e))?;
        subjects.push(parsed.subject().as_raw().to_vec());
        expiries.push(Expiry {
            kind: ExpiryKind::ClientCa,
            path: path.to_path_buf(),
            subject: parsed.subject().to_string(),
            not_after: parsed.validity().not_after.timestamp(),
        });
        roots.add(der).map_err(|e| TlsError::BadCertificate {
            path: path.to_path_buf(),
            index,
            message: e.to_string(),
        })?;
    }
    Ok((roots, subjects))
}

/// A PEM error without any of the file's content (a key file's bytes must never reach a log).
pub(crate) fn pem_error(path: &Path, e: &rustls::pki_types::pem::Error) -> TlsError {
    use rustls::pki_types::pem::Error;
    let message = match e {
        Error::MissingSectionEnd { .. } => "a section has no `-----END` line".to_string(),
        Error::IllegalSectionStart { .. } => "malformed `-----BEGIN` line".to_string(),
        Error::Base64Decode(_) => "invalid base64".to_string(),
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no pem block of the expected type".to_string(),
        _ => "malformed pem".to_string(),
    };
    TlsError::Pem {
        path: path.to_path_buf(),
        message,
    }
}

fn bad_cert(path: &Path, index: usize, e: impl std::fmt::Display) -> TlsError {
    TlsError::BadCertificate {
        path: path.to_path_buf(),
        index,
        message: e.to_string(),
    }
}

fn build_error(path: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Build {
        path: PathBuf::from(path),
        message: e.to_string(),
    }
}
