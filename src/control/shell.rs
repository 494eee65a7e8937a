//! `bansuri shell`: Taskmaster's interactive prompt over the control protocol.
//!
//! `status [TASK...]`, `start TASK...`, `stop TASK...`, `restart TASK...`, `reload`,
//! `shutdown`, `help`, `exit` (or `quit`, or Ctrl+D). Line editing and history come from
//! rustyline (history kept in `shell_history` in the state directory); Tab completes
//! commands and task names. Each command is one request, through the socket or the request
//! inbox like the one-shot commands; `status` asks the running bansuri for its state (fresh)
//! and falls back to the state file.
//!
//! Must not: keep anything between commands but the task names for completion.

use std::borrow::Cow;
use std::path::Path;

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::client::{paths_for, preflight, read_state, send, ClientError, DEFAULT_TIMEOUT};
use super::state::StateDoc;
use super::status::{keep_named, liveness, render};
use super::{Cmd, Paths};

/// The shell's commands, for completion and help.
pub const COMMANDS: [&str; 9] = [
    "status", "start", "stop", "restart", "reload", "shutdown", "help", "exit", "quit",
];

const HELP: &str = "\
commands:
  status [TASK...]    the status table (of the tasks named, or all; a numprocs
                      program's name shows all its instances)
  start TASK...       start tasks now (a stopped or finished one included)
  stop TASK...        stop tasks gracefully; they stay stopped until started
  restart TASK...     stop, then start tasks
  reload              re-read the config file now and say what changed
  shutdown            stop every task and end bansuri
  help                this
  exit, quit, Ctrl+D  leave the shell (bansuri keeps running)
Tab completes commands and task names; Up/Down walk the history.";

/// Completion candidates for `line` with the cursor at `pos`: (start of the word, words).
pub fn complete_line(line: &str, pos: usize, tasks: &[String]) -> (usize, Vec<String>) {
    let before = &line[..pos.min(line.len())];
    let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
    let word = &before[start..];
    let mut words = before[..start].split_whitespace();
    let pool: Vec<&str> = match words.next() {
        None => COMMANDS.to_vec(),
        Some("status" | "start" | "stop" | "restart") => {
            let given: Vec<&str> = words.collect();
            tasks
                .iter()
                .map(String::as_str)
                .filter(|t| !given.contains(t))
                .collect()
        }
        Some(_) => Vec::new(),
    };
    let out = pool
        .into_iter()
        .filter(|c| c.starts_with(word))
        .map(str::to_owned)
        .collect();
    (start, out)
}

/// rustyline's helper: completion only.
struct ShellHelper {
    tasks: Vec<String>,
}

impl Completer for ShellHelper {
    type Candidate = Pair;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, words) = complete_line(line, pos, &self.tasks);
        Ok((
            start,
            words
                .into_iter()
                .map(|w| Pair {
                    display: w.clone(),
                    replacement: format!("{w} "),
                })
                .collect(),
        ))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Highlighter for ShellHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        _default: bool,
    ) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

impl Validator for ShellHelper {}

impl Helper for ShellHelper {}

/// The state document now: asked of the running bansuri, else the file.
fn fresh(paths: &Paths, config: &Path) -> Result<StateDoc, ClientError> {
    let doc = read_state(paths, config)?;
    if preflight(&doc, Cmd::Status, &[]).is_ok() {
        if let Ok(r) = send(paths, &doc, Cmd::Status, &[], DEFAULT_TIMEOUT) {
            if let Some(d) = r.state {
                return Ok(*d);
            }
        }
    }
    Ok(doc)
}

/// Run the prompt until `exit`, Ctrl+D or end of input.
pub fn run(cli: Option<&Path>) -> Result<(), ClientError> {
    let (config, paths) = paths_for(cli)?;
    let doc = read_state(&paths, &config)?;
    let mut ed: Editor<ShellHelper, rustyline::history::DefaultHistory> =
        Editor::new().map_err(|e| ClientError::runtime(format!("cannot start the shell: {e}")))?;
    ed.set_helper(Some(ShellHelper {
        tasks: doc.tasks.iter().map(|t| t.name.clone()).collect(),
    }));
    let history = paths.dir.join("shell_history");
    let _ = ed.load_history(&history);
    crate::console::outln!(
        "bansuri shell for {} ({} tasks); `help` lists the commands",
        config.display(),
        doc.tasks.len()
    );
    loop {
        let line = match ed.readline("bansuri> ") {
            Ok(l) => l,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                crate::console::errln!("error: {e}");
                break;
            }
        };
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        let Some(first) = words.first() else {
            continue;
        };
        let _ = ed.add_history_entry(line.trim());
        let args = &words[1..];
        let cmd = match first.as_str() {
            "exit" | "quit" => break,
            "help" | "?" => {
                crate::console::outln!("{HELP}");
                continue;
            }
            "status" => {
                match fresh(&paths, &config) {
                    Ok(mut d) => {
                        if let Some(h) = ed.helper_mut() {
                            h.tasks = d.tasks.iter().map(|t| t.name.clone()).collect();
                        }
                        if let Err(e) = keep_named(&mut d, args) {
                            crate::console::errln!("error: {e}");
                            continue;
                        }
                        crate::console::out!("{}", render(&d, chrono::Utc::now(), &liveness(&d)));
                    }
                    Err(e) => crate::console::errln!("error: {}", e.msg),
                }
                continue;
            }
            "start" => Cmd::Start,
            "stop" => Cmd::Stop,
            "restart" => Cmd::Restart,
            "reload" => Cmd::Reload,
            "shutdown" => Cmd::Shutdown,
            other => {
                let near = COMMANDS
                    .iter()
                    .min_by_key(|c| strsim::levenshtein(c, other))
                    .filter(|c| strsim::levenshtein(c, other) <= 2);
                match near {
                    Some(c) => {
                        crate::console::errln!(
                            "error: unknown command `{other}`; did you mean `{c}`?"
                        )
                    }
                    None => {
                        crate::console::errln!(
                            "error: unknown command `{other}`; `help` lists them"
                        )
                    }
                }
                continue;
            }
        };
        let result = read_state(&paths, &config).and_then(|d| {
            if let Some(h) = ed.helper_mut() {
                h.tasks = d.tasks.iter().map(|t| t.name.clone()).collect();
            }
            preflight(&d, cmd, args)?;
            send(&paths, &d, cmd, args, DEFAULT_TIMEOUT)
        });
        match result {
            Ok(r) if r.ok => crate::console::outln!("{}", r.message),
            Ok(r) => crate::console::errln!("error: {}", r.message),
            Err(e) => crate::console::errln!("error: {}", e.msg),
        }
        if cmd == Cmd::Shutdown {
            break;
        }
    }
    let _ = ed.save_history(&history);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_commands_then_task_names() {
        let tasks: Vec<String> = ["monitor", "mongo", "sync"].map(String::from).to_vec();
        assert_eq!(
            complete_line("st", 2, &tasks),
            (0, vec!["status".into(), "start".into(), "stop".into()])
        );
        assert_eq!(
            complete_line("re", 2, &tasks),
            (0, vec!["restart".into(), "reload".into()])
        );
        assert_eq!(
            complete_line("stop mo", 7, &tasks),
            (5, vec!["monitor".into(), "mongo".into()])
        );
        assert_eq!(complete_line("stop ", 5, &tasks).1.len(), 3);
        assert_eq!(
            complete_line("start monitor mo", 16, &tasks),
            (14, vec!["mongo".into()]),
            "a task already named is not offered again"
        );
        assert_eq!(complete_line("reload x", 8, &tasks), (7, vec![]));
    }
}
