//! The client side of SASL PLAIN and SCRAM-SHA-256/512 (RFC 5802, RFC 7677), sans-io: the
//! gateway logging in to an upstream broker.
//!
//! Key derivations and message encodings are the server's ([`crate::sasl::mechanism`],
//! [`crate::sasl::scram_messages`]). The server is checked as strictly as the server checks
//! clients: its nonce must extend ours, its iteration count is bounded (a hostile upstream
//! cannot make the gateway spend minutes in PBKDF2), and its final signature is compared in
//! constant time. Errors never carry the password, proofs or keys.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::secret::{Credential, Secret};
use super::settings::ClientMechanism;
use crate::sasl::mechanism::random_bytes;
use crate::sasl::scram_messages::encode_saslname;
use crate::sasl::{Mechanism, MAX_ITERATIONS, MIN_ITERATIONS};

/// Random bytes in our client nonce (base64: 32 printable characters).
const CLIENT_NONCE_BYTES: usize = 24;

/// Largest server message accepted.
const MAX_SERVER_MESSAGE_BYTES: usize = 8192;

/// Why a login failed on our side of the exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslClientError {
    #[error("malformed server message: {0}")]
    Malformed(&'static str),
    #[error("the server's nonce does not extend the client nonce")]
    NonceMismatch,
    #[error("the server asks for {0} PBKDF2 iterations (accepted: {MIN_ITERATIONS} to {MAX_ITERATIONS})")]
    Iterations(u32),
    #[error("the server's signature is wrong: it does not know this user's credentials (possible impostor)")]
    BadServerSignature,
    #[error("the server refused the login: {0}")]
    ServerError(String),
    #[error("the exchange is not in a state to take this message")]
    OutOfOrder,
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// One client login: the first message, then one step per server message until done.
pub enum SaslClient {
    Plain { first: Option<Vec<u8>> },
    Scram(ScramClient),
}

impl std::fmt::Debug for SaslClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaslClient::Plain { .. } => f.write_str("SaslClient::Plain"),
            SaslClient::Scram(s) => write!(f, "SaslClient::{}", s.mechanism),
        }
    }
}

/// What to do after a server message.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send these bytes in the next SaslAuthenticate.
    Send(Vec<u8>),
    /// Logged in (and, for SCRAM, the server proved it knows the credential).
    Done,
}

impl SaslClient {
    pub fn new(credential: &Credential) -> Result<Self, SaslClientError> {
        Ok(match credential.mechanism.scram() {
            None => SaslClient::Plain {
                first: Some(plain_message(&credential.username, &credential.password)),
            },
            Some(mechanism) => SaslClient::Scram(ScramClient::new(
                mechanism,
                &credential.username,
                credential.password.clone(),
                None,
            )?),
        })
    }

    pub fn mechanism(&self) -> ClientMechanism {
        match self {
            SaslClient::Plain { .. } => ClientMechanism::Plain,
            SaslClient::Scram(s) => match s.mechanism {
                Mechanism::ScramSha256 => ClientMechanism::ScramSha256,
                Mechanism::ScramSha512 => ClientMechanism::ScramSha512,
            },
        }
    }

    /// The first client message.
    pub fn start(&mut self) -> Result<Vec<u8>, SaslClientError> {
        match self {
            SaslClient::Plain { first } => first.take().ok_or(SaslClientError::OutOfOrder),
            SaslClient::Scram(s) => s.client_first(),
        }
    }

    /// Answers one server message (the auth bytes of a successful SaslAuthenticate).
    pub fn step(&mut self, server_message: &[u8]) -> Result<Next, SaslClientError> {
        match self {
            // PLAIN is done after one successful round; the server sends nothing back.
            SaslClient::Plain { first: None } => Ok(Next::Done),
            SaslClient::Plain { first: Some(_) } => Err(SaslClientError::OutOfOrder),
            SaslClient::Scram(s) => s.step(server_message),
        }
    }
}

