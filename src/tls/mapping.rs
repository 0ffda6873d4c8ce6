//! Kafka `ssl.principal.mapping.rules`.
//!
//! Syntax (as in Kafka's `SslPrincipalMapper`): a comma- or newline-separated list of
//! `RULE:pattern/replacement/` with an optional `L` (lowercase) or `U` (uppercase) after the last
//! slash, and `DEFAULT` (the DN unchanged). Inside pattern and replacement a backslash escapes the
//! next character, so `\/` is a literal slash. In the replacement `$1`..`$9` (or `${12}`) are
//! capture groups.
//!
//! A rule applies when its pattern matches the *whole* DN (Java's `Matcher::matches`); the
//! result is the replacement expanded with that match's groups. The first applying rule wins.

use regex::Regex;

use super::error::PrincipalError;
use super::settings::{SanUriPrincipal, TlsSettings};

/// Case conversion applied after a rule's replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        regex: Regex,
        replacement: String,
        case: Case,
    },
}

/// Compiled principal settings: the mapping rules and the SAN URI choice.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
    pub(crate) san_uri: SanUriPrincipal,
}

impl PrincipalMapper {
    /// Compiles `principal_mapping_rules` (empty means `DEFAULT`).
    pub fn from_settings(settings: &TlsSettings) -> Result<Self, PrincipalError> {
        let mut rules = Vec::new();
        for entry in &settings.principal_mapping_rules {
            rules.extend(parse_rules(entry)?);
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(Self {
            rules,
            san_uri: settings.principal_from_san_uri.clone(),
        })
    }

    /// Applies the rules to an RFC 2253 DN; the first whose pattern matches the whole DN wins.
    pub fn map_dn(&self, dn: &str) -> Result<String, PrincipalError> {
        for rule in &self.rules {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    regex,
                    replacement,
                    case,
                } => {
                    if let Some(caps) = regex.captures(dn) {
                        let out = expand(replacement, &caps);
                        return Ok(match case {
                            Case::Keep => out,
                            Case::Lower => out.to_lowercase(),
                            Case::Upper => out.to_uppercase(),
                        });
                    }
                }
            }
        }
        Err(PrincipalError::NoRuleMatched(
            dn.escape_default().to_string(),
        ))
    }
}

/// Parses one config entry, which may hold several comma-separated rules.
fn parse_rules(entry: &str) -> Result<Vec<Rule>, PrincipalError> {
    let bad = |message: &str| PrincipalError::BadRule {
        rule: entry.to_string(),
        message: message.to_string(),
    };
    let mut rules = Vec::new();
    let mut rest = entry.trim_start();
    loop {
        if let Some(after) = rest.strip_prefix("DEFAULT") {
            rules.push(Rule::Default);
            rest = after;
        } else if let Some(after) = rest.strip_prefix("RULE:") {
            let (pattern, after) = take_until_slash(after).ok_or_else(|| bad("missing `/`"))?;
            let (replacement, after) =
                take_until_slash(after).ok_or_else(|| bad("missing the closing `/`"))?;
            let (case, after) = match after.chars().next() {
                Some('L') => (Case::Lower, after.get(1..).unwrap_or_default()),
                Some('U') => (Case::Upper, after.get(1..).unwrap_or_default()),
                _ => (Case::Keep, after),
            };
            let regex = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| bad(&format!("bad pattern: {e}")))?;
            rules.push(Rule::Replace {
                regex,
                replacement: replacement.to_string(),
                case,
            });
            rest = after;
        } else {
            return Err(bad("expected `RULE:` or `DEFAULT`"));
        }
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Ok(rules);
        }
        match rest.strip_prefix([',', '\n']) {
            Some(after) if !after.trim().is_empty() => rest = after.trim_start(),
            Some(_) => return Err(bad("trailing separator")),
            None => return Err(bad("expected `,` between rules")),
        }
    }
}

/// Splits at the first unescaped `/`, keeping escapes verbatim.
fn take_until_slash(s: &str) -> Option<(&str, &str)> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '/' => return Some((s.get(..i)?, s.get(i + 1..)?)),
            _ => {}
        }
    }
    None
}

