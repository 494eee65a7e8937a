//! Text as users read and write it: durations, sizes, signal names, wall-clock times.
//!
//! Owns every parser and formatter of those values shared by the config, the command line,
//! the job log, the status table and the notices, so that one value is written one way
//! everywhere. Pure: no clock, no I/O (the local time zone is the only outside fact, and
//! [`fmt_wall_in`] takes the zone as an argument). Must not: know about tasks, runs or
//! fields (the callers name them).
//!
//! Durations are formatted four ways on purpose, each for its reader:
//! [`fmt_dur`] rounds for people (`1.5s`, `2m 5s`); [`fmt_dur_exact`] keeps every unit
//! (humantime, `1s 500ms`) where a message quotes a bound or a value the user wrote;
//! [`fmt_dur_fixed_width`] pads (`3m05s`) for the progress line redrawn in place; and
//! [`fmt_dur_as_config`] writes what the config parser reads back (`30s`, `250ms`).

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

pub mod duration;
pub mod shell;

/// A duration as in the config: bare number = seconds, else `30s`, `5m`, `1h30m`, `250ms`;
/// at most 100 years. The message says how to write one (for the command line and the
/// environment; the config names the field and gives the help apart).
pub fn parse_duration(s: &str) -> Result<Duration, duration::HelpedError> {
    duration::parse_with_help(s)
}

/// A size in bytes: `1048576`, `"500KB"`, `"50MB"`, `"1GB"` (KB/MB/GB count 1024s, as
/// supervisord does; `KiB` etc. are accepted too).
pub fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let bad = || SizeError(s.to_owned());
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(bad()),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

/// A size that is not one, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeError(pub String);

impl std::fmt::Display for SizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not a size (e.g. 1048576, 500KB, 50MB, 1GB)",
            self.0
        )
    }
}

impl std::error::Error for SizeError {}

/// `2026-01-19 10:00:00` in local time (job log lines, notices, the status table).
pub fn fmt_wall(w: DateTime<Utc>) -> String {
    fmt_wall_in(w, &chrono::Local)
}

/// `2026-01-19 10:00:00` in the time zone `tz`.
pub fn fmt_wall_in<Tz: TimeZone>(w: DateTime<Utc>, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    w.with_timezone(tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Short human duration, rounded for reading: `250ms`, `30s`, `1.5s`, `2m 5s`.
pub fn fmt_dur(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        if ms == 0 && !d.is_zero() {
            return format!("{}us", d.as_micros());
        }
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    if secs < 60 {
        let tenths = (ms % 1000) / 100;
        return if tenths == 0 {
            format!("{secs}s")
        } else {
            format!("{secs}.{tenths}s")
        };
    }
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    match (h, m, s) {
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m {s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, 0) => format!("{h}h {m}m"),
        (h, m, s) => format!("{h}h {m}m {s}s"),
    }
}

/// `42s`, `3m05s`, `1h02m`: whole seconds, two units at most, the second zero-padded, so
/// a progress line redrawn in place does not jitter as the figures change.
pub fn fmt_dur_fixed_width(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// Every unit of a duration, nothing rounded (`1s 500ms`, `1h 30m`): for messages that
/// quote a bound or a value as the user gave it, where rounding would misstate it.
pub fn fmt_dur_exact(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// A duration as the config would write it, for a program that parses it back (the Python
/// runner): whole seconds as `30s`, anything else in milliseconds (`250ms`).
pub fn fmt_dur_as_config(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `12.3 MB`
pub fn fmt_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let b = b as f64;
    if b < K {
        format!("{b} B")
    } else if b < K * K {
        format!("{:.1} KB", b / K)
    } else if b < K * K * K {
        format!("{:.1} MB", b / K / K)
    } else {
        format!("{:.1} GB", b / K / K / K)
    }
}

/// Name of a signal number (`SIGTERM`), or `signal 42`.
pub fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_owned(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_people_are_rounded() {
        let ms = Duration::from_millis;
        assert_eq!(fmt_dur(Duration::from_micros(40)), "40us");
        assert_eq!(fmt_dur(Duration::ZERO), "0ms");
        assert_eq!(fmt_dur(ms(250)), "250ms");
        assert_eq!(fmt_dur(ms(1500)), "1.5s");
        assert_eq!(fmt_dur(ms(30_000)), "30s");
        assert_eq!(fmt_dur(ms(125_400)), "2m 5s");
        assert_eq!(fmt_dur(ms(120_000)), "2m");
        assert_eq!(fmt_dur(ms(3_600_000)), "1h");
        assert_eq!(fmt_dur(ms(5_400_000)), "1h 30m");
        assert_eq!(fmt_dur(ms(5_401_000)), "1h 30m 1s");
    }

    #[test]
    fn the_other_duration_forms_differ_on_purpose() {
        let d = Duration::from_millis(1500);
        assert_eq!(fmt_dur(d), "1.5s");
        assert_eq!(fmt_dur_exact(d), "1s 500ms");
        assert_eq!(fmt_dur_as_config(d), "1500ms");
        assert_eq!(fmt_dur_fixed_width(d), "1s");
        assert_eq!(fmt_dur_fixed_width(Duration::from_secs(185)), "3m05s");
        assert_eq!(fmt_dur_fixed_width(Duration::from_secs(3725)), "1h02m");
        assert_eq!(fmt_dur(Duration::from_secs(185)), "3m 5s");
        assert_eq!(fmt_dur_as_config(Duration::from_secs(30)), "30s");
        assert_eq!(fmt_dur_exact(Duration::from_secs(5400)), "1h 30m");
        // What the config writer writes, the parser reads back.
        for d in [d, Duration::from_secs(30), Duration::from_millis(1)] {
            assert_eq!(duration::parse(&fmt_dur_as_config(d)), Ok(d));
        }
    }

    #[test]
    fn sizes_parse_and_format() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size(" 500KB "), Ok(500 << 10));
        assert_eq!(parse_size("50mib"), Ok(50 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        for bad in ["", "MB", "1.5MB", "-1", "1TB", "99999999999999999999GB"] {
            let e = parse_size(bad).unwrap_err();
            assert_eq!(e, SizeError(bad.to_owned()));
            assert!(e.to_string().contains("is not a size"), "{bad:?}: {e}");
        }
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(1536), "1.5 KB");
        assert_eq!(fmt_bytes(12_900_000), "12.3 MB");
        assert_eq!(fmt_bytes(3 << 30), "3.0 GB");
    }

    #[test]
    fn wall_times_in_an_explicit_zone() {
        let w = Utc.with_ymd_and_hms(2026, 1, 19, 10, 0, 0).unwrap();
        assert_eq!(fmt_wall_in(w, &Utc), "2026-01-19 10:00:00");
        let plus2 = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(fmt_wall_in(w, &plus2), "2026-01-19 12:00:00");
        assert_eq!(fmt_wall(w), fmt_wall_in(w, &chrono::Local));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(15), "SIGTERM");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(99), "signal 99");
    }

    #[test]
    fn command_line_durations_carry_the_help() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        let e = parse_duration("1e30").unwrap_err().to_string();
        assert!(
            e.contains("maximum is 100 years") && e.contains("write seconds"),
            "{e}"
        );
    }
}
