//! The client side of the control commands: find the state directory of a config, show
//! status from the state file, and send requests (socket on the same node, request files
//! otherwise) and wait for the answer.
//!
//! Must not: need the config to be valid (a user fixing a broken config must still be able
//! to see and steer the running bansuri): only the state directory is read from it.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::server::short_socket_path;
use super::state::{StateDoc, HEARTBEAT};
use super::status::{keep_named, liveness, render, stale_why, Liveness};
use super::{new_request_id, Cmd, Paths, Request, Response};
use crate::config;
use crate::core::select_tasks;
use crate::model::ErrorKind;

/// How long a client waits for an answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `status --watch` refreshes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// A client error: the message, and its kind (which decides the exit code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// What went wrong, for stderr.
    pub msg: String,
    /// `Runtime`: no bansuri, no answer, a refusal; `Usage`: such as an unknown task.
    pub kind: ErrorKind,
}

impl ClientError {
    /// No bansuri, no answer, a refusal.
    pub(crate) fn runtime(msg: impl Into<String>) -> ClientError {
        ClientError {
            msg: msg.into(),
            kind: ErrorKind::Runtime,
        }
    }

    /// The command asks for something that cannot be (an unknown task, a bad setting).
    pub(crate) fn usage(msg: impl Into<String>) -> ClientError {
        ClientError {
            msg: msg.into(),
            kind: ErrorKind::Usage,
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ClientError {}

/// The state directory of the config `cli` (located as `bansuri run` would).
pub fn paths_for(cli: Option<&Path>) -> Result<(PathBuf, Paths), ClientError> {
    let path = config::locate(cli).map_err(|e| ClientError::usage(e.to_string()))?;
    let dir = config::state_dir_of(&path);
    let dir = super::legacy_dir(&path, &dir).unwrap_or(dir);
    Ok((path, Paths::new(&dir)))
}

/// Read the state file, with errors a user can act on.
pub fn read_state(paths: &Paths, config: &Path) -> Result<StateDoc, ClientError> {
    let text = match std::fs::read_to_string(&paths.state) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ClientError::runtime(format!(
                "no bansuri has run with {} yet: there is no state file {}",
                config.display(),
                paths.state.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(ClientError::runtime(permission_denied(&paths.state)))
        }
        Err(e) => {
            return Err(ClientError::runtime(format!(
                "cannot read the state file {}: {e}",
                paths.state.display()
            )))
        }
    };
    StateDoc::parse(&text).map_err(|e| {
        ClientError::runtime(format!(
            "cannot read the state file {}: {e}",
            paths.state.display()
        ))
    })
}

/// "Permission denied" on the state file, naming the file or directory that refuses this
/// user and its owner (bansuri runs as another user: its state directory is mode 700).
fn permission_denied(state: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::getuid();
    // The nearest of the file and its directories that exists: its owner is the user to
    // run `status` as.
    let owner = state.ancestors().find_map(|p| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (p.to_path_buf(), m.uid()))
    });
    let whose = owner
        .map(|(p, uid)| {
            format!(
                "; {} belongs to {}: run the command as that user",
                p.display(),
                config::who(uid)
            )
        })
        .unwrap_or_default();
    format!(
        "cannot read the state file {}: permission denied for uid {me}{whose}",
        state.display()
    )
}

/// `bansuri status [TASK...]`: print the table (or the JSON document), once or every
/// [`WATCH_EVERY`]; of the tasks named (a `numprocs` program: all its instances), or all.
pub fn status(
    cli: Option<&Path>,
    tasks: &[String],
    json: bool,
    watch: bool,
) -> Result<(), ClientError> {
    let (config, paths) = paths_for(cli)?;
    loop {
        let doc = read_state(&paths, &config)?;
        // The file is written at most every few seconds (its samples may be older still):
        // a bansuri running on this node answers with its figures of now.
        let mut doc = live(&paths, &doc).unwrap_or(doc);
        keep_named(&mut doc, tasks).map_err(ClientError::usage)?;
        let text = if json {
            let mut t = doc.to_json();
            t.push('\n');
            t
        } else {
            render(&doc, Utc::now(), &liveness(&doc))
        };
        let mut out = std::io::stdout().lock();
        let mut shown = Ok(());
        if watch {
            // Home, clear screen: the table is redrawn in place.
            shown = out.write_all(b"\x1b[H\x1b[2J");
        }
        let shown = shown
            .and_then(|()| out.write_all(text.as_bytes()))
            .and_then(|()| out.flush());
        // Nobody reads any more (`status --watch | head`): done, quietly.
        if !watch || shown.is_err() {
            return Ok(());
        }
        drop(out);
        std::thread::sleep(WATCH_EVERY);
    }
}

/// `bansuri status --elements [ARRAY...]`: the element status file's lines (one JSON
/// object per ended element attempt, a later line for an element winning), of the arrays
/// named or all, streamed as they are (the file can be large: it is not read whole).
pub fn elements(cli: Option<&Path>, arrays: &[String]) -> Result<(), ClientError> {
    use std::io::BufRead;
    let (_, paths) = paths_for(cli)?;
    let path = paths.dir.join(crate::array::STATUS_FILE);
    let file = std::fs::File::open(&path).map_err(|e| {
        ClientError::usage(format!(
            "cannot read the element status file {}: {e} (it is written when the config has arrays)",
            path.display()
        ))
    })?;
    let mut out = std::io::stdout().lock();
    for line in std::io::BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        if !arrays.is_empty() {
            let task = serde_json::from_str::<crate::array::StatusLine>(&line)
                .map(|l| l.task)
                .unwrap_or_default();
            if !arrays.contains(&task) {
                continue;
            }
        }
        // Nobody reads any more (`| head`): done, quietly.
        if writeln!(out, "{line}").is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// How long `status` waits for the running bansuri's own answer before it shows the file.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// The state document of now, asked of the bansuri of `doc` on its control socket when it
/// runs on this node (`None` otherwise, or when it does not answer within
/// [`LIVE_TIMEOUT`]: the file is shown then). Never through request files: they take a
/// second or more, and the file is as good.
pub fn live(paths: &Paths, doc: &StateDoc) -> Option<StateDoc> {
    if liveness(doc) != Liveness::Running
        || doc.bansuri.host != crate::host::name()
        || via().ok()? == Via::Files
    {
        return None;
    }
    let socket = doc
        .control
        .socket
        .as_ref()
        .map_or_else(|| paths.socket.clone(), PathBuf::from);
    let req = Request {
        id: new_request_id(),
        cmd: Cmd::Status,
        tasks: Vec::new(),
        sent_at: Utc::now(),
        from: format!("{}:{}", crate::host::name(), std::process::id()),
    };
    let r = over_socket(&socket, &req, LIVE_TIMEOUT).ok()?;
    r.state.map(|d| *d)
}

/// How to reach bansuri: `BANSURI_CONTROL_VIA=files` forces request files (what a client
/// on another node uses), `socket` forces the socket; unset, the socket when bansuri runs
/// on this node and answers, request files otherwise.
pub const VIA_ENV: &str = "BANSURI_CONTROL_VIA";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Auto,
    Socket,
    Files,
}

fn via() -> Result<Via, ClientError> {
    match std::env::var(VIA_ENV).as_deref() {
        Err(_) | Ok("") | Ok("auto") => Ok(Via::Auto),
        Ok("socket") => Ok(Via::Socket),
        Ok("files") => Ok(Via::Files),
        Ok(v) => Err(ClientError::usage(format!(
            "{VIA_ENV}={v}: use `socket`, `files` or `auto`"
        ))),
    }
}

/// Check that a bansuri runs for this state, and that the tasks exist in it.
pub fn preflight(doc: &StateDoc, cmd: Cmd, tasks: &[String]) -> Result<(), ClientError> {
    match liveness(doc) {
        Liveness::Running | Liveness::Elsewhere => {}
        Liveness::Ended => {
            let when = doc
                .bansuri
                .ended_at
                .map(|t| format!(" at {}", crate::text::fmt_wall(t)))
                .unwrap_or_default();
            let code = doc
                .bansuri
                .exit_code
                .map(|c| format!(" with code {c}"))
                .unwrap_or_default();
            return Err(ClientError::runtime(format!("no bansuri is running for this config: the last one exited{when}{code}"),
            ));
        }
        Liveness::Gone(why) => {
            return Err(ClientError::runtime(format!("no bansuri is running for this config: {why}"),
            ))
        }
        Liveness::Stale => {
            return Err(ClientError::runtime(format!(
                    "no bansuri is running for this config, most likely: {}, and a running bansuri rewrites it every {}; the request was not sent",
                    stale_why(doc, Utc::now()),
                    crate::text::fmt_dur(HEARTBEAT)
                ),
            ))
        }
    }
    if cmd.takes_tasks() {
        if tasks.is_empty() {
            return Err(ClientError::usage(format!(
                "{}: name at least one task",
                cmd.word()
            )));
        }
        let known: Vec<String> = doc.tasks.iter().map(|t| t.name.clone()).collect();
        // `w` names every instance `w:0`, `w:1`... of a numprocs program.
        select_tasks(tasks, &known).map_err(ClientError::usage)?;
    }
    Ok(())
}

/// Send `cmd` to the bansuri of `paths` and wait up to `timeout` for its answer.
pub fn send(
    paths: &Paths,
    doc: &StateDoc,
    cmd: Cmd,
    tasks: &[String],
    timeout: Duration,
) -> Result<Response, ClientError> {
    let req = Request {
        id: new_request_id(),
        cmd,
        tasks: tasks.to_vec(),
        sent_at: chrono::Utc::now(),
        from: format!("{}:{}", crate::host::name(), std::process::id()),
    };
    let via = via()?;
    let here = doc.bansuri.host == crate::host::name();
    if via == Via::Socket || (via == Via::Auto && here) {
        let socket = doc
            .control
            .socket
            .as_ref()
            .map_or_else(|| paths.socket.clone(), PathBuf::from);
        match over_socket(&socket, &req, timeout) {
            Ok(r) => return Ok(r),
            Err(e) if via == Via::Socket => {
                return Err(ClientError::runtime(format!(
                    "cannot use the control socket {}: {e}",
                    socket.display()
                )))
            }
            // Not reachable from here (another node, or no socket): use the inbox.
            Err(_) => {}
        }
    }
    over_files(paths, doc, &req, timeout)
}

fn over_socket(path: &Path, req: &Request, timeout: Duration) -> std::io::Result<Response> {
    let (addr, _dir) = short_socket_path(path)?;
    let mut s = UnixStream::connect(&addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(std::io::Error::other(
            "the connection was closed without an answer",
        ));
    }
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}

fn over_files(
    paths: &Paths,
    doc: &StateDoc,
    req: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let dir = &paths.requests;
    let tmp = dir.join(format!(".{}.tmp", req.id));
    let file = dir.join(format!("{}.req", req.id));
    let resp = dir.join(format!("{}.resp", req.id));
    let bytes = serde_json::to_vec_pretty(req).unwrap_or_default();
    std::fs::write(&tmp, &bytes)
        .and_then(|()| std::fs::rename(&tmp, &file))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            ClientError::runtime(format!("cannot leave a request in {}: {e}", dir.display()))
        })?;
    let start = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&resp) {
            let _ = std::fs::remove_file(&resp);
            return serde_json::from_str(&text).map_err(|e| {
                ClientError::runtime(format!(
                    "the answer in {} is not valid: {e}",
                    resp.display()
                ))
            });
        }
        if start.elapsed() >= timeout {
            // Not picked up: take it back so a later bansuri does not act on it.
            let taken_back = std::fs::remove_file(&file).is_ok();
            let age = chrono::Utc::now() - doc.written_at;
            let mut msg = format!(
                "no answer from bansuri within {} (it reads {} once a second); its state was last written {} ago",
                crate::text::fmt_dur(timeout),
                dir.display(),
                crate::text::fmt_dur(Duration::from_secs(age.num_seconds().max(0) as u64))
            );
            if !taken_back {
                msg.push_str("; the request was picked up, so it may still be carried out");
            }
            return Err(ClientError::runtime(msg));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The client's wait from `BANSURI_CONTROL_TIMEOUT` ([`DEFAULT_TIMEOUT`] when unset); a
/// value that is not a duration is a usage error (exit 2), not a silent default.
fn control_timeout(v: Option<std::ffi::OsString>) -> Result<Duration, ClientError> {
    let Some(v) = v else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let bad = |e: String| ClientError::usage(format!("BANSURI_CONTROL_TIMEOUT: {e}"));
    let v = v
        .into_string()
        .map_err(|_| bad("not valid UTF-8".to_owned()))?;
    crate::text::parse_duration(&v).map_err(|e| bad(e.to_string()))
}

/// `bansuri start|stop|restart TASK...`, `reload`, `shutdown`: send, wait, print.
pub fn command(cli: Option<&Path>, cmd: Cmd, tasks: &[String]) -> Result<(), ClientError> {
    let timeout = control_timeout(std::env::var_os("BANSURI_CONTROL_TIMEOUT"))?;
    let (config, paths) = paths_for(cli)?;
    let doc = read_state(&paths, &config)?;
    preflight(&doc, cmd, tasks)?;
    let r = send(&paths, &doc, cmd, tasks, timeout)?;
    if r.ok {
        if !r.message.is_empty() {
            crate::console::outln!("{}", r.message);
        }
        Ok(())
    } else {
        Err(ClientError::runtime(r.message))
    }
}
