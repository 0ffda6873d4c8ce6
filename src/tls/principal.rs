//! The principal of a verified client certificate.
//!
//! By default the subject DN in RFC 2253 form, as Kafka prints it (Java's
//! `X500Principal.getName()`): RDNs most specific first, `CN=alice,OU=eng,O=acme`, keywords `CN
//! C L ST O OU STREET DC UID`, other attributes as `dotted.oid=#hex-of-DER`, special characters
//! escaped with a backslash. The [mapping rules](super::mapping) then turn it into a principal.
//! With `principal_from_san_uri` the principal is a URI subject alternative name instead.
//!
//! A principal must be 1..=[`MAX_PRINCIPAL_LEN`] bytes of ASCII letters, digits, space and
//! `-_.@=,:/` only; anything else (backslash escapes, `+`, quotes, control or non-ASCII
//! characters) is refused, so principals are safe to log, compare and use in policies.

use rustls::pki_types::CertificateDer;
use x509_parser::der_parser::asn1_rs::ToDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

use super::error::PrincipalError;
use super::mapping::PrincipalMapper;
use super::settings::{SanUriPrincipal, TlsSettings};

/// Longest accepted principal, in bytes.
pub const MAX_PRINCIPAL_LEN: usize = 1024;

/// Extracts and maps the principal of a (verified) client certificate.
///
/// Compiles the rules on every call; a connection handler should build a [`PrincipalMapper`]
/// once and call [`PrincipalMapper::principal`].
pub fn principal_from_cert(
    cert: &CertificateDer<'_>,
    settings: &TlsSettings,
) -> Result<String, PrincipalError> {
    PrincipalMapper::from_settings(settings)?.principal(cert)
}

/// The principal of the certificate a client presented on `conn`: `Ok(None)` when it presented
/// none (only possible with `client_auth = "requested"` or `"none"`).
pub fn peer_principal(
    conn: &rustls::ServerConnection,
    mapper: &PrincipalMapper,
) -> Result<Option<String>, PrincipalError> {
    match conn.peer_certificates().and_then(|c| c.first()) {
        Some(cert) => mapper.principal(cert).map(Some),
        None => Ok(None),
    }
}

impl PrincipalMapper {
    /// The principal of `cert`: its SAN URI or its mapped subject DN, checked against the safe set.
    pub fn principal(&self, cert: &CertificateDer<'_>) -> Result<String, PrincipalError> {
        let (_, parsed) = X509Certificate::from_der(cert.as_ref())
            .map_err(|e| PrincipalError::Parse(e.to_string()))?;
        let principal = match &self.san_uri {
            SanUriPrincipal::Disabled => self.map_dn(&rfc2253(parsed.subject())?)?,
            SanUriPrincipal::Any => san_uri(&parsed, None)?,
            SanUriPrincipal::Prefix(p) => san_uri(&parsed, Some(p))?,
        };
        check_safe(&principal)?;
        Ok(principal)
    }
}

/// The subject DN of `cert` in RFC 2253 form, without mapping.
pub fn subject_dn(cert: &CertificateDer<'_>) -> Result<String, PrincipalError> {
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| PrincipalError::Parse(e.to_string()))?;
    rfc2253(parsed.subject())
}

fn rfc2253(name: &X509Name<'_>) -> Result<String, PrincipalError> {
    let rdns: Vec<_> = name.iter().collect();
    let mut out = Vec::with_capacity(rdns.len());
    for rdn in rdns.iter().rev() {
        let mut parts = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let part = match (keyword, atv.as_str()) {
                (Some(k), Ok(value)) => format!("{k}={}", escape(value)),
                _ => {
                    let der = atv
                        .attr_value()
                        .to_der_vec()
                        .map_err(|e| PrincipalError::Parse(e.to_string()))?;
                    format!("{}=#{}", keyword.unwrap_or(&oid), hex::encode(der))
                }
            };
            parts.push(part);
        }
        out.push(parts.join("+"));
    }
    Ok(out.join(","))
}

/// RFC 2253 section 2.4 escaping.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn san_uri(cert: &X509Certificate<'_>, prefix: Option<&str>) -> Result<String, PrincipalError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PrincipalError::Parse(e.to_string()))?;
    let uris: Vec<&str> = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .filter(|u| prefix.is_none_or(|p| u.starts_with(p)))
        .collect();
    match uris.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Err(PrincipalError::NoSanUri(prefix.map(str::to_string))),
        many => Err(PrincipalError::AmbiguousSanUri {
            count: many.len(),
            prefix: prefix.map(str::to_string),
        }),
    }
}

