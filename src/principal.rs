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

impl AuthMethod {
    /// The mechanism's one name, used by policies (`context.authentication`), the audit trail
    /// (`mechanism`), plugins' policy questions and `palisade policy`: `anonymous`, `mtls`,
    /// `PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`. (The plugin contract's `auth-method` keeps
    /// its own published spellings; `api::plugins` converts at that boundary.)
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Mtls => "mtls",
            AuthMethod::Sasl(mechanism) => mechanism,
        }
    }
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

/// Most bytes of an unverified user name kept for a log line or an audit event.
pub const ATTEMPTED_NAME_MAX_BYTES: usize = 256;

/// A user name a client claimed but did not prove (a failed login), fit for a log line and
/// the audit trail: control characters, line and paragraph separators and bidirectional
/// overrides are escaped (`\n`, `\u{202e}`; a backslash doubles), so a name cannot forge a
/// log line or hide its own end; the result is cut to [`ATTEMPTED_NAME_MAX_BYTES`] bytes,
/// `…` marking a cut.
pub fn attempted_name(raw: &str) -> String {
    const CUT: &str = "…";
    let mut out = String::new();
    // The longest prefix (whole escapes only) that leaves room for the cut mark.
    let mut room_for_cut = 0;
    for c in raw.chars() {
        let piece = match c {
            '\\' => "\\\\".to_string(),
            c if crate::log_escape::needs_escape(c) => c.escape_default().to_string(),
            c => c.to_string(),
        };
        if out.len() + piece.len() > ATTEMPTED_NAME_MAX_BYTES {
            out.truncate(room_for_cut);
            out.push_str(CUT);
            return out;
        }
        out.push_str(&piece);
        if out.len() + CUT.len() <= ATTEMPTED_NAME_MAX_BYTES {
            room_for_cut = out.len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_vocabulary_for_mechanisms() {
        assert_eq!(AuthMethod::Anonymous.name(), "anonymous");
        assert_eq!(AuthMethod::Mtls.name(), "mtls");
        assert_eq!(AuthMethod::Sasl("SCRAM-SHA-512").name(), "SCRAM-SHA-512");
    }

    #[test]
    fn attempted_names_are_escaped_and_bounded() {
        assert_eq!(attempted_name("alice"), "alice");
        assert_eq!(attempted_name("Jürgen"), "Jürgen");
        assert_eq!(
            attempted_name("eve\nINFO forged\\x\u{202e}"),
            "eve\\nINFO forged\\\\x\\u{202e}"
        );
        let exact = "a".repeat(ATTEMPTED_NAME_MAX_BYTES);
        assert_eq!(attempted_name(&exact), exact);
        let long = attempted_name(&"ü".repeat(1000));
        assert!(long.len() <= ATTEMPTED_NAME_MAX_BYTES && long.ends_with('…'));
        let escapes = attempted_name(&"\n".repeat(1000));
        assert!(escapes.len() <= ATTEMPTED_NAME_MAX_BYTES && escapes.ends_with("\\n…"));
    }
}
