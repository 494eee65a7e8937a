//! Attacks on the control endpoints that must not stall the event loop: request files that
//! are FIFOs, symlinks or huge, a rewrite of the config caught half-way, fd exhaustion
//! with a pending control connection. Real binary, real files.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// A task that appends a line to `ticks.txt` every 200 ms: only a loop that runs starts it.
const TICKING: &str =
    r#"{"scripts": [{"name": "tick", "command": "echo t >> ticks.txt", "timer": "200ms"}]}"#;

fn ticks(sb: &Sandbox) -> usize {
    sb.read("ticks.txt").lines().count()
}

/// The loop keeps running: `n` more ticks arrive (within a generous deadline).
fn keeps_ticking(sb: &Sandbox, b: &Bansuri, n: usize, what: &str) {
    let from = ticks(sb);
    wait_for(T, || (ticks(sb) >= from + n).then_some(())).unwrap_or_else(|| {
        panic!(
            "{what}: the timer task stopped firing ({} ticks, expected {}); job log tail:\n{}",
            ticks(sb),
            from + n,
            tail(&b.log())
        )
    });
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn inbox(sb: &Sandbox) -> PathBuf {
    sb.file(".bansuri/config.json/requests")
}

/// Start bansuri on [`TICKING`] and wait until its inbox is watched and the timer fires.
fn start_ticking(sb: &Sandbox) -> Bansuri {
    let b = sb.start(TICKING, &[]);
    b.wait_log("the control socket", T, |l| l.contains("Control socket:"));
    keeps_ticking(sb, &b, 2, "start-up");
    b
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a NUL-terminated path.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// SIGTERM stops bansuri (it is not stuck in a syscall).
fn sigterm_stops(b: &mut Bansuri) {
    b.signal(libc::SIGTERM);
    if b.wait(T).is_none() {
        panic!(
            "SIGTERM did not stop bansuri; log tail:\n{}",
            tail(&b.log())
        );
    }
}

/// Peak resident memory of a process, in KiB.
fn vm_hwm_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A `.req` name that flips between a regular file and a FIFO: the type seen by a check
/// before the open is not the type opened. Opening the FIFO must not wait for a writer.
#[test]
fn fifo_swapped_in_for_a_request_file_does_not_stall_the_loop() {
    let sb = Sandbox::new();
    let mut b = start_ticking(&sb);
    let dir = inbox(&sb);
    let (reg, fifo, name) = (dir.join(".r.tmp"), dir.join(".f.tmp"), dir.join("r.req"));
    let t0 = Instant::now();
    let mut swaps: u64 = 0;
    let mut seen = (ticks(&sb), Instant::now());
    while t0.elapsed() < Duration::from_secs(5) {
        std::fs::write(&reg, b"{}").expect("regular file");
        mkfifo(&fifo);
        let _ = std::fs::rename(&reg, &name);
        // A varying pause (0-100 us) lands the swap between a check and an open now and
        // then (an unpatched bansuri hangs within a few hundred swaps).
        let pause = Duration::from_nanos(swaps.wrapping_mul(2_654_435_761) % 100_000);
        let spin = Instant::now();
        while spin.elapsed() < pause {
            std::hint::spin_loop();
        }
        let _ = std::fs::rename(&fifo, &name);
        swaps += 1;
        if swaps % 100 == 0 {
            let n = ticks(&sb);
            if n != seen.0 {
                seen = (n, Instant::now());
            } else if seen.1.elapsed() > Duration::from_secs(5) {
                break; // stalled: reported below
            }
        }
    }
    let _ = std::fs::remove_file(&name);
    let _ = std::fs::remove_file(&reg);
    keeps_ticking(&sb, &b, 3, &format!("after {swaps} swaps"));
    let log = b.log();
    assert!(
        log.contains("unread: a FIFO (only regular files are read)"),
        "a FIFO is removed with a warning; log tail:\n{}",
        tail(&log)
    );
    sigterm_stops(&mut b);
}

/// A 1 GiB sparse request file is refused from its size, without reading it: answered,
/// removed, logged, and bansuri's memory does not grow.
#[test]
fn huge_sparse_request_file_is_refused_unread() {
    let sb = Sandbox::new();
    let mut b = start_ticking(&sb);
    let hwm_before = vm_hwm_kib(b.pid());
    let dir = inbox(&sb);
    let tmp = dir.join(".big.tmp");
    let f = std::fs::File::create(&tmp).expect("create");
    f.set_len(1 << 30).expect("sparse 1 GiB");
    drop(f);
    std::fs::rename(&tmp, dir.join("big.req")).expect("rename");
    let answer = wait_for(T, || std::fs::read_to_string(dir.join("big.resp")).ok())
        .unwrap_or_else(|| panic!("no answer; log tail:\n{}", tail(&b.log())));
    assert!(
        answer.contains("1073741824 bytes, more than the 64 KiB a request may have"),
        "{answer}"
    );
    assert!(!dir.join("big.req").exists(), "the file is removed");
    b.wait_log("the refusal", T, |l| {
        l.contains("Refused the request file big.req: the request file is 1073741824 bytes")
    });
    let hwm = vm_hwm_kib(b.pid());
    assert!(
        hwm < hwm_before + 32 * 1024,
        "peak RSS grew from {hwm_before} KiB to {hwm} KiB"
    );
    keeps_ticking(&sb, &b, 2, "after the big file");
    sigterm_stops(&mut b);
}

/// A symlink named `.req`, pointing at a valid shutdown request elsewhere, is not followed:
/// removed with a warning, the target untouched, bansuri runs on.
#[test]
fn symlink_request_file_is_refused() {
    let sb = Sandbox::new();
    let mut b = start_ticking(&sb);
    let target = sb.file("shutdown.json");
    let req = format!(
        r#"{{"id": "evil-1", "cmd": "shutdown", "sent_at": "{}"}}"#,
        chrono::Utc::now().to_rfc3339()
    );
    std::fs::write(&target, &req).expect("target");
    // Made under a temporary name and renamed in, so that inotify reports it at once (a
    // symlink created in place is found by the 30 s safety read of the inbox).
    let tmp = inbox(&sb).join(".evil.tmp");
    std::os::unix::fs::symlink(&target, &tmp).expect("symlink");
    std::fs::rename(&tmp, inbox(&sb).join("evil-1.req")).expect("rename");
    b.wait_log("the refusal", T, |l| {
        l.contains("evil-1.req unread: a symbolic link (only regular files are read)")
    });
    assert_eq!(std::fs::read_to_string(&target).expect("target"), req);
    assert!(!inbox(&sb).join("evil-1.resp").exists(), "not answered");
    keeps_ticking(&sb, &b, 2, "after the symlink");
    assert!(!b.log().contains("shutdown request"), "not carried out");
    sigterm_stops(&mut b);
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) in parentheses: utime is the 12th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    // SAFETY: no arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(f.iter().sum::<u64>() * 1000 / hz)
}

fn set_nofile(pid: i32, soft: u64, hard: u64) {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: prlimit on our own child, with a limit struct we own.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn nofile(pid: i32) -> (u64, u64) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reading into a struct we own.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    (old.rlim_cur, old.rlim_max)
}

/// Out of fds with a control connection pending: accept fails with EMFILE; bansuri must
/// not spin on it (the listener leaves epoll for a while), and serves the connection once
/// fds are available again.
#[test]
fn accept_out_of_fds_backs_off_instead_of_spinning() {
    use std::io::{BufRead, Write};
    let sb = Sandbox::new();
    let b = sb.start(
        r#"{"scripts": [{"name": "s", "command": "exec sleep 300"}]}"#,
        &[],
    );
    b.wait_log("the control socket", T, |l| l.contains("Control socket:"));
    let pid = b.pid();
    let (soft, hard) = nofile(pid);
    let open: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    // A new fd takes the lowest free number: with the limit there, no fd is left for an
    // accepted connection.
    let lowest_free = (0..).find(|n| !open.contains(n)).expect("a free fd");
    set_nofile(pid, lowest_free, hard);
    let mut conn =
        std::os::unix::net::UnixStream::connect(sb.file(".bansuri/config.json/control.sock"))
            .expect("connect");
    // A measurement window, not a wait for an event: 2 s of CPU time of bansuri.
    let cpu0 = cpu_time(pid);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let (used, took) = (cpu_time(pid) - cpu0, t0.elapsed());
    assert!(
        used < Duration::from_millis(500),
        "bansuri used {used:?} of CPU in {took:?} with a connection it cannot accept"
    );
    let log = b.log();
    assert_eq!(
        log.matches("Cannot accept a control connection: Too many open files")
            .count(),
        1,
        "said once; log tail:\n{}",
        tail(&log)
    );
    // fds again: the pending connection is accepted and answered.
    set_nofile(pid, soft, hard);
    let req = format!(
        "{{\"id\": \"c-1\", \"cmd\": \"status\", \"sent_at\": \"{}\"}}\n",
        chrono::Utc::now().to_rfc3339()
    );
    conn.write_all(req.as_bytes()).expect("send");
    conn.set_read_timeout(Some(T)).expect("timeout");
    let mut line = String::new();
    std::io::BufReader::new(&conn)
        .read_line(&mut line)
        .expect("an answer");
    assert!(line.contains("\"ok\":true"), "{line}");
}

/// A TOML config of three long-running tasks (`extra` adds more text), polled every 100 ms.
fn toml_config(extra: &str) -> String {
    let mut t = String::from("check_interval = \"100ms\"\n");
    for name in ["a", "b", "c"] {
        t.push_str(&format!(
            "\n[[scripts]]\nname = \"{name}\"\ncommand = \"echo {name} $$ >> {name}.pids; exec sleep 300\"\n"
        ));
    }
    t.push_str(extra);
    t
}

/// Start bansuri on `config.toml` holding `text`; wait until its three tasks run.
fn start_toml(sb: &Sandbox, text: &str) -> Bansuri {
    let cfg = sb.write("config.toml", text);
    let log = sb.file("log.txt");
    let child = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .arg("--log-file")
        .arg(&log)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bansuri");
    let b = Bansuri {
        child: Some(child),
        log,
    };
    for name in ["a", "b", "c"] {
        wait_for(T, || {
            (!sb.read(&format!("{name}.pids")).is_empty()).then_some(())
        })
        .unwrap_or_else(|| panic!("{name} did not start; log:\n{}", b.log()));
    }
    b
}

/// A TOML config rewritten in place in two halves 0.4 s apart (a slow editor, a copy over
/// NFS): the first half is a valid config with task `a` only. It must not be applied (that
/// stopped `b` and `c`); the whole file is, once written.
#[test]
fn half_written_toml_config_is_not_applied() {
    use std::io::Write;
    let sb = Sandbox::new();
    let b = start_toml(&sb, &toml_config(""));
    let full = toml_config("\n[[scripts]]\nname = \"d\"\ncommand = \"exec sleep 300\"\n");
    let cut = full.find("\n[[scripts]]\nname = \"b\"").expect("b's table");
    let mut f = std::fs::File::create(sb.file("config.toml")).expect("truncate");
    f.write_all(&full.as_bytes()[..cut]).expect("first half");
    f.sync_all().expect("sync");
    // The writer pauses mid-file (this is the attack, not a wait for bansuri): longer than
    // check_interval, so the half-written file is read.
    std::thread::sleep(Duration::from_millis(400));
    f.write_all(&full.as_bytes()[cut..]).expect("second half");
    drop(f);
    let log = b.wait_log("the reload of the whole file", T, |l| {
        l.contains("Config reloaded:")
    });
    assert!(
        log.contains("Config reloaded: 1 added (d), 0 removed, 0 changed, 3 kept"),
        "only the whole file is applied; log:\n{log}"
    );
    assert!(!log.contains("removed (b"), "{log}");
    for name in ["b", "c"] {
        assert_eq!(
            sb.read(&format!("{name}.pids")).lines().count(),
            1,
            "{name} was never stopped; log:\n{log}"
        );
    }
}

/// A config replaced by a rename is complete: applied at the next look, without waiting
/// for `config_settle` (30 s here), even though it was written a moment ago.
#[test]
fn renamed_config_applies_without_settling() {
    let sb = Sandbox::new();
    let b = start_toml(
        &sb,
        &format!("config_settle = \"30s\"\n{}", toml_config("")),
    );
    let full = format!(
        "config_settle = \"30s\"\n{}",
        toml_config("\n[[scripts]]\nname = \"d\"\ncommand = \"exec sleep 300\"\n")
    );
    let tmp = sb.write("config.toml.new", &full);
    let t0 = Instant::now();
    std::fs::rename(&tmp, sb.file("config.toml")).expect("rename");
    // Well before the 30 s settle time (a generous bound for a loaded machine).
    let log = b.wait_log("the reload", Duration::from_secs(20), |l| {
        l.contains("Config reloaded: 1 added (d), 0 removed, 0 changed, 3 kept")
    });
    assert!(t0.elapsed() < Duration::from_secs(20), "{log}");
    // An in-place edit of the new file now waits the settle time: it is not applied yet
    // when the polled look (every 100 ms) has surely seen it.
    let edited = full.replace("name = \"d\"", "name = \"e\"");
    std::fs::write(sb.file("config.toml"), &edited).expect("in place");
    std::thread::sleep(Duration::from_millis(1500));
    let log = b.log();
    assert_eq!(log.matches("Config reloaded:").count(), 1, "{log}");
}

/// SIGHUP reads the file at once but applies the settle rule: a file written in place a
/// moment ago is applied once `config_settle` (2 s here) has passed since the write.
#[test]
fn sighup_right_after_an_in_place_write_waits_for_it_to_settle() {
    let sb = Sandbox::new();
    let head = "config_settle = \"2s\"\n";
    let b = start_toml(&sb, &format!("{head}{}", toml_config("")));
    let full = format!(
        "{head}{}",
        toml_config("\n[[scripts]]\nname = \"d\"\ncommand = \"exec sleep 300\"\n")
    );
    let written = Instant::now();
    std::fs::write(sb.file("config.toml"), &full).expect("in place");
    b.signal(libc::SIGHUP);
    b.wait_log("the reload", T, |l| {
        l.contains("Config reloaded: 1 added (d), 0 removed, 0 changed, 3 kept")
    });
    // A lower bound only: a loaded machine makes it later, never earlier.
    let took = written.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "applied {took:?} after the write, before the 2 s settle time; log:\n{}",
        b.log()
    );
}

/// A request file of another user is refused from its owner alone, before it is read: the
/// answer is the refusal even when the file is garbage (it was the parse error).
#[test]
fn request_file_of_another_user_is_refused_unread() {
    if !root_or_skip("a request file owned by another user") {
        return;
    }
    let sb = Sandbox::new();
    let mut b = start_ticking(&sb);
    let dir = inbox(&sb);
    let tmp = dir.join(".other.tmp");
    std::fs::write(&tmp, b"not json at all").expect("write");
    std::os::unix::fs::chown(&tmp, Some(65534), Some(65534)).expect("chown");
    std::fs::rename(&tmp, dir.join("other-1.req")).expect("rename");
    let answer = wait_for(T, || std::fs::read_to_string(dir.join("other-1.resp")).ok())
        .unwrap_or_else(|| panic!("no answer; log tail:\n{}", tail(&b.log())));
    assert!(
        answer.contains("refused: this bansuri belongs to uid 0, the request file to uid 65534"),
        "{answer}"
    );
    b.wait_log("the refusal", T, |l| {
        l.contains("Refused a request file owned by uid 65534")
    });
    sigterm_stops(&mut b);
}
