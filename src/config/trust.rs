//! May a bansuri running as root trust a file it reads (the config, an environment-file, a
//! Python task's module)? Whoever can change such a file can run commands as root.
//!
//! The rule is the one sudo and OpenSSH apply to their own files: walking the path from `/`,
//! every directory must be owned by root (or by bansuri's user) and not writable by its
//! group or others, unless it has the sticky bit (as `/tmp`): then only the owner of an
//! entry can replace it, so that entry must be root's. The file itself must be root's and
//! not writable by its group or others. Symbolic links are followed and their targets
//! checked the same way; a link in a sticky shared directory must be root's too. A
//! component that does not exist is not a risk (nobody but root can create it in a
//! trusted directory): the read that follows fails on its own.
//!
//! Must not: read the file, or decide anything for a bansuri that is not root (the caller
//! checks the effective uid).

use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Why a root bansuri must not trust a file: who could change it, and how to fix that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untrusted {
    /// Who can change what, in words.
    pub why: String,
    /// The command or move that fixes it.
    pub help: String,
}

/// Most symbolic links followed for one path (Linux's own limit).
const MAX_LINKS: u32 = 40;

/// Check `path` (absolute) and every directory above it.
pub fn check(path: &Path) -> Result<(), Untrusted> {
    let mut links = 0;
    resolve(path, path, &mut links).map(|_| ())
}

/// A uid whose files root may trust: root's, or bansuri's own.
fn trusted(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// `user NAME (uid N)`, or `uid N` when the user database does not know it.
pub(crate) fn who(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(u)) => format!("user {} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

/// Who the write bits of `mode` let in: "its group", "everyone", or both.
fn writers(mode: u32) -> &'static str {
    match mode & 0o022 {
        0o020 => "its group",
        0o002 => "everyone",
        _ => "its group and everyone",
    }
}

/// Walk `path` from `/` checking each component; returns the real path (no links).
/// `file` is the path the user gave, for messages.
fn resolve(path: &Path, file: &Path, links: &mut u32) -> Result<PathBuf, Untrusted> {
    let mut cur = PathBuf::from("/");
    let Ok(mut cur_meta) = std::fs::metadata(&cur) else {
        return Ok(path.to_path_buf());
    };
    check_dir(&cur, &cur_meta, file)?;
    let comps: Vec<Component> = path.components().collect();
    for (i, c) in comps.iter().enumerate() {
        let name = match c {
            Component::Normal(n) => n,
            Component::ParentDir => {
                // `cur` has no links in it: its parent is its lexical parent.
                cur.pop();
                if let Ok(m) = std::fs::metadata(&cur) {
                    cur_meta = m;
                }
                continue;
            }
            _ => continue,
        };
        let next = cur.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&next) else {
            // Missing: nothing to distrust; the read that follows fails by itself.
            let mut rest = next;
            rest.extend(&comps[i + 1..]);
            return Ok(rest);
        };
        if meta.file_type().is_symlink() {
            let shared = cur_meta.mode() & 0o022 != 0;
            if shared && !trusted(meta.uid()) {
                let on_the_way = if next == file {
                    String::new()
                } else {
                    format!(" (on the way to `{}`)", file.display())
                };
                return Err(Untrusted {
                    why: format!(
                        "`{}`{on_the_way} is a symbolic link of {} in the shared directory `{}`: they could point it at a file of theirs; bansuri runs as root and refuses it",
                        next.display(),
                        who(meta.uid()),
                        cur.display()
                    ),
                    help: format!(
                        "give bansuri the real path, or make the link root's (`chown -h root {}`)",
                        next.display()
                    ),
                });
            }
            *links += 1;
            if *links > MAX_LINKS {
                return Err(Untrusted {
                    why: format!("`{}`: too many levels of symbolic links", file.display()),
                    help: "give bansuri the real path".to_owned(),
                });
            }
            let target = std::fs::read_link(&next).map_err(|e| Untrusted {
                why: format!("cannot read the symbolic link `{}`: {e}", next.display()),
                help: "give bansuri the real path".to_owned(),
            })?;
            cur = resolve(&cur.join(target), file, links)?;
        } else if meta.is_dir() {
            check_dir(&next, &meta, file)?;
            cur = next;
        } else {
            check_file(&next, &meta, file)?;
            cur = next;
        }
        match std::fs::metadata(&cur) {
            Ok(m) => cur_meta = m,
            Err(_) => {
                let mut rest = cur;
                rest.extend(&comps[i + 1..]);
                return Ok(rest);
            }
        }
    }
    Ok(cur)
}

