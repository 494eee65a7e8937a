//! The guardian: a tiny process that outlives bansuri only to clean up after it.
//!
//! `PR_SET_PDEATHSIG` kills a task's main process when bansuri dies, but not the rest of
//! its process group (`sh -c 'a; b'` leaves `a` running). So at start-up bansuri forks a
//! guardian, in its own session, that reads the process groups bansuri starts and ends
//! over a pipe (`+PGID` / `-PGID` lines). When the pipe reaches end of file — bansuri has
//! exited, normally or killed with SIGKILL — the guardian sends SIGTERM to every group
//! still listed, SIGKILL 300 ms later, says so on stderr, and exits. After a normal exit
//! the list is empty and it leaves silently.
//!
//! The groups are told through memory, not the pipe: a table of [`SLOTS`] process group
//! ids in a shared anonymous mapping made before the fork, which bansuri writes (a store
//! per start and per end, no system call, no wake-up of the guardian) and the guardian
//! reads only once the pipe has reached end of file. A store made before bansuri dies is
//! in the shared page whatever kills bansuri, so no group is ever missed. (A write to the
//! pipe and a wake-up of the guardian per start and per end were a tenth of bansuri's own
//! time on a thousand short runs.) Past [`SLOTS`] live groups, the pipe carries the rest.
//!
//! It must be forked while bansuri has a single thread (before any worker thread), keeps
//! only the pipe and stderr open, and ignores the terminal's and Slurm's signals (bansuri
//! handles those); a SIGKILL of the whole job (Slurm's cgroup) ends it with everything else.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Live process groups the shared table holds (4 bytes each); more go through the pipe.
pub const SLOTS: usize = 16 * 1024;

/// The table shared with the guardian (a `MAP_SHARED` anonymous mapping, never unmapped:
/// it lives as long as bansuri).
#[derive(Debug, Clone, Copy)]
struct Table(*const AtomicU32);

// SAFETY: the mapping is valid for the life of the process and only accessed through
// atomics.
unsafe impl Send for Table {}

impl Table {
    fn new() -> io::Result<Table> {
        // SAFETY: a fresh anonymous shared mapping; zero-filled by the kernel. (nix's
        // mmap_anonymous, behind its `mman` feature, is just as unsafe.)
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SLOTS * 4,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Table(p as *const AtomicU32))
    }

    fn slot(&self, i: usize) -> &AtomicU32 {
        assert!(i < SLOTS);
        // SAFETY: in bounds of the mapping, which is never unmapped.
        unsafe { &*self.0.add(i) }
    }
}

/// bansuri's end of the pipe to the guardian.
#[derive(Debug)]
pub struct Guardian {
    pipe: Option<std::fs::File>,
    pid: u32,
    table: Table,
    /// Slot of each group in the table.
    index: HashMap<u32, usize>,
    free: Vec<usize>,
    /// Slots below this have been used.
    used: usize,
}

impl Guardian {
    /// Fork the guardian. Call while the process has one thread.
    pub fn start() -> io::Result<Guardian> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let table = Table::new()?;
        // SAFETY: bansuri is single-threaded here (documented precondition), so the child
        // may run ordinary code; it never returns into bansuri's code.
        match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
            nix::unistd::ForkResult::Child => {
                drop(w);
                guard(r, table);
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(r);
                Ok(Guardian {
                    pipe: Some(std::fs::File::from(w)),
                    pid: child.as_raw() as u32,
                    table,
                    index: HashMap::new(),
                    free: Vec::new(),
                    used: 0,
                })
            }
        }
    }

    /// The guardian's pid (bansuri reaps it like any child; it is not a task).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A run's process group started.
    pub fn watch(&mut self, pgid: u32) {
        if self.index.contains_key(&pgid) {
            return;
        }
        let slot = self.free.pop().or_else(|| {
            (self.used < SLOTS).then(|| {
                self.used += 1;
                self.used - 1
            })
        });
        match slot {
            Some(i) => {
                self.table.slot(i).store(pgid, Ordering::SeqCst);
                self.index.insert(pgid, i);
            }
            None => self.send(b'+', pgid),
        }
    }

    /// A run's process group is gone.
    pub fn forget(&mut self, pgid: u32) {
        match self.index.remove(&pgid) {
            Some(i) => {
                self.table.slot(i).store(0, Ordering::SeqCst);
                self.free.push(i);
            }
            None => self.send(b'-', pgid),
        }
    }

    fn send(&mut self, op: u8, pgid: u32) {
        let Some(p) = &mut self.pipe else {
            return;
        };
        let mut line = [0u8; 16];
        let mut cur = io::Cursor::new(&mut line[..]);
        let _ = writeln!(cur, "{}{pgid}", op as char);
        let n = cur.position() as usize;
        // A pipe write this small is atomic; if the guardian is gone, stop talking to it.
        if p.write_all(&line[..n]).is_err() {
            self.pipe = None;
        }
    }
}

