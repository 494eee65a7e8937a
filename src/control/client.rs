//! The client side of the control commands: find the state directory of a config, show
//! status from the state file, and send requests (socket on the same node, request files
//! otherwise) and wait for the answer.
//!
//! Must not: need the config to be valid (a user fixing a broken config must still be able
//! to see and steer the running bansuri): only the state directory is read from it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;

use super::state::StateDoc;
use super::status::{liveness, render};
use super::Paths;
use crate::config;

/// How long a client waits for an answer by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `status --watch` refreshes.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// A client error: the message, and the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    /// What went wrong, for stderr.
    pub msg: String,
    /// Exit code (1: no bansuri / no answer; 2: usage, such as an unknown task).
    pub code: i32,
}

impl ClientError {
    fn new(code: i32, msg: impl Into<String>) -> ClientError {
        ClientError {
            msg: msg.into(),
            code,
        }
    }
}

/// The state directory of the config `cli` (located as `bansuri run` would).
pub fn paths_for(cli: Option<&Path>) -> Result<(PathBuf, Paths), ClientError> {
    let path = config::locate(cli).map_err(|e| ClientError::new(2, e.to_string()))?;
    let dir = config::state_dir_of(&path);
    Ok((path, Paths::new(&dir)))
}

/// Read the state file, with errors a user can act on.
pub fn read_state(paths: &Paths, config: &Path) -> Result<StateDoc, ClientError> {
    match StateDoc::read(&paths.state) {
        Ok(d) => Ok(d),
        Err(e) if !paths.state.exists() => {
            let _ = e;
            Err(ClientError::new(
                1,
                format!(
                    "no bansuri has run with {} yet: there is no state file {}",
                    config.display(),
                    paths.state.display()
                ),
            ))
        }
        Err(e) => Err(ClientError::new(
            1,
            format!("cannot read the state file {}: {e}", paths.state.display()),
        )),
    }
}

/// `bansuri status`: print the table (or the JSON document), once or every
/// [`WATCH_EVERY`].
pub fn status(cli: Option<&Path>, json: bool, watch: bool) -> Result<(), ClientError> {
    let (config, paths) = paths_for(cli)?;
    loop {
        let doc = read_state(&paths, &config)?;
        let text = if json {
            let mut t = doc.to_json();
            t.push('\n');
            t
        } else {
            render(&doc, Utc::now(), &liveness(&doc))
        };
        let mut out = std::io::stdout().lock();
        if watch {
            // Home, clear screen: the table is redrawn in place.
            let _ = out.write_all(b"\x1b[H\x1b[2J");
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        if !watch {
            return Ok(());
        }
        drop(out);
        std::thread::sleep(WATCH_EVERY);
    }
}
