//! [`Authenticator`]: the exchange for the mechanism a connection chose in SaslHandshake.

use super::credentials::{CredentialStore, UserFingerprint};
use super::{Mechanism, PlainServer, SaslError, ScramServer, Step};

/// One connection's SASL exchange, whatever the mechanism.
#[derive(Debug)]
pub enum Authenticator {
    Plain(PlainServer),
    Scram(ScramServer),
}

impl Authenticator {
    /// Starts an exchange for a SaslHandshake mechanism name (`PLAIN`, `SCRAM-SHA-256`,
    /// `SCRAM-SHA-512`) against a snapshot of `store`.
    pub fn new(mechanism: &str, store: &CredentialStore) -> Result<Self, SaslError> {
        match mechanism {
            "PLAIN" => Ok(Authenticator::Plain(PlainServer::new(store))),
            other => match Mechanism::from_name(other) {
                Some(m) => Ok(Authenticator::Scram(ScramServer::new(m, store))),
                None => Err(SaslError::UnsupportedMechanism(
                    other.chars().take(64).collect(),
                )),
            },
        }
    }

    /// Processes one SaslAuthenticate `auth_bytes`.
    pub fn step(&mut self, client_message: &[u8]) -> Result<Step, SaslError> {
        match self {
            Authenticator::Plain(s) => s.step(client_message),
            Authenticator::Scram(s) => s.step(client_message),
        }
    }

    /// The user name the client claimed, once its message named one; unverified unless the
    /// exchange succeeded (a failed login is audited with it).
    pub fn attempted_user(&self) -> Option<&str> {
        match self {
            Authenticator::Plain(s) => s.attempted_user(),
            Authenticator::Scram(s) => s.attempted_user(),
        }
    }

    /// After [`Step::Done`]: the fingerprint of the authenticated user's credentials.
    pub fn fingerprint(&self) -> Option<UserFingerprint> {
        match self {
            Authenticator::Plain(s) => s.fingerprint(),
            Authenticator::Scram(s) => s.fingerprint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sasl::test_client::TestClient;
    use crate::sasl::SUPPORTED_MECHANISMS;

    #[test]
    fn every_advertised_mechanism_authenticates() {
        let mut store = CredentialStore::new().unwrap();
        store
            .add_user("alice", &Mechanism::ALL, 4096, b"pw")
            .unwrap();
        for name in SUPPORTED_MECHANISMS {
            let mut auth = Authenticator::new(name, &store).unwrap();
            let step = match Mechanism::from_name(name) {
                None => auth.step(b"\0alice\0pw").unwrap(),
                Some(m) => {
                    let client = TestClient::new(m, "alice", "pw");
                    let Step::Continue(first) = auth.step(&client.client_first()).unwrap() else {
                        unreachable!()
                    };
                    auth.step(&client.client_final(&first).0).unwrap()
                }
            };
            assert!(matches!(step, Step::Done { principal, .. } if principal == "alice"));
            assert_eq!(auth.fingerprint(), store.fingerprint("alice"));
        }
    }

    #[test]
    fn unknown_mechanism_is_refused_with_its_code() {
        let store = CredentialStore::new().unwrap();
        let err = Authenticator::new("GSSAPI", &store).unwrap_err();
        assert_eq!(err.kafka_error_code(), 33);
        assert!(err.to_string().contains("`GSSAPI`"));
    }
}