/// Java `Matcher` replacement: `$n` / `${n}` groups, `\x` a literal `x`.
fn expand(replacement: &str, caps: &regex::Captures<'_>) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '$' => {
                let mut digits = String::new();
                if chars.peek() == Some(&'{') {
                    chars.next();
                    for d in chars.by_ref() {
                        if d == '}' {
                            break;
                        }
                        digits.push(d);
                    }
                } else {
                    while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                        // Java takes more digits only while they name an existing group.
                        let mut longer = digits.clone();
                        longer.push(d);
                        let fits = longer.parse::<usize>().is_ok_and(|n| n < caps.len());
                        if !digits.is_empty() && !fits {
                            break;
                        }
                        digits = longer;
                        chars.next();
                    }
                }
                match digits.parse::<usize>() {
                    Ok(n) => out.push_str(caps.get(n).map_or("", |m| m.as_str())),
                    Err(_) => {
                        out.push('$');
                        out.push_str(&digits);
                    }
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(rules: &[&str]) -> PrincipalMapper {
        let mut s = TlsSettings::server_only("c", "k");
        s.principal_mapping_rules = rules.iter().map(|r| r.to_string()).collect();
        PrincipalMapper::from_settings(&s).unwrap()
    }

    const KAFKA_DOC: &str = "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\
        RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,\
        RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,\
        DEFAULT";

    #[test]
    fn kafka_documentation_examples() {
        let m = mapper(&[KAFKA_DOC]);
        // Kafka docs: these map to "serviceuser", "adminUser@admin" (lowercased), "kafka1".
        assert_eq!(
            m.map_dn("CN=serviceuser,OU=ServiceUsers,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "serviceuser"
        );
        assert_eq!(
            m.map_dn("CN=adminUser,OU=Admin,O=Unknown,L=Unknown,ST=Unknown,C=Unknown")
                .unwrap(),
            "adminuser@admin"
        );
        assert_eq!(
            m.map_dn("CN=kafka1,OU=Dev,O=Unknown").unwrap(),
            "kafka1",
            "third rule, lowercased"
        );
        assert_eq!(m.map_dn("OU=nobody").unwrap(), "OU=nobody", "DEFAULT");
    }

    #[test]
    fn kafka_mapper_test_cases() {
        // From Kafka's SslPrincipalMapperTest.
        let m = mapper(&["RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/"]);
        assert_eq!(
            m.map_dn("CN=Duke,OU=ServiceUsers,O=Org,C=US").unwrap(),
            "Duke"
        );
        let m = mapper(&["RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/U"]);
        assert_eq!(
            m.map_dn("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US")
                .unwrap(),
            "DUKE@JAVASOFT"
        );
        let m = mapper(&["RULE:^CN=(.*),OU=.*$/$1\\/admin/"]);
        assert_eq!(m.map_dn("CN=Duke,OU=x").unwrap(), "Duke/admin");
    }

    #[test]
    fn no_match_without_default_is_an_error() {
        let m = mapper(&["RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/"]);
        assert!(matches!(
            m.map_dn("CN=alice,OU=eng"),
            Err(PrincipalError::NoRuleMatched(_))
        ));
    }

    #[test]
    fn pattern_must_match_the_whole_dn() {
        let m = mapper(&["RULE:CN=([a-z]+)/$1/"]);
        assert!(m.map_dn("CN=alice,OU=eng").is_err());
        assert_eq!(m.map_dn("CN=alice").unwrap(), "alice");
    }

    #[test]
    fn group_numbers_and_braces() {
        let m = mapper(&["RULE:^CN=(a)(b)$/$2$1${1}x$10/"]);
        // `$10` with two groups is group 1 then a literal 0, as in Java.
        assert_eq!(m.map_dn("CN=ab").unwrap(), "baaxa0");
    }

    #[test]
    fn bad_rules_are_refused() {
        for rule in [
            "RULE:^CN=(.*$/$1/",
            "RULE:^CN=x",
            "RULE:^CN=x/y",
            "DEFAULTS",
            "rule:^x$/y/",
            "DEFAULT,",
            "RULE:a/b/L junk",
        ] {
            let mut s = TlsSettings::server_only("c", "k");
            s.principal_mapping_rules = vec![rule.to_string()];
            assert!(PrincipalMapper::from_settings(&s).is_err(), "{rule}");
        }
    }
}
