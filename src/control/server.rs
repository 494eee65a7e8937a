//! The server side's I/O pieces: the control socket (bound 0600, peers checked with
//! SO_PEERCRED), connection buffers for the event loop, and the request-file inbox.
//!
//! Everything here is non-blocking and owned by the runtime's one thread: the listener and
//! every connection are fds in its epoll set; the inbox is read with one `readdir` per
//! poll. What a request does is decided elsewhere (the runtime asks the core).
//!
//! Must not: block (no blocking reads or writes on a connection), or spawn threads.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use super::state::write_atomic;
use super::{valid_request_id, Paths, Request, Response};

/// Longest request accepted on a connection.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Unix socket paths longer than this (the kernel's limit is 107 bytes) are reached
/// through /proc/self/fd/N/NAME, N an open descriptor of the directory.
const MAX_SUN_PATH: usize = 100;

/// A path to `path` short enough for a socket address; the returned file (the directory)
/// must stay open while the path is used.
pub fn short_socket_path(path: &Path) -> io::Result<(PathBuf, Option<File>)> {
    if path.as_os_str().len() <= MAX_SUN_PATH {
        return Ok((path.to_path_buf(), None));
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default();
    let f = File::open(dir)?;
    let p = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())).join(name);
    Ok((p, Some(f)))
}

/// Bind the control socket at `path`, mode 0600, non-blocking. A socket file left by a
/// dead bansuri is replaced; one that answers belongs to a running bansuri (an error).
pub fn bind_socket(path: &Path) -> io::Result<UnixListener> {
    let (addr, _dir) = short_socket_path(path)?;
    if std::fs::symlink_metadata(path).is_ok() {
        if UnixStream::connect(&addr).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is listening on it",
            ));
        }
        std::fs::remove_file(path)?;
    }
    // The mask is the process's: the event loop's thread is the only one that creates
    // files, so nothing else is created with it meanwhile.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let bound = UnixListener::bind(&addr);
    nix::sys::stat::umask(old);
    let l = bound?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// The uid and pid of the process at the other end of a Unix socket.
pub fn peer_cred(fd: BorrowedFd<'_>) -> io::Result<(u32, i32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which we own. (nix's
    // `sockopt::PeerCredentials` needs its `socket` feature, which brings memoffset.)
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((cred.uid, cred.pid))
}

/// Our effective uid.
pub fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// May `uid` control a bansuri running as us? The same user, or root.
pub fn allowed(uid: u32) -> bool {
    uid == euid() || uid == 0
}

/// A stream the loop serves: a control connection or an HTTP one.
pub enum Stream {
    /// Control socket connection.
    Unix(UnixStream),
    /// Dashboard connection.
    Tcp(std::net::TcpStream),
}

impl Stream {
    /// Its fd, for epoll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Unix(s) => s.as_fd(),
            Stream::Tcp(s) => s.as_fd(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What a read left us with.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadState {
    /// Waiting for more bytes.
    More,
    /// The peer closed its end.
    Eof,
    /// Too much, or an error.
    Failed,
}

/// A connection: its stream and buffers.
pub struct Conn {
    /// The stream.
    pub stream: Stream,
    /// Bytes received.
    pub inbuf: Vec<u8>,
    /// Bytes to send.
    pub outbuf: Vec<u8>,
    /// Of `outbuf`, already sent.
    pub sent: usize,
    /// A request was read and is being answered (or was answered).
    pub answered: bool,
}

impl Conn {
    /// A new connection.
    pub fn new(stream: Stream) -> Conn {
        Conn {
            stream,
            inbuf: Vec::new(),
            outbuf: Vec::new(),
            sent: 0,
            answered: false,
        }
    }

    /// Read what is there (non-blocking).
    pub fn read_some(&mut self) -> ReadState {
        let mut buf = [0u8; 8192];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return ReadState::Eof,
                Ok(n) => {
                    self.inbuf.extend_from_slice(&buf[..n]);
                    if self.inbuf.len() > MAX_REQUEST {
                        return ReadState::Failed;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadState::More,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadState::Failed,
            }
        }
    }

    /// Send what is buffered (non-blocking). `Ok(true)`: all sent.
    pub fn write_some(&mut self) -> io::Result<bool> {
        while self.sent < self.outbuf.len() {
            match self.stream.write(&self.outbuf[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// The first line received, if complete.
    pub fn line(&self) -> Option<&[u8]> {
        let end = memchr::memchr(b'\n', &self.inbuf)?;
        Some(&self.inbuf[..end])
    }
}

/// One line of JSON for the socket.
pub fn response_line(r: &Response) -> Vec<u8> {
    let mut v = serde_json::to_vec(r).unwrap_or_default();
    v.push(b'\n');
    v
}

/// A request file found in the inbox.
#[derive(Debug)]
pub struct Incoming {
    /// Its id (file name without `.req`).
    pub id: String,
    /// The request, or why it cannot be read.
    pub request: Result<Request, RequestFileError>,
    /// Owner of the file. A file of a uid that may not control us is not read at all.
    pub uid: u32,
}

/// A `.req` name in the inbox that was removed unread: not a regular file (a symlink, a
/// FIFO, a device: reading one could follow it elsewhere or block the loop).
#[derive(Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The file's name in the inbox.
    pub name: String,
    /// Why, for the job log.
    pub why: String,
}

/// What one read of the inbox found.
#[derive(Debug, Default)]
pub struct Inbox {
    /// Request files to answer, oldest name first.
    pub requests: Vec<Incoming>,
    /// Files removed without an answer.
    pub skipped: Vec<Skipped>,
}

/// The file type in an `st_mode`, in words.
fn kind_of(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFIFO => "a FIFO",
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFDIR => "a directory",
        libc::S_IFSOCK => "a socket",
        libc::S_IFCHR | libc::S_IFBLK => "a device",
        _ => "not a regular file",
    }
}

/// Why a request file is not carried out (answered with this reason).
#[derive(Debug)]
pub enum RequestFileError {
    /// Its owner may not control this bansuri: not read at all (the runtime's answer
    /// names both uids).
    Foreign,
    /// Over [`MAX_REQUEST`]: its size in bytes.
    TooBig(u64),
    /// It could not be read.
    Read(std::io::Error),
    /// Not a valid request.
    Invalid(serde_json::Error),
}

impl std::fmt::Display for RequestFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestFileError::Foreign => {
                f.write_str("the request file's owner may not control this bansuri")
            }
            RequestFileError::TooBig(n) => write!(
                f,
                "the request file is {n} bytes, more than the {} KiB a request may have: not read",
                MAX_REQUEST / 1024
            ),
            RequestFileError::Read(e) => write!(f, "cannot read the request file: {e}"),
            RequestFileError::Invalid(e) => {
                write!(f, "the request file is not a valid request ({e})")
            }
        }
    }
}

impl std::error::Error for RequestFileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RequestFileError::Read(e) => Some(e),
            RequestFileError::Invalid(e) => Some(e),
            _ => None,
        }
    }
}

