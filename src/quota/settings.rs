//! The `[quotas]` config section.

use serde::Deserialize;

use super::entity::{Entity, Name};
use super::QuotaKind;

/// Byte-rate quotas. Without any, nothing is metered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaSettings {
    /// Bytes per second each user may produce (all of its connections together); the quota of
    /// the default user. Absent: no limit.
    #[serde(default)]
    pub producer_byte_rate: Option<u64>,
    /// Bytes per second each user may fetch.
    #[serde(default)]
    pub consumer_byte_rate: Option<u64>,
    /// The longest one throttle may last (ms); a larger debt is paid over several requests.
    #[serde(default = "default_max_throttle_ms")]
    pub max_throttle_ms: u64,
    /// Quotas of particular users and client ids (`<default>` for the default one).
    #[serde(default)]
    pub overrides: Vec<QuotaOverride>,
}

fn default_max_throttle_ms() -> u64 {
    10_000
}

impl Default for QuotaSettings {
    fn default() -> Self {
        QuotaSettings {
            producer_byte_rate: None,
            consumer_byte_rate: None,
            max_throttle_ms: default_max_throttle_ms(),
            overrides: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaOverride {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub producer_byte_rate: Option<u64>,
    #[serde(default)]
    pub consumer_byte_rate: Option<u64>,
}

impl QuotaSettings {
    /// The configured quotas as `(entity, kind, bytes per second)`, or why they are invalid.
    pub fn entries(&self) -> Result<Vec<(Entity, QuotaKind, u64)>, String> {
        if self.max_throttle_ms == 0 || self.max_throttle_ms > 300_000 {
            return Err("`quotas.max_throttle_ms` must be between 1 and 300000".into());
        }
        let mut out = Vec::new();
        let default_user = Entity {
            user: Some(Name::Default),
            client_id: None,
        };
        let mut push = |entity: &Entity, kind: QuotaKind, rate: Option<u64>, at: &str| match rate {
            None => Ok(()),
            Some(0) => Err(format!("{at}: `{}` must be positive", kind.key())),
            Some(r) => {
                if out.iter().any(|(e, k, _)| e == entity && *k == kind) {
                    return Err(format!(
                        "{at}: `{}` for {entity} is given twice",
                        kind.key()
                    ));
                }
                out.push((entity.clone(), kind, r));
                Ok(())
            }
        };
        push(
            &default_user,
            QuotaKind::Produce,
            self.producer_byte_rate,
            "quotas",
        )?;
        push(
            &default_user,
            QuotaKind::Fetch,
            self.consumer_byte_rate,
            "quotas",
        )?;
        for (i, o) in self.overrides.iter().enumerate() {
            let at = format!("quotas.overrides[{i}]");
            let entity = Entity::new(
                o.user.as_deref().map(Name::parse),
                o.client_id.as_deref().map(Name::parse),
            )
            .map_err(|e| format!("{at}: {e}"))?;
            if o.producer_byte_rate.is_none() && o.consumer_byte_rate.is_none() {
                return Err(format!(
                    "{at}: give `producer_byte_rate`, `consumer_byte_rate` or both"
                ));
            }
            push(&entity, QuotaKind::Produce, o.producer_byte_rate, &at)?;
            push(&entity, QuotaKind::Fetch, o.consumer_byte_rate, &at)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> QuotaSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn one_line_gives_every_user_a_produce_quota() {
        let e = parse("producer_byte_rate = 1048576").entries().unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0.to_string(), "user=<default>");
        assert_eq!(e[0].1, QuotaKind::Produce);
        assert_eq!(e[0].2, 1_048_576);
    }

    #[test]
    fn overrides_name_users_and_client_ids() {
        let s = parse(
            r#"
            consumer_byte_rate = 10
            [[overrides]]
            user = "etl"
            client_id = "<default>"
            producer_byte_rate = 5
            consumer_byte_rate = 50
            "#,
        );
        let e = s.entries().unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].0.to_string(), "user=etl, client-id=<default>");
    }

    #[test]
    fn bad_quotas_are_refused_with_their_place() {
        let zero = parse("producer_byte_rate = 0").entries().unwrap_err();
        assert!(zero.contains("must be positive"), "{zero}");
        let nobody = parse("[[overrides]]\nproducer_byte_rate = 5")
            .entries()
            .unwrap_err();
        assert!(nobody.contains("quotas.overrides[0]"), "{nobody}");
        let no_rate = parse("[[overrides]]\nuser = \"a\"").entries().unwrap_err();
        assert!(no_rate.contains("give `producer_byte_rate`"), "{no_rate}");
        let twice = parse(
            "[[overrides]]\nuser = \"a\"\nproducer_byte_rate = 1\n[[overrides]]\nuser = \"a\"\nproducer_byte_rate = 2",
        )
        .entries()
        .unwrap_err();
        assert!(twice.contains("given twice"), "{twice}");
        assert!(toml::from_str::<QuotaSettings>("producer_byte_rat = 1").is_err());
        let throttle = parse("max_throttle_ms = 0").entries().unwrap_err();
        assert!(throttle.contains("max_throttle_ms"), "{throttle}");
    }
}
