//! Severity of bansuri's own log lines (`BANSURI_LOG_LEVEL`, `-v`, `-q`).

use std::fmt;
use std::str::FromStr;

/// Severity of a lifecycle line. Child output has no level: it is always written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Detail for debugging bansuri or a config.
    Debug,
    /// Normal lifecycle events.
    Info,
    /// Something went wrong with one task; the rest run on.
    Warning,
    /// Something needs the user's attention now.
    Error,
}

impl Level {
    /// Upper-case name as accepted by `BANSURI_LOG_LEVEL`.
    pub fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = UnknownLevel;
    fn from_str(s: &str) -> Result<Level, UnknownLevel> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Ok(Level::Debug),
            "INFO" => Ok(Level::Info),
            "WARNING" | "WARN" => Ok(Level::Warning),
            "ERROR" => Ok(Level::Error),
            other => Err(UnknownLevel {
                given: other.to_owned(),
            }),
        }
    }
}

/// A level name that is none of DEBUG, INFO, WARNING (WARN), ERROR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLevel {
    /// The name given, trimmed and in upper case.
    pub given: String,
}

impl fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown log level `{}` (expected DEBUG, INFO, WARNING or ERROR)",
            self.given
        )
    }
}

impl std::error::Error for UnknownLevel {}
