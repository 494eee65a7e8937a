//! A small strict JSON parser (RFC 8259) that keeps spans.
//!
//! Written here rather than taken from serde_json because the validator needs the byte
//! range of every key and value (to point at it), objects with duplicate keys kept (to
//! report them), and numbers as written (to tell `3` from `3.0` and to reject huge
//! literals instead of rounding them). It also explains the usual mistakes (trailing
//! commas, comments, single quotes, `True`, bare keys) instead of just "unexpected
//! character".
//!
//! It must never panic, whatever the input: it works on bytes, every index is checked,
//! and nesting is limited to [`MAX_DEPTH`] so deep input cannot exhaust the stack.

use std::ops::Range;

use super::tree::{Key, Node, Number, Value};

/// Deepest nesting of arrays and objects accepted. A config needs 4; this leaves room.
pub(crate) const MAX_DEPTH: usize = 128;

/// A syntax error: where, what, and maybe how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyntaxError {
    pub span: Range<usize>,
    pub message: String,
    pub help: Option<String>,
    /// A second location that explains the first (e.g. where an unclosed `{` opened).
    pub note: Option<(Range<usize>, String)>,
}

type PResult<T> = Result<T, SyntaxError>;

/// Parses a whole JSON document (one value, surrounding whitespace allowed).
pub(crate) fn parse(text: &str) -> PResult<Node> {
    let mut p = Parser {
        src: text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    // A UTF-8 byte order mark is allowed (RFC 8259 section 8.1 lets parsers ignore it).
    if text.starts_with('\u{feff}') {
        p.pos = '\u{feff}'.len_utf8();
    }
    p.skip_ws();
    if p.pos >= p.bytes.len() {
        return Err(SyntaxError {
            span: p.pos..p.pos,
            message: "the file is empty: expected a JSON object".into(),
            help: Some(r#"a minimal config is `{"scripts": ["echo hello"]}`"#.into()),
            note: None,
        });
    }
    let node = p.value()?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        let mut e = p.unexpected("the end of the file after the JSON value");
        if e.help.is_none() {
            e.help =
                Some("a config file holds exactly one JSON value (the top-level object)".into());
        }
        return Err(e);
    }
    Ok(node)
}

struct Parser<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

/// Whether a byte can continue a bare word (`true`, `None`, `foo_bar`).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn peek_at(&self, i: usize) -> Option<u8> {
        self.bytes.get(i).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// The character at `pos` and its byte range (empty at end of input).
    fn char_at(&self, pos: usize) -> (Option<char>, Range<usize>) {
        match self.src.get(pos..).and_then(|s| s.chars().next()) {
            Some(c) => (Some(c), pos..pos + c.len_utf8()),
            None => (None, pos..pos),
        }
    }

    fn err(&self, span: Range<usize>, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            span,
            message: message.into(),
            help: None,
            note: None,
        }
    }

    /// The error for "found something else where `expected` should be", recognising the
    /// common mistakes so the message can say what to do.
    fn unexpected(&self, expected: &str) -> SyntaxError {
        let (c, span) = self.char_at(self.pos);
        let Some(c) = c else {
            return self.err(span, format!("unexpected end of file: expected {expected}"));
        };
        let next = self.peek_at(self.pos + 1);
        if c == '/' && matches!(next, Some(b'/' | b'*')) {
            let mut e = self.err(
                self.pos..self.pos + 2,
                format!("comments are not allowed in JSON (expected {expected})"),
            );
            e.help = Some(
                "remove the comment, or write the config in TOML (`.toml`), which has `#` comments"
                    .into(),
            );
            return e;
        }
        if c == '\'' {
            let mut e = self.err(
                span,
                format!("unexpected `'`: expected {expected}; JSON strings use double quotes"),
            );
            e.help = Some("write \"text\" instead of 'text'".into());
            return e;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == '$' {
            let mut end = self.pos;
            while end < self.bytes.len() && is_word_byte(self.bytes[end]) && end - self.pos < 64 {
                end += 1;
            }
            let word = &self.src[self.pos..end];
            let mut e = self.err(
                self.pos..end,
                format!("unexpected `{word}`: expected {expected}"),
            );
            e.help = Some(match word {
                "True" | "TRUE" => "JSON writes booleans in lower case: `true`".into(),
                "False" | "FALSE" => "JSON writes booleans in lower case: `false`".into(),
                "None" | "NULL" | "Null" | "nil" | "undefined" => {
                    "JSON writes the empty value as `null`".into()
                }
                "NaN" | "Infinity" | "inf" => "JSON has no NaN or infinity".into(),
                _ if expected.contains("key") => {
                    format!("object keys must be strings in double quotes: \"{word}\"")
                }
                _ => format!("strings must be in double quotes: \"{word}\""),
            });
            return e;
        }
        let shown = if c.is_control() || c == '\u{feff}' {
            c.escape_unicode().to_string()
        } else {
            c.to_string()
        };
        let mut e = self.err(span, format!("unexpected `{shown}`: expected {expected}"));
        e.help = match c {
            '+' => Some("JSON numbers cannot start with `+`".into()),
            '.' if next.is_some_and(|b| b.is_ascii_digit()) => {
                Some("JSON numbers need a digit before the `.`: write `0.5`".into())
            }
            '"' if expected.starts_with("`,`") => Some("is a `,` missing before this?".into()),
            _ => None,
        };
        e
    }

    fn value(&mut self) -> PResult<Node> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => {
                let start = self.pos;
                let s = self.string()?;
                Ok(Node {
                    value: Value::String(s),
                    span: start..self.pos,
                })
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') if self.keyword("true") => Ok(self.literal(4, Value::Bool(true))),
            Some(b'f') if self.keyword("false") => Ok(self.literal(5, Value::Bool(false))),
            Some(b'n') if self.keyword("null") => Ok(self.literal(4, Value::Null)),
            _ => Err(self.unexpected("a value")),
        }
    }

    /// Whether the input at `pos` is exactly the word `kw` (not a prefix of a longer word).
    fn keyword(&self, kw: &str) -> bool {
        self.bytes[self.pos..].starts_with(kw.as_bytes())
            && !self.peek_at(self.pos + kw.len()).is_some_and(is_word_byte)
    }

    fn literal(&mut self, len: usize, value: Value) -> Node {
        let start = self.pos;
        self.pos += len;
        Node {
            value,
            span: start..self.pos,
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(
                self.pos..self.pos + 1,
                format!("lists and objects are nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        Ok(())
    }

    fn object(&mut self) -> PResult<Node> {
        let start = self.pos;
        self.enter()?;
        self.pos += 1; // `{`
        let mut members: Vec<(Key, Node)> = Vec::new();
        let mut comma: Option<usize> = None;
        loop {
            self.skip_ws();
            match self.peek() {
                Some(b'}') => {
                    if let Some(c) = comma {
                        return Err(trailing_comma(c, '}'));
                    }
                    self.pos += 1;
                    break;
                }
                Some(b'"') => {}
                _ => {
                    let expected = if members.is_empty() {
                        "a string key in double quotes or `}`"
                    } else {
                        "a string key in double quotes"
                    };
                    return Err(self.with_opened(self.unexpected(expected), start, '{'));
                }
            }
            let key_start = self.pos;
            let name = self.string()?;
            let key = Key {
                name,
                span: key_start..self.pos,
            };
            self.skip_ws();
            if self.peek() != Some(b':') {
                let e = self.unexpected(&format!("`:` after the key \"{}\"", key.name));
                return Err(self.with_opened(e, start, '{'));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value()?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    comma = Some(self.pos);
                    self.pos += 1;
                }
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    let e = self.unexpected("`,` or `}` after object member");
                    return Err(self.with_opened(e, start, '{'));
                }
            }
        }
        self.depth -= 1;
        Ok(Node {
            value: Value::Object(members),
            span: start..self.pos,
        })
    }

    fn array(&mut self) -> PResult<Node> {
        let start = self.pos;
        self.enter()?;
        self.pos += 1; // `[`
        let mut items = Vec::new();
        let mut comma: Option<usize> = None;
        loop {
            self.skip_ws();
            if self.peek() == Some(b']') {
                if let Some(c) = comma {
                    return Err(trailing_comma(c, ']'));
                }
                self.pos += 1;
                break;
            }
            if self.peek().is_none() {
                let e = self.unexpected("a value or `]`");
                return Err(self.with_opened(e, start, '['));
            }
            items.push(self.value()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    comma = Some(self.pos);
                    self.pos += 1;
                }
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => {
                    let e = self.unexpected("`,` or `]` after list element");
                    return Err(self.with_opened(e, start, '['));
                }
            }
        }
        self.depth -= 1;
        Ok(Node {
            value: Value::Array(items),
            span: start..self.pos,
        })
    }

    /// Adds "the `{` opened here" to an error at the end of the input, where the
    /// interesting place is usually the unclosed bracket, not the end.
    fn with_opened(&self, mut e: SyntaxError, open: usize, bracket: char) -> SyntaxError {
        if self.pos >= self.bytes.len() && e.note.is_none() {
            e.note = Some((
                open..open + 1,
                format!("the `{bracket}` opened here is not closed"),
            ));
        }
        e
    }

    /// A string, `pos` at its opening quote; leaves `pos` after the closing quote.
    fn string(&mut self) -> PResult<String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            // Copy the run of ordinary characters in one go. The run ends at an ASCII byte
            // (`"`, `\`, control) or the end, so both ends are char boundaries.
            let run_start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            out.push_str(&self.src[run_start..self.pos]);
            match self.peek() {
                None => {
                    let mut e = self.err(self.pos..self.pos, "unterminated string: expected `\"`");
                    e.note = Some((start..start + 1, "the string starts here".into()));
                    return Err(e);
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(b) => {
                    let mut e = self.err(
                        self.pos..self.pos + 1,
                        format!("control character U+{b:04X} inside a string"),
                    );
                    e.help = Some(match b {
                        b'\n' | b'\r' => {
                            "a string cannot span lines (is a closing `\"` missing?); write `\\n` for a newline".into()
                        }
                        b'\t' => "write a tab as `\\t`".into(),
                        _ => "write control characters as `\\u00XX` escapes".into(),
                    });
                    return Err(e);
                }
            }
        }
    }

    /// An escape sequence, `pos` at the backslash.
    fn escape(&mut self, out: &mut String) -> PResult<()> {
        let start = self.pos;
        let (c, span) = self.char_at(self.pos + 1);
        let simple = match c {
            Some('"') => Some('"'),
            Some('\\') => Some('\\'),
            Some('/') => Some('/'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('n') => Some('\n'),
            Some('r') => Some('\r'),
            Some('t') => Some('\t'),
            _ => None,
        };
        if let Some(ch) = simple {
            out.push(ch);
            self.pos += 2;
            return Ok(());
        }
        match c {
            Some('u') => {
                let first = self.hex4(start)?;
                if (0xDC00..0xE000).contains(&first) {
                    return Err(self.lone_surrogate(start, first));
                }
                if (0xD800..0xDC00).contains(&first) {
                    // A high surrogate must be followed by `\u` + a low surrogate.
                    let low_start = self.pos;
                    if self.peek() == Some(b'\\') && self.peek_at(self.pos + 1) == Some(b'u') {
                        let second = self.hex4(low_start)?;
                        if (0xDC00..0xE000).contains(&second) {
                            let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                            // Always valid: 0x10000..=0x10FFFF.
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            return Ok(());
                        }
                    }
                    return Err(self.lone_surrogate(start, first));
                }
                // Not a surrogate, so a valid scalar value.
                out.push(char::from_u32(first).unwrap_or('\u{fffd}'));
                Ok(())
            }
            None => {
                let mut e = self.err(start..start + 1, "unterminated string: expected `\"`");
                e.help = Some("the file ends right after a `\\`".into());
                Err(e)
            }
            Some(ch) => {
                let shown: String = ch.escape_debug().collect();
                let mut e = self.err(
                    start..span.end,
                    format!("invalid escape `\\{shown}` in string"),
                );
                e.help = Some(
                    "a backslash must be doubled (`\\\\`); valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX"
                        .into(),
                );
                Err(e)
            }
        }
    }

    /// Reads `\uXXXX` at `pos` (the backslash) and returns the code unit.
    fn hex4(&mut self, esc_start: usize) -> PResult<u32> {
        let digits_start = self.pos + 2;
        let mut code = 0u32;
        for i in 0..4 {
            let d = self
                .peek_at(digits_start + i)
                .and_then(|b| (b as char).to_digit(16));
            match d {
                Some(d) => code = code * 16 + d,
                None => {
                    let (_, span) = self.char_at(digits_start + i);
                    let mut e = self.err(
                        esc_start..span.end.max(esc_start + 2),
                        "invalid `\\u` escape: expected four hex digits",
                    );
                    e.help = Some("write a code point as `\\u00e9`".into());
                    return Err(e);
                }
            }
        }
        self.pos = digits_start + 4;
        Ok(code)
    }

    fn lone_surrogate(&self, start: usize, code: u32) -> SyntaxError {
        let mut e = self.err(
            start..start + 6,
            format!("invalid `\\u{code:04x}` escape: a lone UTF-16 surrogate is not a character"),
        );
        e.help = Some(
            "characters outside the basic plane are a pair of escapes (`\\ud83d\\ude00`) or written as is"
                .into(),
        );
        e
    }

    fn number(&mut self) -> PResult<Node> {
        let start = self.pos;
        let mut integer = true;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if self.peek().is_some_and(|b| b.is_ascii_digit()) {
                    let mut e = self.err(start..self.pos + 1, "numbers cannot have leading zeros");
                    e.help = Some(
                        "remove the leading `0`; durations can also be strings like \"05s\"".into(),
                    );
                    return Err(e);
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.unexpected("a digit after `-`")),
        }
        if self.peek() == Some(b'.') {
            integer = false;
            self.pos += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.unexpected("a digit after the decimal point"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            integer = false;
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.unexpected("a digit in the exponent"));
            }
            self.digits();
        }
        Ok(Node {
            value: Value::Number(Number {
                raw: self.src[start..self.pos].to_string(),
                integer,
            }),
            span: start..self.pos,
        })
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }
}

