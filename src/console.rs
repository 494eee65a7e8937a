//! Writing to the terminal: `outln!`, `out!` and `errln!`, the `println!`, `print!` and
//! `eprintln!` of every command, which never panic on a closed stdout or stderr.
//!
//! A leaf so that the command line, the control shell, the runtime's start-up warnings and
//! `step-exec` share it without importing one another. Must not: format values (text
//! does) or write the job log (output does).

/// `println!` that never panics: a closed stdout (`bansuri validate | head -1`) drops the
/// text and the command goes on to exit as if the pipe were open.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::emit(false, true, format_args!($($arg)*))
    };
}
/// `print!` that never panics (see [`outln!`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::console::emit(false, false, format_args!($($arg)*))
    };
}
/// `eprintln!` that never panics: a closed stderr is no reason for a backtrace.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::emit(true, true, format_args!($($arg)*))
    };
}
pub(crate) use {errln, out, outln};

/// Writes `args` (and a newline) to stderr or stdout, ignoring write errors: the reader
/// went away (EPIPE) or the terminal is gone, and there is nobody left to tell.
pub(crate) fn emit(stderr: bool, newline: bool, args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    fn put(mut w: impl Write, newline: bool, args: std::fmt::Arguments<'_>) {
        let _ = w.write_fmt(args);
        if newline {
            let _ = w.write_all(b"\n");
        }
        let _ = w.flush();
    }
    if stderr {
        put(std::io::stderr().lock(), newline, args);
    } else {
        put(std::io::stdout().lock(), newline, args);
    }
}
