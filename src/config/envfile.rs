//! `environment-file` syntax: `KEY=VALUE` lines.
//!
//! Accepted: blank lines, `#` comment lines, an optional `export ` prefix, a value in
//! single quotes (taken literally), in double quotes (`\\`, `\"`, `\n`, `\t`, `\r`
//! escapes; any other backslash is kept), or bare (trimmed; ` #` starts a comment). A
//! value cannot span lines. A bad line is an error with its line and column; all bad lines
//! are reported, not only the first.
//!
//! A file whose first non-blank character is `{` is a JSON object instead (the Bansuri
//! manual's `"environment-file": "/etc/env.json"`): each member a variable; string values
//! as they are, numbers and booleans as their JSON text; `null`, arrays and objects are
//! errors at their position.

use std::ops::Range;
use std::path::Path;

/// A bad line: byte range in the file text and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvFileError {
    pub span: Range<usize>,
    pub message: String,
}

/// Parses the file text into `(key, value)` pairs in file order (a later line for the same
/// key overrides an earlier one when collected into a map).
pub(crate) fn parse(text: &str) -> Result<Vec<(String, String)>, Vec<EnvFileError>> {
    if text.trim_start().starts_with('{') {
        return parse_json(text);
    }
    let mut pairs = Vec::new();
    let mut errors = Vec::new();
    let mut offset = 0;
    for raw in text.split_inclusive('\n') {
        let line_start = offset;
        offset += raw.len();
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        match parse_line(line) {
            Ok(Some(pair)) => pairs.push(pair),
            Ok(None) => {}
            Err((range, message)) => errors.push(EnvFileError {
                span: line_start + range.start..line_start + range.end,
                message,
            }),
        }
    }
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(errors)
    }
}

/// The JSON form: one object, its members the variables, in file order.
fn parse_json(text: &str) -> Result<Vec<(String, String)>, Vec<EnvFileError>> {
    use super::tree::Value;
    let root = super::json::parse(text).map_err(|e| {
        let help = e.help.map(|h| format!(" ({h})")).unwrap_or_default();
        vec![EnvFileError {
            span: e.span,
            message: format!("{}{help}", e.message),
        }]
    })?;
    let Value::Object(members) = root.value else {
        return Err(vec![EnvFileError {
            span: root.span,
            message: format!(
                "expected an object of variables, found {}",
                root.value.kind()
            ),
        }]);
    };
    let mut pairs = Vec::new();
    let mut errors = Vec::new();
    for (key, node) in members {
        if key.name.is_empty()
            || key
                .name
                .contains(|c: char| c.is_whitespace() || c.is_control() || c == '=')
        {
            errors.push(EnvFileError {
                span: key.span,
                message: format!("invalid variable name `{}`", key.name),
            });
            continue;
        }
        let value = match node.value {
            Value::String(v) => v,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.raw,
            other => {
                errors.push(EnvFileError {
                    span: node.span,
                    message: format!(
                        "the value of `{}` must be a string, number or boolean, not {}",
                        key.name,
                        other.kind()
                    ),
                });
                continue;
            }
        };
        pairs.push((key.name, value));
    }
    if errors.is_empty() {
        Ok(pairs)
    } else {
        Err(errors)
    }
}

/// Why an environment-file could not be used.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A root bansuri must not trust it (see `config::unsafe_to_trust`).
    Unsafe(super::Untrusted),
    /// It does not exist (yet): a problem of the environment, not of the config.
    Missing,
    /// Any other failure to read it.
    Io(std::io::Error),
    /// Not UTF-8: the offset of the first bad byte.
    NotUtf8(usize),
    /// Bad lines, with the file text their spans refer to.
    Syntax(String, Vec<EnvFileError>),
}

