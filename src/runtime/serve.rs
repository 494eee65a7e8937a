//! The loop's control endpoints: the Unix socket and its connections, the request-file
//! inbox, and what a request does (through the core). Every fd here is non-blocking and
//! in the loop's epoll set; nothing waits.

use std::os::fd::AsFd;
use std::time::Duration;

use chrono::Utc;
use nix::sys::epoll::{EpollEvent, EpollFlags};

use super::{Runtime, Token};
use crate::clock::Mono;
use crate::control::server::{self, Conn, ReadState, Stream};
use crate::control::{Cmd, Request, Response, REQUEST_MAX_AGE};
use crate::core::{Input, MasterEvent, ShutdownCause};
use crate::level::Level;
use crate::words;

/// File systems where inotify sees every change (the kernel makes them all). On network
/// and cluster file systems (NFS, Lustre, GPFS, BeeGFS, CephFS, SMB, FUSE) a request file
/// written on a login node raises no event here, so the inbox is polled every second.
const LOCAL_FS: [i64; 9] = [
    0xEF53,      // ext2/3/4
    0x5846_5342, // xfs
    0x9123_683E, // btrfs
    0x0102_1994, // tmpfs
    0x794C_7630, // overlayfs
    0x2FC1_2FC1, // zfs
    0xF2F5_2010, // f2fs
    0x8584_58F6, // ramfs
    0x3153_464A, // jfs
];

/// An accept error that concerns one connection only (it went away, a signal): go on.
fn retry_accept(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Interrupted
        || e.kind() == std::io::ErrorKind::ConnectionAborted
        || e.raw_os_error() == Some(libc::EPROTO)
}

/// Is `dir` on a local file system (see [`LOCAL_FS`])?
fn on_local_fs(dir: &std::path::Path) -> bool {
    // The type's width is the platform's (`__fsword_t`): i64 here, not everywhere.
    #[allow(clippy::unnecessary_cast)]
    nix::sys::statfs::statfs(dir)
        .is_ok_and(|st| LOCAL_FS.contains(&(st.filesystem_type().0 as i64)))
}
/// For tests only: `BANSURI_INBOX_POLL_ONLY=1` in bansuri's environment makes it read its
/// request inbox every second even on a local file system, as it does on NFS or Lustre
/// (where inotify sees no file written on another node), so that this path is tested on
/// a machine without a network file system. Not for users: it only costs wake-ups.
const INBOX_POLL_ONLY_ENV: &str = "BANSURI_INBOX_POLL_ONLY";

/// A listener whose accept fails for a reason that does not go away by itself (EMFILE,
/// ENFILE: out of fds; ENOBUFS, ENOMEM) leaves the epoll set for this long: the pending
/// connection keeps it readable, so the loop would otherwise wake at once, for ever.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// A connection that sends no complete request within this is closed.
const CONN_IDLE: Duration = Duration::from_secs(10);
/// A connection waiting for a reload's answer is kept this long.
const CONN_WAIT: Duration = Duration::from_secs(60);
/// Most control connections served at once; more are closed at once. The dashboard has
/// its own (`web::MAX_CONNS`).
const MAX_CONNS: usize = 64;

/// What a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Control,
}

pub(super) struct Slot {
    pub(super) conn: Conn,
    pub(super) kind: Kind,
    pub(super) deadline: Mono,
    /// The peer may not control us: the answer to whatever it asks.
    pub(super) refused: Option<String>,
}

/// Who waits for a reload's answer.
pub(super) enum Waiter {
    Conn(usize, String),
    File(String),
}

