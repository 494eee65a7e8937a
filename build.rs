//! Records the commit bansuri is built from, for `bansuri --version` and the job log header.
//!
//! Sets `BANSURI_COMMIT` for the compiler, from the first of:
//! 1. `$BANSURI_BUILD_COMMIT` (a packager building from an exported tree says which commit);
//! 2. `git` in this crate's own checkout (`abc123def456`, `-dirty` with uncommitted changes
//!    to tracked files, then the commit date);
//! 3. `.cargo_vcs_info.json`, which `cargo package` writes into a crate archive;
//! 4. `unknown` (a tarball without any of these).
//!
//! A git checkout is used only when its top level is this crate's directory, so a tarball
//! unpacked inside some other repository does not report that repository's commit.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=BANSURI_BUILD_COMMIT");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| ".".into()));
    let commit = std::env::var("BANSURI_BUILD_COMMIT")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| from_git(&dir))
        .or_else(|| from_vcs_info(&dir))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=BANSURI_COMMIT={commit}");
}

/// Output of `git ARGS` run in `dir`, trimmed; `None` if git is missing or fails.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn from_git(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same(Path::new(&top), dir) {
        return None;
    }
    let hash = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    // Rebuild when HEAD moves (commit, checkout) or the index changes (staging, commit).
    // Watching these replaces cargo's default of watching the package's files, so the
    // sources are named too.
    for p in ["--git-dir", "--git-common-dir"] {
        if let Some(d) = git(dir, &["rev-parse", p]) {
            let d = dir.join(d);
            for f in ["HEAD", "index", "packed-refs"] {
                if d.join(f).exists() {
                    println!("cargo:rerun-if-changed={}", d.join(f).display());
                }
            }
        }
    }
    if let Some(r) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(d) = git(dir, &["rev-parse", "--git-common-dir"]) {
            let f = dir.join(d).join(&r);
            if f.exists() {
                println!("cargo:rerun-if-changed={}", f.display());
            }
        }
    }
    for p in ["src", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={p}");
    }
    // `--no-optional-locks`: a plain `git status` may rewrite the index, which is watched.
    let dirty = git(
        dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_some_and(|s| !s.is_empty());
    let date = git(dir, &["log", "-1", "--format=%cs", "HEAD"]).unwrap_or_default();
    let mut s = hash;
    if dirty {
        s.push_str("-dirty");
    }
    if !date.is_empty() {
        s.push(' ');
        s.push_str(&date);
    }
    Some(s)
}

/// `{"git": {"sha1": "..."}}` in the file `cargo package` adds to a crate archive.
fn from_vcs_info(dir: &Path) -> Option<String> {
    let path = dir.join(".cargo_vcs_info.json");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(path).ok()?;
    let at = text.find("\"sha1\"")?;
    let rest = &text[at + 6..];
    let start = rest.find('"')? + 1;
    let len = rest[start..].find('"')?;
    let sha = &rest[start..start + len];
    if sha.len() < 12 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some(format!("{} (from the crate archive)", &sha[..12]))
}
