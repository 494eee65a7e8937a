//! Starting a task process without copying bansuri: `clone(CLONE_VM | CLONE_VFORK)`.
//!
//! A plain `fork` copies bansuri's page tables and turns all its memory copy-on-write, so
//! bansuri takes page faults after every start; with a thousand short runs that was most
//! of bansuri's own CPU time (bench/ W1). This is what `posix_spawn` does inside glibc and
//! musl, with the set-up `posix_spawn` cannot express: `PR_SET_PDEATHSIG`, every signal
//! disposition reset, umask, priority and the CPU affinity of a run's grant (issue 17; the
//! mask built by the parent, one `sched_setaffinity` in the child).
//!
//! The child runs on a stack of its own, in bansuri's memory, while bansuri waits
//! (CLONE_VFORK) until it has called `execve` or exited. Everything it needs is prepared
//! before the clone (paths, argv, envp as C strings); the child only makes raw system
//! calls (no allocation, no lock, no libc wrapper that could touch shared state), and
//! reports a failure through an integer in the shared memory, read once bansuri resumes.
//! All signals are blocked in bansuri around the clone, so no handler can run on the
//! child's stack. That is why this file calls libc itself, where the rest of bansuri uses
//! nix: each call here is checked to be one raw system call (nix's wrappers are thin, but
//! that would have to be checked again at every nix upgrade); the few calls made before
//! the clone stay beside the code they prepare.
//!
//! Tasks that switch to another user (`user`) keep the fork path (`setgroups`/`setuid`
//! in glibc coordinate every thread of the process, which a shared-memory child must not
//! do).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

/// What the child needs besides the command.
pub(super) struct Setup<'a> {
    pub stdout: &'a OwnedFd,
    pub stderr: &'a OwnedFd,
    pub umask: Option<u32>,
    pub priority: i32,
    /// The CPUs to pin the child to (issue 17), as the kernel's mask.
    pub cpus: Option<&'a nix::sched::CpuSet>,
}

/// Everything the child reads, prepared by the parent.
struct Args {
    parent: libc::pid_t,
    path: CString,
    argv: Vec<*const libc::c_char>,
    /// `/bin/sh path args...`: a file without a `#!` line runs as a shell script, as
    /// `execvp` does.
    sh_argv: Vec<*const libc::c_char>,
    envp: Vec<*const libc::c_char>,
    cwd: Option<CString>,
    fds: [RawFd; 3],
    umask: Option<u32>,
    priority: i32,
    cpus: Option<nix::sched::CpuSet>,
    /// errno of the step that failed (0: none).
    err: AtomicI32,
}

const STACK: usize = 64 * 1024;

/// Start `cmd` (program, args, environment changes and working directory are taken from
/// it; its stdio settings are not: stdin is /dev/null, stdout and stderr come from
/// `setup`). Returns the pid.
pub(super) fn spawn(cmd: &Command, setup: &Setup) -> io::Result<u32> {
    let nul = |e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}"));
    // The environment: bansuri's (which it never changes), changed as the command says.
    let changes: Vec<(&OsStr, Option<&OsStr>)> = cmd.get_envs().collect();
    let changed: Vec<CString> = changes
        .iter()
        .filter_map(|(k, v)| v.map(|v| key_value(k.as_bytes(), v.as_bytes())))
        .collect::<Result<_, _>>()
        .map_err(nul)?;
    let kept = base_env()
        .iter()
        .filter(|(k, _)| !changes.iter().any(|(ck, _)| ck.as_bytes() == k.as_slice()))
        .map(|(_, kv)| kv);
    let env_c: Vec<&CString> = kept.chain(changed.iter()).collect();
    let path_var = env_c
        .iter()
        .find_map(|kv| kv.as_bytes().strip_prefix(b"PATH="))
        .map(|p| p.to_vec());
    let program = cmd.get_program();
    let path = resolve(program.as_bytes(), path_var.as_deref())?;
    let args_c: Vec<CString> = std::iter::once(program)
        .chain(cmd.get_args())
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(nul)?;
    let sh = CString::new("/bin/sh").expect("no NUL");
    let cwd = cmd
        .get_current_dir()
        .map(|d| CString::new(d.as_os_str().as_bytes()))
        .transpose()
        .map_err(nul)?;
    let devnull = std::fs::File::open("/dev/null")?;
    let (fds, keep) = stdio_fds([
        devnull.as_raw_fd(),
        setup.stdout.as_raw_fd(),
        setup.stderr.as_raw_fd(),
    ])?;

    let mut argv: Vec<*const libc::c_char> = args_c.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut sh_argv: Vec<*const libc::c_char> = vec![sh.as_ptr(), path.as_ptr()];
    sh_argv.extend(args_c.iter().skip(1).map(|a| a.as_ptr()));
    sh_argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());

    let args = Args {
        // SAFETY: getpid has no preconditions.
        parent: unsafe { libc::getpid() },
        path,
        argv,
        sh_argv,
        envp,
        cwd,
        fds,
        umask: setup.umask,
        priority: setup.priority,
        cpus: setup.cpus.copied(),
        err: AtomicI32::new(0),
    };
    let pid = clone_child(&args)?;
    drop(keep);
    Ok(pid)
}

