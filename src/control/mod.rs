//! Control and observability around a running bansuri: the state file, the status table,
//! the control protocol (Unix socket on the same node, request files from any node that
//! sees the state directory), and the client commands (`status`, `start`, `stop`,
//! `restart`, `reload`, `shutdown`, `shell`).
//!
//! The state directory (`state_dir`, default `.bansuri/<config file name>/` beside the
//! config, so that configs of one directory run side by side) holds:
//! - `state.json`: the state file ([`state`]);
//! - `control.sock`: the control socket (mode 0600; connections from another uid than
//!   bansuri's, root excepted, are refused after a SO_PEERCRED check);
//! - `requests/`: the inbox for request files, read by the running bansuri within a second
//!   (inotify on a local file system, a read every second on a network one);
//!   answers are written beside them.
//!
//! The protocol, on the socket and in files alike, is one JSON [`Request`] and one JSON
//! [`Response`] (on the socket: one line each).
//!
//! Must not: decide what a command does to a task (the core does), or block the event
//! loop (the server side is non-blocking fds in the runtime's epoll).

pub mod client;
pub mod server;
pub mod shell;
pub mod stale;
pub mod state;
pub mod status;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use state::StateDoc;

/// File names in the state directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// The state directory.
    pub dir: PathBuf,
    /// `state.json`
    pub state: PathBuf,
    /// `control.sock`
    pub socket: PathBuf,
    /// `requests/`
    pub requests: PathBuf,
}

impl Paths {
    /// The files of state directory `dir`.
    pub fn new(dir: &Path) -> Paths {
        Paths {
            dir: dir.to_path_buf(),
            state: dir.join("state.json"),
            socket: dir.join("control.sock"),
            requests: dir.join("requests"),
        }
    }
}

/// The state directory of an older bansuri that kept the state of every config of a
/// directory in `.bansuri/` itself, when it holds the state of config `config` and `dir`
/// (the state directory this bansuri uses) is the default one and has no state file yet.
/// A client uses it as the state directory (an older bansuri may still run there); a
/// starting bansuri takes its state file over into `dir` (once).
pub fn legacy_dir(config: &Path, dir: &Path) -> Option<PathBuf> {
    if dir != crate::config::default_state_dir(config) || dir.join("state.json").exists() {
        return None;
    }
    let old = crate::config::legacy_state_dir(config);
    let doc = StateDoc::read(&old.join("state.json")).ok()?;
    (crate::config::absolute(Path::new(&doc.config.path)) == crate::config::absolute(config))
        .then_some(old)
}

/// What a client asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cmd {
    /// Start tasks now.
    Start,
    /// Stop tasks (until started again).
    Stop,
    /// Stop, then start tasks.
    Restart,
    /// Re-read the config file now.
    Reload,
    /// Stop everything and exit.
    Shutdown,
    /// The state document, fresh.
    Status,
}

impl Cmd {
    /// The command's word.
    pub fn word(self) -> &'static str {
        match self {
            Cmd::Start => "start",
            Cmd::Stop => "stop",
            Cmd::Restart => "restart",
            Cmd::Reload => "reload",
            Cmd::Shutdown => "shutdown",
            Cmd::Status => "status",
        }
    }

    /// Does it name tasks?
    pub fn takes_tasks(self) -> bool {
        matches!(self, Cmd::Start | Cmd::Stop | Cmd::Restart)
    }
}

/// A control request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Unique id (also the request file's name).
    pub id: String,
    /// The command.
    pub cmd: Cmd,
    /// Task names (start, stop, restart).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// When the client sent it (request files older than [`REQUEST_MAX_AGE`] are not
    /// carried out: a request left behind must not act on a later bansuri).
    pub sent_at: DateTime<Utc>,
    /// `host:pid` of the client, for the log.
    #[serde(default)]
    pub from: String,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: String,
    /// Carried out.
    pub ok: bool,
    /// What happened (several lines for several tasks).
    pub message: String,
    /// For `status`: the state document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<Box<StateDoc>>,
}

/// A request file older than this when bansuri reads it is answered "expired" and not
/// carried out.
pub const REQUEST_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// How often the running bansuri reads its request inbox.
pub const INBOX_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// A new request id: host, pid, time and a counter, unique across nodes.
pub fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let host: String = crate::host::name()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!(
        "{}-{host}-{}-{n}",
        Utc::now().format("%Y%m%dT%H%M%S%.6f"),
        std::process::id()
    )
}

/// Is `id` safe as a file name (what bansuri itself generates)?
pub fn valid_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 200
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !id.starts_with('.')
}
