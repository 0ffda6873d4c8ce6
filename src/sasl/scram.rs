//! [`ScramServer`]: the server side of SCRAM-SHA-256/512 (RFC 5802, RFC 7677), sans-io.
//!
//! Two client messages, two answers, then the server is spent: any further step (a replayed
//! client-final, or anything after a failure) is refused with [`SaslError::ExchangeFinished`].

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use subtle::{Choice, ConstantTimeEq};

use super::credentials::{CredentialStore, ScramCredential, UserFingerprint};
use super::mechanism::random_bytes;
use super::scram_messages::{self, ClientFinal, ClientFirst};
use super::{Mechanism, SaslError, Step};

/// Random bytes in the server nonce (base64-encoded: 32 printable characters).
pub const SERVER_NONCE_BYTES: usize = 24;

/// One SCRAM exchange on one connection.
pub struct ScramServer {
    mechanism: Mechanism,
    store: CredentialStore,
    state: State,
    fixed_nonce: Option<String>,
    fingerprint: Option<UserFingerprint>,
    /// The user name of client-first, unverified (for the audit of a failed login).
    attempted: Option<String>,
}

enum State {
    Initial,
    ServerFirstSent(Box<Pending>),
    Finished,
}

struct Pending {
    first: ClientFirst,
    /// `client nonce + server nonce`, as sent in server-first.
    nonce: String,
    server_first: String,
    credential: ScramCredential,
    known_user: bool,
}

impl std::fmt::Debug for ScramServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Initial => "initial",
            State::ServerFirstSent(_) => "server-first sent",
            State::Finished => "finished",
        };
        f.debug_struct("ScramServer")
            .field("mechanism", &self.mechanism)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ScramServer {
    /// A server for `mechanism`, checking against a snapshot of `store` (a cheap clone).
    pub fn new(mechanism: Mechanism, store: &CredentialStore) -> Self {
        ScramServer {
            mechanism,
            store: store.clone(),
            state: State::Initial,
            fixed_nonce: None,
            fingerprint: None,
            attempted: None,
        }
    }

    /// A server whose nonce suffix is fixed: only for test vectors.
    #[cfg(test)]
    pub(crate) fn with_server_nonce(
        mechanism: Mechanism,
        store: &CredentialStore,
        nonce: &str,
    ) -> Self {
        let mut server = Self::new(mechanism, store);
        server.fixed_nonce = Some(nonce.to_string());
        server
    }

    /// The mechanism this server runs.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// After [`Step::Done`]: the fingerprint of the authenticated user's credentials in the
    /// snapshot used. Compare it with [`super::SharedCredentials::subscribe`] updates to close
    /// the connection when the user is removed or changed.
    pub fn fingerprint(&self) -> Option<UserFingerprint> {
        self.fingerprint
    }

    /// The user name client-first claimed, once parsed; unverified unless the exchange
    /// succeeded.
    pub fn attempted_user(&self) -> Option<&str> {
        self.attempted.as_deref()
    }

    /// Processes one client message. Any error ends the exchange.
    pub fn step(&mut self, client_message: &[u8]) -> Result<Step, SaslError> {
        match std::mem::replace(&mut self.state, State::Finished) {
            State::Initial => {
                let (pending, server_first) = self.server_first(client_message)?;
                self.state = State::ServerFirstSent(Box::new(pending));
                Ok(Step::Continue(server_first.into_bytes()))
            }
            State::ServerFirstSent(pending) => self.server_final(&pending, client_message),
            State::Finished => Err(SaslError::ExchangeFinished),
        }
    }

    fn server_first(&mut self, client_message: &[u8]) -> Result<(Pending, String), SaslError> {
        let first = scram_messages::parse_client_first(client_message)?;
        self.attempted = Some(first.username.clone());
        // The fake credential is derived for every user so that both paths cost the same.
        let fake = self
            .store
            .fake_credential(&first.username, self.mechanism)?;
        let (credential, known_user) = match self.store.lookup(&first.username, self.mechanism) {
            Some(c) => (c.clone(), true),
            None => (fake, false),
        };
        let server_nonce = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => B64.encode(random_bytes(SERVER_NONCE_BYTES)?),
        };
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first =
            scram_messages::server_first(&nonce, &credential.salt, credential.iterations);
        let pending = Pending {
            first,
            nonce,
            server_first: server_first.clone(),
            credential,
            known_user,
        };
        Ok((pending, server_first))
    }

    fn server_final(&mut self, p: &Pending, client_message: &[u8]) -> Result<Step, SaslError> {
        let last = scram_messages::parse_client_final(client_message)?;
        if last.channel_binding != p.first.gs2_header.as_bytes() {
            return Err(SaslError::Malformed(
                "channel binding does not match the gs2 header",
            ));
        }
        if !nonce_matches(&last, p) {
            return Err(SaslError::AuthenticationFailed);
        }
        let auth_message = format!("{},{},{}", p.first.bare, p.server_first, last.without_proof);
        let m = self.mechanism;
        let c = &p.credential;
        // The same work for known and unknown users; one constant-time verdict at the end.
        let client_signature = m.hmac(&c.stored_key, auth_message.as_bytes())?;
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let length_ok = Choice::from(u8::from(last.proof.len() == m.key_len()));
        let key_ok = m.hash(&client_key).ct_eq(&c.stored_key);
        let known = Choice::from(u8::from(p.known_user));
        if !bool::from(length_ok & key_ok & known) {
            return Err(SaslError::AuthenticationFailed);
        }
        let server_signature = m.hmac(&c.server_key, auth_message.as_bytes())?;
        self.fingerprint = self.store.fingerprint(&p.first.username);
        Ok(Step::Done {
            server_final: scram_messages::server_final(&server_signature).into_bytes(),
            principal: p.first.username.clone(),
        })
    }
}

/// RFC 5802: `r` is exactly the server's nonce. librdkafka sends the client nonce followed by
/// the server's nonce (which already starts with the client nonce); that exact form is
/// accepted too. Nothing else: no prefix or suffix matching.
fn nonce_matches(last: &ClientFinal, p: &Pending) -> bool {
    let sent = last.nonce.as_str();
    if sent == p.nonce {
        return true;
    }
    let client = p.first.nonce.as_str();
    sent.len() == client.len() + p.nonce.len()
        && sent.strip_prefix(client) == Some(p.nonce.as_str())
}

#[cfg(test)]
#[path = "scram_tests.rs"]
mod tests;
