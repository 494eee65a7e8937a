//! Property tests of schedule computation: for random cron expressions and instants, the
//! next run is strictly in the future, monotonic in the instant, and exactly what a
//! brute-force minute-by-minute evaluator (written here from the field sets, independent
//! of the implementation) finds; timers never drift and never return the past.

use std::time::Duration;

use bansuri::clock::Mono;
use bansuri::schedule::{timer_next, CronSchedule, CronTz};
use chrono::{DateTime, Datelike, Duration as CDuration, TimeZone, Timelike, Utc};
use proptest::prelude::*;

/// One cron field: the text and the set of values it allows.
#[derive(Debug, Clone)]
struct Field {
    text: String,
    set: Vec<u32>,
    star: bool,
}

/// Lists and ranges are drawn from `lo..=hi`; `*` and `*/k` cover the field's whole range
/// `lo..=full` (for day of month, 1-31 even when the lists stay within 1-28).
fn field(lo: u32, hi: u32, full: u32) -> impl Strategy<Value = Field> {
    let any = Just(Field {
        text: "*".into(),
        set: (lo..=full).collect(),
        star: true,
    });
    let step = (1..=(hi - lo).max(1)).prop_map(move |k| Field {
        text: format!("*/{k}"),
        set: (lo..=full).step_by(k as usize).collect(),
        star: true,
    });
    let list = prop::collection::btree_set(lo..=hi, 1..4).prop_map(|s| Field {
        text: s.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
        set: s.into_iter().collect(),
        star: false,
    });
    let range = (lo..=hi, lo..=hi).prop_map(|(a, b)| {
        let (a, b) = (a.min(b), a.max(b));
        Field {
            text: format!("{a}-{b}"),
            set: (a..=b).collect(),
            star: false,
        }
    });
    prop_oneof![any, step, list, range]
}

#[derive(Debug, Clone)]
struct Expr {
    min: Field,
    hour: Field,
    dom: Field,
    mon: Field,
    dow: Field,
}

impl Expr {
    fn text(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.min.text, self.hour.text, self.dom.text, self.mon.text, self.dow.text
        )
    }

    /// Vixie cron: when both day fields are restricted, either may match.
    fn matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.dom.set.contains(&t.day());
        let dow = self.dow.set.contains(&t.weekday().num_days_from_sunday());
        let day = if self.dom.star || self.dow.star {
            dom && dow
        } else {
            dom || dow
        };
        self.min.set.contains(&t.minute())
            && self.hour.set.contains(&t.hour())
            && self.mon.set.contains(&t.month())
            && day
    }
}

fn expr() -> impl Strategy<Value = Expr> {
    (
        field(0, 59, 59),
        field(0, 23, 23),
        field(1, 28, 31),
        field(1, 12, 12),
        field(0, 6, 6),
    )
        .prop_map(|(min, hour, dom, mon, dow)| Expr {
            min,
            hour,
            dom,
            mon,
            dow,
        })
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 2000-01-01 .. 2040-01-01, to the second.
    (946_684_800i64..2_208_988_800i64).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

/// First matching minute strictly after `t`: day by day (skipping days whose date does
/// not match), minute by minute within a matching day, for up to 30 years (a rare
/// day-of-month and weekday pair can be 7+ years apart).
fn brute(e: &Expr, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut m = t.with_second(0).unwrap().with_nanosecond(0).unwrap() + CDuration::minutes(1);
    let end = t + CDuration::days(366 * 30);
    while m < end {
        let midnight = m.with_hour(0).unwrap().with_minute(0).unwrap();
        let day_ok = (0..24 * 60).any(|k| {
            let x = midnight + CDuration::minutes(k);
            x >= m && e.matches(x)
        });
        if day_ok {
            return (0..24 * 60)
                .map(|k| midnight + CDuration::minutes(k))
                .find(|x| *x >= m && e.matches(*x));
        }
        m = midnight + CDuration::days(1);
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn cron_next_is_future_monotonic_and_brute_force_exact(e in expr(), t in instant(), dt in 0i64..10_000_000) {
        let c = CronSchedule::parse(&e.text(), CronTz::Utc).expect("generated expressions parse");
        let n = c.next_after(t).expect("every generated expression matches some time");
        prop_assert!(n > t, "next {n} not after {t} for `{}`", e.text());
        prop_assert!(e.matches(n), "next {n} does not match `{}`", e.text());
        prop_assert_eq!(Some(n), brute(&e, t), "`{}` after {}", e.text(), t);
        let later = t + CDuration::seconds(dt);
        let n2 = c.next_after(later).unwrap();
        prop_assert!(n2 >= n, "not monotonic: next({later}) = {n2} < next({t}) = {n}");
        // Asking again from the next run gives a later run (no double fire).
        let n3 = c.next_after(n).unwrap();
        prop_assert!(n3 > n);
    }

    #[test]
    fn timer_next_is_on_the_grid_and_in_the_future(anchor in 0u64..1_000_000_000, period in 1u64..100_000_000, ahead in 0u64..10_000_000_000) {
        let a = Mono(Duration::from_micros(anchor));
        let p = Duration::from_micros(period);
        let now = Mono(Duration::from_micros(anchor + ahead));
        let next = timer_next(a, p, now);
        prop_assert!(next > now);
        let k = (next.0 - a.0).as_nanos() / p.as_nanos();
        prop_assert_eq!((next.0 - a.0).as_nanos() % p.as_nanos(), 0, "on the anchor's grid: no drift");
        prop_assert!(next.0 - p <= now.0, "the first grid point after now, k = {}", k);
    }
}
