//! Which upstream credential a gateway principal uses: its own, from the identity map file
//! ("authentication swapping", so the cluster's ACLs, quotas and logs see alice as alice), or
//! the `[gateway.sasl]` service account, or none (refused), as `unmapped` says.
//!
//! The identity map is a TOML file, mode 0600 (refused when group or other may read it):
//!
//! ```toml
//! [principals.alice]
//! password_file = "/etc/palisade/upstream/alice.password"
//!
//! [principals."CN=billing,O=acme"]          # an mTLS principal
//! username = "billing-svc"                  # omitted: the principal's name
//! mechanism = "SCRAM-SHA-256"               # omitted: [gateway.sasl] mechanism
//! password = "inline secret"                # or password_file (exactly one)
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use super::secret::{read_password_file, read_private, Credential, Secret, SecretError};
use super::settings::{ClientMechanism, GatewaySection, Unmapped};

/// Loading the service account or the identity map failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("gateway service account: {0}")]
    ServiceAccount(SecretError),
    #[error("identity map: {0}")]
    MapFile(SecretError),
    #[error("identity map `{path}`: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("identity map `{path}`, principal `{principal}`: {message}")]
    Entry {
        path: PathBuf,
        principal: String,
        message: String,
    },
}

/// A principal the gateway does not forward (absent from the map with `unmapped = "refuse"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("principal `{0}` has no upstream identity (gateway.unmapped = \"refuse\")")]
pub struct Unforwarded(pub String);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    #[serde(default)]
    principals: HashMap<String, MapEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    mechanism: Option<ClientMechanism>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_file: Option<PathBuf>,
}

/// The upstream credentials of every principal, loaded once (secrets read from their files).
#[derive(Debug, Clone)]
pub struct UpstreamIdentities {
    service: Option<Arc<Credential>>,
    mapped: HashMap<String, Arc<Credential>>,
    unmapped: Unmapped,
}

impl UpstreamIdentities {
    /// Reads the service account's password file and the identity map, as the section names.
    pub fn load(section: &GatewaySection) -> Result<Self, IdentityError> {
        let service = match (section.sasl.mechanism, &section.sasl.password_file) {
            (Some(mechanism), Some(path)) => Some(Arc::new(Credential {
                mechanism,
                username: section.sasl.username.clone(),
                password: read_password_file(path).map_err(IdentityError::ServiceAccount)?,
            })),
            _ => None,
        };
        let mapped = match &section.identity_map_file {
            Some(path) => load_map(path, section.sasl.mechanism)?,
            None => HashMap::new(),
        };
        Ok(UpstreamIdentities {
            service,
            mapped,
            unmapped: section.unmapped,
        })
    }

    /// Only a service account (tests and `config check`).
    pub fn service_only(service: Option<Credential>) -> Self {
        UpstreamIdentities {
            service: service.map(Arc::new),
            mapped: HashMap::new(),
            unmapped: Unmapped::ServiceAccount,
        }
    }

    /// The service account, if SASL to the upstream is configured.
    pub fn service_account(&self) -> Option<&Arc<Credential>> {
        self.service.as_ref()
    }

    /// The credential `principal`'s requests use upstream: its own, else the service account
    /// (`None`: no SASL upstream), else refused.
    pub fn for_principal(&self, principal: &str) -> Result<Option<Arc<Credential>>, Unforwarded> {
        if let Some(own) = self.mapped.get(principal) {
            return Ok(Some(Arc::clone(own)));
        }
        match self.unmapped {
            Unmapped::ServiceAccount => Ok(self.service.clone()),
            Unmapped::Refuse => Err(Unforwarded(principal.to_string())),
        }
    }

    /// How many principals have their own upstream identity.
    pub fn mapped_count(&self) -> usize {
        self.mapped.len()
    }
}