/// Refuses principals outside the documented safe set.
pub fn check_safe(principal: &str) -> Result<(), PrincipalError> {
    if principal.is_empty() {
        return Err(PrincipalError::Empty);
    }
    if principal.len() > MAX_PRINCIPAL_LEN {
        return Err(PrincipalError::TooLong {
            max: MAX_PRINCIPAL_LEN,
        });
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_.@=,:/ ".contains(c);
    if principal.chars().all(safe) {
        Ok(())
    } else {
        Err(PrincipalError::UnsafePrincipal(
            principal.escape_default().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

    use super::*;

    fn cert(dn: &[(DnType, &str)], uris: &[&str]) -> CertificateDer<'static> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // rcgen starts with a default CN; start empty so the order is the one given.
        params.distinguished_name = DistinguishedName::new();
        for (t, v) in dn {
            params.distinguished_name.push(t.clone(), *v);
        }
        for u in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*u).try_into().unwrap()));
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    fn settings(rules: &[&str]) -> TlsSettings {
        let mut s = TlsSettings::server_only("c", "k");
        s.principal_mapping_rules = rules.iter().map(|r| r.to_string()).collect();
        s
    }

    const KAFKA_RULES: &str = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
        RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,DEFAULT";

    /// X.509 order is C, ST, L, O, OU, CN; RFC 2253 prints it reversed.
    fn kafka_dn(cn: &str, ou: &str) -> CertificateDer<'static> {
        cert(
            &[
                (DnType::CountryName, "US"),
                (DnType::StateOrProvinceName, "CA"),
                (DnType::LocalityName, "Palo Alto"),
                (DnType::OrganizationName, "acme"),
                (DnType::OrganizationalUnitName, ou),
                (DnType::CommonName, cn),
            ],
            &[],
        )
    }

    #[test]
    fn subject_dn_is_rfc2253_most_specific_first() {
        let c = kafka_dn("alice", "eng");
        assert_eq!(
            subject_dn(&c).unwrap(),
            "CN=alice,OU=eng,O=acme,L=Palo Alto,ST=CA,C=US"
        );
        let c = cert(&[(DnType::CommonName, "a,b+c")], &[]);
        assert_eq!(subject_dn(&c).unwrap(), "CN=a\\,b\\+c");
    }

    #[test]
    fn kafka_rules_on_real_certificates() {
        let s = settings(&[KAFKA_RULES]);
        let svc = kafka_dn("billing", "ServiceUsers");
        assert_eq!(principal_from_cert(&svc, &s).unwrap(), "billing");
        let user = kafka_dn("Alice", "Eng");
        assert_eq!(principal_from_cert(&user, &s).unwrap(), "alice@eng");
        let short = cert(
            &[
                (DnType::OrganizationName, "acme"),
                (DnType::CommonName, "bob"),
            ],
            &[],
        );
        assert_eq!(principal_from_cert(&short, &s).unwrap(), "CN=bob,O=acme");
        assert_eq!(
            principal_from_cert(&short, &settings(&["RULE:^CN=(.*?),.*$/$1/U"])).unwrap(),
            "BOB"
        );
    }

    #[test]
    fn unsafe_principals_are_refused() {
        let c = cert(&[(DnType::CommonName, "eve\"; drop")], &[]);
        let e = principal_from_cert(&c, &settings(&["RULE:^CN=(.*)$/$1/"])).unwrap_err();
        assert!(matches!(e, PrincipalError::UnsafePrincipal(_)), "{e}");
        let c = cert(&[(DnType::CommonName, "a+b")], &[]);
        assert!(
            principal_from_cert(&c, &settings(&[])).is_err(),
            "escaped DN"
        );
        let c = cert(&[(DnType::CommonName, "é")], &[]);
        assert!(principal_from_cert(&c, &settings(&[])).is_err());
        let c = cert(&[(DnType::CommonName, "x")], &[]);
        let e = principal_from_cert(&c, &settings(&["RULE:^CN=(.*)$//"])).unwrap_err();
        assert_eq!(e, PrincipalError::Empty);
        assert!(check_safe(&"a".repeat(MAX_PRINCIPAL_LEN + 1)).is_err());
        check_safe("User:alice@EXAMPLE.COM, OU=x/y-z_1.2").unwrap();
    }

    #[test]
    fn san_uri_principal() {
        let c = cert(
            &[(DnType::CommonName, "ignored")],
            &["spiffe://acme.org/ns/prod/sa/billing", "https://acme.org/x"],
        );
        let mut s = settings(&[]);
        s.principal_from_san_uri = SanUriPrincipal::Prefix("spiffe://".into());
        assert_eq!(
            principal_from_cert(&c, &s).unwrap(),
            "spiffe://acme.org/ns/prod/sa/billing"
        );
        s.principal_from_san_uri = SanUriPrincipal::Any;
        assert!(matches!(
            principal_from_cert(&c, &s),
            Err(PrincipalError::AmbiguousSanUri { count: 2, .. })
        ));
        let none = cert(&[(DnType::CommonName, "x")], &[]);
        assert!(matches!(
            principal_from_cert(&none, &s),
            Err(PrincipalError::NoSanUri(None))
        ));
        let odd = cert(&[], &["spiffe://acme.org/a?b=%00"]);
        s.principal_from_san_uri = SanUriPrincipal::Any;
        assert!(matches!(
            principal_from_cert(&odd, &s),
            Err(PrincipalError::UnsafePrincipal(_))
        ));
    }

    #[test]
    fn garbage_is_a_parse_error() {
        let junk = CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff]);
        assert!(matches!(subject_dn(&junk), Err(PrincipalError::Parse(_))));
    }
}
