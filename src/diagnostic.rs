//! Config errors and warnings and their rustc-style rendering (file, line, column, the
//! line itself with a caret, help), with environment values masked.
//!
//! A leaf of its own so that the validated [`crate::spec::Spec`] can carry the warnings the
//! config left without importing the config parser that builds it. Must not: parse or
//! validate (config does), or know fields or tasks beyond the text it is handed.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found while locating, reading, parsing or validating a config file.
///
/// Everything is plain data so callers (the CLI, hot reload, tests) can inspect it; the
/// `Display` impl renders it the way rustc renders a diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the location refers to: the config file, or an environment-file for an
    /// error inside one. Empty when there is no file (no config found at all).
    pub file: PathBuf,
    /// The config file being loaded (the same as `file` except for errors inside an
    /// environment-file). Empty when no config file was found.
    pub config: PathBuf,
    /// 1-based line, when the error is inside the file.
    pub line: Option<usize>,
    /// 1-based column in characters, when the error is inside the file.
    pub column: Option<usize>,
    /// The task: its name, or `scripts[3]` when it has no valid name.
    pub task: Option<String>,
    /// The field, by its canonical spelling (`working-directory`, `check_interval`).
    pub field: Option<String>,
    /// What is wrong (one line, names the field and the task).
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// More context (e.g. where a duplicate was first given).
    pub note: Option<String>,
    /// The source line to show under the location.
    pub snippet: Option<Snippet>,
}

/// A source line with the part to underline, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// 1-based line number.
    pub line: usize,
    /// The line as displayed (tabs expanded, control characters replaced).
    pub text: String,
    /// Display column (0-based) where the underline starts.
    pub start: usize,
    /// Length of the underline (at least 1).
    pub width: usize,
}

/// All problems found in one config file (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigError {
    /// An error with no position (file unreadable, no file found).
    pub(crate) fn plain(config: &Path, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: config.to_path_buf(),
            config: config.to_path_buf(),
            line: None,
            column: None,
            task: None,
            field: None,
            message: message.into(),
            help: None,
            note: None,
            snippet: None,
        }
    }

    /// An error at `span` of `text`, which is the content of `file`.
    pub(crate) fn at(
        config: &Path,
        file: &Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError::at_masking(config, file, text, span, message, &[])
    }

    /// [`ConfigError::at`], with the text of each of `secrets` (byte ranges of `text`: the
    /// values of `env`) shown as `***` in the snippet, whatever the error is about: a
    /// one-line config holds them on the line of every error.
    pub(crate) fn at_masking(
        config: &Path,
        file: &Path,
        text: &str,
        span: Range<usize>,
        message: impl Into<String>,
        secrets: &[Range<usize>],
    ) -> ConfigError {
        let loc = locate_span(text, span, secrets);
        ConfigError {
            file: file.to_path_buf(),
            config: config.to_path_buf(),
            line: Some(loc.line),
            column: Some(loc.column),
            task: None,
            field: None,
            message: message.into(),
            help: None,
            note: None,
            snippet: Some(loc.snippet),
        }
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> ConfigError {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_note(mut self, note: impl Into<String>) -> ConfigError {
        self.note = Some(note.into());
        self
    }

    /// `file:line:col` (or just the file) for notes that point elsewhere.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.file.display()),
            _ => self.file.display().to_string(),
        }
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..offset].bytes().filter(|&b| b == b'\n').count() + 1;
    (line, text[line_start..offset].chars().count() + 1)
}

fn floor_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

fn ceil_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while !text.is_char_boundary(o) {
        o += 1;
    }
    o
}

struct SpanLocation {
    line: usize,
    column: usize,
    snippet: Snippet,
}

