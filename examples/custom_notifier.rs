//! A program that embeds bansuri and registers a notifier of its own.
//!
//! ```sh
//! cargo run --example custom_notifier -- --config examples/custom_notifier.json
//! ```
//!
//! The notifier `jsonl` appends one JSON object per notice to the file named by
//! `$NOTIFY_JSONL` (default `notifications.jsonl` in the current directory): a form that
//! a dashboard, `jq` or a log shipper reads easily. Tasks select it with
//! `"notify": "jsonl"`; everything else is the `bansuri` command line.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

use bansuri::{Builder, Notice, Notifier};

/// Appends notices to a JSON-lines file.
struct JsonLines {
    /// One writer at a time: notices of different tasks may come at once.
    lock: Mutex<()>,
}

impl Notifier for JsonLines {
    fn notify(&self, n: &Notice) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let path =
            std::env::var("NOTIFY_JSONL").unwrap_or_else(|_| "notifications.jsonl".to_owned());
        let line = serde_json::json!({
            "event": n.event.word(),
            "task": n.task,
            "command": n.command,
            "working_directory": n.working_directory,
            "code": n.code(),
            "result": n.result(),
            "attempt": n.attempt_text(),
            "time": n.time.to_rfc3339(),
            "description": n.description,
            "host": n.host,
            "job_id": n.job_id,
            "stdout": n.stdout,
            "stderr": n.stderr,
        });
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut f = OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(f, "{line}")?;
        Ok(())
    }
}

fn main() {
    let code = Builder::new()
        .notifier(
            "jsonl",
            JsonLines {
                lock: Mutex::new(()),
            },
        )
        .run_cli();
    std::process::exit(code);
}