/// What reading one request file gave.
#[derive(Debug)]
enum FileRead {
    /// Its text (the owner may control us).
    Text(String),
    /// Not carried out, for this reason (answered).
    Refused(RequestFileError),
    /// Removed unanswered, for this reason (a symlink, a FIFO, gone meanwhile).
    Skip(String),
}

/// Open a request file without following a symlink and without blocking (a FIFO opens at
/// once instead of waiting for a writer), then check on the open fd (no race with a swap
/// of the name) that it is a regular file, whose owner may control us, of at most
/// [`MAX_REQUEST`] bytes, and read it. Also returns the owner (`u32::MAX`: unknown).
fn read_request_file(path: &Path) -> (u32, FileRead) {
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let f = match opened {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return (u32::MAX, FileRead::Skip("a symbolic link".into()))
        }
        // Gone meanwhile (its client gave up and removed it): nothing to say.
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return (u32::MAX, FileRead::Skip(String::new()))
        }
        Err(e) => return (u32::MAX, FileRead::Skip(format!("cannot open it: {e}"))),
    };
    let meta = match f.metadata() {
        Ok(m) => m,
        Err(e) => return (u32::MAX, FileRead::Skip(format!("cannot stat it: {e}"))),
    };
    let uid = meta.uid();
    if !meta.file_type().is_file() {
        return (uid, FileRead::Skip(kind_of(meta.mode()).into()));
    }
    if !allowed(uid) {
        // Not read: the refusal is decided by the owner alone.
        return (uid, FileRead::Refused(RequestFileError::Foreign));
    }
    let limit = MAX_REQUEST as u64;
    let too_big = |n: u64| FileRead::Refused(RequestFileError::TooBig(n));
    if meta.len() > limit {
        return (uid, too_big(meta.len()));
    }
    // Bounded even if the file grows after the fstat; a regular file's read does not wait.
    let mut text = String::new();
    let read = f.take(limit + 1).read_to_string(&mut text);
    (
        uid,
        match read {
            Ok(n) if n as u64 > limit => too_big(n as u64),
            Ok(_) => FileRead::Text(text),
            Err(e) => FileRead::Refused(RequestFileError::Read(e)),
        },
    )
}

/// Read and remove the request files in the inbox (`*.req`), oldest name first. Never
/// blocks on a file and reads at most [`MAX_REQUEST`] bytes of each.
pub fn take_requests(paths: &Paths) -> Inbox {
    let mut out = Inbox::default();
    let Ok(rd) = std::fs::read_dir(&paths.requests) else {
        return out;
    };
    let mut names: Vec<String> = rd
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(".req") && !n.starts_with('.'))
        .collect();
    names.sort();
    for name in names {
        let id = name.trim_end_matches(".req").to_owned();
        let path = paths.requests.join(&name);
        let (uid, read) = read_request_file(&path);
        let _ = std::fs::remove_file(&path);
        let request = match read {
            FileRead::Skip(why) => {
                if !why.is_empty() {
                    out.skipped.push(Skipped { name, why });
                }
                continue;
            }
            _ if !valid_request_id(&id) => continue,
            FileRead::Text(t) => {
                serde_json::from_str::<Request>(&t).map_err(RequestFileError::Invalid)
            }
            FileRead::Refused(why) => Err(why),
        };
        out.requests.push(Incoming { id, request, uid });
    }
    out
}