fn locate_span(text: &str, span: Range<usize>, secrets: &[Range<usize>]) -> SpanLocation {
    let start = floor_boundary(text, span.start);
    let end = floor_boundary(text, span.end.max(span.start));
    let (line, column) = line_col(text, start);
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let end = end.min(line_end);
    // The secrets on this line, in order, walked with the line (one pass, however many).
    let mut on_line: Vec<&Range<usize>> = secrets
        .iter()
        .filter(|s| s.start < line_end && s.end > line_start && s.start < s.end)
        .collect();
    on_line.sort_by_key(|s| s.start);
    // Only the bytes near the span are walked: a 1 MB one-line config with many errors
    // must not cost a walk of the whole line per error.
    let (line_start, clipped_left) = if start - line_start > WALK {
        (floor_boundary(text, start - WALK), true)
    } else {
        (line_start, false)
    };
    let (line_end, clipped_right) = if line_end - end > WALK {
        (floor_boundary(text, end + WALK), true)
    } else {
        (line_end, false)
    };
    let ShownLine {
        text: mut shown,
        col_start,
        col_end,
    } = show_line(text, line_start..line_end, start..end, on_line);
    if shown.ends_with('\r') {
        shown.pop();
    }
    let trimmed = shown.trim_end();
    // Trailing blanks of the span are not underlined.
    let blanks = display(&text[start..end.max(start)])
        .chars()
        .rev()
        .take_while(|c| c.is_whitespace())
        .count();
    let width = col_end
        .saturating_sub(blanks)
        .min(trimmed.chars().count())
        .saturating_sub(col_start);
    let (text, start, width) = window(trimmed, col_start, width, clipped_left, clipped_right);
    SpanLocation {
        line,
        column,
        snippet: Snippet {
            line,
            text,
            start,
            width: width.max(1),
        },
    }
}

/// A piece of a config line as displayed, and the columns of a span in it.
struct ShownLine {
    text: String,
    col_start: usize,
    col_end: usize,
}

/// The bytes `walk` of `text` piece by piece: plain text as displayed, each secret (of
/// `on_line`, sorted) as `***`; the columns of `span` are counted in what is shown.
fn show_line(
    text: &str,
    walk: Range<usize>,
    span: Range<usize>,
    on_line: Vec<&Range<usize>>,
) -> ShownLine {
    let (line_start, line_end) = (walk.start, walk.end);
    let (start, end) = (span.start, span.end);
    let mut next_secret = on_line.into_iter().peekable();
    let mut shown = String::new();
    let mut cols = 0;
    let (mut col_start, mut col_end) = (0, 0);
    let mut i = line_start;
    while i < line_end {
        while next_secret.peek().is_some_and(|s| s.end <= i) {
            next_secret.next();
        }
        match next_secret.peek() {
            Some(secret) if secret.start <= i => {
                let next = ceil_boundary(text, secret.end.min(line_end).max(i + 1));
                if i <= start && start < next {
                    col_start = cols;
                }
                if i < end && end <= next {
                    col_end = cols + 3;
                }
                shown.push_str("***");
                cols += 3;
                i = next;
            }
            other => {
                // Plain text up to the next secret (or the line's end), displayed at once.
                let mut to = other.map_or(line_end, |s| floor_boundary(text, s.start));
                if to <= i {
                    to = ceil_boundary(text, i + 1);
                }
                let cols_to = |p: usize| cols + display(&text[i..p]).chars().count();
                if (i..=to).contains(&start) {
                    col_start = cols_to(start);
                }
                if (i..=to).contains(&end) {
                    col_end = cols_to(end);
                }
                let piece = display(&text[i..to]);
                cols += piece.chars().count();
                shown.push_str(&piece);
                i = to;
            }
        }
    }
    // A span at the end of the walk (after a last secret).
    if start >= i {
        col_start = cols;
    }
    if end >= i {
        col_end = cols;
    }
    ShownLine {
        text: shown,
        col_start,
        col_end,
    }
}

