pub mod clock;
pub mod level;
pub mod schedule;
pub mod spec;
