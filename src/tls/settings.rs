//! The `[tls]` settings of a listener.
//!
//! Every path is read by [`super::material`]; every rule is compiled by
//! [`super::mapping`]. [`TlsSettings::validate`] checks what can be checked without touching the
//! filesystem, so `palisade config check` can report a bad rule before the broker starts.

use std::path::PathBuf;

use serde::Deserialize;

use super::error::TlsError;
use super::mapping::PrincipalMapper;

/// TLS settings of one listener.
///
/// ```toml
/// [listeners.tls]
/// cert = "certs/server.pem"
/// key = "certs/server-key.pem"
/// client_auth = "required"
/// client_ca = "certs/ca.pem"
/// crls = ["certs/ca.crl.pem"]
/// principal_mapping_rules = ["RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/", "DEFAULT"]
/// principal_from_san_uri = false
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the server certificate chain: the leaf first, then intermediates.
    pub cert: PathBuf,
    /// PEM file with the server private key (PKCS#8, PKCS#1 or SEC1). Never logged.
    pub key: PathBuf,
    /// Whether clients must present a certificate: `required`, `requested` or `none`.
    #[serde(default)]
    pub client_auth: ClientAuth,
    /// PEM bundle of the CAs trusted to issue client certificates. Required unless
    /// `client_auth = "none"`.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    /// PEM files with certificate revocation lists of the client CAs. Each must be signed by a
    /// CA of `client_ca` and have a `nextUpdate` in the future: an expired CRL is refused at load
    /// time and fails handshakes if it expires while in use. When any CRL is given, a client
    /// certificate whose issuer has no CRL here is refused (unknown revocation status).
    #[serde(default)]
    pub crls: Vec<PathBuf>,
    /// Kafka `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` or `DEFAULT`, applied
    /// in order to the subject DN in RFC 2253 form (`CN=alice,OU=eng,O=acme`); the first rule
    /// whose pattern matches the whole DN wins. An entry may hold several comma-separated rules,
    /// as in Kafka. Empty means `DEFAULT` (the whole DN). No rule matching is an error.
    #[serde(default)]
    pub principal_mapping_rules: Vec<String>,
    /// Take the principal from a URI subject alternative name instead of the subject DN:
    /// `true` for the (single) URI SAN, or a prefix such as `"spiffe://"` to pick the URI SAN that
    /// starts with it. Mapping rules do not apply to a SAN URI principal.
    #[serde(default)]
    pub principal_from_san_uri: SanUriPrincipal,
}

/// Client certificate policy of a TLS listener.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A certificate chaining to `client_ca` is mandatory; the handshake fails without one.
    #[default]
    Required,
    /// A certificate is asked for; without one the connection has no TLS principal. A
    /// certificate that is presented must still verify.
    Requested,
    /// No certificate is asked for.
    None,
}

/// Where the principal of a client certificate comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SanUriPrincipal {
    /// The subject DN, through the mapping rules.
    #[default]
    Disabled,
    /// The only URI subject alternative name.
    Any,
    /// The only URI subject alternative name starting with this prefix.
    Prefix(String),
}

impl<'de> Deserialize<'de> for SanUriPrincipal {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Flag(bool),
            Prefix(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Flag(false) => Ok(Self::Disabled),
            Raw::Flag(true) => Ok(Self::Any),
            Raw::Prefix(p) if p.is_empty() => Err(serde::de::Error::custom(
                "`principal_from_san_uri` prefix must not be empty (use `true`)",
            )),
            Raw::Prefix(p) => Ok(Self::Prefix(p)),
        }
    }
}

impl TlsSettings {
    /// Settings with a server certificate and no client authentication.
    pub fn server_only(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
            client_auth: ClientAuth::None,
            client_ca: None,
            crls: Vec::new(),
            principal_mapping_rules: Vec::new(),
            principal_from_san_uri: SanUriPrincipal::Disabled,
        }
    }

    /// Checks the settings without reading any file: a client CA when clients are
    /// authenticated, and mapping rules that parse and compile.
    pub fn validate(&self) -> Result<(), TlsError> {
        if self.client_auth != ClientAuth::None && self.client_ca.is_none() {
            return Err(TlsError::Settings(format!(
                "`client_auth = \"{}\"` needs `client_ca`",
                self.client_auth.as_str()
            )));
        }
        if self.client_auth == ClientAuth::None && !self.crls.is_empty() {
            return Err(TlsError::Settings(
                "`crls` is set but `client_auth = \"none\"` verifies no client certificate"
                    .to_string(),
            ));
        }
        PrincipalMapper::from_settings(self)?;
        Ok(())
    }

    /// Every file the settings name, in a fixed order (cert, key, client CA, CRLs).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.cert.clone(), self.key.clone()];
        files.extend(self.client_ca.iter().cloned());
        files.extend(self.crls.iter().cloned());
        files
    }
}

impl ClientAuth {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::Requested => "requested",
            Self::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TlsSettings, toml::de::Error> {
        toml::from_str(s)
    }

    #[test]
    fn full_settings_parse() {
        let s = parse(
            r#"
            cert = "c.pem"
            key = "k.pem"
            client_auth = "requested"
            client_ca = "ca.pem"
            crls = ["a.crl.pem"]
            principal_mapping_rules = ["RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/", "DEFAULT"]
            principal_from_san_uri = "spiffe://"
            "#,
        )
        .unwrap();
        assert_eq!(s.client_auth, ClientAuth::Requested);
        assert_eq!(
            s.principal_from_san_uri,
            SanUriPrincipal::Prefix("spiffe://".into())
        );
        s.validate().unwrap();
        assert_eq!(s.files().len(), 4);
    }

    #[test]
    fn defaults_are_strict() {
        let s = parse("cert = \"c\"\nkey = \"k\"\nclient_ca = \"ca\"").unwrap();
        assert_eq!(s.client_auth, ClientAuth::Required);
        assert_eq!(s.principal_from_san_uri, SanUriPrincipal::Disabled);
        let s = parse("cert = \"c\"\nkey = \"k\"\nprincipal_from_san_uri = true").unwrap();
        assert_eq!(s.principal_from_san_uri, SanUriPrincipal::Any);
    }

    #[test]
    fn unknown_key_and_bad_mode_are_refused() {
        let e = parse("cert = \"c\"\nkey = \"k\"\nclient_cert = \"x\"").unwrap_err();
        assert!(e.to_string().contains("client_cert"), "{e}");
        let e = parse("cert = \"c\"\nkey = \"k\"\nclient_auth = \"optional\"").unwrap_err();
        assert!(e.to_string().contains("optional"), "{e}");
        assert!(parse("cert = \"c\"\nkey = \"k\"\nprincipal_from_san_uri = \"\"").is_err());
    }

    #[test]
    fn validate_needs_client_ca_and_good_rules() {
        let mut s = parse("cert = \"c\"\nkey = \"k\"").unwrap();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("client_ca"), "{e}");
        s.client_auth = ClientAuth::None;
        s.validate().unwrap();
        s.principal_mapping_rules = vec!["RULE:^CN=(.*$/$1/".into()];
        assert!(s.validate().is_err());
    }
}