/// A very long line (a one-line config, a 64 KiB value) is shown around the span: the
/// text shown, the span's column and width in it (`...` marks what is cut, also where
/// the walk was clipped).
fn window(
    trimmed: &str,
    col_start: usize,
    width: usize,
    clipped_left: bool,
    clipped_right: bool,
) -> (String, usize, usize) {
    let chars: Vec<char> = trimmed.chars().collect();
    if chars.len() > SHOWN_MAX || clipped_left || clipped_right {
        let from = col_start.saturating_sub(SHOWN_BEFORE).min(chars.len());
        let to = (from + SHOWN_MAX).min(chars.len());
        let mut t = String::new();
        let cut_left = from > 0 || clipped_left;
        if cut_left {
            t.push_str("...");
        }
        t.extend(&chars[from..to]);
        if to < chars.len() || clipped_right {
            t.push_str("...");
        }
        let lead = if cut_left { 3 } else { 0 };
        let start = (col_start - from) + lead;
        (t, start, width.min(to.saturating_sub(col_start)))
    } else {
        (trimmed.to_string(), col_start, width)
    }
}

/// The longest snippet shown, in characters, and how much of it comes before the span.
const SHOWN_MAX: usize = 160;
const SHOWN_BEFORE: usize = 60;
/// How far (bytes) from the span a long line is looked at: more than is ever shown.
const WALK: usize = 4096;

/// Text as it will be printed: tabs as four spaces, control characters as U+FFFD, so the
/// underline stays aligned and a NUL byte does not reach the terminal.
fn display(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\t' => out.push_str("    "),
            '\r' => out.push('\r'),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

fn write_labelled(f: &mut fmt::Formatter<'_>, pad: &str, label: &str, text: &str) -> fmt::Result {
    let indent = " ".repeat(label.len() + 4);
    for (i, l) in text.lines().enumerate() {
        if i == 0 {
            writeln!(f, "{pad} = {label}: {l}")?;
        } else {
            writeln!(f, "{pad}   {indent}{l}")?;
        }
    }
    Ok(())
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let width = self
            .snippet
            .as_ref()
            .map_or(1, |s| s.line.to_string().len());
        let pad = " ".repeat(width);
        if !self.file.as_os_str().is_empty() {
            writeln!(f, "{pad}--> {}", self.location())?;
        }
        if let Some(s) = &self.snippet {
            writeln!(f, "{pad} |")?;
            // A line of `env` or of an environment-file may hold a secret: show its name,
            // never its value (errors reach the job log on reload). The `environment-file`
            // field itself is a path: its line is shown (other `env` values on it masked).
            let secret = self.field.as_deref() == Some("env") || self.file != self.config;
            let text = if secret {
                redact(&s.text)
            } else {
                s.text.clone()
            };
            writeln!(f, "{:>width$} | {}", s.line, text)?;
            writeln!(f, "{pad} | {}{}", " ".repeat(s.start), "^".repeat(s.width))?;
        }
        if let Some(note) = &self.note {
            write_labelled(f, &pad, "note", note)?;
        }
        if let Some(help) = &self.help {
            write_labelled(f, &pad, "help", help)?;
        }
        Ok(())
    }
}

/// The insides of every `env` object as written (`"env": {...}`, `env: {...}`,
/// `env = {...}`), found lexically: for a file that does not parse, where there is no tree
/// to take the values from. A block that is not closed runs to the end of the text.
pub(crate) fn env_blocks(text: &str) -> Vec<Range<usize>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(k) = text[from..].find("env").map(|k| from + k) {
        from = k + 3;
        let word_start = k == 0 || !(b[k - 1].is_ascii_alphanumeric() || b[k - 1] == b'_');
        let mut i = k + 3;
        if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
            i += 1;
        }
        let skip_blanks = |mut i: usize| {
            while i < b.len() && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            i
        };
        i = skip_blanks(i);
        if !word_start || i >= b.len() || !(b[i] == b':' || b[i] == b'=') {
            continue;
        }
        i = skip_blanks(i + 1);
        if i >= b.len() || b[i] != b'{' {
            continue;
        }
        let start = i + 1;
        let (mut depth, mut quote, mut escaped) = (1usize, None, false);
        let mut end = b.len();
        for (j, &c) in b.iter().enumerate().skip(start) {
            match quote {
                Some(q) => {
                    if escaped {
                        escaped = false;
                    } else if c == b'\\' && q == b'"' {
                        escaped = true;
                    } else if c == q {
                        quote = None;
                    }
                }
                None => match c {
                    b'"' | b'\'' => quote = Some(c),
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                },
            }
        }
        out.push(start..end);
        from = end.max(from);
    }
    out.extend(env_sections(text));
    out
}