/// A directory on the way: root's (or bansuri's), and not writable by others unless
/// sticky.
fn check_dir(dir: &Path, meta: &std::fs::Metadata, file: &Path) -> Result<(), Untrusted> {
    let on_the_way = if dir == file {
        String::new()
    } else {
        format!(" (on the way to `{}`)", file.display())
    };
    if !trusted(meta.uid()) {
        return Err(Untrusted {
            why: format!(
                "directory `{}`{on_the_way} is owned by {}, who could replace what is in it; bansuri runs as root and refuses it, since anyone who can change the file could run commands as root",
                dir.display(),
                who(meta.uid())
            ),
            help: format!(
                "run `chown root {}`, or keep the file in a directory that only root can change",
                dir.display()
            ),
        });
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(Untrusted {
            why: format!(
                "directory `{}`{on_the_way} is writable by {} (mode {:03o}, not sticky), who could replace what is in it; bansuri runs as root and refuses it, since anyone who can change the file could run commands as root",
                dir.display(),
                writers(mode),
                mode & 0o777
            ),
            help: format!(
                "run `chmod go-w {}`, or keep the file in a directory that only root can change",
                dir.display()
            ),
        });
    }
    Ok(())
}

/// The file itself (or another non-directory on the way): root's (or bansuri's), and not
/// writable by others.
fn check_file(path: &Path, meta: &std::fs::Metadata, file: &Path) -> Result<(), Untrusted> {
    let name = if path == file {
        format!("`{}`", path.display())
    } else {
        format!("`{}` (the target of `{}`)", path.display(), file.display())
    };
    if !trusted(meta.uid()) {
        return Err(Untrusted {
            why: format!(
                "{name} is owned by {}, who could change it; bansuri runs as root and refuses it, since anyone who can edit it could run commands as root",
                who(meta.uid())
            ),
            help: format!(
                "run `chown root {}` (and keep it `chmod go-w`), or run bansuri as that user",
                path.display()
            ),
        });
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(Untrusted {
            why: format!(
                "{name} is writable by {} (mode {mode:03o}); bansuri runs as root and refuses it, since anyone who can edit it could run commands as root",
                writers(mode)
            ),
            help: format!(
                "run `chmod go-w {}` (and keep it owned by root)",
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{lchown, symlink, PermissionsExt};

    /// A root-owned link to a file in another user's directory is judged by its target;
    /// `..` walks back up the real path.
    #[test]
    fn links_are_judged_by_their_targets_and_dot_dot_is_followed() {
        if !nix::unistd::geteuid().is_root() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI runs as root"
            );
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good");
        let bad = dir.path().join("bad");
        for d in [&good, &bad] {
            std::fs::create_dir(d).expect("mkdir");
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        std::fs::create_dir(good.join("sub")).expect("mkdir");
        std::fs::write(good.join("c.json"), "{}").expect("write");
        std::fs::write(bad.join("c.json"), "{}").expect("write");
        lchown(&bad, Some(65534), None).expect("chown");
        assert_eq!(check(&good.join("sub/../c.json")), Ok(()));
        symlink("../bad/c.json", good.join("l.json")).expect("symlink");
        let e = check(&good.join("l.json")).expect_err("the target's directory is nobody's");
        assert!(
            e.why.contains(&format!("directory `{}`", bad.display()))
                && e.why.contains("(uid 65534)"),
            "{e:?}"
        );
        assert_eq!(
            check(&good.join("missing.json")),
            Ok(()),
            "nothing to distrust"
        );
    }
}
