//! Stable policy ids. `PolicySet::from_str` names policies `policy0..N`, which collide across
//! files; every policy is renamed to its `@id("...")` annotation when present, otherwise to
//! `"<file>:<n>"` (`n` counts the file's policies from 1). Each keeps where it came from as a
//! [`PolicyRef`] so decisions and errors can point at `file:line`.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Policy, PolicyId, PolicySet};

use super::diagnostics::{from_miette, line_col, PolicyDiagnostic};

/// Where a policy came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PolicyRef {
    /// The policy's id: its `@id` annotation, or `"<file>:<n>"`.
    pub id: Arc<str>,
    /// The file name relative to the policy directory.
    pub file: Arc<str>,
    /// The 1-based line of the policy's first character (its first annotation or its effect).
    pub line: usize,
}

impl fmt::Display for PolicyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}:{})", self.id, self.file, self.line)
    }
}

/// One parsed policy, renamed to its stable id.
#[derive(Debug, Clone)]
pub struct ParsedPolicy {
    pub policy: Policy,
    pub origin: PolicyRef,
}

/// The position of `policyN` in its file, from Cedar's default id.
fn default_index(id: &PolicyId) -> usize {
    id.to_string()
        .strip_prefix("policy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Parses one `.cedar` file into renamed policies, in file order.
pub fn parse_file(file: &str, text: &str) -> Result<Vec<ParsedPolicy>, Vec<PolicyDiagnostic>> {
    let set = PolicySet::from_str(text).map_err(|errs| {
        errs.iter()
            .map(|e| from_miette(file, text, e))
            .collect::<Vec<_>>()
    })?;
    if set.templates().next().is_some() {
        return Err(vec![PolicyDiagnostic::file_level(
            file,
            "policy templates (`?principal`, `?resource`) are not supported",
        )]);
    }
    let mut policies: Vec<&Policy> = set.policies().collect();
    policies.sort_by_key(|p| default_index(p.id()));
    let file_arc: Arc<str> = Arc::from(file);
    let mut cursor = 0;
    let mut parsed = Vec::with_capacity(policies.len());
    for (n, policy) in policies.into_iter().enumerate() {
        // The lossless text is an exact slice of the file; find it after the previous one.
        let own_text = policy.to_string();
        let offset = text
            .get(cursor..)
            .and_then(|rest| rest.find(own_text.as_str()))
            .map(|i| cursor + i);
        let line = match offset {
            Some(offset) => {
                cursor = offset + own_text.len();
                line_col(text, offset).0
            }
            None => 0,
        };
        let id = match policy.annotation("id") {
            Some(id) => id.to_string(),
            None => format!("{file}:{}", n + 1),
        };
        parsed.push(ParsedPolicy {
            policy: policy.new_id(PolicyId::new(&id)),
            origin: PolicyRef {
                id: Arc::from(id),
                file: Arc::clone(&file_arc),
                line,
            },
        });
    }
    Ok(parsed)
}

/// Errors for every id defined more than once, pointing at the later definition.
pub fn duplicate_ids(policies: &[ParsedPolicy]) -> Vec<PolicyDiagnostic> {
    let mut seen: HashMap<&str, &PolicyRef> = HashMap::new();
    let mut errors = Vec::new();
    for p in policies {
        if let Some(first) = seen.get(&*p.origin.id) {
            errors.push(PolicyDiagnostic {
                file: p.origin.file.to_string(),
                line: p.origin.line,
                column: 1,
                message: format!(
                    "duplicate policy id `{}` (first defined at {}:{})",
                    p.origin.id, first.file, first.line
                ),
                help: Some("give each policy a unique `@id(\"...\")`".into()),
            });
        } else {
            seen.insert(&p.origin.id, &p.origin);
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "// first\npermit(principal, action, resource);\n\n@id(\"named\")\nforbid(principal, action, resource)\n  when { false };\n";

    #[test]
    fn ids_come_from_file_and_position_or_the_id_annotation() {
        let parsed = parse_file("a.cedar", TWO).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(&*parsed[0].origin.id, "a.cedar:1");
        assert_eq!(parsed[0].origin.line, 2);
        assert_eq!(parsed[0].policy.id().to_string(), "a.cedar:1");
        assert_eq!(&*parsed[1].origin.id, "named");
        assert_eq!(parsed[1].origin.line, 4);
    }

    #[test]
    fn duplicate_ids_across_files_are_errors() {
        let mut all = parse_file("a.cedar", TWO).unwrap();
        all.extend(
            parse_file(
                "b.cedar",
                "@id(\"named\") permit(principal, action, resource);",
            )
            .unwrap(),
        );
        let errors = duplicate_ids(&all);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, "b.cedar");
        assert!(
            errors[0].message.contains("duplicate policy id `named`"),
            "{}",
            errors[0]
        );
        assert!(errors[0].message.contains("a.cedar:4"));
    }

    #[test]
    fn parse_errors_are_located() {
        let errs = parse_file(
            "bad.cedar",
            "permit(principal, action, resource);\npermit(principal action, resource);",
        )
        .unwrap_err();
        assert!(!errs.is_empty());
        assert_eq!(errs[0].line, 2, "{}", errs[0]);
    }
}