/// The values of an `env` written as a YAML block map (`env:` alone on its line, the
/// variables indented below it) or a TOML table (`[scripts.env]` up to the next header):
/// from after each line's first `:` or `=` (its whole text when it has none) to its end.
fn env_sections(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    // (indentation of the YAML `env:` key) or TOML (None) while inside a section.
    let mut inside: Option<Option<usize>> = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let content = body.trim_start();
        let indent = body.len() - content.len();
        if let Some(yaml) = inside {
            let ends = match yaml {
                Some(n) => !content.is_empty() && !content.starts_with('#') && indent <= n,
                None => content.starts_with('['),
            };
            if ends {
                inside = None;
            } else if !content.is_empty() && !content.starts_with('#') {
                let sep = if yaml.is_some() { ':' } else { '=' };
                let from = content.find(sep).map_or(0, |k| {
                    let value = &content[k + 1..];
                    k + 1 + (value.len() - value.trim_start().len())
                });
                out.push(start + indent + from..start + body.len());
                continue;
            } else {
                continue;
            }
        }
        let key = content.strip_prefix("- ").unwrap_or(content).trim_start();
        let key_indent = body.len() - key.len();
        let key = key.split(" #").next().unwrap_or(key).trim_end();
        if matches!(key, "env:" | "\"env\":" | "'env':") {
            inside = Some(Some(key_indent));
        } else if content.starts_with('[')
            && content.trim_end().trim_end_matches(']').ends_with(".env")
        {
            inside = Some(None);
        }
    }
    out
}

/// `"KEY": "value"` / `KEY=value` with the value replaced by `***`.
fn redact(line: &str) -> String {
    match line.find([':', '=']) {
        Some(i) => format!("{} ***", line[..=i].trim_end()),
        None => "***".to_string(),
    }
}

impl fmt::Display for ConfigErrors {
    /// Every error, a blank line between them, then a summary line naming the config file
    /// (none when no file was found). No trailing newline, ready for `eprintln!`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            f.write_str(e.to_string().trim_end())?;
        }
        let n = self.0.len();
        match self.0.first() {
            Some(first) if !first.config.as_os_str().is_empty() => write!(
                f,
                "\n\nerror: could not load `{}`: {n} error{}",
                first.config.display(),
                if n == 1 { "" } else { "s" }
            ),
            _ => Ok(()),
        }
    }
}

/// Something in a config file that bansuri accepts but the user may have got wrong, or
/// that depends on the machine rather than the file (a working directory not created
/// yet): the file loads, `validate` prints it, the job log records it. Located and worded
/// like an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning(pub ConfigError);

impl ConfigWarning {
    /// The warning on one line, for the job log: message, location, help.
    pub fn one_line(&self) -> String {
        let e = &self.0;
        let mut s = format!("Config: {} ({})", e.message, e.location());
        if let Some(help) = &e.help {
            s.push_str(&format!("; {}", help.replace('\n', " ")));
        }
        s
    }
}

impl fmt::Display for ConfigWarning {
    /// Rendered as the error would be, headed `warning:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        let body = text.strip_prefix("error: ").unwrap_or(&text);
        write!(f, "warning: {}", body.trim_end())
    }
}