/// The fds the child dup2()s onto 0, 1 and 2: none of them may already be one of 0-2
/// (bansuri started with a closed stdio), or a dup2 would clobber the next one; such an
/// fd is duplicated above 2 (the duplicates, returned too, must live until the child has
/// exec'd).
fn stdio_fds(fds: [RawFd; 3]) -> io::Result<([RawFd; 3], Vec<OwnedFd>)> {
    let mut keep: Vec<OwnedFd> = Vec::new();
    let mut high = |fd: RawFd| -> io::Result<RawFd> {
        if fd > 2 {
            return Ok(fd);
        }
        // SAFETY: fcntl on a valid fd; the duplicate is owned by `keep`.
        let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if d < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `d` is a new fd that nothing else owns.
        keep.push(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(d) });
        Ok(d)
    };
    let fds = [high(fds[0])?, high(fds[1])?, high(fds[2])?];
    Ok((fds, keep))
}

/// Clone the child that runs `child(args)` with CLONE_VM|CLONE_VFORK (we wait until it
/// has exec'd or failed) and return its pid, or the error of the step that failed in it
/// (the child, which exited 127, reaped).
fn clone_child(args: &Args) -> io::Result<u32> {
    let mut stack = vec![0u8; STACK];

    // SAFETY: all signals are blocked around the clone (restored after), so nothing runs
    // on the child's stack but `child`; the child shares our memory and only reads `args`
    // (alive until after the clone returns, since CLONE_VFORK suspends us until the child
    // has exec'd or exited) and writes `args.err`; the stack is ours and outlives it.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(STACK);
        // 16-byte alignment for the ABI.
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            child,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            std::ptr::from_ref(args) as *mut libc::c_void,
        );
        let clone_errno = io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(clone_errno);
        }
        pid
    };
    drop(stack);
    let err = args.err.load(Ordering::SeqCst);
    if err != 0 {
        // The child exited (127) without exec: reap it here, nobody else knows it.
        let mut status = 0;
        // SAFETY: waiting for our own child by pid.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        return Err(io::Error::from_raw_os_error(err));
    }
    Ok(pid as u32)
}

/// bansuri's own environment as `KEY=VALUE` C strings, read once (bansuri never changes
/// its environment; reading and converting it for every start showed in profiles).
fn base_env() -> &'static [(Vec<u8>, CString)] {
    static BASE: OnceLock<Vec<(Vec<u8>, CString)>> = OnceLock::new();
    BASE.get_or_init(|| {
        std::env::vars_os()
            .filter_map(|(k, v)| {
                let kv = key_value(k.as_bytes(), v.as_bytes()).ok()?;
                Some((k.into_vec(), kv))
            })
            .collect()
    })
}

fn key_value(k: &[u8], v: &[u8]) -> Result<CString, std::ffi::NulError> {
    let mut kv = Vec::with_capacity(k.len() + v.len() + 1);
    kv.extend_from_slice(k);
    kv.push(b'=');
    kv.extend_from_slice(v);
    CString::new(kv)
}

