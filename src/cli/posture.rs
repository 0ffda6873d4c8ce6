//! The security checklist `palisade config check` applies to a valid config: settings a
//! production broker should not run with, each named with what to change. Warnings, not
//! errors (the dev default has several by design); `--strict` makes them fail the check.

use crate::audit::settings::DataOperations;
use crate::config::{Config, SecurityProtocol};
use crate::tls::ClientAuth;

/// What the checklist finds in `config`, one readable line each.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for l in &config.listeners {
        let name = &l.name;
        match l.protocol {
            SecurityProtocol::Plaintext => out.push(format!(
                "listener `{name}`: PLAINTEXT has neither encryption nor authentication (every client is ANONYMOUS); use SASL_SSL or SSL"
            )),
            SecurityProtocol::SaslPlaintext => out.push(format!(
                "listener `{name}`: SASL_PLAINTEXT sends records unencrypted; use SASL_SSL"
            )),
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {}
        }
        if l.protocol == SecurityProtocol::Ssl {
            if let Some(tls) = &l.tls {
                if tls.client_auth != ClientAuth::Required {
                    out.push(format!(
                        "listener `{name}`: SSL without `client_auth = \"required\"` lets clients without a certificate in as ANONYMOUS"
                    ));
                }
            }
        }
        if l.allow_plain_without_tls {
            out.push(format!(
                "listener `{name}`: `allow_plain_without_tls` sends passwords in clear text"
            ));
        }
        if l.allow_insecure_non_loopback {
            out.push(format!(
                "listener `{name}`: `allow_insecure_non_loopback` serves clear text beyond this host"
            ));
        }
    }
    out.extend(config.gateway.posture_warnings());
    let audit = &config.audit;
    if !audit.file && !audit.topic {
        out.push("audit: both sinks are off (`audit.file`, `audit.topic`): no trail of security decisions".into());
    } else if audit.data_operations == DataOperations::Off {
        out.push("audit: `data_operations = \"off\"` records no allowed reads and writes (who read what)".into());
    }
    if config.quotas.producer_byte_rate.is_none() || config.quotas.consumer_byte_rate.is_none() {
        out.push("quotas: no default `producer_byte_rate` and `consumer_byte_rate`: one client can take the broker's whole bandwidth".into());
    }
    if crate::storage::cleanup_includes(&config.topic_defaults.cleanup_policy, "compact") {
        out.push("topic_defaults: `cleanup_policy` includes compact, which this broker accepts but does not perform (tombstones erase nothing)".into());
    }
    if config
        .authorization
        .super_users
        .iter()
        .any(|u| u == crate::principal::Principal::ANONYMOUS)
    {
        out.push("authorization: `super_users` includes ANONYMOUS: every unauthenticated client bypasses the policies".into());
    }
    out.extend(unconditional_permits(&config.authorization.policy_dir));
    if config.metrics.allow_non_loopback {
        out.push("metrics: `allow_non_loopback` serves the unauthenticated metrics endpoint beyond this host".into());
    }
    out
}

/// Policies permitting every action on every resource to everyone, without a condition (the
/// test fixture `allow-all`, say, left in a production folder).
fn unconditional_permits(dir: &std::path::Path) -> Vec<String> {
    use cedar_policy::{
        ActionConstraint, Effect, PolicySet, PrincipalConstraint, ResourceConstraint,
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new(); // unreadable folders are reported by the validation itself
    };
    let mut files: Vec<std::path::PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let Ok(set) = text.parse::<PolicySet>() else {
            continue;
        };
        for policy in set.policies() {
            let everything = policy.effect() == Effect::Permit
                && policy.principal_constraint() == PrincipalConstraint::Any
                && policy.action_constraint() == ActionConstraint::Any
                && policy.resource_constraint() == ResourceConstraint::Any;
            let unconditional = policy.to_json().is_ok_and(|j| {
                j.get("conditions")
                    .and_then(|c| c.as_array())
                    .is_some_and(|c| c.is_empty())
            });
            if everything && unconditional {
                let name = policy.annotation("id").unwrap_or("(no @id)");
                out.push(format!(
                    "authorization: policy `{name}` in `{}` permits every action on every resource to everyone, without a condition",
                    file.display()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_default_is_flagged_for_its_plaintext_listener_and_missing_quotas() {
        let w = warnings(&Config::dev_default().unwrap());
        assert!(
            w.iter().any(|l| l.contains("`PLAINTEXT`: PLAINTEXT")),
            "{w:?}"
        );
        assert!(w.iter().any(|l| l.starts_with("quotas:")), "{w:?}");
        assert!(
            !w.iter().any(|l| l.contains("`SSL`")),
            "SSL requires client certificates: {w:?}"
        );
        assert!(!w.iter().any(|l| l.starts_with("audit:")), "{w:?}");
        assert!(!w.iter().any(|l| l.starts_with("topic_defaults:")), "{w:?}");
    }

    #[test]
    fn an_unconditional_permit_all_policy_is_flagged_and_a_conditional_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.cedar"),
            "@id(\"allow-all\")\npermit(principal, action, resource);\n@id(\"loopback\")\npermit(principal, action, resource) when { context.tls };\n",
        )
        .unwrap();
        let w = unconditional_permits(dir.path());
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("`allow-all`"), "{w:?}");
        // The shipped folder has none (its dev permit is conditioned on loopback PLAINTEXT).
        let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        assert!(unconditional_permits(&shipped).is_empty());
    }

    #[test]
    fn anonymous_as_a_super_user_is_flagged() {
        let text = crate::config::DEFAULT_CONFIG.replace(
            "super_users = [\"admin\"]",
            "super_users = [\"admin\", \"ANONYMOUS\"]",
        );
        let config = Config::parse(&text, std::path::Path::new("<test>")).unwrap();
        let w = warnings(&config);
        assert!(w.iter().any(|l| l.contains("includes ANONYMOUS")), "{w:?}");
    }

    #[test]
    fn a_default_of_compaction_is_flagged_as_not_performed() {
        let text = crate::config::DEFAULT_CONFIG.replace(
            "cleanup_policy = \"delete\"",
            "cleanup_policy = \"compact,delete\"",
        );
        let config = Config::parse(&text, std::path::Path::new("<test>")).unwrap();
        let w = warnings(&config);
        assert!(
            w.iter().any(|l| l.contains("tombstones erase nothing")),
            "{w:?}"
        );
    }
}
