//! TLS to the upstream: a `rustls::ClientConfig` from `[gateway.tls]` (the CA bundle, optional
//! client certificate for mTLS, TLS 1.2/1.3 only, the `ring` provider the listeners use).
//!
//! Host name verification is on by default. Turned off, the certificate chain is still verified
//! against the CA (webpki checks the chain before the name, so only a name mismatch is
//! tolerated): traffic stays encrypted to a broker the CA vouched for, under some other name.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use super::settings::UpstreamTls;

/// Building the client TLS config failed; names the file.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamTlsError {
    #[error("cannot read `{path}`: {message}")]
    Read { path: String, message: String },
    #[error("no certificate in `{0}`")]
    NoCertificate(String),
    #[error("`{path}`: {message}")]
    Invalid { path: String, message: String },
    #[error("`gateway.tls.ca_file` is required")]
    NoCa,
    #[error("{0}")]
    Rustls(String),
}

/// Builds the client config `settings` describe (files read now).
pub fn client_config(settings: &UpstreamTls) -> Result<Arc<ClientConfig>, UpstreamTlsError> {
    let ca_file = settings.ca_file.as_deref().ok_or(UpstreamTlsError::NoCa)?;
    let mut roots = RootCertStore::empty();
    for cert in read_certs(ca_file)? {
        roots.add(cert).map_err(|e| UpstreamTlsError::Invalid {
            path: ca_file.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let provider = crate::tls::provider();
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| UpstreamTlsError::Rustls(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if settings.verify_hostname {
        webpki
    } else {
        Arc::new(AnyName(webpki))
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(crate::tls::PROTOCOL_VERSIONS)
        .map_err(|e| UpstreamTlsError::Rustls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| UpstreamTlsError::Read {
                    path: key.display().to_string(),
                    // The PEM parser's error names the problem, never key bytes.
                    message: e.to_string(),
                })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                UpstreamTlsError::Invalid {
                    path: key.display().to_string(),
                    message: e.to_string(),
                }
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, UpstreamTlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| UpstreamTlsError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(UpstreamTlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

/// The TLS server name for `host` (an IP address or a DNS name).
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string()).map_err(|e| format!("`{host}`: {e}"))
}

/// webpki verification that accepts a certificate valid for another name.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
