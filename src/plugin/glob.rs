//! Topic patterns of a manifest: exact names, or globs with `*` (any run of characters) and
//! `?` (one character).

/// One `topics` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern(String);

impl TopicPattern {
    pub fn new(pattern: &str) -> Self {
        TopicPattern(pattern.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, topic: &str) -> bool {
        glob_match(self.0.as_bytes(), topic.as_bytes())
    }
}

/// Iterative glob matching with single-star backtracking: linear in practice, never
/// exponential.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_star_and_question_mark() {
        let m = |p: &str, t: &str| TopicPattern::new(p).matches(t);
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders2"));
        assert!(m("payments-*", "payments-eu"));
        assert!(m("payments-*", "payments-"));
        assert!(!m("payments-*", "payment"));
        assert!(m("*", "anything"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*-audit-*", "x-audit-y"));
        assert!(!m("*-audit-*", "x-audity"));
        assert!(m("**a", "bbba"));
    }
}
