//! Simulated time: day boundaries, working hours and random durations.
//!
//! In: the simulation start and the seeded RNG. Out: instants at whole seconds (so RFC 3339
//! output never carries fractions), day indices relative to the start, and the rule that
//! deliveries happen between 06:00 and 20:00 of a simulated day.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

const DAY_SECS: i64 = 86_400;
/// Deliveries and ship-outs happen from this hour of a simulated day ...
pub(super) const WORK_START_HOUR: i64 = 6;
/// ... until (exclusive) this hour.
pub(super) const WORK_END_HOUR: i64 = 20;

/// Maps day numbers to instants; day 0 starts at `SimConfig::start`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Clock {
    start: DateTime<Utc>,
}

impl Clock {
    /// A clock whose day 0 starts at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Clock { start }
    }

    /// The simulation start.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// Start of day `d` (negative days are before the start).
    pub fn day(&self, d: i64) -> DateTime<Utc> {
        self.start + Duration::days(d)
    }

    /// Seconds since the start of the simulated day `t` falls in.
    fn secs_into_day(&self, t: DateTime<Utc>) -> i64 {
        (t - self.start).num_seconds().rem_euclid(DAY_SECS)
    }

    /// `t` if it is within working hours, else a time early in the next working period.
    pub fn working(&self, t: DateTime<Utc>, rng: &mut ChaCha8Rng) -> DateTime<Utc> {
        let into = self.secs_into_day(t);
        let (open, close) = (WORK_START_HOUR * 3600, WORK_END_HOUR * 3600);
        if (open..close).contains(&into) {
            return t;
        }
        let day_start = t - Duration::seconds(into);
        let next_open = if into < open {
            day_start + Duration::seconds(open)
        } else {
            day_start + Duration::seconds(DAY_SECS + open)
        };
        next_open + secs(rng, 0, 4 * 3600)
    }
}

/// Midnight UTC at the start of `date`.
pub(super) fn midnight(date: NaiveDate) -> DateTime<Utc> {
    date.and_time(chrono::NaiveTime::MIN).and_utc()
}

/// A duration of `x` days, rounded to whole seconds.
pub(super) fn days(x: f64) -> Duration {
    Duration::seconds((x * DAY_SECS as f64).round() as i64)
}

/// A uniformly random duration in `[lo, hi)` days, whole seconds.
pub(super) fn rand_days(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> Duration {
    days(rng.random_range(lo..hi))
}

/// A uniformly random duration in `[lo, hi)` hours, whole seconds.
pub(super) fn rand_hours(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> Duration {
    secs(rng, lo * 3600, hi * 3600)
}

/// A uniformly random duration in `[lo, hi)` minutes, whole seconds.
pub(super) fn rand_minutes(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> Duration {
    secs(rng, lo * 60, hi * 60)
}

fn secs(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> Duration {
    Duration::seconds(rng.random_range(lo..hi.max(lo + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};
    use rand::SeedableRng;

    #[test]
    fn working_hours_move_night_times_to_the_morning() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        let clock = Clock::new(start);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let noon = start + Duration::hours(12);
        assert_eq!(clock.working(noon, &mut rng), noon);
        let late = clock.working(start + Duration::hours(21), &mut rng);
        assert_eq!(late.date_naive(), start.date_naive().succ_opt().unwrap());
        assert!((6..10).contains(&late.hour()));
        let early = clock.working(start + Duration::hours(3), &mut rng);
        assert_eq!(early.date_naive(), start.date_naive());
        assert!((6..10).contains(&early.hour()));
    }

    #[test]
    fn days_and_midnight() {
        let start = Utc.with_ymd_and_hms(2026, 1, 5, 0, 0, 0).unwrap();
        let clock = Clock::new(start);
        assert_eq!(
            clock.day(-1),
            Utc.with_ymd_and_hms(2026, 1, 4, 0, 0, 0).unwrap()
        );
        assert_eq!(midnight(start.date_naive()), start);
        assert_eq!(days(1.5), Duration::hours(36));
    }
}
