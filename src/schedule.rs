//! When is the next run: cron expressions and fixed-rate timers.
//!
//! Owns the cron language (parsing, the dom/dow rule, daylight-saving behaviour) and the
//! timer arithmetic. It is pure: it never reads a clock, never sleeps and never touches
//! the process's time zone settings; every function takes the present as an argument.
//! It must not know about tasks, runs or overlap: the core decides what a due time means.
//!
//! # Cron
//!
//! Classic crontab syntax: 5 fields (`minute hour day-of-month month day-of-week`), or 6
//! with a leading seconds field, or one of the macros `@hourly`, `@daily`/`@midnight`,
//! `@weekly`, `@monthly`, `@yearly`/`@annually`. A field is a comma list of `*`, `N`,
//! `N-M`, each optionally followed by `/STEP` (`N/STEP` means `N-max/STEP`). Months and
//! weekdays accept English three-letter names (`JAN`, `mon`); day-of-week 0 and 7 are
//! both Sunday.
//!
//! Day-of-month and day-of-week follow Vixie cron: when both fields are restricted (neither
//! starts with `*`), a day matches if *either* matches (`0 0 13 * 5` runs on every 13th and
//! every Friday); when one of them starts with `*`, both must match, which for a plain `*`
//! means "only the other one counts".
//!
//! Expressions are evaluated in local time, or in UTC for `CronTz::Utc`. Daylight saving
//! (local time only):
//! - A wall time that does not exist (spring forward, e.g. 02:30 when clocks jump from
//!   02:00 to 03:00) runs at the first instant after the gap (03:00). All the times of one
//!   gap coalesce into that single run: `*/5 * * * *` runs once at 03:00, not twelve times.
//! - A wall time that happens twice (fall back, e.g. 02:30 when clocks go from 03:00 back
//!   to 02:00) runs once, at its first occurrence. Every wall time runs at most once, so a
//!   frequent schedule such as `*/15 * * * *` pauses during the repeated hour. Users who
//!   need a strict real-time rate use `timer`, or `timezone: "UTC"`.
//!
//! The evaluator is our own (a few hundred lines) rather than the `croner` crate: croner 2.x
//! resolves an ambiguous wall time to its first occurrence even when the search starts in
//! the second one, so "next after t" can return a time *before* t (a loop of runs during
//! the repeated hour); it treats `*/2` in day-of-month as restricted (not Vixie's rule); it
//! accepts Quartz extensions (`L`, `W`, `#`) that classic cron users do not expect; and its
//! errors do not name the field. The `cron` crate requires the seconds field. The search
//! here works on local wall times field by field (month, day, hour, minute, second), so a
//! next time is found in a handful of steps, and an expression that can never match
//! (`0 0 30 2 *`) is rejected when parsed.
//!
//! # Timers
//!
//! `timer_next` is fixed-rate: runs are due at `anchor + k * period`, computed from the
//! anchor each time (no accumulated drift); ticks missed while nothing ran coalesce into
//! the next future tick.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};

use crate::clock::{Mono, Now};

/// When a task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// Once at start-up (or when added).
    Once,
    /// At start-up, then at a fixed rate anchored at the first start.
    Timer(Duration),
    /// At each matching time of a cron expression.
    Cron(CronSchedule),
}

/// Time zone a cron expression is evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronTz {
    /// The process's local time zone (`TZ`, `/etc/localtime`).
    Local,
    /// UTC.
    Utc,
}

/// A compiled cron expression.
///
/// Two schedules are equal when their expression text and time zone are equal (that is
/// what hot reload compares).
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    tz: CronTz,
    fields: Fields,
}

impl PartialEq for CronSchedule {
    fn eq(&self, o: &Self) -> bool {
        self.expr == o.expr && self.tz == o.tz
    }
}

/// The matching sets, one bit per allowed value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fields {
    sec: u64,
    min: u64,
    hour: u32,
    /// Bits 1..=31.
    dom: u32,
    /// Bits 1..=12.
    month: u32,
    /// Bits 0..=6, Sunday = 0.
    dow: u32,
    /// The day-of-month field text starts with `*` (Vixie's DOM_STAR).
    dom_star: bool,
    /// The day-of-week field text starts with `*` (Vixie's DOW_STAR).
    dow_star: bool,
}

/// How far ahead a search looks before concluding "never". The Gregorian calendar repeats
/// every 400 years, so an expression with no match in 401 years has none at all.
const SEARCH_YEARS: i32 = 401;

impl CronSchedule {
    /// Parses a cron expression. Errors are meant for users: they say which field is wrong
    /// and why.
    pub fn parse(expr: &str, tz: CronTz) -> Result<CronSchedule, CronError> {
        let text = expr.trim();
        let fields = compile(text)?;
        Ok(CronSchedule {
            expr: text.to_string(),
            tz,
            fields,
        })
    }

    /// The first matching instant strictly after `t`. `None` only if the expression can
    /// never match again (it can only happen at the end of chrono's calendar).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.tz {
            CronTz::Utc => self.next_after_in(t, &Utc),
            CronTz::Local => self.next_after_in(t, &chrono::Local),
        }
    }

    /// The expression as written (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone it is evaluated in.
    pub fn tz(&self) -> CronTz {
        self.tz
    }

    /// `cron `*/5 * * * *` (local time)`.
    pub fn describe(&self) -> String {
        let zone = match self.tz {
            CronTz::Local => "local time",
            CronTz::Utc => "UTC",
        };
        format!("cron `{}` ({zone})", self.expr)
    }

    /// `next_after` in an arbitrary time zone (tests use a hand-made zone with DST).
    fn next_after_in<Tz: TimeZone>(&self, t: DateTime<Utc>, tz: &Tz) -> Option<DateTime<Utc>> {
        let start = t.with_timezone(tz).naive_local();
        let limit = start.year().saturating_add(SEARCH_YEARS);
        let mut cursor = start;
        loop {
            let candidate = self.fields.next_naive(cursor, limit)?;
            // The resolved instant is monotone in the wall time and resolve(start) <= t,
            // so the first candidate that lands after t is the answer. Candidates landing
            // at or before t only occur in a repeated (fall-back) hour when t is in its
            // second pass: those wall times already ran, skip them.
            if let Some(at) = resolve(tz, candidate) {
                if at > t {
                    return Some(at);
                }
            }
            cursor = candidate;
        }
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The instant a matching wall time runs at: the only one, the first of two (fall back),
/// or the end of the gap (spring forward). `None` if no valid wall time follows within
/// two days (no real zone does that).
fn resolve<Tz: TimeZone>(tz: &Tz, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::LocalResult;
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.with_timezone(&Utc).min(b.with_timezone(&Utc))),
        LocalResult::None => {
            // In a gap. Find the first valid wall time after it: minute steps, then back
            // second by second (historical offsets are not always whole minutes).
            let base = wall.with_second(0)?;
            let minute = chrono::Duration::minutes(1);
            let mut after = None;
            for k in 1..=2 * 24 * 60 {
                let w = base.checked_add_signed(minute * k)?;
                if !matches!(tz.from_local_datetime(&w), LocalResult::None) {
                    after = Some(w);
                    break;
                }
            }
            let mut first = after?;
            for _ in 0..60 {
                let earlier = first - chrono::Duration::seconds(1);
                if earlier <= wall || matches!(tz.from_local_datetime(&earlier), LocalResult::None)
                {
                    break;
                }
                first = earlier;
            }
            match tz.from_local_datetime(&first) {
                LocalResult::Single(d) => Some(d.with_timezone(&Utc)),
                LocalResult::Ambiguous(a, b) => {
                    Some(a.with_timezone(&Utc).min(b.with_timezone(&Utc)))
                }
                LocalResult::None => None,
            }
        }
    }
}