/// Write the answer to request `id` (`requests/ID.resp`, atomically).
pub fn answer_file(paths: &Paths, id: &str, r: &Response) -> io::Result<()> {
    if !valid_request_id(id) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad request id",
        ));
    }
    let bytes = serde_json::to_vec_pretty(r).unwrap_or_default();
    write_atomic(&paths.requests.join(format!("{id}.resp")), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{new_request_id, Cmd};

    #[test]
    fn inbox_round_trip_and_bad_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::new(dir.path());
        std::fs::create_dir_all(&paths.requests).expect("mkdir");
        let id = new_request_id();
        assert!(valid_request_id(&id), "{id}");
        let req = Request {
            id: id.clone(),
            cmd: Cmd::Stop,
            tasks: vec!["a".into()],
            sent_at: chrono::Utc::now(),
            from: "h:1".into(),
        };
        std::fs::write(
            paths.requests.join(format!("{id}.req")),
            serde_json::to_vec(&req).expect("json"),
        )
        .expect("write");
        std::fs::write(paths.requests.join("junk.req"), b"{not json").expect("write");
        std::fs::write(paths.requests.join(".partial.tmp"), b"x").expect("write");
        let got = take_requests(&paths).requests;
        assert_eq!(got.len(), 2, "{got:?}");
        let ours = got.iter().find(|i| i.id == id).expect("ours");
        assert_eq!(ours.request.as_ref().expect("parses"), &req);
        assert_eq!(ours.uid, euid());
        let junk = got.iter().find(|i| i.id == "junk").expect("junk");
        assert!(junk
            .request
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("not a valid request"));
        assert!(
            take_requests(&paths).requests.is_empty(),
            "taken means removed"
        );
        assert!(
            paths.requests.join(".partial.tmp").exists(),
            "temporary files are left alone"
        );
        let resp = Response {
            id: id.clone(),
            ok: true,
            message: "done".into(),
            state: None,
        };
        answer_file(&paths, &id, &resp).expect("answer");
        let back: Response = serde_json::from_slice(
            &std::fs::read(paths.requests.join(format!("{id}.resp"))).expect("read"),
        )
        .expect("json");
        assert_eq!(back, resp);
        assert!(answer_file(&paths, "../x", &resp).is_err());
    }

    /// Symlinks, FIFOs and oversized files are not read (nor followed, nor waited on);
    /// each is removed, and the oversized one is answered.
    #[test]
    fn inbox_refuses_symlinks_fifos_and_big_files_without_reading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = Paths::new(dir.path());
        std::fs::create_dir_all(&paths.requests).expect("mkdir");
        let target = dir.path().join("secret");
        std::fs::write(&target, b"{}").expect("write");
        std::os::unix::fs::symlink(&target, paths.requests.join("link.req")).expect("symlink");
        let fifo = paths.requests.join("fifo.req");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let big = std::fs::File::create(paths.requests.join("big.req")).expect("create");
        big.set_len(1 << 40).expect("a sparse 1 TiB file");
        drop(big);
        let t0 = std::time::Instant::now();
        let got = take_requests(&paths);
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(5),
            "no waiting"
        );
        let skipped: Vec<(&str, &str)> = got
            .skipped
            .iter()
            .map(|s| (s.name.as_str(), s.why.as_str()))
            .collect();
        assert_eq!(
            skipped,
            [("fifo.req", "a FIFO"), ("link.req", "a symbolic link")]
        );
        assert_eq!(got.requests.len(), 1, "{got:?}");
        let e = got.requests[0].request.as_ref().expect_err("too big");
        assert!(
            matches!(e, RequestFileError::TooBig(1_099_511_627_776)),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("1099511627776 bytes, more than the 64 KiB"),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(&paths.requests).expect("ls").count(), 0);
        assert!(target.exists(), "the link's target is left alone");
    }

    #[test]
    fn socket_is_private_and_long_paths_work() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let deep = dir.path().join("a".repeat(60)).join("b".repeat(60));
        std::fs::create_dir_all(&deep).expect("mkdir");
        let path = deep.join("control.sock");
        assert!(path.as_os_str().len() > 107);
        let l = bind_socket(&path).expect("binds through /proc/self/fd");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (addr, _keep) = short_socket_path(&path).expect("short");
        let c = UnixStream::connect(&addr).expect("connects");
        let (s, _) = loop {
            match l.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        };
        let (uid, pid) = peer_cred(s.as_fd()).expect("peer cred");
        assert_eq!(uid, euid());
        assert_eq!(pid as u32, std::process::id());
        drop(c);
        // A second bind while the first listens is refused; after it is gone, it works.
        let e = bind_socket(&path).expect_err("in use");
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(l);
        bind_socket(&path).expect("stale socket file replaced");
    }
}
