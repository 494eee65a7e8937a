//! Names for the plain-string shorthand entries (`"python monitor.py --arg 1"`).
//!
//! The name is the file stem of the first word that looks like the script: leading
//! `VAR=value` assignments, interpreters (`python3`, `bash`, `Rscript`, `env`, ...) and
//! their flags are skipped; `python -m pkg.mod` gives `pkg.mod`; `bash -c '...'` gives
//! `bash`. Characters outside `[A-Za-z0-9._-]` become `-`.

use std::collections::HashSet;
use std::path::Path;

/// Programs that run a script given as a later argument.
const INTERPRETERS: &[&str] = &[
    "python", "pythonw", "bash", "sh", "zsh", "dash", "ksh", "perl", "Rscript", "julia", "node",
    "ruby", "env", "exec", "nohup",
];

/// Interpreter flags followed by inline code: there is no script file to name the task.
const CODE_FLAGS: &[&str] = &["-c", "-e", "-E", "--eval"];

/// Interpreter flags that take a separate argument (`python -X dev`, `bash -o pipefail`).
const ARG_FLAGS: &[&str] = &["-X", "-W", "-o", "-O", "-I", "-r", "--require"];

fn is_interpreter(word: &str) -> bool {
    if INTERPRETERS.contains(&word) {
        return true;
    }
    // python2, python3, python3.12
    word.strip_prefix("python")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((k, _)) => {
            let mut chars = k.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// Splits like a shell would for simple commands: whitespace separates words, quotes
/// group, a backslash outside single quotes escapes the next character.
fn shell_words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn file_name(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn stem(word: &str) -> String {
    match Path::new(word).file_stem() {
        Some(s) => s.to_string_lossy().into_owned(),
        None => word.to_string(),
    }
}

/// Replaces characters a task name cannot hold; never returns an empty name.
pub(crate) fn sanitize(raw: &str) -> String {
    let s: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // Room for a `-N` suffix within the bound on names (all ASCII: any cut is a char
    // boundary).
    let s = s[..s.len().min(super::validate::MAX_NAME - 10)].trim_matches('-');
    if s.is_empty() || s.chars().all(|c| c == '.') {
        "task".to_string()
    } else {
        s.to_string()
    }
}

/// The name a shorthand command gets before clashes are resolved.
pub(crate) fn derive_name(command: &str) -> String {
    let mut interpreter: Option<&str> = None;
    let all = shell_words(command);
    let mut words = all.iter().map(String::as_str);
    while let Some(word) = words.next() {
        if word.is_empty() {
            continue;
        }
        if interpreter.is_none() && is_assignment(word) {
            continue;
        }
        let base = file_name(word);
        if is_interpreter(base) {
            interpreter = Some(base);
            continue;
        }
        if let (Some(interp), true) = (interpreter, word.starts_with('-')) {
            match word {
                "-m" => return sanitize(words.next().unwrap_or(interp)),
                w if CODE_FLAGS.contains(&w) => return sanitize(interp),
                w if ARG_FLAGS.contains(&w) => {
                    words.next();
                    continue;
                }
                _ => continue,
            }
        }
        return sanitize(&stem(word));
    }
    sanitize(interpreter.unwrap_or("task"))
}

/// `base`, or `base-2`, `base-3`, ... : the first not in `taken`.
pub(crate) fn unique(base: &str, taken: &HashSet<String>) -> String {
    if !taken.contains(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|n| !taken.contains(n))
        .unwrap_or_else(|| base.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_names_from_the_script() {
        for (cmd, want) in [
            ("python monitor.py --arg 1", "monitor"),
            ("./example_script3.sh", "example_script3"),
            ("sleep 10", "sleep"),
            ("python3 -u /opt/jobs/train.py", "train"),
            ("/usr/bin/python3.12 -X dev worker.py", "worker"),
            ("FOO=1 BAR=x bash ./run.sh", "run"),
            ("Rscript --vanilla analysis.R", "analysis"),
            ("python -m http.server 8000", "http.server"),
            ("bash -c 'echo hi'", "bash"),
            ("env python3 tool.py", "tool"),
            ("julia", "julia"),
            ("'my script.sh' a", "my script"),
            ("\"./a b/x y.sh\" --flag", "x y"),
            ("bash my\\ job.sh", "my job"),
            ("~~~", "task"),
            ("..", "task"),
            ("node --inspect server.js", "server"),
            ("bash -o pipefail job.sh", "job"),
            ("perl -e 'print 1'", "perl"),
        ] {
            let got = derive_name(cmd);
            let want = sanitize(want);
            assert_eq!(got, want, "command {cmd:?}");
        }
        assert_eq!(sanitize("my script"), "my-script");
    }

    #[test]
    fn clashes_get_a_number() {
        let mut taken: HashSet<String> = ["monitor".to_string(), "monitor-2".to_string()].into();
        assert_eq!(unique("monitor", &taken), "monitor-3");
        assert_eq!(unique("other", &taken), "other");
        taken.insert("monitor-3".into());
        assert_eq!(unique("monitor", &taken), "monitor-4");
    }
}
