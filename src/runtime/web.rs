//! The dashboard's server thread: accepts HTTP connections, reads request heads, and
//! answers from the last snapshot of the state that the event loop published. The
//! scheduler never waits for HTTP: the loop's only part is to build a state document when
//! the thread asks for one (at most once per [`FRESH`]) and hand it over under a mutex;
//! rendering the JSON and the metrics (9 MB for 10k tasks), reading slow requests and
//! writing to slow readers all happen here.
//!
//! Bounds: at most [`MAX_CONNS`] connections (separate from the control socket's), at
//! most [`PER_PEER`] of them from one peer address; to make room, the oldest connection
//! of the peer holding the most is closed, so one client opening connections in a loop
//! closes only its own and can lock no one else out (an IPv6 peer is its /64),
//! [`CLIENT_TIME`] per client from connect to the last byte (slow readers are dropped),
//! [`dashboard::MAX_HEAD`] bytes of request head, [`MAX_BODY`] bytes of body. Bodies are
//! shared (`Arc`) between the clients that read them, not copied per client. When
//! `accept` fails for lack of fds or memory, the listener rests [`ACCEPT_BACKOFF`] instead
//! of spinning.
//!
//! Must not: touch the core or the job log (it has nothing but the snapshot and its
//! sockets), or block on anything but its `poll`.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::clock::Mono;
use crate::control::state::StateDoc;
use crate::dashboard::{self, Head, Route};

/// Most dashboard connections at once. When full, the oldest of the peer holding the
/// most is closed for the new one.
pub(super) const MAX_CONNS: usize = 64;
/// Most connections from one peer: its oldest is closed for a new one past this.
pub(super) const PER_PEER: usize = 16;
/// Time a client has from connecting to having read the whole answer.
pub(super) const CLIENT_TIME: Duration = Duration::from_secs(10);
/// A snapshot younger than this is served as it is; an older one is refreshed first.
/// Also the loop's least time between two snapshots.
pub(super) const FRESH: Duration = Duration::from_secs(1);
/// How long a request waits for a fresher snapshot before the last one is served.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);
/// Largest body served (a 10k-task `/metrics` is about 9 MB); larger gets 503.
pub(super) const MAX_BODY: usize = 64 << 20;
/// The listener is not watched for this long after `accept` failed for lack of fds or
/// memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the pending connection would make `poll`
/// return at once, for ever.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(250);

/// Added to the thread's nice value (the loop's is left as it is).
const NICE: libc::c_int = 10;

/// What the loop published last.
struct Published {
    doc: Option<Arc<StateDoc>>,
    at: Instant,
}

/// The loop's end of the dashboard thread.
pub(super) struct Web {
    published: Arc<Mutex<Published>>,
    /// Readable when the thread wants a fresh snapshot (in the loop's epoll set).
    pub(super) want: Arc<EventFd>,
    /// Written after each snapshot: wakes the thread.
    ready: Arc<EventFd>,
    stop: Arc<AtomicBool>,
    /// When the last snapshot was published.
    last: Option<Mono>,
    /// A snapshot is asked for and due then (rate limit).
    pub(super) pending: Option<Mono>,
}