/// Reads and parses the environment-file at `path`, with the security check first.
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, ReadError> {
    if let Some(u) = super::unsafe_to_trust(path) {
        return Err(ReadError::Unsafe(u));
    }
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ReadError::Missing,
        _ => ReadError::Io(e),
    })?;
    let text =
        String::from_utf8(bytes).map_err(|e| ReadError::NotUtf8(e.utf8_error().valid_up_to()))?;
    parse(&text).map_err(|errs| ReadError::Syntax(text, errs))
}

/// Why an environment-file could not be read at a task's start. `Display` is the
/// one-line reason for the job log.
#[derive(Debug)]
pub enum StartError {
    /// A root bansuri must not trust it: who can change what, and the fix.
    Untrusted {
        /// Who can change what.
        why: String,
        /// The fix.
        help: String,
    },
    /// It does not exist.
    Missing(std::path::PathBuf),
    /// It cannot be read.
    Io(std::path::PathBuf, std::io::Error),
    /// Not UTF-8: the offset of the first bad byte.
    NotUtf8(std::path::PathBuf, usize),
    /// A bad line: its number and what is wrong with it.
    BadLine {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Invalid, no line named.
    Invalid(std::path::PathBuf),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Untrusted { why, help } => write!(f, "{why} ({help})"),
            StartError::Missing(p) => {
                write!(f, "environment-file `{}` does not exist", p.display())
            }
            StartError::Io(p, e) => {
                write!(f, "cannot read environment-file `{}`: {e}", p.display())
            }
            StartError::NotUtf8(p, at) => write!(
                f,
                "environment-file `{}` is not UTF-8 text (bad byte at offset {at})",
                p.display()
            ),
            StartError::BadLine {
                path,
                line,
                message,
            } => write!(
                f,
                "invalid line {line} in environment-file `{}`: {message}",
                path.display()
            ),
            StartError::Invalid(p) => write!(f, "environment-file `{}` is invalid", p.display()),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}

/// [`read`] for a task's start, the error as [`StartError`].
pub(crate) fn read_for_start(path: &Path) -> Result<Vec<(String, String)>, StartError> {
    let path_buf = || path.to_path_buf();
    read(path).map_err(|e| match e {
        ReadError::Unsafe(u) => StartError::Untrusted {
            why: u.why,
            help: u.help,
        },
        ReadError::Missing => StartError::Missing(path_buf()),
        ReadError::Io(e) => StartError::Io(path_buf(), e),
        ReadError::NotUtf8(at) => StartError::NotUtf8(path_buf(), at),
        ReadError::Syntax(text, errs) => match errs.into_iter().next() {
            Some(first) => {
                let (line, _) = crate::diagnostic::line_col(&text, first.span.start);
                StartError::BadLine {
                    path: path_buf(),
                    line,
                    message: first.message,
                }
            }
            None => StartError::Invalid(path_buf()),
        },
    })
}

type LineResult = Result<Option<(String, String)>, (Range<usize>, String)>;

/// Byte offset of `sub` (a subslice of `line`) within `line`.
fn offset_in(line: &str, sub: &str) -> usize {
    (sub.as_ptr() as usize).saturating_sub(line.as_ptr() as usize)
}

fn parse_line(line: &str) -> LineResult {
    let body = line.trim_start();
    if body.is_empty() || body.starts_with('#') {
        return Ok(None);
    }
    let body = match body.strip_prefix("export") {
        Some(rest) if rest.starts_with([' ', '\t']) => rest.trim_start(),
        _ => body,
    };
    let start = offset_in(line, body);
    let Some(eq) = body.find('=') else {
        return Err((
            start..line.len(),
            "expected `KEY=VALUE` (no `=` on this line)".into(),
        ));
    };
    let key = body[..eq].trim_end();
    if key.is_empty() {
        return Err((
            start..start + eq + 1,
            "missing variable name before `=`".into(),
        ));
    }
    if let Some(bad) = key.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err((
            start..start + key.len(),
            format!("invalid variable name `{key}`: it contains {bad:?}"),
        ));
    }
    let value_part = &body[eq + 1..];
    let v = value_part.trim_start();
    let vstart_trim = offset_in(line, v);
    let value = match v.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = &v[1..];
            let (value, close) = if q == '\'' {
                match inner.find('\'') {
                    Some(i) => (inner[..i].to_string(), i),
                    None => return Err(unterminated(vstart_trim, line.len(), q)),
                }
            } else {
                match double_quoted(inner) {
                    Some(x) => x,
                    None => return Err(unterminated(vstart_trim, line.len(), q)),
                }
            };
            let after = &inner[close + 1..];
            let rest = after.trim_start();
            if !(rest.is_empty() || (rest.starts_with('#') && rest.len() < after.len())) {
                let at = offset_in(line, rest);
                return Err((
                    at..line.len(),
                    format!("unexpected text after the closing {q}"),
                ));
            }
            value
        }
        _ => {
            // A bare value ends at ` #` (a comment) and is trimmed.
            let mut end = v.len();
            let bytes = v.as_bytes();
            for i in 1..bytes.len() {
                if bytes[i] == b'#' && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
                    end = i;
                    break;
                }
            }
            v[..end].trim_end().to_string()
        }
    };
    if value.contains('\0') {
        return Err((
            vstart_trim..line.len(),
            "the value contains a NUL character".into(),
        ));
    }
    Ok(Some((key.to_string(), value)))
}