impl Fields {
    /// Does this wall time match?
    #[cfg(test)]
    fn matches(&self, t: NaiveDateTime) -> bool {
        self.month & (1 << t.month()) != 0
            && self.day_matches(t.date())
            && self.hour & (1 << t.hour()) != 0
            && self.min & (1 << t.minute()) != 0
            && self.sec & (1 << t.second()) != 0
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let dom = self.dom & (1 << d.day()) != 0;
        let dow = self.dow & (1 << d.weekday().num_days_from_sunday()) != 0;
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first matching wall time strictly after `after` (whole seconds), searching no
    /// further than the end of `limit_year`.
    fn next_naive(&self, after: NaiveDateTime, limit_year: i32) -> Option<NaiveDateTime> {
        let after = after.with_nanosecond(0)?;
        let first = after.checked_add_signed(chrono::Duration::seconds(1))?;
        let mut date = first.date();
        let mut from = first.time().num_seconds_from_midnight();
        loop {
            if date.year() > limit_year {
                return None;
            }
            if self.month & (1 << date.month()) == 0 {
                date = first_of_next_month(date)?;
                from = 0;
                continue;
            }
            if self.day_matches(date) {
                if let Some(time) = self.next_time_in_day(from) {
                    return Some(date.and_time(time));
                }
            }
            date = date.succ_opt()?;
            from = 0;
        }
    }

    /// The first matching time of day at or after `from` seconds past midnight.
    fn next_time_in_day(&self, from: u32) -> Option<NaiveTime> {
        let (h0, m0, s0) = (from / 3600, from / 60 % 60, from % 60);
        let mut h = next_bit(u64::from(self.hour), h0, 23)?;
        loop {
            let m_from = if h == h0 { m0 } else { 0 };
            let mut m = next_bit(self.min, m_from, 59);
            while let Some(min) = m {
                let s_from = if h == h0 && min == m0 { s0 } else { 0 };
                if let Some(s) = next_bit(self.sec, s_from, 59) {
                    return NaiveTime::from_hms_opt(h, min, s);
                }
                m = next_bit(self.min, min + 1, 59);
            }
            h = next_bit(u64::from(self.hour), h + 1, 23)?;
        }
    }
}

/// The lowest set bit of `mask` in `from..=max`.
fn next_bit(mask: u64, from: u32, max: u32) -> Option<u32> {
    if from > max {
        return None;
    }
    let rest = mask >> from;
    if rest == 0 {
        return None;
    }
    let bit = from + rest.trailing_zeros();
    (bit <= max).then_some(bit)
}

fn first_of_next_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.month() == 12 {
        NaiveDate::from_ymd_opt(d.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    }
}

/// One field's name, range and value names.
struct FieldDef {
    name: &'static str,
    lo: u32,
    hi: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DOW_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const SECOND: FieldDef = FieldDef {
    name: "second",
    lo: 0,
    hi: 59,
    names: &[],
};
const MINUTE: FieldDef = FieldDef {
    name: "minute",
    lo: 0,
    hi: 59,
    names: &[],
};
const HOUR: FieldDef = FieldDef {
    name: "hour",
    lo: 0,
    hi: 23,
    names: &[],
};
const DOM: FieldDef = FieldDef {
    name: "day-of-month",
    lo: 1,
    hi: 31,
    names: &[],
};
const MONTH: FieldDef = FieldDef {
    name: "month",
    lo: 1,
    hi: 12,
    names: MONTH_NAMES,
};
/// 7 is accepted as Sunday and folded onto bit 0 after parsing.
const DOW: FieldDef = FieldDef {
    name: "day-of-week",
    lo: 0,
    hi: 7,
    names: DOW_NAMES,
};

const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

/// `@ 2 * * *` (the Bansuri manual's print of `0 2 * * *`, a `0` turned into `@`): the
/// expression meant, for the error's suggestion.
fn meant_for_zero_printed_as_at(text: &str) -> Option<String> {
    let rest = text.strip_prefix('@')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (rest.starts_with(char::is_whitespace) && fields.len() == 4)
        .then(|| format!("0 {}", fields.join(" ")))
}

/// Why a cron expression was refused: the field (by name), what was written, and why.
/// `Display` is the message users see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    /// Nothing written.
    Empty,
    /// `@reboot`: a task with no schedule already runs once at start-up.
    Reboot,
    /// `@ 2 * * *`: a `0` printed as `@` (the manual's typo); the expression meant.
    AtForZero {
        /// As written.
        text: String,
        /// The expression meant.
        meant: String,
    },
    /// `@something` that is no macro.
    UnknownMacro(String),
    /// Not 5 or 6 fields: how many.
    FieldCount(usize),
    /// `1,,2`: the field, its text.
    EmptyItem {
        /// The field's name (`minute`, `day-of-week`, ...).
        field: &'static str,
        /// The field as written.
        text: String,
    },
    /// `*/x`: the field, the item, the step, and `r/n` when `*/*n` meant it.
    StepNotNumber {
        /// The field's name.
        field: &'static str,
        /// The list item.
        item: String,
        /// The step as written.
        step: String,
        /// The item meant (`*/5` for `*/*5`).
        meant: Option<String>,
    },
    /// `*/0`.
    ZeroStep {
        /// The field's name.
        field: &'static str,
        /// The list item.
        item: String,
    },
    /// `5-2`.
    Backwards {
        /// The field's name.
        field: &'static str,
        /// The list item.
        item: String,
        /// The range.
        range: String,
        /// Its ends.
        lo: u32,
        /// Its ends.
        hi: u32,
    },
    /// `-5`, `1-`.
    MissingNumber {
        /// The field's name.
        field: &'static str,
    },
    /// A number outside the field's range.
    OutOfRange {
        /// The field's name.
        field: &'static str,
        /// As written.
        text: String,
        /// The range.
        lo: u32,
        /// The range.
        hi: u32,
    },
    /// Neither a number nor (for months and weekdays) a name.
    NotANumber {
        /// The field's name.
        field: &'static str,
        /// As written.
        text: String,
        /// The first and last names of the field, when it has names.
        names: Option<(&'static str, &'static str)>,
    },
    /// `0 0 30 2 *`: no day matches, ever.
    NeverMatches(String),
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CronError::Empty => f.write_str("empty cron expression"),
            CronError::Reboot => f.write_str(
                "`@reboot` is not supported: a task with no schedule already \
                 runs once at start-up",
            ),
            CronError::AtForZero { text, meant } => write!(
                f,
                "`{text}` is not a cron expression: `@` is not a minute; \
                 did you mean `{meant}`?"
            ),
            CronError::UnknownMacro(text) => write!(
                f,
                "unknown cron macro `{text}` (expected @hourly, @daily, @midnight, \
                 @weekly, @monthly, @yearly or @annually)"
            ),
            CronError::FieldCount(n) => write!(
                f,
                "expected 5 or 6 fields, found {n} (minute hour day-of-month month \
                 day-of-week, optionally preceded by seconds)"
            ),
            CronError::EmptyItem { field, text } => {
                write!(f, "{field} field `{text}` has an empty list item")
            }
            CronError::StepNotNumber {
                field,
                item,
                step,
                meant,
            } => {
                write!(f, "{field} field `{item}`: step `{step}` is not a number")?;
                match meant {
                    Some(m) => write!(f, "; did you mean `{m}`?"),
                    None => Ok(()),
                }
            }
            CronError::ZeroStep { field, item } => {
                write!(f, "{field} field `{item}`: step must be at least 1")
            }
            CronError::Backwards {
                field,
                item,
                range,
                lo,
                hi,
            } => write!(
                f,
                "{field} field `{item}`: range `{range}` goes backwards ({lo} > {hi})"
            ),
            CronError::MissingNumber { field } => {
                write!(f, "{field} field: missing number in a range")
            }
            CronError::OutOfRange {
                field,
                text,
                lo,
                hi,
            } => {
                write!(f, "{field} field `{text}` out of range {lo}-{hi}")
            }
            CronError::NotANumber {
                field,
                text,
                names: None,
            } => write!(f, "{field} field: `{text}` is not a number"),
            CronError::NotANumber {
                field,
                text,
                names: Some((first, last)),
            } => write!(
                f,
                "{field} field: `{text}` is not a number or a name ({first}-{last})"
            ),
            CronError::NeverMatches(text) => write!(
                f,
                "`{text}` never matches: no month in the month field has the day given in \
                 the day-of-month field"
            ),
        }
    }
}

