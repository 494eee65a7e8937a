//! The state file's writer thread: turns a state document into JSON and replaces the file,
//! off the event loop.
//!
//! With 10,000 tasks the document is megabytes of JSON, tens of milliseconds to serialize
//! and write; on the loop, that was added to the job log's latency once a second. The loop
//! builds the document (it reads the core) and hands it over; the thread writes the newest
//! one it has (a document not yet written when a newer one comes is dropped: only the last
//! state matters). A failure comes back to the loop at its next hand-over, so the job log
//! still says "cannot write the state file" once per episode. The last write at exit is
//! the loop's own, after the thread is done, so nothing older can overwrite it. The thread
//! starts with the first state of [`FROM_TASKS`] tasks: a small state is written by the
//! loop (microseconds), and bansuri stays one thread.
//!
//! Owns: the thread and the hand-over slot. Must not: read the core or the clock, log.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::control::state::{self, StateDoc};

/// The thread starts with the first state of this many tasks (about 100 KB of JSON, a
/// millisecond to write): below it the loop writes the file itself.
pub(super) const FROM_TASKS: usize = 500;

/// What the loop and the thread share.
#[derive(Default)]
struct Slot {
    /// The newest document not yet taken by the thread.
    next: Option<Arc<StateDoc>>,
    /// Outcomes of writes not yet told to the loop (the last one wins).
    outcome: Option<std::io::Result<()>>,
    /// The loop is done: the thread ends once `next` is empty.
    quit: bool,
}

type Shared = Arc<(Mutex<Slot>, Condvar)>;

/// The writer thread of one state file.
pub(super) struct StateWriter {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
}

impl StateWriter {
    /// Starts the thread writing `path`. `None` when no thread can be started (the loop
    /// then writes by itself).
    pub(super) fn start(path: PathBuf) -> Option<StateWriter> {
        let shared: Shared = Arc::default();
        let theirs = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || run(&theirs, &path))
            .ok()?;
        Some(StateWriter {
            shared,
            thread: Some(thread),
        })
    }

    /// Hands `doc` over to be written; returns the outcome of the last write finished
    /// since the previous hand-over, if any.
    pub(super) fn submit(&self, doc: Arc<StateDoc>) -> Option<std::io::Result<()>> {
        let (lock, cv) = &*self.shared;
        let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
        slot.next = Some(doc);
        let outcome = slot.outcome.take();
        cv.notify_all();
        outcome
    }

    /// Waits until every document handed over is written and ends the thread, so the
    /// caller's own last write comes after all of them.
    pub(super) fn finish(&mut self) {
        {
            let (lock, cv) = &*self.shared;
            let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
            slot.quit = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The thread: write the newest document, until told to quit with nothing left.
fn run(shared: &Shared, path: &std::path::Path) {
    let (lock, cv) = &**shared;
    loop {
        let doc = {
            let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if let Some(doc) = slot.next.take() {
                    break doc;
                }
                if slot.quit {
                    return;
                }
                slot = cv.wait(slot).unwrap_or_else(|e| e.into_inner());
            }
        };
        let written = state::write_atomic(path, doc.to_json_compact().as_bytes());
        drop(doc);
        let mut slot = lock.lock().unwrap_or_else(|e| e.into_inner());
        slot.outcome = Some(written);
        cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(pid: u32) -> Arc<StateDoc> {
        let mut d = crate::control::state::tests::sample_doc();
        d.bansuri.pid = pid;
        Arc::new(d)
    }

    #[test]
    fn the_newest_document_is_written_and_failures_come_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut w = StateWriter::start(path.clone()).expect("thread");
        for pid in 1..=50 {
            w.submit(doc(pid));
        }
        w.finish();
        let last = StateDoc::read(&path).expect("written");
        assert_eq!(
            last.bansuri.pid, 50,
            "the newest document is the one on disk"
        );

        // A directory that is gone: the failure is told at the next hand-over.
        let gone = dir.path().join("gone/state.json");
        let w = StateWriter::start(gone).expect("thread");
        assert!(w.submit(doc(1)).is_none(), "nothing written yet");
        {
            // The thread tells the outcome under the lock and notifies: wait for it.
            let (lock, cv) = &*w.shared;
            let slot = lock.lock().unwrap();
            let _slot = cv.wait_while(slot, |s| s.outcome.is_none()).unwrap();
        }
        let outcome = w.submit(doc(2)).expect("the first write's outcome");
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