fn load_map(
    path: &Path,
    default_mechanism: Option<ClientMechanism>,
) -> Result<HashMap<String, Arc<Credential>>, IdentityError> {
    let text = read_private(path).map_err(IdentityError::MapFile)?;
    let file: MapFile = toml::from_str(&text).map_err(|e| IdentityError::Invalid {
        path: path.to_path_buf(),
        // The parser's message quotes the offending line, which may hold an inline password:
        // keep only its description.
        message: e.message().to_string(),
    })?;
    let mut mapped = HashMap::new();
    for (principal, entry) in file.principals {
        let fail = |message: &str| IdentityError::Entry {
            path: path.to_path_buf(),
            principal: principal.clone(),
            message: message.to_string(),
        };
        let mechanism = entry
            .mechanism
            .or(default_mechanism)
            .ok_or_else(|| fail("no `mechanism`, and `[gateway.sasl]` names none"))?;
        let password = match (entry.password, &entry.password_file) {
            (Some(inline), None) if !inline.is_empty() => Secret::new(inline.into_bytes()),
            (None, Some(file)) => read_password_file(file).map_err(|e| fail(&e.to_string()))?,
            (Some(_), None) => return Err(fail("`password` is empty")),
            (Some(_), Some(_)) => return Err(fail("set `password` or `password_file`, not both")),
            (None, None) => return Err(fail("`password` or `password_file` is required")),
        };
        let username = entry.username.unwrap_or_else(|| principal.clone());
        if username.is_empty() {
            return Err(fail("`username` is empty"));
        }
        mapped.insert(
            principal,
            Arc::new(Credential {
                mechanism,
                username,
                password,
            }),
        );
    }
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn section(dir: &Path, unmapped: &str) -> GatewaySection {
        toml::from_str(&format!(
            "bootstrap_servers = [\"k:9092\"]\nidentity_map_file = {:?}\nunmapped = {unmapped:?}\n\
             [sasl]\nmechanism = \"SCRAM-SHA-512\"\nusername = \"svc\"\npassword_file = {:?}\n",
            dir.join("map.toml"),
            dir.join("svc.pw"),
        ))
        .unwrap()
    }

    #[test]
    fn mapped_principals_get_their_own_credential_and_others_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        private(&dir.path().join("svc.pw"), "svc-pass\n");
        private(&dir.path().join("alice.pw"), "alice-pass\n");
        private(
            &dir.path().join("map.toml"),
            &format!(
                "[principals.alice]\npassword_file = {:?}\n\n\
                 [principals.\"CN=billing,O=acme\"]\nusername = \"billing-svc\"\n\
                 mechanism = \"SCRAM-SHA-256\"\npassword = \"inline-pass\"\n",
                dir.path().join("alice.pw")
            ),
        );
        let ids = UpstreamIdentities::load(&section(dir.path(), "service-account")).unwrap();
        assert_eq!(ids.mapped_count(), 2);
        let alice = ids.for_principal("alice").unwrap().unwrap();
        assert_eq!(alice.username, "alice");
        assert_eq!(alice.mechanism, ClientMechanism::ScramSha512);
        assert_eq!(alice.password.expose(), b"alice-pass");
        let billing = ids.for_principal("CN=billing,O=acme").unwrap().unwrap();
        assert_eq!(billing.username, "billing-svc");
        assert_eq!(billing.mechanism, ClientMechanism::ScramSha256);
        assert_eq!(ids.for_principal("bob").unwrap().unwrap().username, "svc");
        assert!(!format!("{ids:?}").contains("pass\""), "{ids:?}");

        let refusing = UpstreamIdentities::load(&section(dir.path(), "refuse")).unwrap();
        assert_eq!(
            refusing.for_principal("bob").unwrap_err(),
            Unforwarded("bob".into())
        );
        assert!(refusing.for_principal("alice").is_ok());
    }

    #[test]
    fn a_readable_or_broken_map_is_refused_without_showing_secrets() {
        let dir = tempfile::tempdir().unwrap();
        private(&dir.path().join("svc.pw"), "svc-pass");
        let map = dir.path().join("map.toml");
        private(&map, "[principals.alice]\npassword = \"leaky-secret\"\n");
        std::fs::set_permissions(&map, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = UpstreamIdentities::load(&section(dir.path(), "refuse"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");

        private(
            &map,
            "[principals.alice]\npassword = \"leaky-secret\"\npasword = 1\n",
        );
        let err = UpstreamIdentities::load(&section(dir.path(), "refuse"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("pasword") && !err.contains("leaky-secret"),
            "{err}"
        );

        private(&map, "[principals.alice]\nusername = \"a\"\n");
        let err = UpstreamIdentities::load(&section(dir.path(), "refuse"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`password` or `password_file` is required"),
            "{err}"
        );
    }
}
