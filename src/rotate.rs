//! Size-based rotation of the files bansuri writes itself (the job log, task output files).
//!
//! `path` is the live file; when a write would take it past `max_bytes`, and the file ends
//! at a line boundary, it becomes `path.1` (older backups shift to `.2` .. `.N`, the
//! oldest is deleted) and a new `path` is started. Writers hand it whole lines (the job log
//! writes its buffer in whole lines), so a rotation never cuts a line and loses nothing. A
//! file can pass `max_bytes` by at most one write (64 KiB for the job log).
//!
//! Owns only the file and its backups; knows nothing about lines beyond the last byte.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file that rotates by size. `max_bytes == 0`: never rotates.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    backups: u32,
    file: File,
    size: u64,
    /// The last byte written was a newline (or nothing was written): a safe place to cut.
    at_line_start: bool,
}

impl RotatingFile {
    /// Open `path` for appending (created if missing).
    pub fn open(path: &Path, max_bytes: u64, backups: u32) -> io::Result<RotatingFile> {
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            backups,
            file,
            size,
            at_line_start: true,
        })
    }

    /// `path.N`
    pub fn backup_path(path: &Path, n: u32) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.backups == 0 {
            // No backups: start the file over.
            self.file = open_log(&self.path, true)?;
        } else {
            let _ = std::fs::remove_file(Self::backup_path(&self.path, self.backups));
            for n in (1..self.backups).rev() {
                let from = Self::backup_path(&self.path, n);
                if from.exists() {
                    std::fs::rename(&from, Self::backup_path(&self.path, n + 1))?;
                }
            }
            std::fs::rename(&self.path, Self::backup_path(&self.path, 1))?;
            self.file = open_append(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Open `path` to append (created if missing): the job log and task output files.
///
/// Only a regular file is written: a FIFO or a device planted at the path (a dated name
/// is predictable) would block the loop in `open` or swallow the output, so the open does
/// not wait (`O_NONBLOCK`) and what it opened is checked on the descriptor.
///
/// As root, a symbolic link at `path` is followed only when the link and its target are
/// both root's: a link that another user planted (in a directory they can write, such as
/// /tmp) would make root append to, or create, a file of their choosing. The directories
/// above must be ones only root can change (the rule of the config file, see
/// `config::trust`), or a link planted on the way would do the same. Otherwise the open
/// fails with a message that says so.
pub fn open_append(path: &Path) -> io::Result<File> {
    open_log(path, false)
}

/// [`open_append`], or truncating (a file rotated without backups starts over).
fn open_log(path: &Path, truncate: bool) -> io::Result<File> {
    let file = open_path(path, truncate).map_err(|e| match e.raw_os_error() {
        // O_NONBLOCK on a FIFO with no reader.
        Some(libc::ENXIO) => io::Error::other(format!(
            "`{}` is a FIFO, not a file: bansuri writes only to regular files",
            path.display()
        )),
        _ => e,
    })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        // /dev/null is the one device a user may mean: output thrown away.
        if path != Path::new("/dev/null") {
            return Err(io::Error::other(format!(
                "`{}` is {what}: bansuri writes only to regular files",
                path.display()
            )));
        }
    }
    // Writes block as they always did (the file is a regular file: they do not wait).
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL).map_err(io::Error::from)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(flags)).map_err(io::Error::from)?;
    Ok(file)
}

/// The open itself, with the root checks of [`open_append`].
fn open_path(path: &Path, truncate: bool) -> io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let mut o = OpenOptions::new();
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.create(true).custom_flags(libc::O_NONBLOCK);
    if !nix::unistd::geteuid().is_root() {
        return o.open(path);
    }
    let abs = std::path::absolute(path)?;
    if let Some(Err(u)) = abs.parent().map(crate::config::trust::check) {
        return Err(io::Error::other(format!(
            "{} (for the output file `{}`); {}",
            u.why,
            path.display(),
            u.help
        )));
    }
    // A link gives ELOOP, or EACCES in a sticky directory (protected_regular).
    let e = match o
        .clone()
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EACCES)) => e,
        other => return other,
    };
    let link = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => m,
        _ => return Err(e),
    };
    let target = std::fs::metadata(path).ok();
    let who = crate::config::who;
    let problem = match &target {
        _ if link.uid() != 0 => format!("it is a symbolic link of {}", who(link.uid())),
        Some(t) if t.uid() != 0 => format!("it is a symbolic link to a file of {}", who(t.uid())),
        None => "it is a symbolic link to a file that does not exist".to_owned(),
        Some(_) => return o.open(path),
    };
    Err(io::Error::other(format!(
        "{problem}: bansuri runs as root and follows a link only when the link and its target are root's; remove the link, or name the real file"
    )))
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.max_bytes > 0
            && self.size > 0
            && self.at_line_start
            && self.size + buf.len() as u64 > self.max_bytes
        {
            self.rotate()?;
        }
        // One write, its count returned: a disk that fills up mid-buffer must show the
        // job log how much went out (it then starts the next record on a new line).
        let n = self.file.write(buf)?;
        self.size += n as u64;
        if n > 0 {
            self.at_line_start = buf[n - 1] == b'\n';
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_line_boundaries_keeping_n_backups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let mut f = RotatingFile::open(&path, 1000, 3).unwrap();
        let mut all = Vec::new();
        for i in 0..1000 {
            let line = format!("line {i:05} {}\n", "x".repeat(20));
            all.extend_from_slice(line.as_bytes());
            f.write_all(line.as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let mut files = vec![path.clone()];
        for n in 1..=3 {
            files.push(RotatingFile::backup_path(&path, n));
        }
        assert!(
            !RotatingFile::backup_path(&path, 4).exists(),
            "only 3 backups"
        );
        // Newest last: .3 .2 .1 live; each file holds whole lines, at most 1000 bytes, and
        // together they are the tail of what was written, in order.
        let mut kept = Vec::new();
        for p in files.iter().rev() {
            let data = std::fs::read(p).unwrap();
            assert!(
                data.len() <= 1000,
                "{} has {} bytes",
                p.display(),
                data.len()
            );
            assert!(data.is_empty() || data.ends_with(b"\n"));
            assert!(
                data.starts_with(b"line "),
                "{} starts mid-line",
                p.display()
            );
            kept.extend_from_slice(&data);
        }
        assert!(
            all.ends_with(&kept),
            "no line lost or cut inside what is kept"
        );
    }

    #[test]
    fn a_partial_line_is_never_cut_by_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.log");
        let mut f = RotatingFile::open(&path, 10, 1).unwrap();
        f.write_all(b"abcdefgh").unwrap();
        f.write_all(b"ij-no-newline-yet").unwrap();
        f.write_all(b"\n").unwrap();
        f.write_all(b"next\n").unwrap();
        assert_eq!(
            std::fs::read(RotatingFile::backup_path(&path, 1)).unwrap(),
            b"abcdefghij-no-newline-yet\n"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"next\n");
    }

    #[test]
    fn zero_max_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.log");
        let mut f = RotatingFile::open(&path, 0, 3).unwrap();
        for _ in 0..100 {
            f.write_all(&[b'y'; 99]).unwrap();
            f.write_all(b"\n").unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 10_000);
        assert!(!RotatingFile::backup_path(&path, 1).exists());
    }
}