/// The guardian's life: read, then clean up. Never returns.
fn guard(pipe: OwnedFd, table: Table) -> ! {
    use nix::sys::signal::{sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
    let _ = nix::unistd::setsid();
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGPIPE,
    ] {
        // SAFETY: ignoring a signal installs no handler.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigIgn) };
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    // Close everything but stderr and the pipe: the guardian must hold no task pipe,
    // no socket, no log file open.
    let keep = pipe.as_raw_fd();
    for fd in 0..1024 {
        if fd != 2 && fd != keep {
            // SAFETY: closing descriptors this child does not own is the point; it is
            // single-threaded and never returns into bansuri's code, so nothing here
            // uses them again (nix's close takes an owned descriptor).
            unsafe { libc::close(fd) };
        }
    }
    let mut groups: BTreeSet<u32> = BTreeSet::new();
    let mut file = std::fs::File::from(pipe);
    let mut buf = [0u8; 4096];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match io::Read::read(&mut file, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            let Some((&op, num)) = line[..line.len() - 1].split_first() else {
                continue;
            };
            let Some(pgid) = std::str::from_utf8(num)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            match op {
                b'+' => {
                    groups.insert(pgid);
                }
                b'-' => {
                    groups.remove(&pgid);
                }
                _ => {}
            }
        }
    }
    // bansuri is gone: its table holds every group it had not seen end.
    groups.extend(
        (0..SLOTS)
            .map(|i| table.slot(i).load(Ordering::SeqCst))
            .filter(|g| *g != 0),
    );
    let group = |g: u32| nix::unistd::Pid::from_raw(g as i32);
    let alive: Vec<u32> = groups
        .into_iter()
        .filter(|g| *g > 1 && nix::sys::signal::killpg(group(*g), None).is_ok())
        .collect();
    if !alive.is_empty() {
        for g in &alive {
            let _ = nix::sys::signal::killpg(group(*g), Signal::SIGTERM);
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        for g in &alive {
            let _ = nix::sys::signal::killpg(group(*g), Signal::SIGKILL);
        }
        let _ = writeln!(
            io::stderr(),
            "bansuri-guardian: bansuri is gone; ended {} process group{} it left behind: {:?}",
            alive.len(),
            if alive.len() == 1 { "" } else { "s" },
            alive
        );
    }
    // SAFETY: ends the forked guardian without running bansuri's exit handlers or
    // destructors, which belong to the parent (nix has no _exit).
    unsafe { libc::_exit(0) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn live(t: Table) -> BTreeSet<u32> {
        (0..SLOTS)
            .map(|i| t.slot(i).load(Ordering::SeqCst))
            .filter(|g| *g != 0)
            .collect()
    }

    #[test]
    fn groups_live_in_the_shared_table_and_overflow_into_the_pipe() {
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .expect("pipe");
        let mut r = std::fs::File::from(r);
        let table = Table::new().expect("mmap");
        let mut g = Guardian {
            pipe: Some(std::fs::File::from(w)),
            pid: 0,
            table,
            index: HashMap::new(),
            free: Vec::new(),
            used: 0,
        };
        g.watch(100);
        g.watch(101);
        assert_eq!(live(table), BTreeSet::from([100, 101]));
        g.forget(100);
        assert_eq!(live(table), BTreeSet::from([101]));
        // The freed slot is reused: SLOTS groups fit, the next goes through the pipe.
        for pgid in 1000..1000 + SLOTS as u32 - 1 {
            g.watch(pgid);
        }
        assert_eq!(live(table).len(), SLOTS);
        let mut buf = [0u8; 64];
        assert!(r.read(&mut buf).is_err(), "nothing on the pipe yet");
        g.watch(7);
        g.forget(7);
        let n = r.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], b"+7\n-7\n");
        g.forget(101);
        assert!(!live(table).contains(&101));
    }
}
