//! The `bansuri` binary: everything is in the library; see `bansuri::cli`.
//!
//! The process exit code is decided here, from the typed outcome of the command, by
//! `Exit::code` (the one table, in src/model.rs; README "Exit codes"):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | ok: a command did its work, a shutdown completed, or (batch) all tasks succeeded |
//! | 1 | runtime failure (the job log cannot be opened, no bansuri answers, ...) |
//! | 2 | usage or config error |
//! | 3 | a task failed finally (`--exit-when-done`, `--once`) |
//! | any | `step-exec` (inside an srun step): the code of the command it ran |

use bansuri::cli::{self, Exit};

fn main() {
    let exit: Exit = cli::execute(std::env::args_os(), bansuri::Registry::default());
    std::process::exit(exit.code());
}