fn unterminated(start: usize, end: usize, q: char) -> (Range<usize>, String) {
    (
        start..end,
        format!("unterminated {q}-quoted value (values cannot span lines)"),
    )
}

/// The content of a double-quoted value (after the opening quote): the unescaped value and
/// the byte index of the closing quote, or `None` when it is not closed.
fn double_quoted(s: &str) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_object_is_read_as_the_manual_shows_it() {
        let text = "{\n  \"DB_HOST\": \"db.local\",\n  \"PORT\": 5432,\n  \"DEBUG\": true\n}\n";
        let got = parse(text).unwrap();
        let want: Vec<(String, String)> =
            [("DB_HOST", "db.local"), ("PORT", "5432"), ("DEBUG", "true")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(got, want);
        // Bad members are reported at their place; a syntax error too.
        let errs = parse("{\"A\": [1], \"B C\": \"x\", \"OK\": \"y\"}").unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0]
            .message
            .contains("must be a string, number or boolean, not a list"));
        assert!(errs[1].message.contains("invalid variable name `B C`"));
        let errs = parse("{\"A\": \"x\",}").unwrap_err();
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(errs[0].message.contains("comma"), "{errs:?}");
    }

    #[test]
    fn parses_the_usual_forms() {
        let text = "# comment\n\n  A=1\nexport B = two words \nC='single # kept'\nD=\"dq \\\"x\\\" \\n\" # c\r\nE=\nF=bare # comment\nexportG=3\nURL=http://x/?a=b\n";
        let got = parse(text).unwrap();
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "single # kept"),
            ("D", "dq \"x\" \n"),
            ("E", ""),
            ("F", "bare"),
            ("exportG", "3"),
            ("URL", "http://x/?a=b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn reports_every_bad_line_with_its_place() {
        let text = "OK=1\nnot a pair\n=x\nA B=1\nQ=\"open\nR='x' y\n";
        let errs = parse(text).unwrap_err();
        assert_eq!(errs.len(), 5, "{errs:?}");
        let lines: Vec<usize> = errs
            .iter()
            .map(|e| crate::diagnostic::line_col(text, e.span.start).0)
            .collect();
        assert_eq!(lines, vec![2, 3, 4, 5, 6]);
        assert!(errs[0].message.contains("KEY=VALUE"));
        assert!(errs[1].message.contains("missing variable name"));
        assert!(errs[2].message.contains("invalid variable name `A B`"));
        assert!(errs[3].message.contains("unterminated"));
        assert!(errs[4].message.contains("after the closing"));
    }
}