impl std::error::Error for ConfigError {}
impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_rustc() {
        let mut text = String::new();
        for _ in 0..11 {
            text.push('\n');
        }
        text.push_str("      \"working_dir\": \"/tmp\",\n");
        let start = text.find('"').unwrap();
        let e = ConfigError::at(
            Path::new("scripts_config.json"),
            Path::new("scripts_config.json"),
            &text,
            start..start + 13,
            "unknown field `working_dir` in task `backup`",
        )
        .with_help("did you mean `working-directory`?");
        let want = "\
error: unknown field `working_dir` in task `backup`
  --> scripts_config.json:12:7
   |
12 |       \"working_dir\": \"/tmp\",
   |       ^^^^^^^^^^^^^
   = help: did you mean `working-directory`?
";
        assert_eq!(e.to_string(), want);
        let all = ConfigErrors(vec![e.clone(), e]).to_string();
        let want_all =
            format!("{want}\n{want}\nerror: could not load `scripts_config.json`: 2 errors");
        assert_eq!(all, want_all);
    }

    #[test]
    fn columns_count_characters_and_survive_odd_spans() {
        let text = "é\tx\0\r\nab";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 2), (1, 2));
        assert_eq!(
            line_col(text, 1),
            (1, 1),
            "inside a char: floor to its start"
        );
        assert_eq!(line_col(text, text.len()), (2, 3));
        assert_eq!(line_col(text, 999), (2, 3));
        let e = ConfigError::at(Path::new("f"), Path::new("f"), text, 3..99, "m");
        let s = e.snippet.unwrap();
        assert_eq!(s.text, "é    x\u{fffd}");
        assert_eq!(s.start, 5);
        assert_eq!(s.width, 2);
        // A reversed span (start after end) must not panic either.
        let (start, end) = (5, 2);
        let e = ConfigError::at(Path::new("f"), Path::new("f"), "", start..end, "m");
        assert_eq!((e.line, e.column), (Some(1), Some(1)));
    }

    #[test]
    fn secrets_are_masked_and_long_lines_cut_around_the_span() {
        let text = r#"{"env": {"K": "s3cret"}, "timer": "x"}"#;
        let secret = text.find("\"s3cret").unwrap();
        let bad = text.find("\"x\"").unwrap();
        let mask = secret..secret + 8;
        let e = ConfigError::at_masking(
            Path::new("f"),
            Path::new("f"),
            text,
            bad..bad + 3,
            "m",
            std::slice::from_ref(&mask),
        );
        let s = e.snippet.unwrap();
        assert_eq!(s.text, r#"{"env": {"K": ***}, "timer": "x"}"#);
        assert_eq!(&s.text[s.start..s.start + s.width], "\"x\"");
        assert_eq!(
            e.column,
            Some(bad + 1),
            "the column is the file's, not the shown one"
        );
        // The error inside the secret underlines the mask.
        let e = ConfigError::at_masking(
            Path::new("f"),
            Path::new("f"),
            text,
            secret + 2..secret + 4,
            "m",
            std::slice::from_ref(&mask),
        );
        let s = e.snippet.unwrap();
        assert_eq!(&s.text[s.start..s.start + s.width], "***");
        let blocks = |t: &str| -> Vec<String> {
            env_blocks(t)
                .into_iter()
                .map(|r| t[r].to_string())
                .collect()
        };
        assert_eq!(
            blocks(r#"{"env": {"K": "a}b", "L": {"x": 1}}, "x": [,]}"#),
            [r#""K": "a}b", "L": {"x": 1}"#]
        );
        assert_eq!(blocks("- {env: {K: 'v'}, t: soon"), ["K: 'v'"]);
        assert_eq!(blocks("env = { K = \"v\" \nx"), [" K = \"v\" \nx"]);
        assert!(blocks(r#"{"environment-file": "e", "myenv": {"a": 1}}"#).is_empty());
        assert_eq!(
            blocks("  - name: t\n    env:\n      TOKEN: s1 [\n\n      K: s2\n    timer: x\n"),
            ["s1 [", "s2"]
        );
        assert_eq!(
            blocks("[[scripts]]\nname = 't'\n[scripts.env]\nTOKEN = \"s3\n[[scripts]]\nx = 1\n"),
            ["\"s3"]
        );
        let long = format!("{}\"bad\"{}", "a".repeat(70_000), "b".repeat(70_000));
        let e = ConfigError::at(Path::new("f"), Path::new("f"), &long, 70_000..70_005, "m");
        let s = e.snippet.unwrap();
        assert!(s.text.len() <= SHOWN_MAX + 6, "{}", s.text.len());
        assert!(s.text.starts_with("...") && s.text.ends_with("..."));
        assert_eq!(&s.text[s.start..s.start + s.width], "\"bad\"");
    }
}