impl std::error::Error for CronError {}

/// Text to bit sets, with user-facing errors.
fn compile(text: &str) -> Result<Fields, CronError> {
    if text.is_empty() {
        return Err(CronError::Empty);
    }
    let body = if text.starts_with('@') {
        let lower = text.to_ascii_lowercase();
        match MACROS.iter().find(|(name, _)| *name == lower) {
            Some((_, body)) => *body,
            None if lower == "@reboot" => return Err(CronError::Reboot),
            // The Bansuri manual prints `@ 2 * * *` where `0 2 * * *` is meant (a `0`
            // turned into `@`): say so rather than only listing the macros.
            None => {
                return Err(match meant_for_zero_printed_as_at(text) {
                    Some(meant) => CronError::AtForZero {
                        text: text.to_owned(),
                        meant,
                    },
                    None => CronError::UnknownMacro(text.to_owned()),
                })
            }
        }
    } else {
        text
    };
    let parts: Vec<&str> = body.split_whitespace().collect();
    let (sec, rest) = match parts.len() {
        5 => ("0", &parts[..]),
        6 => (parts[0], &parts[1..]),
        n => return Err(CronError::FieldCount(n)),
    };
    let dow7 = field(rest[4], &DOW)?;
    let fields = Fields {
        sec: field(sec, &SECOND)?,
        min: field(rest[0], &MINUTE)?,
        hour: field(rest[1], &HOUR)? as u32,
        dom: field(rest[2], &DOM)? as u32,
        month: field(rest[3], &MONTH)? as u32,
        // Sunday is both 0 and 7.
        dow: ((dow7 & 0x7f) | ((dow7 >> 7) & 1)) as u32,
        dom_star: rest[2].starts_with('*'),
        dow_star: rest[4].starts_with('*'),
    };
    // Reject what can never run (`0 0 30 2 *`) now, not as a silent schedule that never
    // fires. 400 years cover every calendar combination.
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("2000-01-01 00:00:00 is a date");
    if fields.next_naive(epoch, 2000 + SEARCH_YEARS).is_none() {
        return Err(CronError::NeverMatches(text.to_owned()));
    }
    Ok(fields)
}

/// One field's comma list to a bit set.
fn field(text: &str, def: &FieldDef) -> Result<u64, CronError> {
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(CronError::EmptyItem {
                field: def.name,
                text: text.to_owned(),
            });
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| {
                    // The manual's `*/*5` (a stray `*`): say what was meant.
                    let meant = s
                        .strip_prefix('*')
                        .filter(|n| n.parse::<u32>().is_ok())
                        .map(|n| format!("{r}/{n}"));
                    CronError::StepNotNumber {
                        field: def.name,
                        item: item.to_owned(),
                        step: s.to_owned(),
                        meant,
                    }
                })?;
                if step == 0 {
                    return Err(CronError::ZeroStep {
                        field: def.name,
                        item: item.to_owned(),
                    });
                }
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (def.lo, def.hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let (lo, hi) = (value(a, def)?, value(b, def)?);
            if lo > hi {
                return Err(CronError::Backwards {
                    field: def.name,
                    item: item.to_owned(),
                    range: range.to_owned(),
                    lo,
                    hi,
                });
            }
            (lo, hi)
        } else {
            let v = value(range, def)?;
            // `N/STEP` means from N to the end of the range.
            (v, if step.is_some() { def.hi } else { v })
        };
        let step = step.unwrap_or(1);
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            match v.checked_add(step) {
                Some(n) => v = n,
                None => break,
            }
        }
    }
    Ok(bits)
}

