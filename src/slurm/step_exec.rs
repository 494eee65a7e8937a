//! `bansuri step-exec -- PROGRAM ARGS...`: the top process of an `srun` task's job step.
//!
//! Under proctrack/cgroup Slurm delivers a step's signals (`scancel --signal=TERM JOB.STEP`)
//! to each step task's top process only. A task command run as `/bin/sh -c '...'` would
//! then lose its stop signal: Debian's sh dies of it at once, the step ends, and the
//! script's own handler is SIGKILLed with the rest of the step before it can run. So the
//! step runs this small forwarder instead, which treats the command the way bansuri
//! treats the tasks it runs itself: the command gets its own process group, every stop
//! signal goes to that whole group, and once a signal has been passed on, the step lasts
//! until the whole group is gone (bansuri's SIGKILL of the step bounds that). It exits
//! as the command's main process did (same code, or killed by the same signal), so srun
//! and bansuri see the command's own result.
//!
//! Must not: outlive its command when no stop is under way (leftovers of a command that
//! ended by itself are Slurm's to clean up, as for any step), or hold anything of bansuri's
//! (it is a separate process on the step's node).

use std::ffi::OsString;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{killpg, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Signals passed on to the command's process group.
const FORWARDED: [Signal; 8] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGCONT,
];

/// How the command's main process ended.
#[derive(Debug, Clone, Copy)]
enum End {
    Code(i32),
    Signal(Signal),
}

/// Run `argv` and forward signals to its process group; returns the exit code (or does
/// not return: a command killed by a signal is mirrored by dying of the same signal).
pub fn run(argv: &[OsString]) -> i32 {
    match forward(argv) {
        Ok(End::Code(c)) => c,
        Ok(End::Signal(sig)) => die_of(sig),
        Err(e) => {
            crate::console::errln!("bansuri step-exec: {e}");
            match e.kind() {
                io::ErrorKind::NotFound => 127,
                io::ErrorKind::PermissionDenied => 126,
                _ => 1,
            }
        }
    }
}

fn forward(argv: &[OsString]) -> io::Result<End> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command given"))?;
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(io::Error::from)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(io::Error::from)?;
    // Orphans of the command are reparented here and reaped, so its group can empty.
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let mut cmd = Command::new(program);
    cmd.args(args).process_group(0);
    // SAFETY: runs in the forked child before exec; only sigemptyset and sigprocmask
    // (through nix, no allocation), both async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot start {}: {e}", program.to_string_lossy()),
        )
    })?;
    let main = Pid::from_raw(child.id() as i32);
    drop(child); // reaped below with waitpid
    let mut end: Option<End> = None;
    let mut stopping = false;
    loop {
        // Reap whatever has exited: the main process, or orphans of the group.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == main => end = Some(End::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == main => {
                    end = Some(End::Signal(sig))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(e) = end {
            if !stopping || !group_alive(main) {
                return Ok(e);
            }
        }
        // While the group drains after a stop, look at it every 10 ms as well.
        let timeout = if end.is_some() {
            PollTimeout::from(10u16)
        } else {
            PollTimeout::NONE
        };
        let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(io::Error::from(e)),
        }
        while let Ok(Some(info)) = sfd.read_signal() {
            let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                continue;
            };
            if sig == Signal::SIGCHLD {
                continue;
            }
            if sig != Signal::SIGCONT {
                stopping = true;
            }
            let _ = killpg(main, sig);
        }
    }
}

fn group_alive(pgid: Pid) -> bool {
    killpg(pgid, None).is_ok()
}

/// End this process by `sig`, as the command's main process ended.
fn die_of(sig: Signal) -> i32 {
    // SAFETY: restoring the default disposition installs no handler.
    let _ = unsafe { nix::sys::signal::signal(sig, nix::sys::signal::SigHandler::SigDfl) };
    // Unblocked before raising; if the signal does not end the process (it is not fatal
    // by default), fall through to 128 + sig.
    let mut set = SigSet::empty();
    set.add(sig);
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&set), None);
    let _ = nix::sys::signal::raise(sig);
    128 + sig as i32
}
