//! The human log format, with every field value and message escaped.
//!
//! Log lines carry strings that clients choose: client ids, user names, topic, ACL resource and
//! quota entity names. A raw newline in one of them would let a client write a forged line
//! into the log (CWE-117), and an ANSI escape would repaint the terminal of whoever reads it.
//! Escaping at each call site is easy to forget, so the formatter does it for every value: no
//! human log line can contain a line break or a control character, whatever is logged.
//!
//! The JSON format needs none of this: JSON strings escape control characters by definition.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::Writer;

/// A `FormatFields` for the human format: `name=value` pairs like tracing's default, with
/// every value (and the message) passed through [`Escaping`].
#[derive(Debug, Default, Clone, Copy)]
pub struct EscapedFields;

impl<'w> MakeVisitor<Writer<'w>> for EscapedFields {
    type Visitor = EscapingVisitor<'w>;

    fn make_visitor(&self, target: Writer<'w>) -> Self::Visitor {
        EscapingVisitor {
            writer: target,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one event's or span's fields.
pub struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: fmt::Result,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        // Fields of `log` records bridged into tracing: the formatter already printed them as
        // the event's metadata.
        if name.starts_with("log.") {
            return;
        }
        if !std::mem::take(&mut self.is_empty) {
            self.result = self.writer.write_char(' ');
        }
        if self.result.is_ok() && name != "message" {
            let name = name.strip_prefix("r#").unwrap_or(name);
            self.result = write!(self.writer, "{name}=");
        }
        if self.result.is_ok() {
            self.result = Escaping(&mut self.writer).write_fmt(value);
        }
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // The message is text; other string fields are quoted, as tracing's default does.
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.write(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for EscapingVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for EscapingVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A `fmt::Write` that passes text through with control characters escaped: `\n`, `\r`, `\t`
/// as such, every other C0 or C1 control (ESC included), DEL, the Unicode line and paragraph
/// separators and the bidirectional overrides as `\u{..}`.
pub struct Escaping<W>(pub W);

impl<W: fmt::Write> fmt::Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut clean_from = 0;
        for (at, c) in s.char_indices() {
            if !needs_escape(c) {
                continue;
            }
            self.0
                .write_str(s.get(clean_from..at).unwrap_or_default())?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", u32::from(c))?,
            }
            clean_from = at + c.len_utf8();
        }
        self.0.write_str(s.get(clean_from..).unwrap_or_default())
    }
}

/// `text` with control characters escaped as [`Escaping`] does.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // Writing to a String cannot fail.
    let _ = Escaping(&mut out).write_str(text);
    out
}

/// Whether `c` is escaped: every control character, whitespace other than the space (line and
/// paragraph separators included), zero-width characters, the byte-order mark and the
/// bidirectional overrides: anything that could break a line or hide where text ends.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || (c.is_whitespace() && c != ' ')
        || matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn control_characters_are_escaped_and_text_is_kept() {
        assert_eq!(escape("plain tëxt"), "plain tëxt");
        assert_eq!(
            escape("a\nFORGED\r\tb\u{1b}[31m\u{7f}\u{85}\u{2028}\u{2029}\u{202e}\0"),
            "a\\nFORGED\\r\\tb\\u{1b}[31m\\u{7f}\\u{85}\\u{2028}\\u{2029}\\u{202e}\\u{0}"
        );
    }

    #[test]
    fn an_event_is_one_line_whatever_its_fields_hold() {
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Captured(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Captured {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .with_writer(move || writer.clone())
            .finish();
        let evil = "x\nFORGED line\u{1b}[2J\u{2028}";
        let path = std::path::Path::new(evil);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("conn", peer = %evil);
            let _entered = span.enter();
            tracing::warn!(name = evil, shown = %path.display(), r#type = ?evil, "refused {evil}");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            !text.contains('\u{1b}') && !text.contains('\u{2028}'),
            "{text}"
        );
        let escaped = "x\\nFORGED line\\u{1b}[2J\\u{2028}";
        for expected in [
            format!("peer={escaped}"),
            format!("name=\"{escaped}\""),
            format!("shown={escaped}"),
            "type=\"x\\nFORGED".to_string(),
            format!("refused {escaped}"),
        ] {
            assert!(text.contains(&expected), "no `{expected}` in {text}");
        }
    }
}