impl Runtime {
    /// Bind the control socket and put it in the epoll set; log where things are.
    pub(super) fn serve_start(&mut self) {
        if !self.obs.usable {
            return;
        }
        if let Err(e) = std::fs::create_dir_all(&self.obs.paths.requests) {
            let msg = format!(
                "cannot create the request inbox {}: {e} (control from other nodes will not work)",
                self.obs.paths.requests.display()
            );
            self.master(Level::Error, &msg);
        }
        let watched = self.watch_inbox();
        let inbox = match watched {
            Ok(()) => "watched with inotify",
            Err(why) => why,
        };
        let path = self.obs.paths.socket.clone();
        match server::bind_socket(&path) {
            Ok(l) => {
                let ev = EpollEvent::new(EpollFlags::EPOLLIN, Token::Listener.to_u64());
                match self.epoll.add(l.as_fd(), ev) {
                    Ok(()) => {
                        self.obs.listener = Some(l);
                        let msg = format!(
                            "Control socket: {}; request inbox: {} ({inbox})",
                            path.display(),
                            self.obs.paths.requests.display()
                        );
                        self.master(Level::Info, &msg);
                    }
                    Err(e) => {
                        let msg = format!("cannot watch the control socket: {e}");
                        self.master(Level::Error, &msg);
                    }
                }
            }
            Err(e) => {
                let msg = format!(
                    "cannot create the control socket {}: {e}; control commands go through the request inbox {} ({inbox})",
                    path.display(),
                    self.obs.paths.requests.display()
                );
                self.master(Level::Warning, &msg);
            }
        }
        let now = self.now().mono;
        self.obs.inbox.start(now, watched.is_ok());
        if let Some(addr) = self.core.globals().dashboard {
            self.dashboard_start(addr);
        }
    }

