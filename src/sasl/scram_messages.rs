//! The SCRAM client messages (RFC 5802 section 7), parsed strictly, and the server messages.
//!
//! Parsing keeps the exact bytes the AuthMessage is built from (`client-first-bare`,
//! `client-final-message-without-proof`) and the gs2 header the channel binding must echo.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::{SaslError, MAX_CLIENT_MESSAGE_BYTES};

/// A parsed `client-first-message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// The gs2 header exactly as sent (`n,,` or `y,,`, or with an authzid).
    pub gs2_header: String,
    /// The decoded user name (`=2C` and `=3D` unescaped).
    pub username: String,
    /// The client nonce.
    pub nonce: String,
    /// `client-first-message-bare` exactly as sent.
    pub bare: String,
}

/// A parsed `client-final-message`.
pub struct ClientFinal {
    /// The decoded `c=` attribute.
    pub channel_binding: Vec<u8>,
    /// The `r=` attribute.
    pub nonce: String,
    /// `client-final-message-without-proof` exactly as sent.
    pub without_proof: String,
    /// The decoded `p=` attribute.
    pub proof: Vec<u8>,
}

impl std::fmt::Debug for ClientFinal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientFinal")
            .field("proof", &"<redacted>")
            .finish_non_exhaustive()
    }
}

fn as_text(message: &[u8]) -> Result<&str, SaslError> {
    if message.len() > MAX_CLIENT_MESSAGE_BYTES {
        return Err(SaslError::Malformed("message too long"));
    }
    std::str::from_utf8(message).map_err(|_| SaslError::Malformed("not UTF-8"))
}

/// `printable = %x21-2B / %x2D-7E` (no comma), at least one character.
fn is_valid_nonce(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b',')
}