impl Web {
    /// Serve `listener` (bound to `bound`) from a new thread.
    pub(super) fn start(
        listener: TcpListener,
        bound: SocketAddr,
        hosts: Vec<String>,
    ) -> std::io::Result<Web> {
        listener.set_nonblocking(true)?;
        let flags = EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC;
        let want = Arc::new(EventFd::from_flags(flags)?);
        let ready = Arc::new(EventFd::from_flags(flags)?);
        let published = Arc::new(Mutex::new(Published {
            doc: None,
            at: Instant::now(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = Server {
            listener,
            bound,
            hosts,
            published: Arc::clone(&published),
            want: Arc::clone(&want),
            ready: Arc::clone(&ready),
            stop: Arc::clone(&stop),
            conns: Vec::new(),
            asked: None,
            cache: Cache::default(),
            rest_until: None,
        };
        std::thread::Builder::new()
            .name("dashboard".into())
            .spawn(move || server.run())?;
        Ok(Web {
            published,
            want,
            ready,
            stop,
            last: None,
            pending: None,
        })
    }

    /// The thread asked for a snapshot: true when one may be built now; else it is
    /// [`Web::pending`] (at most one per [`FRESH`]).
    pub(super) fn asked(&mut self, now: Mono) -> bool {
        let _ = self.want.read();
        match self.last {
            Some(l) if now < l + FRESH => {
                self.pending = Some(l + FRESH);
                false
            }
            _ => true,
        }
    }

    /// Hand `doc` to the thread.
    pub(super) fn publish(&mut self, doc: Arc<StateDoc>, now: Mono) {
        self.last = Some(now);
        self.pending = None;
        if let Ok(mut p) = self.published.lock() {
            p.doc = Some(doc);
            p.at = Instant::now();
        }
        let _ = self.ready.write(1);
    }
}

impl Drop for Web {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.ready.write(1);
    }
}

/// The bodies of one snapshot, rendered when first asked for.
#[derive(Default)]
struct Cache {
    doc: Option<Arc<StateDoc>>,
    at: Option<Instant>,
    status: Option<Arc<[u8]>>,
    metrics: Option<Arc<[u8]>>,
}

enum State {
    /// Reading the head; `scanned` bytes of it have been looked at.
    Reading { scanned: usize },
    /// Waiting for a fresher snapshot since then.
    Waiting {
        route: Route,
        head_only: bool,
        since: Instant,
    },
    /// Writing `head`, then `body`, `sent` bytes of both sent.
    Writing {
        head: Vec<u8>,
        body: Option<Arc<[u8]>>,
        sent: usize,
    },
}

struct Conn {
    stream: TcpStream,
    /// Who it is from ([`peer_of`]).
    peer: IpAddr,
    buf: Vec<u8>,
    since: Instant,
    state: State,
    done: bool,
}

struct Server {
    listener: TcpListener,
    bound: SocketAddr,
    hosts: Vec<String>,
    published: Arc<Mutex<Published>>,
    want: Arc<EventFd>,
    ready: Arc<EventFd>,
    stop: Arc<AtomicBool>,
    /// Oldest first.
    conns: Vec<Conn>,
    /// A snapshot was asked for then and has not come yet (asked again after
    /// [`SNAPSHOT_WAIT`]: the eventfd could have been drained without an answer).
    asked: Option<Instant>,
    cache: Cache,
    /// The listener rests until then (accept failed for lack of resources).
    rest_until: Option<Instant>,
}

impl Server {
    fn run(&mut self) {
        // Below the scheduler: on a busy node, rendering a 9 MB `/metrics` yields the CPU
        // to the event loop. (A thread's nice value is its own on Linux.)
        let tid = nix::unistd::gettid().as_raw() as libc::id_t;
        // SAFETY: getpriority and setpriority take no pointers and act on this thread's
        // own id (nix has no call for them).
        unsafe {
            // -1 is also a valid nice value: errno would tell, but a wrong guess only
            // makes the thread a little nicer or less nice.
            let now = libc::getpriority(libc::PRIO_PROCESS, tid);
            libc::setpriority(libc::PRIO_PROCESS, tid, (now + NICE).min(19));
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.expire(now);
            if self.rest_until.is_some_and(|t| t <= now) {
                self.rest_until = None;
            }
            let listen = self.rest_until.is_none();
            fds.clear();
            let pfd = |fd: i32, events: i16| libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            fds.push(pfd(self.ready.as_raw_fd(), libc::POLLIN));
            fds.push(pfd(
                if listen {
                    self.listener.as_raw_fd()
                } else {
                    -1
                },
                libc::POLLIN,
            ));
            for c in &self.conns {
                let events = match c.state {
                    State::Reading { .. } => libc::POLLIN,
                    State::Waiting { .. } => 0,
                    State::Writing { .. } => libc::POLLOUT,
                };
                fds.push(pfd(c.stream.as_raw_fd(), events));
            }
            let timeout = self
                .next_deadline()
                .map_or(-1, |d| ms_until(d, Instant::now()));
            // SAFETY: `fds` is a valid array of pollfd of the length given, each fd open
            // (or -1) while `self` holds it. Not nix's poll: its `PollFd` borrows every fd
            // for the call (no reused array across turns) and has no -1 to rest the
            // listener.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                // EINTR; anything else (ENOMEM) is retried after a pause rather than spun.
                if std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            }
            if fds[0].revents != 0 {
                let _ = self.ready.read();
                self.take_snapshot();
            }
            for (i, f) in fds.iter().enumerate().skip(2) {
                if f.revents != 0 {
                    self.on_conn(i - 2, f.revents);
                }
            }
            if fds[1].revents != 0 {
                self.accept();
            }
            self.conns.retain(|c| !c.done);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let conns = self.conns.iter().map(|c| match c.state {
            State::Waiting { since, .. } => (since + SNAPSHOT_WAIT).min(c.since + CLIENT_TIME),
            _ => c.since + CLIENT_TIME,
        });
        conns.chain(self.rest_until).min()
    }

    /// Drop clients out of time; answer those that waited long enough for a snapshot.
    fn expire(&mut self, now: Instant) {
        self.conns.retain(|c| {
            let keep = c.since + CLIENT_TIME > now;
            if !keep {
                reset(&c.stream);
            }
            keep
        });
        for i in 0..self.conns.len() {
            if let State::Waiting { since, .. } = self.conns[i].state {
                if since + SNAPSHOT_WAIT <= now {
                    self.answer_waiting(i);
                }
            }
        }
        self.conns.retain(|c| !c.done);
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, from)) => {
                    if s.set_nonblocking(true).is_err() {
                        continue;
                    }
                    let peer = peer_of(from.ip());
                    if let Some(i) = make_room(&self.conns, peer) {
                        reset(&self.conns.remove(i).stream);
                    }
                    self.conns.push(Conn {
                        stream: s,
                        peer,
                        buf: Vec::new(),
                        since: Instant::now(),
                        state: State::Reading { scanned: 0 },
                        done: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    self.rest_until = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and the like: that connection only.
                Err(_) => continue,
            }
        }
    }

    fn on_conn(&mut self, i: usize, revents: i16) {
        let c = &mut self.conns[i];
        match &mut c.state {
            State::Reading { scanned } => {
                let mut chunk = [0u8; 4096];
                let room = dashboard::MAX_HEAD - c.buf.len();
                let n = match c.stream.read(&mut chunk[..room.min(4096)]) {
                    Ok(0) => {
                        c.done = true;
                        return;
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => return,
                    Err(_) => {
                        c.done = true;
                        return;
                    }
                };
                c.buf.extend_from_slice(&chunk[..n]);
                let end = dashboard::head_end(&c.buf, *scanned);
                *scanned = c.buf.len();
                match end {
                    Some(end) => {
                        let parsed = dashboard::parse_head(&c.buf[..end]);
                        self.on_head(i, parsed);
                    }
                    None if c.buf.len() >= dashboard::MAX_HEAD => {
                        let r = dashboard::plain(
                            "431 Request Header Fields Too Large",
                            "request head too large\n",
                        );
                        self.send(i, r, None);
                    }
                    None => {}
                }
            }
            State::Waiting { .. } => {
                // Only errors and hang-ups are reported here: nobody to answer.
                if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                    c.done = true;
                }
            }
            State::Writing { head, body, sent } => loop {
                let (bytes, off) = if *sent < head.len() {
                    (&head[..], *sent)
                } else {
                    match body {
                        Some(b) if *sent - head.len() < b.len() => (&b[..], *sent - head.len()),
                        _ => {
                            c.done = true;
                            return;
                        }
                    }
                };
                match c.stream.write(&bytes[off..]) {
                    Ok(0) => {
                        c.done = true;
                        return;
                    }
                    Ok(n) => *sent += n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(_) => {
                        c.done = true;
                        return;
                    }
                }
            },
        }
    }

    fn on_head(&mut self, i: usize, parsed: Option<Result<Head, ()>>) {
        let head = match parsed {
            Some(Ok(h)) => h,
            _ => {
                let r = dashboard::plain("400 Bad Request", "bad request\n");
                return self.send(i, r, None);
            }
        };
        if !dashboard::host_allowed(head.host.as_deref(), self.bound, &self.hosts) {
            return self.send(i, dashboard::misdirected(&head), None);
        }
        let head_only = head.method == "HEAD";
        let route = dashboard::route_of(&head);
        match route {
            Route::Fixed(status, ctype, body) => {
                let r = dashboard::fixed(&head, status, ctype, body);
                self.send(i, r, None);
            }
            Route::Status | Route::Metrics => {
                let fresh = self.fresh();
                self.conns[i].state = State::Waiting {
                    route,
                    head_only,
                    since: Instant::now(),
                };
                if fresh {
                    self.answer_waiting(i);
                } else if !self.asked.is_some_and(|t| t.elapsed() < SNAPSHOT_WAIT) {
                    self.asked = Some(Instant::now());
                    let _ = self.want.write(1);
                }
            }
        }
    }

    /// Is the cache fresh, or can it be made so with what the loop published last
    /// (without asking it)? A new snapshot replaces the cache (and its rendered bodies)
    /// only here, when a request needs it: the bodies are rendered at most once per
    /// [`FRESH`], however often the loop publishes.
    fn fresh(&mut self) -> bool {
        if self.cache.at.is_some_and(|at| at.elapsed() < FRESH) {
            return true;
        }
        let (doc, at) = match self.published.lock() {
            Ok(p) => (p.doc.clone(), p.at),
            Err(_) => return false,
        };
        if doc.is_none() || self.cache.at.is_some_and(|c| c >= at) {
            return false;
        }
        self.cache = Cache {
            doc,
            at: Some(at),
            status: None,
            metrics: None,
        };
        at.elapsed() < FRESH
    }

    /// The loop published: answer whoever waited for it.
    fn take_snapshot(&mut self) {
        let waiting = self
            .conns
            .iter()
            .any(|c| matches!(c.state, State::Waiting { .. }));
        if !waiting {
            return;
        }
        if self.fresh() {
            self.asked = None;
        }
        for i in 0..self.conns.len() {
            if matches!(self.conns[i].state, State::Waiting { .. }) {
                self.answer_waiting(i);
            }
        }
    }

    /// Answer connection `i` (waiting) from the cache, whatever its age.
    fn answer_waiting(&mut self, i: usize) {
        let State::Waiting {
            route, head_only, ..
        } = self.conns[i].state
        else {
            return;
        };
        let Some(doc) = self.cache.doc.clone() else {
            let r = dashboard::plain(
                "503 Service Unavailable",
                "no state yet: try again in a second\n",
            );
            return self.send(i, r, None);
        };
        let (ctype, body) = match route {
            Route::Metrics => (
                dashboard::METRICS_TYPE,
                self.cache
                    .metrics
                    .get_or_insert_with(|| Arc::from(dashboard::metrics(&doc).into_bytes()))
                    .clone(),
            ),
            _ => (
                dashboard::STATUS_TYPE,
                self.cache
                    .status
                    .get_or_insert_with(|| Arc::from(doc.to_json().into_bytes()))
                    .clone(),
            ),
        };
        match dashboard::capped(body, MAX_BODY) {
            Ok(body) => {
                let head = dashboard::response_head("200 OK", ctype, body.len());
                self.send(i, head, (!head_only).then_some(body));
            }
            Err(r) => self.send(i, r, None),
        }
    }

    /// Start writing the answer to connection `i`.
    fn send(&mut self, i: usize, head: Vec<u8>, body: Option<Arc<[u8]>>) {
        let c = &mut self.conns[i];
        c.state = State::Writing {
            head,
            body,
            sent: 0,
        };
        // Most answers fit in the socket buffer: write at once rather than after a poll.
        self.on_conn(i, libc::POLLOUT);
    }
}

/// Who a connection is from, for the per-peer share: its IPv4 address (also when it
/// comes as an IPv4-mapped IPv6 one), or the /64 of an IPv6 one (a single host is
/// commonly given a whole /64).
fn peer_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mask = !0u128 << 64;
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

/// Which connection (an index into `conns`, oldest first) to close before one from
/// `peer` is added, if any: `peer`'s oldest when it holds [`PER_PEER`] already; when the
/// table is full, the oldest of the peer holding the most (counting the new one, and
/// `peer` first on a tie), so that a peer with few connections loses none to a peer
/// with many.
fn make_room(conns: &[Conn], peer: IpAddr) -> Option<usize> {
    victim(conns.iter().map(|c| c.peer), peer, MAX_CONNS, PER_PEER)
}

/// [`make_room`] over the peers of the connections, oldest first.
fn victim(
    peers: impl Iterator<Item = IpAddr> + Clone,
    new: IpAddr,
    max: usize,
    per_peer: usize,
) -> Option<usize> {
    let mut counts: HashMap<IpAddr, usize> = HashMap::new();
    let mut total = 0;
    for p in peers.clone() {
        *counts.entry(p).or_default() += 1;
        total += 1;
    }
    let mine = counts.entry(new).or_default();
    if *mine >= per_peer {
        return peers.into_iter().position(|p| p == new);
    }
    if total < max {
        return None;
    }
    *mine += 1;
    let mut best: Option<(usize, (usize, bool))> = None;
    for (i, p) in peers.enumerate() {
        let key = (counts.get(&p).copied().unwrap_or(0), p == new);
        if !best.is_some_and(|(_, k)| key <= k) {
            best = Some((i, key));
        }
    }
    best.map(|(i, _)| i)
}

/// Make the coming close a reset: what is still queued for a client dropped for being
/// too slow is thrown away, not kept by the kernel to be sent after the close.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on our own open socket with a linger struct of the right size.
    // (nix's `sockopt::Linger` needs its `socket` feature, which brings memoffset; std's
    // `set_linger` is unstable.)
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Milliseconds from `now` to `t` for `poll`, rounded up (0 when past).
fn ms_until(t: Instant, now: Instant) -> i32 {
    let d = t.saturating_duration_since(now);
    i32::try_from(d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_peer_with_many_connections_gives_way_before_one_with_few() {
        let (a, b, c) = (ip("10.0.0.1"), ip("10.0.0.2"), ip("10.0.0.3"));
        // Room left: nobody is closed.
        assert_eq!(victim([a, b].into_iter(), c, 4, 3), None);
        // `a` at its own cap: its oldest goes, however empty the table.
        assert_eq!(victim([b, a, a, a].into_iter(), a, 10, 3), Some(1));
        // Full: the oldest of the peer holding the most, never `b`'s or `c`'s one.
        assert_eq!(
            victim([b, a, c, a].into_iter(), ip("10.0.0.4"), 4, 3),
            Some(1)
        );
        assert_eq!(victim([b, a, c, a, a].into_iter(), c, 5, 4), Some(1));
        // A tie with the newcomer's peer (`c` would hold 2, as `a`): `c`'s own oldest.
        assert_eq!(victim([b, a, c, a].into_iter(), c, 4, 3), Some(2));
        assert_eq!(victim([b, b, a, a].into_iter(), a, 4, 3), Some(2));
        // All with one each, the newcomer new: the oldest.
        assert_eq!(victim([b, a, c].into_iter(), ip("10.0.0.4"), 3, 3), Some(0));
        // One peer opening connections in a loop against one held by another.
        let mut conns = vec![b];
        for _ in 0..1000 {
            if let Some(i) = victim(conns.iter().copied(), a, MAX_CONNS, PER_PEER) {
                assert_eq!(conns.remove(i), a, "{conns:?}");
            }
            conns.push(a);
        }
        assert_eq!(conns.iter().filter(|&&p| p == a).count(), PER_PEER);
        assert!(conns.contains(&b));
    }

    #[test]
    fn peers_are_ipv4_addresses_or_ipv6_slash_64s() {
        assert_eq!(peer_of(ip("10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(peer_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(peer_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            peer_of(ip("2001:db8:1:2:bbbb::7")),
            peer_of(ip("2001:db8:1:2:aaaa::1"))
        );
    }
}