/// `authzid \0 authcid \0 passwd` with an empty authzid.
fn plain_message(username: &str, password: &Secret) -> Vec<u8> {
    let mut message = Vec::with_capacity(username.len() + password.expose().len() + 2);
    message.push(0);
    message.extend_from_slice(username.as_bytes());
    message.push(0);
    message.extend_from_slice(password.expose());
    message
}

/// A SCRAM client exchange.
pub struct ScramClient {
    mechanism: Mechanism,
    password: Secret,
    client_nonce: String,
    bare: String,
    state: ScramState,
}

enum ScramState {
    Initial,
    FirstSent,
    /// The ServerSignature we expect in server-final.
    FinalSent(Vec<u8>),
    Finished,
}

const GS2_HEADER: &str = "n,,";

impl ScramClient {
    /// A client for `username`; `nonce` fixes the client nonce (test vectors only).
    pub fn new(
        mechanism: Mechanism,
        username: &str,
        password: Secret,
        nonce: Option<&str>,
    ) -> Result<Self, SaslClientError> {
        let client_nonce = match nonce {
            Some(n) => n.to_string(),
            None => B64.encode(
                random_bytes(CLIENT_NONCE_BYTES)
                    .map_err(|_| SaslClientError::Internal("random source"))?,
            ),
        };
        let bare = format!("n={},r={client_nonce}", encode_saslname(username));
        Ok(ScramClient {
            mechanism,
            password,
            client_nonce,
            bare,
            state: ScramState::Initial,
        })
    }

    /// `client-first-message`.
    pub fn client_first(&mut self) -> Result<Vec<u8>, SaslClientError> {
        match std::mem::replace(&mut self.state, ScramState::Finished) {
            ScramState::Initial => {
                self.state = ScramState::FirstSent;
                Ok(format!("{GS2_HEADER}{}", self.bare).into_bytes())
            }
            _ => Err(SaslClientError::OutOfOrder),
        }
    }

    /// Answers server-first with client-final, or checks server-final.
    pub fn step(&mut self, server_message: &[u8]) -> Result<Next, SaslClientError> {
        match std::mem::replace(&mut self.state, ScramState::Finished) {
            ScramState::FirstSent => {
                let (client_final, expected) = self.client_final(server_message)?;
                self.state = ScramState::FinalSent(expected);
                Ok(Next::Send(client_final))
            }
            ScramState::FinalSent(expected) => {
                verify_server_final(server_message, &expected)?;
                Ok(Next::Done)
            }
            ScramState::Initial | ScramState::Finished => Err(SaslClientError::OutOfOrder),
        }
    }

    /// `client-final-message` and the ServerSignature server-final must carry.
    fn client_final(&self, server_first: &[u8]) -> Result<(Vec<u8>, Vec<u8>), SaslClientError> {
        let text = server_text(server_first)?;
        let first = parse_server_first(text)?;
        if first.nonce.len() <= self.client_nonce.len()
            || !first.nonce.starts_with(&self.client_nonce)
        {
            return Err(SaslClientError::NonceMismatch);
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&first.iterations) {
            return Err(SaslClientError::Iterations(first.iterations));
        }
        let m = self.mechanism;
        let internal = |_| SaslClientError::Internal("hmac");
        let salted = m.salted_password(self.password.expose(), &first.salt, first.iterations);
        let client_key = m.hmac(&salted, b"Client Key").map_err(internal)?;
        let stored_key = m.hash(&client_key);
        let server_key = m.hmac(&salted, b"Server Key").map_err(internal)?;
        let without_proof = format!("c={},r={}", B64.encode(GS2_HEADER), first.nonce);
        let auth_message = format!("{},{text},{without_proof}", self.bare);
        let client_signature = m
            .hmac(&stored_key, auth_message.as_bytes())
            .map_err(internal)?;
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_signature = m
            .hmac(&server_key, auth_message.as_bytes())
            .map_err(internal)?;
        Ok((
            format!("{without_proof},p={}", B64.encode(proof)).into_bytes(),
            server_signature,
        ))
    }
}

struct ServerFirst<'a> {
    nonce: &'a str,
    salt: Vec<u8>,
    iterations: u32,
}

