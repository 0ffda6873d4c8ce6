//! Who a connection is, as established by the listener's security protocol.

use std::fmt;

/// How a principal was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// PLAINTEXT (or TLS without a client certificate): nobody in particular.
    Anonymous,
    /// A verified TLS client certificate (mTLS), mapped to a name.
    Mtls,
    /// A SASL mechanism (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
    Sasl(&'static str),
}

/// An authenticated identity. "Authenticated" means verified, never merely that an exchange
/// reached its last message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub method: AuthMethod,
}

impl Principal {
    pub const ANONYMOUS: &'static str = "ANONYMOUS";

    pub fn anonymous() -> Self {
        Principal {
            name: Self::ANONYMOUS.to_string(),
            method: AuthMethod::Anonymous,
        }
    }

    pub fn is_anonymous(&self) -> bool {
        self.method == AuthMethod::Anonymous
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "User:{}", self.name)
    }
}

/// The static name of a SASL mechanism we offer, for [`AuthMethod::Sasl`].
pub fn mechanism_name(name: &str) -> Option<&'static str> {
    crate::sasl::SUPPORTED_MECHANISMS
        .iter()
        .copied()
        .find(|m| *m == name)
}
