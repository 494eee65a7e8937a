//! Durations as users write them, in the config file, on the command line
//! (`--watchdog`, `--check-interval`) and in `BANSURI_CONTROL_TIMEOUT`: one parser and
//! one set of bounds for all of them.
//!
//! A bare number (or numeric string) is seconds, anything else is humantime syntax
//! (`30s`, `5m`, `1h30m`, `250ms`). No duration may exceed [`MAX`]: a deadline that far
//! away means "never" in practice and anything longer only risks overflow in clock
//! arithmetic. Must not: know about fields or tasks (the callers name them).

use std::time::Duration;

/// The longest duration accepted anywhere: 100 years (36,500 days).
pub const MAX: Duration = Duration::from_secs(36_500 * 86_400);

/// How [`MAX`] is written in messages.
pub const MAX_SHOWN: &str = "100 years (36500 days)";

/// The shortest `timer` period, 1 ms: the scheduler's resolution. A shorter period cannot
/// be kept and only produces skipped runs (and their log lines).
pub const MIN_TIMER: Duration = Duration::from_millis(1);

/// The shortest `check_interval` (and `--check-interval`): re-reading the config more
/// often only burns CPU.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_millis(10);

/// The shortest `sample_interval` other than 0 (off): each sample walks `/proc`.
pub const MIN_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// How to write a duration (the help line of every duration error).
pub const HELP: &str =
    "write seconds (`30`, `1.5`, \"30\") or a duration such as \"30s\", \"5m\", \"1h30m\", \"250ms\"";

/// Why a duration was refused. `Display` is the detail only ([`HELP`] says how to write
/// one; [`HelpedError`] adds it).
#[derive(Debug, Clone, PartialEq)]
pub enum DurationError {
    /// Nothing written.
    Empty,
    /// A number of seconds that is not finite (`inf`, `NaN`, `1e400`), as written.
    NotFinite(String),
    /// A negative duration, as written.
    Negative(String),
    /// Over [`MAX`], as written.
    TooLong(String),
    /// Neither a number nor humantime syntax: as written, and humantime's reason.
    Unreadable(String, humantime::DurationError),
}

impl std::fmt::Display for DurationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DurationError::Empty => f.write_str("expected a duration, found an empty string"),
            DurationError::NotFinite(shown) => {
                write!(f, "`{shown}` is not a finite number of seconds")
            }
            DurationError::Negative(shown) => write!(f, "`{shown}`: a duration cannot be negative"),
            DurationError::TooLong(shown) => write!(
                f,
                "`{shown}` is too long a duration: the maximum is {MAX_SHOWN}"
            ),
            DurationError::Unreadable(shown, e) => write!(f, "`{shown}` is not a duration ({e})"),
        }
    }
}

impl std::error::Error for DurationError {}

/// A [`DurationError`] with [`HELP`] in the message (the command line, the environment).
#[derive(Debug, Clone, PartialEq)]
pub struct HelpedError(pub DurationError);

impl std::fmt::Display for HelpedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}; {HELP}", self.0)
    }
}

impl std::error::Error for HelpedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// A number of seconds (`shown` as the user wrote it), bounded by [`MAX`].
pub fn from_secs(secs: f64, shown: &str) -> Result<Duration, DurationError> {
    if !secs.is_finite() {
        return Err(DurationError::NotFinite(shown.to_owned()));
    }
    if secs < 0.0 {
        return Err(DurationError::Negative(shown.to_owned()));
    }
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if d <= MAX => Ok(d),
        _ => Err(DurationError::TooLong(shown.to_owned())),
    }
}

/// A duration written as text (a numeric string is seconds), bounded by [`MAX`].
pub fn parse(s: &str) -> Result<Duration, DurationError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Ok(secs) = t.parse::<f64>() {
        return from_secs(secs, t);
    }
    if t.starts_with('-') {
        return Err(DurationError::Negative(t.to_owned()));
    }
    match humantime::parse_duration(t) {
        Ok(d) if d <= MAX => Ok(d),
        Ok(_) => Err(DurationError::TooLong(t.to_owned())),
        Err(e) => Err(DurationError::Unreadable(t.to_owned(), e)),
    }
}

/// [`parse`] with the help in the message (for the command line and the environment).
pub fn parse_with_help(s: &str) -> Result<Duration, HelpedError> {
    parse(s).map_err(HelpedError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_humantime() {
        assert_eq!(parse("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse(" 1.5 "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn bounds_and_garbage_are_errors_not_panics() {
        for s in [
            "1e30", "1e13", "inf", "NaN", "-1", "-5s", "", "101years", "abc", "1e400",
        ] {
            assert!(parse(s).is_err(), "{s:?} was accepted");
        }
        let e = parse("1e30").unwrap_err();
        assert_eq!(e, DurationError::TooLong("1e30".to_owned()));
        assert!(e.to_string().contains("maximum is 100 years"), "{e}");
        assert_eq!(parse("-5s"), Err(DurationError::Negative("-5s".to_owned())));
        assert_eq!(parse(" "), Err(DurationError::Empty));
        assert_eq!(
            parse("inf").unwrap_err().to_string(),
            "`inf` is not a finite number of seconds"
        );
        assert!(matches!(parse("abc"), Err(DurationError::Unreadable(s, _)) if s == "abc"));
        assert!(parse("99999999999999999999999years").is_err());
        assert_eq!(parse("36500days"), Ok(MAX));
        assert_eq!(from_secs(MAX.as_secs_f64(), "x"), Ok(MAX));
        assert!(from_secs(MAX.as_secs_f64() + 1.0, "x").is_err());
    }
}