fn server_text(message: &[u8]) -> Result<&str, SaslClientError> {
    if message.len() > MAX_SERVER_MESSAGE_BYTES {
        return Err(SaslClientError::Malformed("message too long"));
    }
    std::str::from_utf8(message).map_err(|_| SaslClientError::Malformed("not UTF-8"))
}

/// `[reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]`.
fn parse_server_first(text: &str) -> Result<ServerFirst<'_>, SaslClientError> {
    if text.starts_with("m=") {
        return Err(SaslClientError::Malformed("mandatory extension"));
    }
    if let Some(error) = text.strip_prefix("e=") {
        return Err(SaslClientError::ServerError(error.to_string()));
    }
    let mut attrs = text.split(',');
    let nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| !n.is_empty())
        .ok_or(SaslClientError::Malformed("missing nonce"))?;
    let salt = attrs
        .next()
        .and_then(|a| a.strip_prefix("s="))
        .ok_or(SaslClientError::Malformed("missing salt"))?;
    let salt = B64
        .decode(salt)
        .map_err(|_| SaslClientError::Malformed("salt is not base64"))?;
    if salt.is_empty() {
        return Err(SaslClientError::Malformed("empty salt"));
    }
    let iterations = attrs
        .next()
        .and_then(|a| a.strip_prefix("i="))
        .and_then(|i| i.parse::<u32>().ok())
        .ok_or(SaslClientError::Malformed("missing iteration count"))?;
    Ok(ServerFirst {
        nonce,
        salt,
        iterations,
    })
}

