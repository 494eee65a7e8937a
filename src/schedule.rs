//! STUB: being written by a helper. Interface only.
use chrono::{DateTime, Utc};
use std::time::Duration;
use crate::clock::Mono;
use crate::spec::ScheduleSpec;

/// Time zone a cron expression is evaluated in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronTz { Local, Utc }

/// A compiled cron expression.
#[derive(Debug, Clone)]
pub struct CronSchedule { expr: String, tz: CronTz }
impl PartialEq for CronSchedule { fn eq(&self, o: &Self) -> bool { self.expr == o.expr && self.tz == o.tz } }
impl CronSchedule {
    pub fn parse(expr: &str, tz: CronTz) -> Result<CronSchedule, String> { Ok(CronSchedule{expr: expr.into(), tz}) }
    pub fn next_after(&self, _t: DateTime<Utc>) -> Option<DateTime<Utc>> { todo!() }
    pub fn expr(&self) -> &str { &self.expr }
    pub fn tz(&self) -> CronTz { self.tz }
}
pub fn timer_next(anchor: Mono, period: Duration, now: Mono) -> Mono { let _ = (period, now); anchor }
pub fn describe(s: &ScheduleSpec) -> String { format!("{s:?}") }