/// One number or name, range-checked.
fn value(text: &str, def: &FieldDef) -> Result<u32, CronError> {
    if text.is_empty() {
        return Err(CronError::MissingNumber { field: def.name });
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (def.lo..=def.hi).contains(&v) => Ok(v),
            _ => Err(CronError::OutOfRange {
                field: def.name,
                text: text.to_owned(),
                lo: def.lo,
                hi: def.hi,
            }),
        };
    }
    let upper = text.to_ascii_uppercase();
    if let Some(i) = def.names.iter().position(|n| *n == upper) {
        // Month names start at 1, weekday names at 0 (Sunday).
        return Ok(i as u32 + if def.lo == 1 { 1 } else { 0 });
    }
    Err(CronError::NotANumber {
        field: def.name,
        text: text.to_owned(),
        names: def
            .names
            .first()
            .zip(def.names.last())
            .map(|(a, b)| (*a, *b)),
    })
}

/// The smallest `anchor + k * period` strictly after `now`, with `k >= 1`.
///
/// Fixed rate: the result is computed from the anchor, never from the previous run, so
/// there is no drift; ticks missed during a long gap coalesce into the next future one.
/// A zero period (rejected by config) is treated as one nanosecond, never a division by
/// zero.
pub fn timer_next(anchor: Mono, period: Duration, now: Mono) -> Mono {
    let p = period.as_nanos().max(1);
    let elapsed = now.since(anchor).as_nanos();
    let k = elapsed / p + 1;
    let offset = k.saturating_mul(p);
    let secs = u64::try_from(offset / 1_000_000_000).unwrap_or(u64::MAX);
    let nanos = (offset % 1_000_000_000) as u32;
    Mono(
        anchor
            .0
            .checked_add(Duration::new(secs, nanos))
            .unwrap_or(Duration::MAX),
    )
}

/// A schedule in words: `once at start-up`, `every 30s`, `cron `0 2 * * *` (local time)`.
pub fn describe(s: &Schedule) -> String {
    match s {
        Schedule::Once => "once at start-up".to_string(),
        Schedule::Timer(d) => format!("every {}", crate::text::fmt_dur_exact(*d)),
        Schedule::Cron(c) => c.describe(),
    }
}

/// A due time on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// Monotonic deadline (what the core waits for).
    pub mono: Mono,
    /// Wall-clock time (what users are shown).
    pub wall: DateTime<Utc>,
}

