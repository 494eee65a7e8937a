//! `{name}` placeholders in a shell command, filled in so that no value can become shell
//! syntax: the one quoting machine of `notify_command` (values as references to variables)
//! and of array tasks (values written literally, quoted).
//!
//! A placeholder is `{` + a name (letters, digits, `_`, not starting with a digit) + `}`.
//! The caller says what each name becomes ([`Fill`]); a name it does not know stays as
//! written (a shell brace group, `awk '{print}'`). `${name}` is the shell's own parameter
//! expansion and is never a placeholder, nor is a `{` escaped with a backslash (`\{item}`).
//!
//! What a placeholder becomes depends on the quoting around it, tracked through nesting: a
//! command substitution (`$(...)`, backquotes) starts a new unquoted context even inside
//! double quotes. In each context the text written is one word that the shell reads as
//! the value's characters:
//!
//! | context | [`Fill::Variable`] `V` | [`Fill::Literal`] `a'b` |
//! | --- | --- | --- |
//! | unquoted, `$(...)` | `"${V}"` | `'a'\''b'` |
//! | inside `"..."` | `${V}` | `a'b`, with `\`, `$`, `` ` ``, `"` backslashed |
//! | inside `'...'` | `'"${V}"'` | `''a'\''b''` (the quote closed and reopened) |
//! | inside backquotes | `"${V}"` | the unquoted form with `\`, `$`, `` ` `` backslashed |
//! | inside `$((...))` | `${V}` | as inside double quotes |
//!
//! Pure: no I/O, no knowledge of tasks or fields.

use std::fmt::Write as _;

/// What a placeholder is replaced by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill<'v> {
    /// A quoted reference to this environment variable (the value is not in the text).
    Variable(&'v str),
    /// This value itself, quoted for where it stands.
    Literal(&'v str),
}

/// The placeholders of `template` as the shell would meet them: each name (with its byte
/// offset), in order, skipping `${name}` and escaped braces as [`fill`] does.
pub fn placeholders(template: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    scan(template, |at, name| {
        found.push((at, name));
        None
    });
    found
}

/// `template` with each placeholder `lookup` knows replaced (see the module docs).
pub fn fill<'v>(template: &str, mut lookup: impl FnMut(&str) -> Option<Fill<'v>>) -> String {
    scan(template, |_, name| lookup(name))
}

/// A placeholder name at the start of `s` (after its `{`), when `s` continues with `}`.
fn name_at(s: &str) -> Option<&str> {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let name = &s[..end];
    let first = name.chars().next()?;
    (!first.is_ascii_digit() && s[end..].starts_with('}')).then_some(name)
}

/// Is `name` a placeholder name (letters, digits, `_`, not starting with a digit)?
pub fn is_name(name: &str) -> bool {
    let mut probe = String::with_capacity(name.len() + 1);
    probe.push_str(name);
    probe.push('}');
    name_at(&probe) == Some(name)
}

fn scan<'t, 'v>(
    template: &'t str,
    mut on: impl FnMut(usize, &'t str) -> Option<Fill<'v>>,
) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut quoting = Quoting {
        stack: vec![Quote::Plain {
            sub: false,
            depth: 0,
        }],
    };
    let mut rest = template;
    let mut prev = None;
    while let Some(c) = rest.chars().next() {
        let at = template.len() - rest.len();
        if c == '{' && prev != Some('$') {
            if let Some(name) = name_at(&rest[1..]) {
                if let Some(fill) = on(at, name) {
                    quoting.write(fill, &mut out);
                    rest = &rest[name.len() + 2..];
                    prev = Some('}');
                    continue;
                }
            }
        }
        out.push(c);
        let before = rest.len();
        rest = quoting.after(c, &rest[c.len_utf8()..], &mut out);
        // A character `after` took with `c` (an escaped one) is no `{` of a placeholder.
        prev = if before - c.len_utf8() != rest.len() {
            None
        } else {
            Some(c)
        };
    }
    out
}

