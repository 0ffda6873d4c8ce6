//! [`PlainServer`]: SASL PLAIN (RFC 4616), checked against the stored SCRAM keys.
//!
//! No password is stored: the password received is run through the stored salt and iteration
//! count (`Hi`), and `H(HMAC(SaltedPassword, "Client Key"))` is compared with the StoredKey in
//! constant time. SCRAM-SHA-512 is preferred when a user has both. An unknown user costs the
//! same PBKDF2 work against a fake credential. PLAIN sends the password in the clear: offer it
//! only on TLS listeners.

use subtle::ConstantTimeEq;

use super::credentials::{CredentialStore, UserFingerprint};
use super::{Mechanism, SaslError, Step, MAX_CLIENT_MESSAGE_BYTES};

/// One PLAIN exchange: a single client message, then the server is spent.
pub struct PlainServer {
    store: CredentialStore,
    finished: bool,
    fingerprint: Option<UserFingerprint>,
    /// The user name (authcid) the client sent, unverified (for the audit of a failed login).
    attempted: Option<String>,
}

impl std::fmt::Debug for PlainServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainServer")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl PlainServer {
    /// A server checking against a snapshot of `store` (a cheap clone).
    pub fn new(store: &CredentialStore) -> Self {
        PlainServer {
            store: store.clone(),
            finished: false,
            fingerprint: None,
            attempted: None,
        }
    }

    /// After [`Step::Done`]: the authenticated user's fingerprint (see
    /// [`super::ScramServer::fingerprint`]).
    pub fn fingerprint(&self) -> Option<UserFingerprint> {
        self.fingerprint
    }

    /// The user name the client sent, once parsed; unverified unless the exchange succeeded.
    pub fn attempted_user(&self) -> Option<&str> {
        self.attempted.as_deref()
    }

    /// Checks `authzid \0 authcid \0 passwd`. Succeeds with an empty server message.
    pub fn step(&mut self, client_message: &[u8]) -> Result<Step, SaslError> {
        if std::mem::replace(&mut self.finished, true) {
            return Err(SaslError::ExchangeFinished);
        }
        if client_message.len() > MAX_CLIENT_MESSAGE_BYTES {
            return Err(SaslError::Malformed("message too long"));
        }
        let mut parts = client_message.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(SaslError::Malformed(
                "PLAIN needs authzid, authcid and password",
            ));
        };
        let authcid =
            std::str::from_utf8(authcid).map_err(|_| SaslError::Malformed("not UTF-8"))?;
        if authcid.is_empty() {
            return Err(SaslError::Malformed("empty user name"));
        }
        self.attempted = Some(authcid.to_string());
        if !authzid.is_empty() && authzid != authcid.as_bytes() {
            return Err(SaslError::Unsupported(
                "an authorization id different from the user name",
            ));
        }
        if self.verify(authcid, password)? {
            self.fingerprint = self.store.fingerprint(authcid);
            Ok(Step::Done {
                server_final: Vec::new(),
                principal: authcid.to_string(),
            })
        } else {
            Err(SaslError::AuthenticationFailed)
        }
    }

    fn verify(&self, user: &str, password: &[u8]) -> Result<bool, SaslError> {
        let stored = [Mechanism::ScramSha512, Mechanism::ScramSha256]
            .into_iter()
            .find_map(|m| Some((m, self.store.lookup(user, m)?.clone())));
        // The fake credential is derived for every user so that both paths cost the same.
        let fake = self.store.fake_credential(user, Mechanism::ScramSha512)?;
        let (mechanism, credential, known) = match stored {
            Some((m, c)) => (m, c, true),
            None => (Mechanism::ScramSha512, fake, false),
        };
        let salted = mechanism.salted_password(password, &credential.salt, credential.iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key")?;
        let ok = mechanism.hash(&client_key).ct_eq(&credential.stored_key);
        Ok(known && bool::from(ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> CredentialStore {
        let mut store = CredentialStore::new().unwrap();
        store
            .add_user("alice", &Mechanism::ALL, 4096, b"wonderland")
            .unwrap();
        store
            .add_user("bob", &[Mechanism::ScramSha256], 4096, b"builder")
            .unwrap();
        store
    }

    fn run(store: &CredentialStore, message: &[u8]) -> Result<Step, SaslError> {
        PlainServer::new(store).step(message)
    }

    #[test]
    fn good_passwords_authenticate() {
        let store = store();
        let done = |p: &str| Step::Done {
            server_final: vec![],
            principal: p.to_string(),
        };
        assert_eq!(run(&store, b"\0alice\0wonderland"), Ok(done("alice")));
        assert_eq!(run(&store, b"alice\0alice\0wonderland"), Ok(done("alice")));
        // Only a SHA-256 credential: still checked.
        assert_eq!(run(&store, b"\0bob\0builder"), Ok(done("bob")));
    }

    #[test]
    fn bad_password_and_unknown_user_fail_alike() {
        let store = store();
        let wrong = run(&store, b"\0alice\0wonderlan").unwrap_err();
        let unknown = run(&store, b"\0mallory\0wonderland").unwrap_err();
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.to_string(), "authentication failed");
        assert_eq!(
            run(&store, b"\0bob\0wonderland"),
            Err(SaslError::AuthenticationFailed)
        );
        assert_eq!(
            run(&store, b"\0alice\0"),
            Err(SaslError::AuthenticationFailed)
        );
    }

    #[test]
    fn malformed_and_authzid_mismatch_are_refused() {
        let store = store();
        assert!(matches!(
            run(&store, b"bob\0alice\0wonderland"),
            Err(SaslError::Unsupported(_))
        ));
        for bad in [
            &b"alice\0wonderland"[..],
            b"\0alice\0wonder\0land",
            b"\0\0pw",
            b"",
        ] {
            assert!(
                matches!(run(&store, bad), Err(SaslError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn single_use_and_no_secret_in_errors() {
        let store = store();
        let mut server = PlainServer::new(&store);
        assert!(server.step(b"\0alice\0wonderland").is_ok());
        assert!(server.fingerprint().is_some());
        assert_eq!(
            server.step(b"\0alice\0wonderland"),
            Err(SaslError::ExchangeFinished)
        );
        let err = run(&store, b"\0alice\0hunter2").unwrap_err().to_string();
        assert!(!err.contains("hunter2"));
        assert!(!format!("{server:?}").contains("wonderland"));
    }
}