/// Decodes a `saslname`: `=2C` is `,`, `=3D` is `=`; any other `=` is an error.
pub fn decode_saslname(name: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(pos) = rest.find('=') {
        let (head, tail) = rest.split_at(pos);
        out.push_str(head);
        if let Some(after) = tail.strip_prefix("=2C") {
            out.push(',');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("=3D") {
            out.push('=');
            rest = after;
        } else {
            return Err(SaslError::Malformed("bad escape in user name"));
        }
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(SaslError::Malformed("empty user name"));
    }
    Ok(out)
}

/// Encodes a user name as a `saslname` (used by clients and tests).
pub fn encode_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Parses `gs2-header client-first-message-bare`.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, SaslError> {
    let text = as_text(message)?;
    let (flag, rest) = text
        .split_once(',')
        .ok_or(SaslError::Malformed("missing gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(SaslError::Unsupported("channel binding")),
        _ => return Err(SaslError::Malformed("bad gs2 channel binding flag")),
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(SaslError::Malformed("missing gs2 header"))?;
    let authzid = match authzid {
        "" => None,
        a => Some(decode_saslname(
            a.strip_prefix("a=")
                .ok_or(SaslError::Malformed("bad authzid"))?,
        )?),
    };
    let gs2_header = text
        .get(..text.len() - bare.len())
        .ok_or(SaslError::Malformed("bad gs2 header"))?
        .to_string();

    let mut attrs = bare.split(',');
    let user = attrs.next().unwrap_or_default();
    if user.starts_with("m=") {
        return Err(SaslError::Unsupported("mandatory extension"));
    }
    let username = decode_saslname(
        user.strip_prefix("n=")
            .ok_or(SaslError::Malformed("missing user name"))?,
    )?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(SaslError::Malformed("missing client nonce"))?;
    if !is_valid_nonce(nonce) {
        return Err(SaslError::Malformed("bad client nonce"));
    }
    for extension in attrs {
        let (key, value) = extension
            .split_once('=')
            .ok_or(SaslError::Malformed("bad extension"))?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(SaslError::Malformed("bad extension"));
        }
        if key == "tokenauth" && value != "false" {
            return Err(SaslError::Unsupported("delegation token authentication"));
        }
    }
    if let Some(authzid) = authzid {
        if authzid != username {
            return Err(SaslError::Unsupported(
                "an authorization id different from the user name",
            ));
        }
    }
    Ok(ClientFirst {
        gs2_header,
        username,
        nonce: nonce.to_string(),
        bare: bare.to_string(),
    })
}

/// Parses `channel-binding "," nonce ["," extensions] "," proof`.
pub fn parse_client_final(message: &[u8]) -> Result<ClientFinal, SaslError> {
    let text = as_text(message)?;
    let (without_proof, proof) = text
        .rsplit_once(",p=")
        .ok_or(SaslError::Malformed("missing proof"))?;
    let proof = B64
        .decode(proof)
        .map_err(|_| SaslError::Malformed("proof is not base64"))?;
    let mut attrs = without_proof.split(',');
    let channel_binding = attrs
        .next()
        .and_then(|a| a.strip_prefix("c="))
        .ok_or(SaslError::Malformed("missing channel binding"))?;
    let channel_binding = B64
        .decode(channel_binding)
        .map_err(|_| SaslError::Malformed("channel binding is not base64"))?;
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or(SaslError::Malformed("missing nonce"))?;
    for extension in attrs {
        if extension.split_once('=').is_none() {
            return Err(SaslError::Malformed("bad extension"));
        }
    }
    Ok(ClientFinal {
        channel_binding,
        nonce: nonce.to_string(),
        without_proof: without_proof.to_string(),
        proof,
    })
}

/// `r=<nonce>,s=<salt>,i=<iterations>`.
pub fn server_first(nonce: &str, salt: &[u8], iterations: u32) -> String {
    format!("r={nonce},s={},i={iterations}", B64.encode(salt))
}

/// `v=<ServerSignature>`.
pub fn server_final(server_signature: &[u8]) -> String {
    format!("v={}", B64.encode(server_signature))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_keeps_exact_parts() {
        let m = parse_client_first(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        assert_eq!(m.gs2_header, "n,,");
        assert_eq!(m.username, "user");
        assert_eq!(m.nonce, "rOprNGfwEbeRWgbNEkqO");
        assert_eq!(m.bare, "n=user,r=rOprNGfwEbeRWgbNEkqO");

        let m = parse_client_first(b"y,a=al=2Cice,n=al=2Cice,r=abc,tokenauth=false").unwrap();
        assert_eq!(m.gs2_header, "y,a=al=2Cice,");
        assert_eq!(m.username, "al,ice");
    }

    #[test]
    fn user_name_escapes() {
        assert_eq!(decode_saslname("a=3Db=2Cc").unwrap(), "a=b,c");
        assert!(decode_saslname("a=3").is_err());
        assert!(decode_saslname("a=41").is_err());
        assert_eq!(encode_saslname("a=b,c"), "a=3Db=2Cc");
    }

    #[test]
    fn client_first_refusals() {
        let refused: &[(&[u8], &str)] = &[
            (
                b"p=tls-unique,,n=u,r=abc",
                "unsupported SASL feature: channel binding",
            ),
            (b"n,a=admin,n=u,r=abc", "authorization id"),
            (b"n,,n=u,r=abc,tokenauth=true", "delegation token"),
            (b"n,,m=x,n=u,r=abc", "mandatory extension"),
            (b"x,,n=u,r=abc", "flag"),
            (b"n,,n=,r=abc", "empty user name"),
            (b"n,,n=u", "client nonce"),
            (b"n,,n=u,r=a\x01b", "client nonce"),
            (b"n,,r=abc,n=u", "user name"),
            (b"n,,n=u\xff,r=abc", "UTF-8"),
        ];
        for (message, expected) in refused {
            let err = parse_client_first(message).unwrap_err().to_string();
            assert!(err.contains(expected), "{err} for {message:?}");
        }
        let long = vec![b'a'; MAX_CLIENT_MESSAGE_BYTES + 1];
        assert!(parse_client_first(&long).is_err());
    }

    #[test]
    fn client_final_splits_proof() {
        let m = parse_client_final(b"c=biws,r=abcdef,p=AAEC").unwrap();
        assert_eq!(m.channel_binding, b"n,,");
        assert_eq!(m.nonce, "abcdef");
        assert_eq!(m.without_proof, "c=biws,r=abcdef");
        assert_eq!(m.proof, vec![0, 1, 2]);
        assert!(!format!("{m:?}").contains("AAEC"));
        assert!(parse_client_final(b"c=biws,r=abc").is_err());
        assert!(parse_client_final(b"r=abc,c=biws,p=AAEC").is_err());
        assert!(parse_client_final(b"c=biws,r=abc,p=!!").is_err());
    }

    proptest::proptest! {
        #[test]
        fn saslname_round_trips(name in "\\PC{1,40}") {
            proptest::prop_assert_eq!(decode_saslname(&encode_saslname(&name)).unwrap(), name);
        }

        #[test]
        fn parsers_and_servers_never_panic(a in proptest::collection::vec(0u8..=255, 0..200),
                                            b in proptest::collection::vec(0u8..=255, 0..200)) {
            let _ = parse_client_first(&a);
            let _ = parse_client_final(&b);
            let store = crate::sasl::CredentialStore::new().unwrap();
            let mut server = crate::sasl::ScramServer::new(crate::sasl::Mechanism::ScramSha256, &store);
            let _ = server.step(&a);
            let _ = server.step(&b);
            let _ = crate::sasl::PlainServer::new(&store).step(&a);
        }
    }
}