/// A quoting context of the shell.
#[derive(Clone, Copy, PartialEq)]
enum Quote {
    /// Unquoted: the top level, or inside `$(...)` (`depth`: open `(` inside it).
    Plain {
        sub: bool,
        depth: u32,
    },
    /// Inside backquotes (a command substitution).
    Backtick,
    /// Inside `$((...))`: expanded as in double quotes, where quotes are not allowed.
    Arith {
        depth: u32,
    },
    Single,
    Double,
}

/// The quoting contexts open at a point of a command; the innermost is the last.
struct Quoting {
    stack: Vec<Quote>,
}

/// `value` as one single-quoted word: `'a'\''b'`.
pub fn single_quoted(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('\'');
    for c in value.chars() {
        if c == '\'' {
            s.push_str("'\\''");
        } else {
            s.push(c);
        }
    }
    s.push('\'');
    s
}

/// `text` with each of `chars` preceded by a backslash.
fn backslashed(text: &str, chars: &[char]) -> String {
    let mut s = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if chars.contains(&c) {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

impl Quoting {
    fn current(&self) -> Quote {
        *self.stack.last().expect("the top level is never popped")
    }

    /// Write `fill` as one word of the current context.
    fn write(&self, fill: Fill, out: &mut String) {
        match (fill, self.current()) {
            (Fill::Variable(var), Quote::Plain { .. } | Quote::Backtick) => {
                write!(out, "\"${{{var}}}\"").expect("writing to a String")
            }
            (Fill::Variable(var), Quote::Double | Quote::Arith { .. }) => {
                write!(out, "${{{var}}}").expect("writing to a String")
            }
            (Fill::Variable(var), Quote::Single) => {
                write!(out, "'\"${{{var}}}\"'").expect("writing to a String")
            }
            (Fill::Literal(v), Quote::Plain { .. }) => out.push_str(&single_quoted(v)),
            (Fill::Literal(v), Quote::Backtick) => {
                out.push_str(&backslashed(&single_quoted(v), &['\\', '$', '`']))
            }
            (Fill::Literal(v), Quote::Double | Quote::Arith { .. }) => {
                out.push_str(&backslashed(v, &['\\', '$', '`', '"']))
            }
            (Fill::Literal(v), Quote::Single) => {
                out.push('\'');
                out.push_str(&single_quoted(v));
                out.push('\'');
            }
        }
    }

    /// After `c` (already written to `out`): open or close contexts, copy what `c` takes
    /// with it (an escaped character, the rest of `$((`), and return what is left.
    fn after<'t>(&mut self, c: char, mut rest: &'t str, out: &mut String) -> &'t str {
        let q = self.current();
        if q == Quote::Single {
            if c == '\'' {
                self.stack.pop();
            }
            return rest;
        }
        match c {
            // A backslash outside single quotes takes the next character literally.
            '\\' => {
                if let Some(n) = rest.chars().next() {
                    out.push(n);
                    rest = &rest[n.len_utf8()..];
                }
            }
            '$' if rest.starts_with("((") => {
                out.push_str("((");
                rest = &rest[2..];
                self.stack.push(Quote::Arith { depth: 0 });
            }
            '$' if rest.starts_with('(') => {
                out.push('(');
                rest = &rest[1..];
                self.stack.push(Quote::Plain {
                    sub: true,
                    depth: 0,
                });
            }
            '`' if q == Quote::Backtick => {
                self.stack.pop();
            }
            '`' => self.stack.push(Quote::Backtick),
            '"' if q == Quote::Double => {
                self.stack.pop();
            }
            '"' => self.stack.push(Quote::Double),
            '\'' if q != Quote::Double => self.stack.push(Quote::Single),
            '(' | ')' if matches!(q, Quote::Arith { .. }) => {
                if let Some(Quote::Arith { depth }) = self.stack.last_mut() {
                    if c == '(' {
                        *depth += 1;
                    } else if *depth > 0 {
                        *depth -= 1;
                    } else if rest.starts_with(')') {
                        out.push(')');
                        rest = &rest[1..];
                        self.stack.pop();
                    }
                }
            }
            '(' | ')' => {
                if let Some(Quote::Plain { sub: true, depth }) = self.stack.last_mut() {
                    if c == '(' {
                        *depth += 1;
                    } else if *depth > 0 {
                        *depth -= 1;
                    } else {
                        self.stack.pop();
                    }
                }
            }
            _ => {}
        }
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(template: &str, value: &str) -> String {
        fill(template, |n| (n == "item").then_some(Fill::Literal(value)))
    }

    /// What `/bin/sh -c` prints for `script` (its words, one per line, in `<>`).
    fn sh(script: &str) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .expect("run /bin/sh");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    #[test]
    fn placeholders_are_names_in_braces_but_not_shell_expansions() {
        assert_eq!(
            placeholders("run {item} ${HOME} \\{x} {lr}{seed} {1} { sp } {a-b} {_k}"),
            [(4, "item"), (24, "lr"), (28, "seed"), (52, "_k")]
        );
        assert!(is_name("lr") && is_name("_x1") && !is_name("1x") && !is_name("a-b"));
        assert!(!is_name("") && !is_name("a}"));
    }

    #[test]
    fn literals_are_quoted_for_their_context() {
        assert_eq!(literal("echo {item}", "a b"), "echo 'a b'");
        assert_eq!(literal("echo {item}", "it's"), "echo 'it'\\''s'");
        assert_eq!(
            literal("echo \"x {item}\"", "$a\"`"),
            "echo \"x \\$a\\\"\\`\""
        );
        assert_eq!(literal("echo 'x {item}'", "a b"), "echo 'x ''a b'''");
        assert_eq!(literal("echo ${item} {other}", "v"), "echo ${item} {other}");
    }

    /// Every hostile value reaches the command as its characters, in every context.
    #[test]
    fn no_value_becomes_shell_syntax() {
        let values = [
            "a b",
            "it's",
            "$(touch pwned)",
            "`touch pwned`",
            "x; touch pwned",
            "\"; touch pwned; \"",
            "'; touch pwned; '",
            "back\\slash\\",
            "*",
            "",
            "new\nline",
            "$HOME ${HOME} !x",
        ];
        let templates = [
            "printf '<%s>\\n' {item}",
            "printf '<%s>\\n' \"{item}\"",
            "printf '<%s>\\n' 'pre {item} post'",
            "printf '<%s>\\n' \"$(printf %s {item})\"",
            "printf '<%s>\\n' \"`printf %s {item}`\"",
            "printf '<%s>\\n' `printf %s {item}`x",
            "x=$(printf '%s' \"{item}\"); printf '<%s>\\n' \"$x\"",
        ];
        let dir = tempfile::tempdir().expect("tempdir");
        for t in templates {
            for v in values {
                let script = format!("cd '{}' && {}", dir.path().display(), literal(t, v));
                let got = sh(&script);
                let want = if t.contains("'pre") {
                    format!("<pre {v} post>\n")
                } else if t.ends_with("`x") {
                    // Unquoted command substitution: split into words, as the shell does
                    // with any output; the value still ran nothing.
                    String::new()
                } else {
                    format!("<{v}>\n")
                };
                if !want.is_empty() {
                    assert_eq!(got, want, "template {t:?}, value {v:?}: {script}");
                }
                assert!(
                    std::fs::read_dir(dir.path()).expect("dir").next().is_none(),
                    "template {t:?}, value {v:?} ran a command: {script}"
                );
            }
        }
    }

    #[test]
    fn variables_follow_the_quoting_too() {
        let var = |t: &str| {
            fill(t, |n| {
                (n == "task").then_some(Fill::Variable("BANSURI_TASK"))
            })
        };
        assert_eq!(var("mail -s {task} x"), "mail -s \"${BANSURI_TASK}\" x");
        assert_eq!(var("echo '{task}'"), "echo ''\"${BANSURI_TASK}\"''");
        assert_eq!(var("echo $(({task}+1))"), "echo $((${BANSURI_TASK}+1))");
    }
}