/// The file `execvp` would run for `program`: itself when it has a `/`, else the first
/// executable regular file of that name in PATH (default `/bin:/usr/bin`).
fn resolve(program: &[u8], path_var: Option<&[u8]>) -> io::Result<CString> {
    let c = |b: Vec<u8>| {
        CString::new(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{e}")))
    };
    if program.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    if program.contains(&b'/') {
        return c(program.to_vec());
    }
    let mut denied = false;
    for dir in path_var.unwrap_or(b"/bin:/usr/bin").split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let mut full = dir.to_vec();
        full.push(b'/');
        full.extend_from_slice(program);
        let full = c(full)?;
        // SAFETY: stat into a zeroed struct we own, on a NUL-terminated path.
        let regular = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            libc::stat(full.as_ptr(), &mut st) == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFREG
        };
        if !regular {
            continue;
        }
        // SAFETY: access on a NUL-terminated path.
        if unsafe { libc::access(full.as_ptr(), libc::X_OK) } == 0 {
            return Ok(full);
        }
        denied = true;
    }
    Err(io::Error::from_raw_os_error(if denied {
        libc::EACCES
    } else {
        libc::ENOENT
    }))
}

/// Record the errno of the step that failed and exit 127 (the parent reaps it).
///
/// # Safety
/// Only in the child of [`spawn`].
unsafe fn fail(a: &Args) -> ! {
    let e = *libc::__errno_location();
    a.err
        .store(if e == 0 { libc::EINVAL } else { e }, Ordering::SeqCst);
    libc::syscall(libc::SYS_exit, 127);
    libc::_exit(127)
}

/// Pin the child to the CPUs of its run's grant (issue 17), if any: one raw system call
/// on the mask the parent built (nix's CpuSet is `repr(transparent)` over the kernel's
/// `cpu_set_t`).
///
/// # Safety
/// Only in the child of [`spawn`].
unsafe fn pin(a: &Args) {
    if let Some(mask) = &a.cpus {
        if libc::syscall(
            libc::SYS_sched_setaffinity,
            0 as libc::pid_t,
            std::mem::size_of::<nix::sched::CpuSet>(),
            std::ptr::from_ref(mask).cast::<libc::cpu_set_t>(),
        ) < 0
        {
            fail(a);
        }
    }
}

/// The child, between clone and exec: raw system calls only.
extern "C" fn child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the parent's `Args`, alive and unchanged while we run (the parent
    // is suspended until we exec or exit).
    let a = unsafe { &*(arg as *const Args) };
    // SAFETY: raw syscalls with valid arguments prepared by the parent.
    unsafe {
        // Own session and process group (see spawn::child_setup for the reasons of each
        // step; the same set-up as the fork path).
        if libc::syscall(libc::SYS_setsid) < 0 {
            fail(a);
        }
        if libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        ) < 0
        {
            fail(a);
        }
        if libc::syscall(libc::SYS_getppid) as libc::pid_t != a.parent {
            libc::syscall(libc::SYS_exit, 1);
        }
        // Every disposition back to the default (the kernel's struct: handler, flags,
        // restorer, mask).
        let dfl: [libc::c_ulong; 4] = [0; 4];
        let mut sig = 1;
        while sig < 65 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    dfl.as_ptr(),
                    std::ptr::null_mut::<libc::c_void>(),
                    8usize,
                );
            }
            sig += 1;
        }
        if let Some(mask) = a.umask {
            libc::syscall(libc::SYS_umask, mask as libc::c_ulong);
        }
        if a.priority != 0
            && libc::syscall(
                libc::SYS_setpriority,
                libc::PRIO_PROCESS,
                0,
                a.priority as libc::c_long,
            ) < 0
        {
            fail(a);
        }
        pin(a);
        for (to, from) in a.fds.iter().enumerate() {
            if libc::syscall(libc::SYS_dup3, *from, to as libc::c_int, 0) < 0 {
                fail(a);
            }
        }
        if let Some(dir) = &a.cwd {
            if libc::syscall(libc::SYS_chdir, dir.as_ptr()) < 0 {
                fail(a);
            }
        }
        // An empty signal mask (bansuri blocks what it reads through signalfd).
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
        libc::syscall(
            libc::SYS_execve,
            a.path.as_ptr(),
            a.argv.as_ptr(),
            a.envp.as_ptr(),
        );
        if *libc::__errno_location() == libc::ENOEXEC {
            libc::syscall(
                libc::SYS_execve,
                *a.sh_argv.as_ptr(),
                a.sh_argv.as_ptr(),
                a.envp.as_ptr(),
            );
        }
        fail(a)
    }
}