/// `v=<ServerSignature>` compared in constant time, or `e=<error>`.
fn verify_server_final(message: &[u8], expected: &[u8]) -> Result<(), SaslClientError> {
    let text = server_text(message)?;
    if let Some(error) = text.strip_prefix("e=") {
        return Err(SaslClientError::ServerError(error.to_string()));
    }
    let signature = text
        .split(',')
        .next()
        .and_then(|a| a.strip_prefix("v="))
        .ok_or(SaslClientError::Malformed("missing server signature"))?;
    let signature = B64
        .decode(signature)
        .map_err(|_| SaslClientError::Malformed("server signature is not base64"))?;
    if signature.len() != expected.len() || !bool::from(signature.ct_eq(expected)) {
        return Err(SaslClientError::BadServerSignature);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::{CredentialStore, PlainServer, ScramServer, Step};

    /// RFC 7677 section 3.
    #[test]
    fn rfc7677_exchange() {
        let mut c = ScramClient::new(
            Mechanism::ScramSha256,
            "user",
            Secret::new("pencil"),
            Some("rOprNGfwEbeRWgbNEkqO"),
        )
        .unwrap();
        assert_eq!(
            c.client_first().unwrap(),
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
        );
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let Next::Send(client_final) = c.step(server_first).unwrap() else {
            panic!("no client-final");
        };
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert_eq!(
            c.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            Next::Done
        );
        assert_eq!(c.step(b"v=x"), Err(SaslClientError::OutOfOrder));
    }

    fn store_with(user: &str, password: &str) -> CredentialStore {
        let mut store = CredentialStore::new().unwrap();
        store
            .add_user(user, &Mechanism::ALL, 4096, password.as_bytes())
            .unwrap();
        store
    }

    fn credential(mechanism: ClientMechanism, password: &str) -> Credential {
        Credential {
            mechanism,
            username: "al,ice".into(),
            password: Secret::new(password),
        }
    }

    /// Runs our client against the broker's own server; `tamper` may alter server messages.
    fn exchange(
        store: &CredentialStore,
        credential: &Credential,
        tamper: impl Fn(usize, Vec<u8>) -> Vec<u8>,
    ) -> Result<(), String> {
        let mut client = SaslClient::new(credential).unwrap();
        let mut to_server = client.start().unwrap();
        let mut scram = credential
            .mechanism
            .scram()
            .map(|m| ScramServer::new(m, store));
        let mut plain = PlainServer::new(store);
        for round in 0.. {
            let step = match &mut scram {
                Some(s) => s.step(&to_server),
                None => plain.step(&to_server),
            }
            .map_err(|e| format!("server: {e}"))?;
            let (message, done) = match step {
                Step::Continue(m) => (m, false),
                Step::Done { server_final, .. } => (server_final, true),
            };
            match client
                .step(&tamper(round, message))
                .map_err(|e| format!("client: {e}"))?
            {
                Next::Send(m) => to_server = m,
                Next::Done => return if done { Ok(()) } else { Err("early".into()) },
            }
        }
        unreachable!()
    }

    #[test]
    fn logs_in_to_the_brokers_own_server_with_every_mechanism() {
        let store = store_with("al,ice", "correct horse");
        for m in [
            ClientMechanism::ScramSha256,
            ClientMechanism::ScramSha512,
            ClientMechanism::Plain,
        ] {
            exchange(&store, &credential(m, "correct horse"), |_, m| m).unwrap();
            let err = exchange(&store, &credential(m, "wrong"), |_, m| m).unwrap_err();
            assert_eq!(err, "server: authentication failed", "{m}");
        }
    }

    #[test]
    fn a_server_without_the_credential_is_caught() {
        let store = store_with("al,ice", "correct horse");
        let cred = credential(ClientMechanism::ScramSha512, "correct horse");
        // A signature off by one bit.
        let err = exchange(&store, &cred, |round, mut m| {
            if round == 1 {
                let text = String::from_utf8(m).unwrap();
                let mut sig = B64.decode(text.strip_prefix("v=").unwrap()).unwrap();
                sig[0] ^= 1;
                m = format!("v={}", B64.encode(sig)).into_bytes();
            }
            m
        })
        .unwrap_err();
        assert!(err.contains("signature is wrong"), "{err}");
        let err = exchange(&store, &cred, |round, m| {
            if round == 1 {
                b"e=invalid-proof".to_vec()
            } else {
                m
            }
        })
        .unwrap_err();
        assert_eq!(err, "client: the server refused the login: invalid-proof");
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        let new = || {
            let mut c =
                ScramClient::new(Mechanism::ScramSha256, "u", Secret::new("p"), Some("abc"))
                    .unwrap();
            c.client_first().unwrap();
            c
        };
        for (message, expected) in [
            (
                &b"r=xyzdef,s=QUJD,i=4096"[..],
                SaslClientError::NonceMismatch,
            ),
            (b"r=abc,s=QUJD,i=4096", SaslClientError::NonceMismatch),
            (
                b"r=abcdef,s=QUJD,i=100000000",
                SaslClientError::Iterations(100_000_000),
            ),
            (b"r=abcdef,s=QUJD,i=1", SaslClientError::Iterations(1)),
            (
                b"r=abcdef,s=,i=4096",
                SaslClientError::Malformed("empty salt"),
            ),
            (
                b"r=abcdef,s=!!,i=4096",
                SaslClientError::Malformed("salt is not base64"),
            ),
            (
                b"r=abcdef,s=QUJD",
                SaslClientError::Malformed("missing iteration count"),
            ),
            (
                b"m=ext,r=abcdef,s=QUJD,i=4096",
                SaslClientError::Malformed("mandatory extension"),
            ),
            (
                b"e=unknown-user",
                SaslClientError::ServerError("unknown-user".into()),
            ),
            (b"\xff", SaslClientError::Malformed("not UTF-8")),
        ] {
            assert_eq!(new().step(message).err(), Some(expected), "{message:?}");
        }
        let long = vec![b'a'; MAX_SERVER_MESSAGE_BYTES + 1];
        assert!(new().step(&long).is_err());
    }

    proptest::proptest! {
        #[test]
        fn server_messages_never_panic(a in proptest::collection::vec(0u8..=255, 0..200),
                                       b in proptest::collection::vec(0u8..=255, 0..200)) {
            let mut c = ScramClient::new(Mechanism::ScramSha512, "u", Secret::new("p"), None).unwrap();
            c.client_first().unwrap();
            let _ = c.step(&a);
            let _ = c.step(&b);
        }
    }
}