    /// Watch the inbox with inotify when it is on a local file system, so that a request
    /// is read at once and an idle bansuri does not wake every second to look. Err (why,
    /// for the log): poll it every second (network file systems, inotify unavailable, or
    /// [`INBOX_POLL_ONLY_ENV`]).
    fn watch_inbox(&mut self) -> Result<(), &'static str> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        const POLLED: &str = "read every second: inotify is not available";
        if std::env::var_os(INBOX_POLL_ONLY_ENV).is_some_and(|v| v == "1") {
            return Err("read every second: BANSURI_INBOX_POLL_ONLY=1");
        }
        let dir = &self.obs.paths.requests;
        if !on_local_fs(dir) {
            return Err("read every second: not a local file system");
        }
        let Ok(watch) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) else {
            return Err(POLLED);
        };
        let flags = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO;
        if watch.add_watch(dir.as_path(), flags).is_err() {
            return Err(POLLED);
        }
        let fd = std::os::fd::OwnedFd::from(watch);
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, Token::Inbox.to_u64());
        if self.epoll.add(fd.as_fd(), ev).is_err() {
            return Err(POLLED);
        }
        self.obs.inbox_watch = Some(fd);
        Ok(())
    }

    fn dashboard_start(&mut self, addr: std::net::SocketAddr) {
        let bound = std::net::TcpListener::bind(addr).and_then(|l| {
            let local = l.local_addr()?;
            let web =
                super::web::Web::start(l, local, self.core.globals().dashboard_hosts.clone())?;
            Ok((web, local))
        });
        let (web, local) = match bound {
            Ok(w) => w,
            Err(e) => {
                let msg = format!("cannot serve the dashboard on {addr}: {e}; running without it");
                self.master(Level::Error, &msg);
                return;
            }
        };
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, Token::Http.to_u64());
        if let Err(e) = self.epoll.add(web.want.as_fd(), ev) {
            let msg = format!("cannot watch the dashboard's thread: {e}");
            self.master(Level::Error, &msg);
            return;
        }
        let url = format!("http://{local}/");
        let msg = format!("Dashboard: {url} (metrics: {url}metrics)");
        self.master(Level::Info, &msg);
        if !local.ip().is_loopback() {
            let msg = format!(
                "The dashboard listens on {local}, not only on loopback: anyone who can reach this node can read the task list"
            );
            self.master(Level::Warning, &msg);
        }
        self.obs.dashboard_url = Some(url);
        self.obs.web = Some(web);
    }

    /// Give the dashboard's thread a new snapshot of the state.
    fn dashboard_publish(&mut self) {
        if self.obs.web.is_none() {
            return;
        }
        self.learn_starts();
        let now = self.now();
        let doc = self.state_doc(now, None);
        if let Some(w) = self.obs.web.as_mut() {
            w.publish(std::sync::Arc::new(doc), now.mono);
        }
    }

    /// Earliest connection deadline or paused listener's return.
    pub(super) fn serve_deadline(&self) -> Option<Mono> {
        let conns = self.obs.conns.iter().flatten().map(|s| s.deadline);
        let paused = self.obs.accept_paused.iter().map(|(_, at)| *at);
        conns.chain(paused).min()
    }

    /// When the dashboard's thread is due a new snapshot.
    pub(super) fn dashboard_deadline(&self) -> Option<Mono> {
        self.obs.web.as_ref().and_then(|w| w.pending)
    }

    /// Take listener `token` out of the epoll set for [`ACCEPT_BACKOFF`] after accept
    /// failed with `e`; say so once until an accept works again.
    fn pause_accept(&mut self, token: Token, e: &std::io::Error) {
        if let Some(fd) = self.listener_fd(token) {
            let _ = self.epoll.delete(fd);
        }
        let back = self.now().mono + ACCEPT_BACKOFF;
        self.obs.accept_paused.push((token, back));
        if !std::mem::replace(&mut self.obs.accept_warned, true) {
            let what = if token == Token::Listener {
                "control"
            } else {
                "dashboard"
            };
            let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
            let msg = format!(
                "Cannot accept a {what} connection: {e}; trying again every {} ms{}",
                ACCEPT_BACKOFF.as_millis(),
                if out_of_fds {
                    " (raise `ulimit -n`)"
                } else {
                    ""
                }
            );
            self.master(Level::Warning, &msg);
        }
    }

    /// The fd of listener `token`, if it listens (the control socket: the dashboard's
    /// listener is its own thread's, which backs off by itself).
    fn listener_fd(&self, token: Token) -> Option<std::os::fd::BorrowedFd<'_>> {
        match token {
            Token::Listener => self.obs.listener.as_ref().map(|l| l.as_fd()),
            _ => None,
        }
    }

    /// Put paused listeners whose back-off is over back in the epoll set, and accept.
    fn resume_accept(&mut self, now: Mono) {
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.obs.accept_paused)
            .into_iter()
            .partition(|(_, at)| *at <= now);
        self.obs.accept_paused = wait;
        for (token, _) in due {
            let Some(fd) = self.listener_fd(token) else {
                continue;
            };
            if self
                .epoll
                .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token.to_u64()))
                .is_ok()
            {
                self.accept_control();
            }
        }
    }

    /// A listener or connection is ready.
    pub(super) fn serve_event(
        &mut self,
        token: Token,
        events: EpollFlags,
    ) -> Option<crate::model::Ending> {
        match token {
            Token::Listener => {
                self.accept_control();
                None
            }
            Token::Http => {
                let now = self.now().mono;
                if self.obs.web.as_mut().is_some_and(|w| w.asked(now)) {
                    self.dashboard_publish();
                }
                None
            }
            Token::Inbox => {
                // Drain the inotify events; what matters is that the inbox changed.
                if let Some(fd) = &self.obs.inbox_watch {
                    let mut buf = [0u8; 4096];
                    while nix::unistd::read(fd, &mut buf).is_ok_and(|n| n > 0) {}
                }
                self.poll_inbox()
            }
            Token::Conn(slot) => self.on_conn(slot, events),
            Token::Signal | Token::Worker | Token::Alarm | Token::Agents | Token::Pipe(_) => None,
        }
    }

    /// Time-outs of connections, the inbox, reloads that have settled.
    pub(super) fn serve_due(&mut self) -> Option<crate::model::Ending> {
        let now = self.now().mono;
        let late: Vec<usize> = self
            .obs
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| s.deadline <= now).map(|_| i))
            .collect();
        for slot in late {
            self.close_conn(slot);
        }
        if self
            .obs
            .web
            .as_ref()
            .and_then(|w| w.pending)
            .is_some_and(|t| t <= now)
        {
            self.dashboard_publish();
        }
        if self.obs.accept_paused.iter().any(|(_, at)| *at <= now) {
            self.resume_accept(now);
        }
        if self.obs.inbox.due(now) {
            if let Some(code) = self.poll_inbox() {
                return Some(code);
            }
        }
        if !self.obs.reload_waiters.is_empty() && !self.watch.clock.settling() {
            self.answer_reload();
        }
        None
    }

    fn accept_control(&mut self) {
        loop {
            let Some(l) = &self.obs.listener else {
                return;
            };
            let stream = match l.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if retry_accept(&e) => continue,
                Err(e) => return self.pause_accept(Token::Listener, &e),
            };
            self.obs.accept_warned = false;
            match server::peer_cred(stream.as_fd()) {
                Ok((uid, _)) if server::allowed(uid) => {}
                Ok((uid, pid)) => {
                    let msg = format!(
                        "Refused a control connection from uid {uid} (pid {pid}): only uid {} (or root) may control this bansuri",
                        server::euid()
                    );
                    self.master(Level::Warning, &msg);
                    if stream.set_nonblocking(true).is_ok() {
                        // Read its request, then answer with the refusal (closing at once
                        // would make the client's write fail with no explanation).
                        let why = format!(
                            "refused: this bansuri belongs to uid {}, you are uid {uid}",
                            server::euid()
                        );
                        self.add_conn(Stream::Unix(stream), Kind::Control);
                        if let Some(slot) = self.obs.last_conn.take() {
                            if let Some(s) = self.obs.conns[slot].as_mut() {
                                s.refused = Some(why);
                            }
                        }
                    }
                    continue;
                }
                Err(_) => continue,
            }
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.add_conn(Stream::Unix(stream), Kind::Control);
        }
    }

    pub(super) fn add_conn(&mut self, stream: Stream, kind: Kind) {
        self.obs.last_conn = None;
        if self.obs.conns.iter().flatten().count() >= MAX_CONNS {
            return; // dropped: closed
        }
        let slot = match self.obs.conns.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.obs.conns.push(None);
                self.obs.conns.len() - 1
            }
        };
        let ev = EpollEvent::new(EpollFlags::EPOLLIN, Token::Conn(slot).to_u64());
        if self.epoll.add(stream.fd(), ev).is_err() {
            return;
        }
        let deadline = self.now().mono + CONN_IDLE;
        self.obs.conns[slot] = Some(Slot {
            conn: Conn::new(stream),
            kind,
            deadline,
            refused: None,
        });
        self.obs.last_conn = Some(slot);
    }

    pub(super) fn close_conn(&mut self, slot: usize) {
        if let Some(s) = self.obs.conns.get_mut(slot).and_then(Option::take) {
            let _ = self.epoll.delete(s.conn.stream.fd());
        }
    }

    /// Queue `bytes` on connection `slot` and send what can be sent; close when done.
    pub(super) fn send_and_close(&mut self, slot: usize, bytes: Vec<u8>) {
        let Some(s) = self.obs.conns.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        s.conn.outbuf = bytes;
        s.conn.sent = 0;
        s.conn.answered = true;
        match s.conn.write_some() {
            Ok(false) => {
                let ev = EpollEvent::new(EpollFlags::EPOLLOUT, Token::Conn(slot).to_u64());
                let mut ev = ev;
                if self.epoll.modify(s.conn.stream.fd(), &mut ev).is_err() {
                    self.close_conn(slot);
                }
            }
            _ => self.close_conn(slot),
        }
    }

    fn on_conn(&mut self, slot: usize, events: EpollFlags) -> Option<crate::model::Ending> {
        let s = self.obs.conns.get_mut(slot).and_then(Option::as_mut)?;
        if s.conn.answered {
            if events.contains(EpollFlags::EPOLLOUT) {
                match s.conn.write_some() {
                    Ok(false) => {}
                    _ => self.close_conn(slot),
                }
            }
            return None;
        }
        let read = s.conn.read_some();
        if read == ReadState::Failed {
            self.close_conn(slot);
            return None;
        }
        match s.kind {
            Kind::Control => {
                let Some(line) = s.conn.line() else {
                    if read == ReadState::Eof {
                        self.close_conn(slot);
                    }
                    return None;
                };
                if read == ReadState::Eof {
                    // The client has hung up already (it gave up waiting, e.g. while this
                    // bansuri was stopped): nobody would see the answer, and acting on a
                    // request its sender has abandoned would surprise them.
                    let msg = "Ignored a control request whose client had already gone";
                    self.close_conn(slot);
                    self.master(Level::Warning, msg);
                    return None;
                }
                if let Some(why) = s.refused.take() {
                    let r = Response {
                        id: String::new(),
                        ok: false,
                        message: why,
                        state: None,
                    };
                    self.send_and_close(slot, server::response_line(&r));
                    return None;
                }
                let parsed = serde_json::from_slice::<Request>(line);
                let req = match parsed {
                    Ok(r) => r,
                    Err(e) => {
                        let r = Response {
                            id: String::new(),
                            ok: false,
                            message: format!("not a valid request: {e}"),
                            state: None,
                        };
                        self.send_and_close(slot, server::response_line(&r));
                        return None;
                    }
                };
                let from = if req.from.is_empty() {
                    "the control socket".to_owned()
                } else {
                    format!("{} (socket)", req.from)
                };
                let (resp, code) = self.control_request(&req, &from);
                match resp {
                    Some(r) => self.send_and_close(slot, server::response_line(&r)),
                    None => {
                        let wait = self.now().mono + CONN_WAIT;
                        if let Some(s) = self.obs.conns.get_mut(slot).and_then(Option::as_mut) {
                            s.conn.answered = true;
                            s.deadline = wait;
                        }
                        self.obs
                            .reload_waiters
                            .push(Waiter::Conn(slot, req.id.clone()));
                    }
                }
                code
            }
        }
    }

    /// Read the request files in the inbox and answer each.
    fn poll_inbox(&mut self) -> Option<crate::model::Ending> {
        let inbox = server::take_requests(&self.obs.paths);
        for skip in &inbox.skipped {
            let msg = format!(
                "Removed the request file {} unread: {} (only regular files are read)",
                self.obs.paths.requests.join(&skip.name).display(),
                skip.why
            );
            self.master(Level::Warning, &msg);
        }
        let mut exit = None;
        for inc in inbox.requests {
            let refuse = |msg: String| Response {
                id: inc.id.clone(),
                ok: false,
                message: msg,
                state: None,
            };
            let resp = match &inc.request {
                // Checked first: a foreign file is not even read.
                _ if !server::allowed(inc.uid) => {
                    let msg = format!(
                        "Refused a request file owned by uid {}: only uid {} (or root) may control this bansuri",
                        inc.uid,
                        server::euid()
                    );
                    self.master(Level::Warning, &msg);
                    Some(refuse(format!(
                        "refused: this bansuri belongs to uid {}, the request file to uid {}",
                        server::euid(),
                        inc.uid
                    )))
                }
                Err(e) => {
                    let msg = format!("Refused the request file {}.req: {e}", inc.id);
                    self.master(Level::Warning, &msg);
                    Some(refuse(e.to_string()))
                }
                Ok(req) if exit.is_some() => Some(refuse(format!(
                    "not carried out: bansuri is exiting ({})",
                    req.cmd.word()
                ))),
                Ok(req) => {
                    let age = (Utc::now() - req.sent_at).to_std().unwrap_or_default();
                    if age > REQUEST_MAX_AGE {
                        let msg = format!(
                            "Ignored an expired request file ({} sent at {}, {} ago)",
                            req.cmd.word(),
                            crate::text::fmt_wall(req.sent_at),
                            crate::text::fmt_dur(Duration::from_secs(age.as_secs()))
                        );
                        self.master(Level::Warning, &msg);
                        Some(refuse(format!(
                            "expired: sent {} ago, requests older than {} are not carried out",
                            crate::text::fmt_dur(Duration::from_secs(age.as_secs())),
                            crate::text::fmt_dur(REQUEST_MAX_AGE)
                        )))
                    } else {
                        let from = if req.from.is_empty() {
                            "a request file".to_owned()
                        } else {
                            format!("{} (request file)", req.from)
                        };
                        let mut req = req.clone();
                        req.id.clone_from(&inc.id);
                        let (resp, code) = self.control_request(&req, &from);
                        if code.is_some() {
                            exit = code;
                        }
                        if resp.is_none() {
                            self.obs.reload_waiters.push(Waiter::File(inc.id.clone()));
                        }
                        resp
                    }
                }
            };
            if let Some(r) = resp {
                if let Err(e) = server::answer_file(&self.obs.paths, &inc.id, &r) {
                    let msg = format!("cannot write the answer to request {}: {e}", inc.id);
                    self.master(Level::Error, &msg);
                }
            }
        }
        exit
    }

    /// Carry out a request. `None` for the response: answered later (reload). The exit
    /// code when the request ended bansuri (a shutdown with nothing left to stop).
    fn control_request(
        &mut self,
        req: &Request,
        from: &str,
    ) -> (Option<Response>, Option<crate::model::Ending>) {
        if req.cmd == Cmd::Status {
            self.learn_starts();
            let doc = self.state_doc(self.now(), None);
            let mut r = response(req, true, String::new());
            r.state = Some(Box::new(doc));
            return (Some(r), None);
        }
        let what = if req.tasks.is_empty() {
            req.cmd.word().to_owned()
        } else {
            format!("{} {}", req.cmd.word(), req.tasks.join(" "))
        };
        let msg = format!("Control request from {from}: {what}");
        self.master(Level::Info, &msg);
        let (resp, exit) = match req.cmd {
            Cmd::Status => unreachable!("answered above"),
            Cmd::Start | Cmd::Stop | Cmd::Restart => self.task_request(req),
            Cmd::Reload => return self.reload_request(req),
            Cmd::Shutdown => self.shutdown_request(req),
        };
        // What the command changed shows in `status` at once.
        if exit.is_none() {
            let now = self.now();
            self.write_state(now, None);
        }
        (Some(resp), exit)
    }

    /// `start`, `stop`, `restart`: one core input per task named, answered by the core's
    /// typed replies.
    fn task_request(&mut self, req: &Request) -> (Response, Option<crate::model::Ending>) {
        if req.tasks.is_empty() {
            let msg = format!("{}: name at least one task", req.cmd.word());
            return (response(req, false, msg), None);
        }
        if let Err(e) = self.core.check_tasks(&req.tasks) {
            return (response(req, false, e.to_string()), None);
        }
        let mut lines = Vec::new();
        let mut ok = true;
        let mut exit = None;
        for t in &req.tasks {
            let input = match req.cmd {
                Cmd::Start => Input::StartTask { task: t.clone() },
                Cmd::Stop => Input::StopTask { task: t.clone() },
                _ => Input::RestartTask { task: t.clone() },
            };
            let actions = self.core.handle(input, self.now());
            exit = self.apply(actions);
            for reply in std::mem::take(&mut self.obs.replies) {
                ok &= reply.ok();
                lines.push(reply.to_string());
            }
            if exit.is_some() {
                break;
            }
        }
        (response(req, ok, lines.join("\n")), exit)
    }

    /// `reload`: re-read the config now; answered by [`Runtime::answer_reload`] once it has
    /// settled (the core's [`MasterEvent::Reloaded`] is caught meanwhile).
    fn reload_request(
        &mut self,
        req: &Request,
    ) -> (Option<Response>, Option<crate::model::Ending>) {
        if !self.watch.enabled {
            let msg = "reload: the config file is not watched with --once".to_owned();
            return (Some(response(req, false, msg)), None);
        }
        self.obs.capture = Some(Vec::new());
        let code = self.check_config(true);
        (None, code)
    }

    /// `shutdown`: the core's shutdown, answered from the event it begins with.
    fn shutdown_request(&mut self, req: &Request) -> (Response, Option<crate::model::Ending>) {
        self.obs.capture = Some(Vec::new());
        let input = Input::Shutdown {
            cause: ShutdownCause::Request,
        };
        let actions = self.core.handle(input, self.now());
        let exit = self.apply(actions);
        let events = self.obs.capture.take().unwrap_or_default();
        let told = events.iter().find(|e| {
            matches!(
                e,
                MasterEvent::ShutdownBegun {
                    cause: ShutdownCause::Request,
                    ..
                } | MasterEvent::ForcedKill {
                    cause: ShutdownCause::Request
                }
            )
        });
        (response(req, true, words::shutdown_reply(told)), exit)
    }

    /// The reload asked for has settled: tell everyone who asked.
    fn answer_reload(&mut self) {
        let events = self.obs.capture.take().unwrap_or_default();
        let applied = events.into_iter().find_map(|e| match e {
            MasterEvent::Reloaded(summary) => Some(summary),
            _ => None,
        });
        let (ok, message) = match (applied, &self.watch.invalid) {
            (Some(summary), _) => (true, summary.to_string()),
            (None, Some(inv)) => {
                let mut m = format!(
                    "the config file {} was not loaded: {}; still running the config loaded at {}",
                    self.watch.path.display(),
                    inv.reason,
                    crate::text::fmt_wall(self.watch.applied_at)
                );
                if let Err(e) = crate::config::load(&self.watch.path) {
                    m.push('\n');
                    m.push_str(&e.to_string());
                }
                (false, m)
            }
            (None, None) => (
                false,
                "the config was not reloaded (bansuri is shutting down)".into(),
            ),
        };
        let now = self.now();
        self.write_state(now, None);
        for w in std::mem::take(&mut self.obs.reload_waiters) {
            match w {
                Waiter::Conn(slot, id) => {
                    let r = Response {
                        id,
                        ok,
                        message: message.clone(),
                        state: None,
                    };
                    self.send_and_close(slot, server::response_line(&r));
                }
                Waiter::File(id) => {
                    let r = Response {
                        id: id.clone(),
                        ok,
                        message: message.clone(),
                        state: None,
                    };
                    let _ = server::answer_file(&self.obs.paths, &id, &r);
                }
            }
        }
    }

    /// bansuri is exiting and only waits for its notifiers: the control endpoints leave
    /// the epoll set (nothing is served any more; left in, a client waiting on a
    /// level-triggered fd would wake the loop at once, over and over).
    pub(super) fn serve_pause(&mut self) {
        if let Some(l) = &self.obs.listener {
            let _ = self.epoll.delete(l.as_fd());
        }
        if let Some(fd) = &self.obs.inbox_watch {
            let _ = self.epoll.delete(fd.as_fd());
        }
        if let Some(w) = &self.obs.web {
            let _ = self.epoll.delete(w.want.as_fd());
        }
        for s in self.obs.conns.iter().flatten() {
            let _ = self.epoll.delete(s.conn.stream.fd());
        }
    }

    /// bansuri is exiting: answer whoever still waits, remove the socket file.
    pub(super) fn serve_finish(&mut self) {
        for w in std::mem::take(&mut self.obs.reload_waiters) {
            let r = |id: String| Response {
                id,
                ok: false,
                message: "bansuri exited before the reload was done".into(),
                state: None,
            };
            match w {
                Waiter::Conn(slot, id) => self.send_and_close(slot, server::response_line(&r(id))),
                Waiter::File(id) => {
                    let _ = server::answer_file(&self.obs.paths, &id, &r(id.clone()));
                }
            }
        }
        if self.obs.listener.take().is_some() {
            let _ = std::fs::remove_file(&self.obs.paths.socket);
        }
    }
}

/// The answer to `req`.
fn response(req: &Request, ok: bool, message: String) -> Response {
    Response {
        id: req.id.clone(),
        ok,
        message,
        state: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_local_file_system_is_told_from_others() {
        // procfs is not in the list, a missing directory cannot be watched, tmpfs is local.
        assert!(!on_local_fs(Path::new("/proc")));
        assert!(!on_local_fs(Path::new("/no/such/bansuri/dir")));
        assert!(on_local_fs(Path::new("/dev/shm")), "tmpfs at /dev/shm");
    }
}
