//! Certificate revocation lists: parsed, checked for freshness and issuer at load time.
//!
//! An expired CRL is an error, never a pass: a CRL whose `nextUpdate` is in the past (or that has
//! none) is refused when loading, and the verifier is also built with
//! `enforce_revocation_expiration`, so one that expires while in use fails handshakes.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateRevocationListDer;
use x509_parser::prelude::{FromDer, X509Name};
use x509_parser::revocation_list::CertificateRevocationList;

use super::error::TlsError;
use super::material::pem_error;

/// Parses and checks every CRL of one PEM file.
///
/// `ca_subjects` are the raw DER subjects of the client CAs (from `client_ca`); a CRL whose
/// issuer is none of them is refused, as it would silently protect nothing.
pub(crate) fn parse_crls(
    path: &Path,
    pem: &[u8],
    ca_subjects: &[Vec<u8>],
    client_ca: &Path,
    now_unix: i64,
    expiries: &mut Vec<super::Expiry>,
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for item in CertificateRevocationListDer::pem_slice_iter(pem) {
        let der = item.map_err(|e| pem_error(path, &e))?;
        let (issuer, next_update) = check_crl(path, &der, ca_subjects, client_ca, now_unix)?;
        expiries.push(super::Expiry {
            kind: super::ExpiryKind::Crl,
            path: path.to_path_buf(),
            subject: issuer,
            not_after: next_update,
        });
        crls.push(der);
    }
    if crls.is_empty() {
        return Err(TlsError::BadCrl {
            path: path.to_path_buf(),
            message: "no `X509 CRL` pem block".to_string(),
        });
    }
    Ok(crls)
}

fn check_crl(
    path: &Path,
    der: &CertificateRevocationListDer<'_>,
    ca_subjects: &[Vec<u8>],
    client_ca: &Path,
    now_unix: i64,
) -> Result<(String, i64), TlsError> {
    let (_, crl) =
        CertificateRevocationList::from_der(der.as_ref()).map_err(|e| TlsError::BadCrl {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let next_update = crl
        .next_update()
        .ok_or_else(|| TlsError::CrlNoNextUpdate {
            path: path.to_path_buf(),
        })?
        .timestamp();
    if next_update <= now_unix {
        return Err(TlsError::CrlExpired {
            path: path.to_path_buf(),
            next_update,
        });
    }
    let issuer: &X509Name<'_> = crl.issuer();
    if !ca_subjects.iter().any(|s| s.as_slice() == issuer.as_raw()) {
        return Err(TlsError::CrlUnknownIssuer {
            path: path.to_path_buf(),
            issuer: issuer.to_string(),
            client_ca: client_ca.to_path_buf(),
        });
    }
    Ok((issuer.to_string(), next_update))
}