fn trailing_comma(comma: usize, close: char) -> SyntaxError {
    SyntaxError {
        span: comma..comma + 1,
        message: format!(
            "trailing comma before `{close}`: JSON does not allow a `,` after the last element"
        ),
        help: Some("remove this `,`".into()),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Node {
        match parse(text) {
            Ok(n) => n,
            Err(e) => panic!("expected {text:?} to parse, got {e:?}"),
        }
    }

    fn bad(text: &str) -> SyntaxError {
        match parse(text) {
            Ok(n) => panic!("expected {text:?} to be rejected, got {n:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_all_value_kinds_with_spans() {
        let text = r#" {"a": [1, -2.5e3, true, false, null, "x\ny\u00e9\ud83d\ude00"], "a": {}} "#;
        let n = ok(text);
        assert_eq!(n.span, 1..text.len() - 1);
        let Value::Object(m) = n.value else {
            panic!("not an object")
        };
        assert_eq!(m.len(), 2, "duplicate keys are kept");
        assert_eq!(m[0].0.name, "a");
        assert_eq!(m[0].0.span, 2..5);
        let Value::Array(items) = &m[0].1.value else {
            panic!("not an array")
        };
        assert_eq!(
            items[0].value,
            Value::Number(Number {
                raw: "1".into(),
                integer: true
            })
        );
        assert_eq!(
            items[1].value,
            Value::Number(Number {
                raw: "-2.5e3".into(),
                integer: false
            })
        );
        assert_eq!(items[2].value, Value::Bool(true));
        assert_eq!(items[4].value, Value::Null);
        assert_eq!(items[5].value, Value::String("x\nyé😀".into()));
    }

    #[test]
    fn numbers_keep_their_text() {
        let Value::Number(n) = ok("12345678901234567890123").value else {
            panic!()
        };
        assert!(n.integer);
        assert_eq!(n.as_i64(), None, "too large for i64");
        let Value::Number(n) = ok("3.0").value else {
            panic!()
        };
        assert!(!n.integer);
        assert_eq!(n.as_f64(), 3.0);
    }

    #[test]
    fn syntax_errors_explain_themselves() {
        let e = bad(r#"{"a": 1 "b": 2}"#);
        assert!(
            e.message
                .contains("expected `,` or `}` after object member"),
            "{e:?}"
        );
        assert_eq!(e.span, 8..9);
        assert_eq!(e.help.as_deref(), Some("is a `,` missing before this?"));

        let e = bad(r#"{"a": [1, 2,]}"#);
        assert!(e.message.contains("trailing comma"), "{e:?}");
        assert_eq!(e.span, 11..12);
        let e = bad(r#"{"a": 1,}"#);
        assert!(e.message.contains("trailing comma before `}`"), "{e:?}");

        assert!(bad("{\"a\": 1 // note\n}")
            .message
            .contains("comments are not allowed"));
        assert!(bad("{'a': 1}").message.contains("double quotes"));
        assert!(bad("{a: 1}").help.unwrap().contains("\"a\""));
        assert!(bad(r#"{"a": True}"#).help.unwrap().contains("`true`"));
        assert!(bad(r#"{"a": 01}"#).message.contains("leading zeros"));
        assert!(bad(r#"{"a": 1.}"#).message.contains("decimal point"));
        assert!(bad(r#"{"a": +1}"#).help.unwrap().contains("`+`"));
        assert!(bad(r#"{"a": "C:\dir"}"#)
            .message
            .contains("invalid escape `\\d`"));
        assert!(bad("{\"a\": \"x\ny\"}")
            .message
            .contains("control character U+000A"));
        assert!(bad(r#"{"a": "\ud800"}"#)
            .message
            .contains("lone UTF-16 surrogate"));
        assert!(bad(r#"{"a": "\udc00"}"#)
            .message
            .contains("lone UTF-16 surrogate"));
        assert!(bad(r#"{"a": "\u12"}"#).message.contains("four hex digits"));
        assert!(bad(r#"{"a": 1} {"#).message.contains("end of the file"));
        let e = bad("{\"a\": [1,\n 2");
        assert!(e.message.contains("unexpected end of file"), "{e:?}");
        assert_eq!(e.note.map(|n| n.0), Some(6..7));
        assert!(bad("").message.contains("empty"));
        assert!(bad("  \n ").message.contains("empty"));
    }

    #[test]
    fn depth_is_limited() {
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(bad(&deep).message.contains("nested"));
        let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        ok(&fine);
        // Unclosed deep nesting fails cleanly too.
        bad(&"[".repeat(100_000));
        bad(&"{\"a\":".repeat(100_000));
    }

    #[test]
    fn never_panics_on_prefixes_of_valid_input() {
        let text = "\u{feff}{\"s\": [\"a\\u00e9\\ud83d\\ude00\", {\"k\": -1.5e-3, \"t\": true}], \"é\": null}";
        ok(text);
        for (i, _) in text.char_indices() {
            let _ = parse(&text[..i]);
            let _ = parse(&text[i..]);
        }
        for s in [
            "\0",
            "\"\0\"",
            "-",
            "-a",
            "1e",
            "1e+",
            "[1,,2]",
            "{,}",
            "{\"a\"}",
            "{\"a\":}",
            "nul",
            "tru",
            "\"\\",
            "\"\\u",
            "\"\\ud800\\u",
            "\"\\ud800\\udc0",
            "é",
            "\u{feff}",
            "1 2",
        ] {
            assert!(parse(s).is_err(), "{s:?}");
        }
    }
}