/// When a task's next run is due, seen from `now`; `None` if it is not due again.
///
/// `anchor` is the task's first start (the timer anchor), `None` if it has not started.
/// Once and timer tasks are due at once when they have not started; a cron task is due at
/// its next matching time after `now`, whether or not it ran before. For cron, the
/// monotonic deadline assumes the wall clock does not jump in between.
pub fn next_run(s: &Schedule, anchor: Option<Mono>, now: Now) -> Option<Due> {
    match (s, anchor) {
        (Schedule::Once | Schedule::Timer(_), None) => Some(Due {
            mono: now.mono,
            wall: now.wall,
        }),
        (Schedule::Once, Some(_)) => None,
        (Schedule::Timer(p), Some(a)) => {
            let mono = timer_next(a, *p, now.mono);
            Some(Due {
                mono,
                wall: now.wall_at(mono),
            })
        }
        (Schedule::Cron(c), _) => {
            let wall = c.next_after(now.wall)?;
            let ahead = (wall - now.wall).to_std().unwrap_or(Duration::ZERO);
            Some(Due {
                mono: now.mono + ahead,
                wall,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, MappedLocalTime, Offset};

    // ---- a zone with European DST rules, without touching the process's TZ ----

    /// Standard offset, summer offset; summer time from the last Sunday of March 01:00 UTC
    /// to the last Sunday of October 01:00 UTC (the EU rule).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct EuZone {
        std: i32,
        dst: i32,
    }

    const BERLIN: EuZone = EuZone {
        std: 3600,
        dst: 7200,
    };

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct ZoneOffset {
        zone: EuZone,
        off: i32,
    }

    impl Offset for ZoneOffset {
        fn fix(&self) -> FixedOffset {
            FixedOffset::east_opt(self.off).unwrap()
        }
    }

    impl fmt::Display for ZoneOffset {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.fix())
        }
    }

    fn last_sunday(year: i32, month: u32) -> NaiveDate {
        let d = NaiveDate::from_ymd_opt(year, month, 31).unwrap();
        d - chrono::Duration::days(d.weekday().num_days_from_sunday().into())
    }

    impl EuZone {
        fn off_at_utc(&self, utc: &NaiveDateTime) -> i32 {
            let y = utc.year();
            let start = last_sunday(y, 3).and_hms_opt(1, 0, 0).unwrap();
            let end = last_sunday(y, 10).and_hms_opt(1, 0, 0).unwrap();
            if *utc >= start && *utc < end {
                self.dst
            } else {
                self.std
            }
        }
        fn offset(&self, off: i32) -> ZoneOffset {
            ZoneOffset { zone: *self, off }
        }
    }

    impl TimeZone for EuZone {
        type Offset = ZoneOffset;
        fn from_offset(o: &ZoneOffset) -> Self {
            o.zone
        }
        fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<ZoneOffset> {
            self.offset_from_local_datetime(&local.and_hms_opt(12, 0, 0).unwrap())
        }
        fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<ZoneOffset> {
            // Larger offset first: it gives the earlier instant.
            let valid = |off: i32| {
                let utc = *local - chrono::Duration::seconds(off.into());
                self.off_at_utc(&utc) == off
            };
            match (valid(self.dst), valid(self.std)) {
                (false, false) => MappedLocalTime::None,
                (true, false) => MappedLocalTime::Single(self.offset(self.dst)),
                (false, true) => MappedLocalTime::Single(self.offset(self.std)),
                (true, true) => {
                    MappedLocalTime::Ambiguous(self.offset(self.dst), self.offset(self.std))
                }
            }
        }
        fn offset_from_utc_date(&self, utc: &NaiveDate) -> ZoneOffset {
            self.offset_from_utc_datetime(&utc.and_hms_opt(0, 0, 0).unwrap())
        }
        fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> ZoneOffset {
            self.offset(self.off_at_utc(utc))
        }
    }

    // ---- helpers ----

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("bad test time {s}: {e}"))
            .with_timezone(&Utc)
    }

    fn cron(expr: &str) -> CronSchedule {
        CronSchedule::parse(expr, CronTz::Utc).unwrap_or_else(|e| panic!("{expr}: {e}"))
    }

    fn err(expr: &str) -> String {
        match CronSchedule::parse(expr, CronTz::Utc) {
            Ok(_) => panic!("`{expr}` parsed but should not"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn cron_errors_carry_the_field_and_what_was_written() {
        let parse = |e: &str| CronSchedule::parse(e, CronTz::Utc).map(|_| ());
        assert_eq!(
            parse("*/*5 * * * *"),
            Err(CronError::StepNotNumber {
                field: "minute",
                item: "*/*5".into(),
                step: "*5".into(),
                meant: Some("*/5".into()),
            })
        );
        assert_eq!(
            parse("0 0 * * 8"),
            Err(CronError::OutOfRange {
                field: "day-of-week",
                text: "8".into(),
                lo: 0,
                hi: 7,
            })
        );
        assert_eq!(
            parse("0 0 * FOO *"),
            Err(CronError::NotANumber {
                field: "month",
                text: "FOO".into(),
                names: Some(("JAN", "DEC")),
            })
        );
        assert_eq!(parse("@reboot"), Err(CronError::Reboot));
        assert_eq!(
            parse("0 0 30 2 *"),
            Err(CronError::NeverMatches("0 0 30 2 *".into()))
        );
    }

    /// The next `n` runs after `from` (UTC evaluation), as RFC 3339 strings.
    fn runs(expr: &str, from: &str, n: usize) -> Vec<String> {
        runs_in(expr, from, n, &Utc)
    }

    fn runs_in<Tz: TimeZone>(expr: &str, from: &str, n: usize, tz: &Tz) -> Vec<String> {
        let c = cron(expr);
        let mut t = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = c
                .next_after_in(t, tz)
                .unwrap_or_else(|| panic!("{expr}: no next after {t}"));
            out.push(t.to_rfc3339());
        }
        out
    }

    // ---- parsing ----

    #[test]
    fn five_fields() {
        assert_eq!(
            runs("*/15 * * * *", "2026-01-19T10:07:00Z", 3),
            [
                "2026-01-19T10:15:00+00:00",
                "2026-01-19T10:30:00+00:00",
                "2026-01-19T10:45:00+00:00"
            ]
        );
        assert_eq!(
            runs("30 2 * * *", "2026-01-19T10:07:00Z", 2),
            ["2026-01-20T02:30:00+00:00", "2026-01-21T02:30:00+00:00"]
        );
    }

    #[test]
    fn six_fields() {
        assert_eq!(
            runs("*/20 * * * * *", "2026-01-19T10:00:05Z", 4),
            [
                "2026-01-19T10:00:20+00:00",
                "2026-01-19T10:00:40+00:00",
                "2026-01-19T10:01:00+00:00",
                "2026-01-19T10:01:20+00:00"
            ]
        );
        assert_eq!(
            runs("30 0 12 * * *", "2026-01-19T12:00:30Z", 1),
            ["2026-01-20T12:00:30+00:00"]
        );
        // Five fields mean second 0.
        assert_eq!(
            runs("* * * * *", "2026-01-19T10:00:00.5Z", 1),
            ["2026-01-19T10:01:00+00:00"]
        );
    }

    #[test]
    fn macros() {
        let from = "2026-01-19T10:07:00Z"; // a Monday
        let cases = [
            ("@hourly", "2026-01-19T11:00:00+00:00"),
            ("@daily", "2026-01-20T00:00:00+00:00"),
            ("@midnight", "2026-01-20T00:00:00+00:00"),
            ("@weekly", "2026-01-25T00:00:00+00:00"),
            ("@monthly", "2026-02-01T00:00:00+00:00"),
            ("@yearly", "2027-01-01T00:00:00+00:00"),
            ("@annually", "2027-01-01T00:00:00+00:00"),
            ("@DAILY", "2026-01-20T00:00:00+00:00"),
        ];
        for (expr, want) in cases {
            assert_eq!(runs(expr, from, 1), [want], "{expr}");
        }
        assert_eq!(cron("@daily").fields, cron("0 0 * * *").fields);
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let a = cron("0-10/5,30,50-52 * * * *").fields;
        let mins: Vec<u32> = (0..60).filter(|m| a.min & (1 << m) != 0).collect();
        assert_eq!(mins, [0, 5, 10, 30, 50, 51, 52]);
        let b = cron("0 8-18/2 * * *").fields;
        let hours: Vec<u32> = (0..24).filter(|h| b.hour & (1 << h) != 0).collect();
        assert_eq!(hours, [8, 10, 12, 14, 16, 18]);
        // N/STEP = N-max/STEP
        let c = cron("10/20 * * * *").fields;
        assert_eq!(c.min, 1 << 10 | 1 << 30 | 1 << 50);
        // names, any case, in ranges too
        assert_eq!(cron("0 0 * jan-mar,DEC *").fields.month, 0b1_0000_0000_1110);
        assert_eq!(cron("0 0 * * Mon-FRI").fields, cron("0 0 * * 1-5").fields);
        // Sunday is 0 and 7
        assert_eq!(cron("0 0 * * 7").fields, cron("0 0 * * 0").fields);
        assert_eq!(cron("0 0 * * 5-7").fields.dow, 1 | 1 << 5 | 1 << 6);
        assert_eq!(cron("0 0 * * sun").fields.dow, 1);
        // extra blanks are fine; the expression text is trimmed
        assert_eq!(cron("  0   0 * *  *  ").expr(), "0   0 * *  *");
        // weekdays 9-17 every 30 minutes
        assert_eq!(
            runs("*/30 9-17 * * mon-fri", "2026-01-23T17:10:00Z", 2), // Friday
            ["2026-01-23T17:30:00+00:00", "2026-01-26T09:00:00+00:00"]
        );
    }

    #[test]
    fn dom_dow_or_rule() {
        // Both restricted: the 13th OR any Friday.
        assert_eq!(
            runs("0 0 13 * 5", "2026-02-01T00:00:00Z", 4),
            [
                "2026-02-06T00:00:00+00:00", // Friday
                "2026-02-13T00:00:00+00:00", // Friday the 13th: once
                "2026-02-20T00:00:00+00:00",
                "2026-02-27T00:00:00+00:00"
            ]
        );
        assert_eq!(
            runs("0 0 1 * mon", "2026-01-20T00:00:00Z", 3),
            [
                "2026-01-26T00:00:00+00:00",
                "2026-02-01T00:00:00+00:00", // a Sunday, matched by day 1
                "2026-02-02T00:00:00+00:00"
            ]
        );
        // One side `*`: only the other counts.
        assert_eq!(
            runs("0 0 * * 5", "2026-02-01T00:00:00Z", 1),
            ["2026-02-06T00:00:00+00:00"]
        );
        assert_eq!(
            runs("0 0 13 * *", "2026-02-01T00:00:00Z", 1),
            ["2026-02-13T00:00:00+00:00"]
        );
        // Vixie: a field starting with `*` counts as unrestricted for the rule, so
        // `*/2` AND Monday.
        assert_eq!(
            runs("0 0 */2 * 1", "2026-02-01T00:00:00Z", 2),
            ["2026-02-09T00:00:00+00:00", "2026-02-23T00:00:00+00:00"]
        );
    }

    #[test]
    fn rare_dates() {
        assert_eq!(
            runs("0 0 29 2 *", "2026-01-01T00:00:00Z", 2),
            ["2028-02-29T00:00:00+00:00", "2032-02-29T00:00:00+00:00"]
        );
        // 2100 is not a leap year.
        assert_eq!(
            runs("0 0 29 2 *", "2096-03-01T00:00:00Z", 1),
            ["2104-02-29T00:00:00+00:00"]
        );
        assert_eq!(
            runs("0 0 31 * *", "2026-04-01T00:00:00Z", 1),
            ["2026-05-31T00:00:00+00:00"]
        );
        assert_eq!(
            runs("59 23 31 12 *", "2026-12-31T23:59:00Z", 1),
            ["2027-12-31T23:59:00+00:00"]
        );
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        let cases = [
            ("", "empty cron expression"),
            ("* * * *", "expected 5 or 6 fields, found 4"),
            ("* * * * * * *", "found 7"),
            ("61 * * * *", "minute field `61` out of range 0-59"),
            ("0 24 * * *", "hour field `24` out of range 0-23"),
            ("0 0 0 * *", "day-of-month field `0` out of range 1-31"),
            ("0 0 * 13 *", "month field `13` out of range 1-12"),
            ("0 0 * * 8", "day-of-week field `8` out of range 0-7"),
            ("60 0 0 * * *", "second field `60` out of range 0-59"),
            ("*/0 * * * *", "minute field `*/0`: step must be at least 1"),
            ("*/x * * * *", "step `x` is not a number"),
            (
                "*/*5 * * * *",
                "step `*5` is not a number; did you mean `*/5`?",
            ),
            ("5-2 * * * *", "range `5-2` goes backwards"),
            ("1,,2 * * * *", "empty list item"),
            ("a * * * *", "minute field: `a` is not a number"),
            (
                "0 0 * foo *",
                "month field: `foo` is not a number or a name (JAN-DEC)",
            ),
            (
                "0 0 * * sunday",
                "`sunday` is not a number or a name (SUN-SAT)",
            ),
            ("1- * * * *", "missing number"),
            ("-1 * * * *", "missing number"),
            ("0 0 30 2 *", "never matches"),
            ("0 0 31 4,6,9,11 *", "never matches"),
            ("@reboot", "runs once at start-up"),
            ("@often", "unknown cron macro `@often`"),
            ("@ 2 * * *", "did you mean `0 2 * * *`?"),
            ("0 0 L * *", "day-of-month field: `L` is not a number"),
        ];
        for (expr, want) in cases {
            let e = err(expr);
            assert!(
                e.contains(want),
                "`{expr}`: expected an error containing {want:?}, got {e:?}"
            );
        }
        // Feb 29 exists (leap years): fine.
        cron("0 0 29 2 *");
        // Feb 30 with a restricted weekday is fine too (OR rule).
        cron("0 0 30 2 1");
    }

    #[test]
    fn equality_and_describe() {
        let a = CronSchedule::parse("0 2 * * *", CronTz::Local).unwrap();
        assert_eq!(
            a,
            CronSchedule::parse(" 0 2 * * * ", CronTz::Local).unwrap()
        );
        assert_ne!(a, CronSchedule::parse("0 2 * * *", CronTz::Utc).unwrap());
        assert_ne!(
            a,
            CronSchedule::parse("0 2 * * 0-6", CronTz::Local).unwrap()
        );
        assert_eq!(a.describe(), "cron `0 2 * * *` (local time)");
        assert_eq!(a.tz(), CronTz::Local);
        assert_eq!(
            CronSchedule::parse("*/5 * * * *", CronTz::Utc)
                .unwrap()
                .to_string(),
            "cron `*/5 * * * *` (UTC)"
        );
        assert_eq!(describe(&Schedule::Once), "once at start-up");
        assert_eq!(
            describe(&Schedule::Timer(Duration::from_secs(30))),
            "every 30s"
        );
        assert_eq!(
            describe(&Schedule::Timer(Duration::from_secs(5400))),
            "every 1h 30m"
        );
        assert_eq!(
            describe(&Schedule::Cron(a)),
            "cron `0 2 * * *` (local time)"
        );
    }

    // ---- evaluation ----

    #[test]
    fn next_after_is_strictly_later_and_monotonic() {
        for expr in [
            "* * * * *",
            "* * * * * *",
            "0 0 * * *",
            "*/7 */3 * * *",
            "0 0 13 * 5",
        ] {
            let c = cron(expr);
            let mut t = utc("2026-03-01T00:00:00.999Z");
            for _ in 0..500 {
                let n = c.next_after(t).unwrap();
                assert!(n > t, "{expr}: {n} not after {t}");
                // A matching instant itself is not returned.
                assert!(c.next_after(n).unwrap() > n);
                t = n;
            }
        }
    }

    #[test]
    fn utc_and_local_differ() {
        let c = cron("0 12 * * *");
        let t = utc("2026-01-19T00:00:00Z");
        assert_eq!(
            c.next_after_in(t, &Utc).unwrap(),
            utc("2026-01-19T12:00:00Z")
        );
        // Winter: Berlin is UTC+1, so local noon is 11:00 UTC; summer: 10:00 UTC.
        assert_eq!(
            c.next_after_in(t, &BERLIN).unwrap(),
            utc("2026-01-19T11:00:00Z")
        );
        let summer = utc("2026-07-01T00:00:00Z");
        assert_eq!(
            c.next_after_in(summer, &BERLIN).unwrap(),
            utc("2026-07-01T10:00:00Z")
        );
        // A fixed offset zone works too.
        let tokyo = FixedOffset::east_opt(9 * 3600).unwrap();
        assert_eq!(
            c.next_after_in(t, &tokyo).unwrap(),
            utc("2026-01-19T03:00:00Z")
        );
        // And the process's local zone does not crash whatever it is.
        let local = CronSchedule::parse("0 12 * * *", CronTz::Local).unwrap();
        assert!(local.next_after(t).unwrap() > t);
    }

    #[test]
    fn dst_spring_forward_runs_at_end_of_gap() {
        // 2026-03-29: Berlin clocks jump from 02:00 CET to 03:00 CEST (01:00 UTC).
        assert_eq!(
            runs_in("30 2 * * *", "2026-03-27T12:00:00Z", 3, &BERLIN),
            [
                "2026-03-28T01:30:00+00:00", // 02:30 CET
                "2026-03-29T01:00:00+00:00", // 02:30 does not exist: 03:00 CEST
                "2026-03-30T00:30:00+00:00"  // 02:30 CEST
            ]
        );
        // A whole gap of matching times coalesces into one run, then the rate resumes.
        assert_eq!(
            runs_in("*/20 * * * *", "2026-03-29T00:30:00Z", 4, &BERLIN),
            [
                "2026-03-29T00:40:00+00:00", // 01:40 CET
                "2026-03-29T01:00:00+00:00", // 02:00..02:40 do not exist -> 03:00 CEST
                "2026-03-29T01:20:00+00:00", // 03:20 CEST
                "2026-03-29T01:40:00+00:00"
            ]
        );
        // Seconds inside the gap, started from inside the gap's UTC hour.
        assert_eq!(
            runs_in("15 30 2 * * *", "2026-03-29T00:59:59Z", 1, &BERLIN),
            ["2026-03-29T01:00:00+00:00"]
        );
        // Times after the gap are untouched.
        assert_eq!(
            runs_in("30 3 * * *", "2026-03-28T12:00:00Z", 1, &BERLIN),
            ["2026-03-29T01:30:00+00:00"]
        );
    }

    #[test]
    fn dst_fall_back_runs_once() {
        // 2026-10-25: Berlin clocks go from 03:00 CEST back to 02:00 CET (01:00 UTC).
        assert_eq!(
            runs_in("30 2 * * *", "2026-10-24T12:00:00Z", 3, &BERLIN),
            [
                "2026-10-25T00:30:00+00:00", // 02:30 CEST, the first of two
                "2026-10-26T01:30:00+00:00", // next day 02:30 CET, not 02:30 CET the same day
                "2026-10-27T01:30:00+00:00"
            ]
        );
        // Starting inside the second pass of the repeated hour.
        assert_eq!(
            runs_in("30 2 * * *", "2026-10-25T01:10:00Z", 1, &BERLIN),
            ["2026-10-26T01:30:00+00:00"]
        );
        assert_eq!(
            runs_in("*/30 * * * *", "2026-10-25T01:10:00Z", 1, &BERLIN),
            ["2026-10-25T02:00:00+00:00"] // 03:00 CET: the repeated 02:30 already ran
        );
        // A frequent schedule runs through the first pass, pauses in the second.
        assert_eq!(
            runs_in("*/30 * * * *", "2026-10-24T23:45:00Z", 4, &BERLIN),
            [
                "2026-10-25T00:00:00+00:00", // 02:00 CEST
                "2026-10-25T00:30:00+00:00", // 02:30 CEST
                "2026-10-25T02:00:00+00:00", // 03:00 CET
                "2026-10-25T02:30:00+00:00"
            ]
        );
    }

    #[test]
    fn gap_resolution_edges() {
        // The end of a gap is found to the second, even when it is not a whole minute
        // (historical offsets such as +01:00:21).
        let odd = EuZone {
            std: 3600 + 21,
            dst: 7200 + 21,
        };
        let c = cron("0 30 2 * * *");
        let t = utc("2026-03-29T00:00:00Z");
        let n = c.next_after_in(t, &odd).unwrap();
        // The transition is at 01:00 UTC: local time jumps from 02:00:21 to 03:00:21.
        assert_eq!(n, utc("2026-03-29T01:00:00Z"));
        assert_eq!(
            n.with_timezone(&odd).naive_local().to_string(),
            "2026-03-29 03:00:21"
        );
        assert!(c.next_after_in(n, &odd).unwrap() > n);
    }

    // ---- cross-check against brute force ----

    /// xorshift64*, enough for test inputs.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Step through instants `step` seconds apart and return the first that fires, by the
    /// documented rules: an instant fires if its wall time matches and it is the first
    /// instant with that wall time, or if it ends a gap in which some wall time matches.
    fn brute<Tz: TimeZone>(
        c: &CronSchedule,
        t: DateTime<Utc>,
        tz: &Tz,
        step: i64,
    ) -> DateTime<Utc> {
        let step_d = chrono::Duration::seconds(step);
        let ts = t.timestamp();
        let mut u = DateTime::from_timestamp(ts - ts.rem_euclid(step) + step, 0).unwrap();
        let earliest = |w: NaiveDateTime| match tz.from_local_datetime(&w) {
            MappedLocalTime::Single(d) => Some(d.with_timezone(&Utc)),
            MappedLocalTime::Ambiguous(a, b) => {
                Some(a.with_timezone(&Utc).min(b.with_timezone(&Utc)))
            }
            MappedLocalTime::None => None,
        };
        let mut before = (u - step_d).with_timezone(tz).naive_local();
        for _ in 0..200_000 {
            let wall = u.with_timezone(tz).naive_local();
            if c.fields.matches(wall) && earliest(wall) == Some(u) {
                return u;
            }
            let mut w = before + step_d;
            while w < wall {
                if c.fields.matches(w) {
                    return u;
                }
                w += step_d;
            }
            before = wall;
            u += step_d;
        }
        panic!("brute force found nothing for `{}` after {t}", c.expr());
    }

    #[test]
    fn cross_check_with_brute_force() {
        // (expression, samples): fewer samples where runs are days apart, because the
        // brute force walks every minute in between.
        let minute_exprs = [
            ("* * * * *", 250),
            ("*/7 * * * *", 250),
            ("30 2 * * *", 250),
            ("15,45 */3 * * *", 250),
            ("0 9-17 * * 1-5", 150),
            ("0 0 1,15 * 5", 60),
            ("0 0 13 * 5", 60),
            ("5 4 * * sun", 60),
            ("0 0 */2 * 1", 60),
            ("*/10 1-3 * * *", 250),
            ("0 2 * * *", 250),
            ("59 23 * * *", 250),
        ];
        let second_exprs = ["*/20 * * * * *", "30 */2 * * * *", "0,1 30 2 * * *"];
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let transitions = [
            utc("2026-03-29T01:00:00Z"),
            utc("2026-10-25T01:00:00Z"),
            utc("2027-03-28T01:00:00Z"),
        ];
        let base = utc("2025-12-01T00:00:00Z").timestamp();
        let pick = |rng: &mut Rng| {
            // Half uniform over two years, half within a day of a DST change.
            if rng.below(2) == 0 {
                DateTime::from_timestamp(base + rng.below(2 * 365 * 86400) as i64, 0).unwrap()
            } else {
                let tr = transitions[rng.below(3) as usize];
                tr + chrono::Duration::seconds(rng.below(2 * 86400) as i64 - 86400)
            }
        };
        let mut checked = 0;
        for (expr, samples) in minute_exprs {
            let c = cron(expr);
            for _ in 0..samples {
                let t = pick(&mut rng);
                let want = brute(&c, t, &BERLIN, 60);
                assert_eq!(
                    c.next_after_in(t, &BERLIN),
                    Some(want),
                    "`{expr}` in Berlin after {t}"
                );
                let want = brute(&c, t, &Utc, 60);
                assert_eq!(
                    c.next_after_in(t, &Utc),
                    Some(want),
                    "`{expr}` in UTC after {t}"
                );
                checked += 2;
            }
        }
        for expr in second_exprs {
            let c = cron(expr);
            for _ in 0..100 {
                let t = pick(&mut rng);
                let want = brute(&c, t, &BERLIN, 1);
                assert_eq!(
                    c.next_after_in(t, &BERLIN),
                    Some(want),
                    "`{expr}` in Berlin after {t}"
                );
                checked += 1;
            }
        }
        assert!(checked > 4000);
    }

    // ---- timers ----

    fn ms(n: u64) -> Mono {
        Mono(Duration::from_millis(n))
    }

    #[test]
    fn timer_is_anchor_plus_k_periods() {
        let p = Duration::from_secs(10);
        let a = ms(5_000);
        assert_eq!(timer_next(a, p, a), ms(15_000));
        assert_eq!(timer_next(a, p, ms(14_999)), ms(15_000));
        // Strictly after now: exactly on a tick gives the next one.
        assert_eq!(timer_next(a, p, ms(15_000)), ms(25_000));
        assert_eq!(timer_next(a, p, ms(15_001)), ms(25_000));
        // Before the anchor: k >= 1.
        assert_eq!(timer_next(a, p, ms(0)), ms(15_000));
        // Sub-second periods.
        assert_eq!(
            timer_next(ms(0), Duration::from_millis(250), ms(1_100)),
            ms(1_250)
        );
    }

    #[test]
    fn timer_coalesces_missed_ticks() {
        let p = Duration::from_secs(60);
        let a = ms(0);
        // A run that took an hour and a half: the next is the next future tick, once.
        let now = ms(90 * 60_000 + 1);
        let next = timer_next(a, p, now);
        assert_eq!(next, ms(91 * 60_000));
        assert_eq!(timer_next(a, p, next), ms(92 * 60_000));
    }

    #[test]
    fn timer_has_no_drift() {
        let p = Duration::from_millis(333) + Duration::from_nanos(333_333);
        let a = Mono(Duration::from_nanos(123_456_789));
        let mut t = a;
        for k in 1..=10_000u32 {
            // Woken a little late each time: the schedule stays on the grid.
            let late = t + Duration::from_micros(u64::from(k % 97) * 3);
            let n = timer_next(a, p, late);
            assert_eq!(n, a + p * k, "tick {k}");
            t = n;
        }
        assert_eq!(t, a + p * 10_000);
    }

    #[test]
    fn timer_degenerate_inputs_do_not_panic() {
        assert!(timer_next(ms(0), Duration::ZERO, ms(10)) > ms(10));
        let far = Mono(Duration::from_secs(u64::MAX / 2));
        assert!(timer_next(ms(0), Duration::from_secs(u64::MAX / 4 + 1), far) > far);
        assert_eq!(timer_next(far, Duration::MAX, far), Mono(Duration::MAX));
    }

    #[test]
    fn next_run_helper() {
        let now = Now {
            mono: ms(100_000),
            wall: utc("2026-01-19T10:00:30Z"),
        };
        assert_eq!(
            next_run(&Schedule::Once, None, now),
            Some(Due {
                mono: now.mono,
                wall: now.wall
            })
        );
        assert_eq!(next_run(&Schedule::Once, Some(ms(0)), now), None);
        let timer = Schedule::Timer(Duration::from_secs(60));
        assert_eq!(next_run(&timer, None, now).unwrap().mono, now.mono);
        let d = next_run(&timer, Some(ms(90_000)), now).unwrap();
        assert_eq!(d.mono, ms(150_000));
        assert_eq!(d.wall, utc("2026-01-19T10:01:20Z"));
        let c = Schedule::Cron(cron("*/5 * * * *"));
        let d = next_run(&c, None, now).unwrap();
        assert_eq!(d.wall, utc("2026-01-19T10:05:00Z"));
        assert_eq!(d.mono, ms(100_000 + 270_000));
    }
}

#[cfg(test)]
mod late_regressions {
    use super::*;
    use chrono::TimeZone;

    /// Found by tests/schedule_props.rs: both day fields `*`-based (so both must match),
    /// a match only every few years.
    #[test]
    fn rare_day_of_month_and_weekday_match_is_found() {
        let c = CronSchedule::parse("* * */26 2 2", CronTz::Utc).unwrap();
        let t = Utc.with_ymd_and_hms(2039, 2, 1, 23, 59, 0).unwrap();
        let n = c.next_after(t);
        assert!(n.is_some(), "no next match");
    }
}
