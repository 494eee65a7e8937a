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
//! It must be forked while bansuri has a single thread (before any worker thread), keeps
//! only the pipe and stderr open, and ignores the terminal's and Slurm's signals (bansuri
//! handles those); a SIGKILL of the whole job (Slurm's cgroup) ends it with everything else.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// bansuri's end of the pipe to the guardian.
#[derive(Debug)]
pub struct Guardian {
    pipe: Option<std::fs::File>,
    pid: u32,
}

impl Guardian {
    /// Fork the guardian. Call while the process has one thread.
    pub fn start() -> io::Result<Guardian> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        // SAFETY: bansuri is single-threaded here (documented precondition), so the child
        // may run ordinary code; it never returns into bansuri's code.
        match unsafe { nix::unistd::fork() }.map_err(io::Error::from)? {
            nix::unistd::ForkResult::Child => {
                drop(w);
                guard(r);
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(r);
                Ok(Guardian {
                    pipe: Some(std::fs::File::from(w)),
                    pid: child.as_raw() as u32,
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
        self.send(b'+', pgid);
    }

    /// A run's process group is gone.
    pub fn forget(&mut self, pgid: u32) {
        self.send(b'-', pgid);
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
fn guard(pipe: OwnedFd) -> ! {
    // SAFETY: plain libc calls in a fresh single-threaded child.
    unsafe {
        libc::setsid();
        for sig in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // Close everything but stderr and the pipe: the guardian must hold no task pipe,
        // no socket, no log file open.
        let keep = pipe.as_raw_fd();
        for fd in 0..1024 {
            if fd != 2 && fd != keep {
                libc::close(fd);
            }
        }
    }
    let mut groups: BTreeSet<u32> = BTreeSet::new();
    let mut file = unsafe { std::fs::File::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(pipe)) };
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
    let alive: Vec<u32> = groups
        .into_iter()
        .filter(|g| *g > 1 && unsafe { libc::kill(-(*g as i32), 0) } == 0)
        .collect();
    if !alive.is_empty() {
        for g in &alive {
            unsafe { libc::kill(-(*g as i32), libc::SIGTERM) };
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        for g in &alive {
            unsafe { libc::kill(-(*g as i32), libc::SIGKILL) };
        }
        let _ = writeln!(
            io::stderr(),
            "bansuri-guardian: bansuri is gone; ended {} process group{} it left behind: {:?}",
            alive.len(),
            if alive.len() == 1 { "" } else { "s" },
            alive
        );
    }
    unsafe { libc::_exit(0) }
}
