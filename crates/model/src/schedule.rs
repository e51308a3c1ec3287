//! EventBridge schedule expressions, `rate(…)` and `cron(…)`: parsing them, and when a schedule
//! ticks next.
//!
//! Owns the syntax of the User Guide's "cron and rate expressions" page and the calendar math
//! (UTC, proleptic Gregorian, written here so that the model needs no date crate for it). A
//! parsed [`Schedule`] is valid: every refusal happens in [`Schedule::parse`], with EventBridge's
//! "Parameter ScheduleExpression is not valid" and what is wrong.
//!
//! Must not: read the clock or keep state. The caller says when a rate was anchored (the rule's
//! creation) and after which instant it wants the next tick, so the same question always gets
//! the same answer on every node: that is what lets the store's once-per-tick key agree.
//!
//! Invariants: ticks fall on minute boundaries (of the scaled minute, for a rate), and
//! [`Schedule::next_after`] is strictly increasing in its `after_ms`. No tick lies past 2199,
//! EventBridge's last year.

use crate::ModelError;

const MINUTE_MS: u64 = 60_000;
const DAY_MINUTES: u64 = 24 * 60;
const FIRST_YEAR: u32 = 1970;
const LAST_YEAR: u32 = 2199;
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
/// Day-of-week 1 is Sunday, as in EventBridge (and Quartz).
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// A parsed schedule expression: when a scheduled rule or subscription ticks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(Kind);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Every `minutes` minutes, counted from the anchor.
    Rate { minutes: u64 },
    /// Boxed: a cron is much larger than a rate.
    Cron(Box<Cron>),
}

/// The six fields of a cron expression. Exactly one of `dom` and `dow` is `Any` (`?`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cron {
    minutes: Set,
    hours: Set,
    dom: DayOfMonth,
    months: Set,
    dow: DayOfWeek,
    years: Set,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    /// `?`: the day-of-week field decides.
    Any,
    Days(Set),
    /// `L`: the month's last day.
    Last,
    /// `LW`: the month's last weekday (Monday to Friday).
    LastWeekday,
    /// `15W`: the weekday nearest that day, within the month.
    NearestWeekday(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    /// `?`: the day-of-month field decides.
    Any,
    /// Days 1 (Sunday) to 7 (Saturday); a lone `L` is Saturday, the week's last day.
    Days(Set),
    /// `6L`: the month's last such weekday.
    Last(u32),
    /// `3#2`: the month's n-th such weekday.
    Nth { weekday: u32, n: u32 },
}

/// A set of small integers from `min`: years span 230 values, so 256 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Set {
    min: u32,
    bits: [u64; 4],
}

impl Set {
    fn new(min: u32) -> Set {
        Set { min, bits: [0; 4] }
    }

    fn insert(&mut self, value: u32) {
        let i = (value - self.min) as usize;
        self.bits[i / 64] |= 1 << (i % 64);
    }

    fn contains(&self, value: u32) -> bool {
        let Some(i) = value.checked_sub(self.min).map(|i| i as usize) else {
            return false;
        };
        i < 256 && self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// The smallest member in `from..=to`.
    fn first_in(&self, from: u32, to: u32) -> Option<u32> {
        (from..=to).find(|v| self.contains(*v))
    }
}

fn invalid(what: impl std::fmt::Display) -> ModelError {
    ModelError::invalid(format!("Parameter ScheduleExpression is not valid: {what}"))
}

impl Schedule {
    /// Parses `rate(N unit)` or `cron(minutes hours day-of-month month day-of-week year)`.
    pub fn parse(text: &str) -> Result<Schedule, ModelError> {
        let (kind, inner) = match text.split_once('(') {
            Some((kind @ ("rate" | "cron"), rest)) => (kind, rest),
            _ => return Err(invalid(format!("{text:?} is neither rate(…) nor cron(…)"))),
        };
        let inner = inner
            .strip_suffix(')')
            .ok_or_else(|| invalid(format!("{text:?} does not end with )")))?;
        let fields: Vec<&str> = inner.split_whitespace().collect();
        match kind {
            "rate" => parse_rate(&fields),
            _ => parse_cron(&fields),
        }
    }

    /// Whether it is a `rate(…)`, whose minute tests may shorten, rather than a `cron(…)`.
    pub fn is_rate(&self) -> bool {
        matches!(self.0, Kind::Rate { .. })
    }

    /// The first tick strictly after `after_ms` (Unix ms), or `None` when none is left (past
    /// 2199).
    ///
    /// A rate ticks at `anchor_ms` rounded down to the minute plus k periods, k ≥ 1: it starts
    /// when its rule is created, and the creation minute itself is not a tick. `minute_ms` is
    /// how long a rate's minute is (60 000, or less in tests, which scales rates only). A cron
    /// ticks on real UTC minutes whatever `minute_ms` says.
    pub fn next_after(&self, after_ms: u64, anchor_ms: u64, minute_ms: u64) -> Option<u64> {
        match &self.0 {
            Kind::Rate { minutes } => {
                // In u128, so that no rate or anchor can overflow; a tick past u64 is none.
                let minute = u128::from(minute_ms.max(1));
                let period = u128::from(*minutes) * minute;
                let start = u128::from(anchor_ms) / minute * minute;
                let after = u128::from(after_ms);
                let k = match after.checked_sub(start) {
                    Some(since) => since / period + 1,
                    None => 1,
                };
                let tick = u64::try_from(start + k * period).ok()?;
                let last_ms = (days_from_civil(LAST_YEAR + 1, 1, 1) * DAY_MINUTES) * MINUTE_MS;
                (tick < last_ms).then_some(tick)
            }
            Kind::Cron(cron) => cron.next_after(after_ms),
        }
    }
}

fn parse_rate(fields: &[&str]) -> Result<Schedule, ModelError> {
    let [value, unit] = fields else {
        return Err(invalid(
            "rate() takes a value and a unit, as in rate(5 minutes)",
        ));
    };
    let n: u64 = value
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| value.parse().ok())
        .flatten()
        .filter(|n| *n >= 1)
        .ok_or_else(|| {
            invalid(format!(
                "the rate's value {value:?} is not a whole number ≥ 1"
            ))
        })?;
    let (singular, minutes) = match *unit {
        "minute" | "minutes" => ("minute", 1),
        "hour" | "hours" => ("hour", 60),
        "day" | "days" => ("day", DAY_MINUTES),
        _ => {
            return Err(invalid(format!(
                "the rate's unit {unit:?} is none of minute(s), hour(s), day(s)"
            )));
        }
    };
    // EventBridge's rule: singular for 1, plural otherwise.
    if (n == 1) != (*unit == singular) {
        let want = if n == 1 { "singular" } else { "plural" };
        return Err(invalid(format!("rate({n} {unit}) needs a {want} unit")));
    }
    let minutes = n
        .checked_mul(minutes)
        .ok_or_else(|| invalid(format!("rate({n} {unit}) is too long")))?;
    Ok(Schedule(Kind::Rate { minutes }))
}

fn parse_cron(fields: &[&str]) -> Result<Schedule, ModelError> {
    let [minutes, hours, dom, month, dow, year] = fields else {
        return Err(invalid(format!(
            "cron() takes six fields (minutes hours day-of-month month day-of-week year), not {}",
            fields.len()
        )));
    };
    let cron = Cron {
        minutes: parse_set("minutes", minutes, 0, 59, &[])?,
        hours: parse_set("hours", hours, 0, 23, &[])?,
        dom: parse_dom(&dom.to_ascii_uppercase())?,
        months: parse_set("month", &month.to_ascii_uppercase(), 1, 12, &MONTHS)?,
        dow: parse_dow(&dow.to_ascii_uppercase())?,
        years: parse_set("year", year, FIRST_YEAR, LAST_YEAR, &[])?,
    };
    match (&cron.dom, &cron.dow) {
        (DayOfMonth::Any, DayOfWeek::Any) => Err(invalid(
            "day-of-month and day-of-week are both ?; exactly one of them must be",
        )),
        (DayOfMonth::Any, _) | (_, DayOfWeek::Any) => Ok(Schedule(Kind::Cron(Box::new(cron)))),
        _ => Err(invalid(
            "day-of-month and day-of-week are both set; one of them must be ?",
        )),
    }
}

/// A field of `, - * /`: values or names (`names[0]` is `min`), ranges (which may wrap, as
/// `FRI-MON`), `*`, and `start/step` or `range/step`.
fn parse_set(
    what: &str,
    field: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<Set, ModelError> {
    let bad = |why: String| invalid(format!("{what} field {field:?}: {why}"));
    let value = |text: &str| parse_value(what, field, text, min, max, names);
    let mut set = Set::new(min);
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| step.parse().ok())
                    .flatten()
                    .filter(|s| *s >= 1)
                    .ok_or_else(|| bad(format!("step {step:?} is not a whole number ≥ 1")))?;
                (range, Some(step))
            }
            None => (part, None),
        };
        let (start, end) = match range.split_once('-') {
            _ if range == "*" => (min, max),
            Some((start, end)) => (value(start)?, value(end)?),
            // `5/15` runs from 5 to the field's end.
            None if step.is_some() => (value(range)?, max),
            None => {
                let v = value(range)?;
                (v, v)
            }
        };
        // A range that wraps (`22-2`, `FRI-MON`) runs past the end and starts over.
        let span = max - min + 1;
        let end = if end < start { end + span } else { end };
        for v in (start..=end).step_by(step.unwrap_or(1) as usize) {
            set.insert(if v > max { v - span } else { v });
        }
    }
    Ok(set)
}

/// One value or name of a field (`names[0]` is `min`).
fn parse_value(
    what: &str,
    field: &str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
) -> Result<u32, ModelError> {
    let parsed = match names.iter().position(|name| *name == text) {
        Some(i) => Some(min + i as u32),
        None if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) => text.parse().ok(),
        None => None,
    };
    parsed.filter(|v| (min..=max).contains(v)).ok_or_else(|| {
        invalid(format!(
            "{what} field {field:?}: {text:?} is not a value in {min}-{max}"
        ))
    })
}

fn parse_dom(field: &str) -> Result<DayOfMonth, ModelError> {
    Ok(match field {
        "?" => DayOfMonth::Any,
        "L" => DayOfMonth::Last,
        "LW" => DayOfMonth::LastWeekday,
        // `W` follows one day: a list or range of nearest weekdays means nothing.
        _ => match field.strip_suffix('W') {
            Some(day) if day.bytes().all(|b| b.is_ascii_digit()) => {
                DayOfMonth::NearestWeekday(parse_value("day-of-month", field, day, 1, 31, &[])?)
            }
            Some(_) => {
                return Err(invalid(format!(
                    "day-of-month field {field:?}: W follows one day, as in 15W"
                )));
            }
            None => DayOfMonth::Days(parse_set("day-of-month", field, 1, 31, &[])?),
        },
    })
}

fn parse_dow(field: &str) -> Result<DayOfWeek, ModelError> {
    // `L` and `#` follow one weekday; anything else fails as not a value.
    let weekday = |text: &str| parse_value("day-of-week", field, text, 1, 7, &WEEKDAYS);
    if field == "?" {
        return Ok(DayOfWeek::Any);
    }
    if field == "L" {
        let mut saturday = Set::new(1);
        saturday.insert(7);
        return Ok(DayOfWeek::Days(saturday));
    }
    if let Some((day, n)) = field.split_once('#') {
        // Also refuses a list, which EventBridge reads as several # expressions.
        let n = n
            .parse()
            .ok()
            .filter(|n| (1..=5).contains(n))
            .ok_or_else(|| {
                invalid(format!(
                    "day-of-week field {field:?}: one weekday and n in 1-5, as in 3#2"
                ))
            })?;
        return Ok(DayOfWeek::Nth {
            weekday: weekday(day)?,
            n,
        });
    }
    if let Some(day) = field.strip_suffix('L') {
        return Ok(DayOfWeek::Last(weekday(day)?));
    }
    Ok(DayOfWeek::Days(parse_set(
        "day-of-week",
        field,
        1,
        7,
        &WEEKDAYS,
    )?))
}

impl Cron {
    fn next_after(&self, after_ms: u64) -> Option<u64> {
        // The first whole minute strictly after `after_ms`.
        let first = after_ms / MINUTE_MS + 1;
        let mut day = first / DAY_MINUTES;
        let mut from_minute = (first % DAY_MINUTES) as u32;
        loop {
            let (year, month, date) = civil_from_days(day);
            if year > LAST_YEAR {
                return None;
            }
            // Whole years and months that cannot match are skipped at once.
            if !self.years.contains(year) {
                (day, from_minute) = (days_from_civil(year + 1, 1, 1), 0);
                continue;
            }
            if !self.months.contains(month) {
                let (y, m) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                (day, from_minute) = (days_from_civil(y, m, 1), 0);
                continue;
            }
            if self.day_matches(year, month, date, weekday(day))
                && let Some(minute) = self.time_from(from_minute)
            {
                return Some((day * DAY_MINUTES + u64::from(minute)) * MINUTE_MS);
            }
            (day, from_minute) = (day + 1, 0);
        }
    }

    /// The first minute of the day at or after `from` (minutes since midnight) that matches.
    fn time_from(&self, from: u32) -> Option<u32> {
        let (first_hour, first_minute) = (from / 60, from % 60);
        (first_hour..24)
            .filter(|h| self.hours.contains(*h))
            .find_map(|h| {
                let start = if h == first_hour { first_minute } else { 0 };
                self.minutes.first_in(start, 59).map(|m| h * 60 + m)
            })
    }

    fn day_matches(&self, year: u32, month: u32, date: u32, weekday: u32) -> bool {
        let last = days_in_month(year, month);
        let dom = match &self.dom {
            DayOfMonth::Any => true,
            DayOfMonth::Days(days) => days.contains(date),
            DayOfMonth::Last => date == last,
            DayOfMonth::LastWeekday => {
                // Back from the last day over a weekend: Saturday is 1 day late, Sunday 2.
                let last_weekday = weekday_of(year, month, last);
                let back = match last_weekday {
                    7 => 1,
                    1 => 2,
                    _ => 0,
                };
                date == last - back
            }
            DayOfMonth::NearestWeekday(day) => {
                // Quartz's rule, which EventBridge follows: never into another month, so 1W on a
                // Saturday is Monday the 3rd. A day the month lacks has no nearest weekday.
                *day <= last && date == nearest_weekday(*day, weekday_of(year, month, *day), last)
            }
        };
        let dow = match &self.dow {
            DayOfWeek::Any => true,
            DayOfWeek::Days(days) => days.contains(weekday),
            DayOfWeek::Last(day) => weekday == *day && date + 7 > last,
            DayOfWeek::Nth { weekday: day, n } => weekday == *day && (date - 1) / 7 + 1 == *n,
        };
        dom && dow
    }
}

fn nearest_weekday(day: u32, weekday: u32, last: u32) -> u32 {
    match weekday {
        7 if day == 1 => 3,
        7 => day - 1,
        1 if day == last => day - 2,
        1 => day + 1,
        _ => day,
    }
}

/// 1 (Sunday) to 7 (Saturday) of a day counted from 1970-01-01, a Thursday.
fn weekday(day: u64) -> u32 {
    ((day + 4) % 7) as u32 + 1
}

fn weekday_of(year: u32, month: u32, date: u32) -> u32 {
    weekday(days_from_civil(year, month, date))
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// (year, month, day) of a day counted from 1970-01-01: Howard Hinnant's `civil_from_days`,
/// for days on or after the epoch (all a `u64` of milliseconds can name).
fn civil_from_days(day: u64) -> (u32, u32, u32) {
    // Counted from 0000-03-01, so that the leap day ends the (shifted) year.
    let z = day + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let date = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400) as u32 + u32::from(month <= 2);
    (year, month, date)
}

/// Days from 1970-01-01 to a date on or after it: the inverse of [`civil_from_days`].
fn days_from_civil(year: u32, month: u32, date: u32) -> u64 {
    let y = u64::from(if month <= 2 { year - 1 } else { year });
    let (era, yoe) = (y / 400, y % 400);
    let m = u64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + u64::from(date) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{format_rfc3339_ms, parse_rfc3339_ms};

    fn at(text: &str) -> u64 {
        parse_rfc3339_ms("t", &format!("{text}:00Z")).unwrap()
    }

    /// The next tick of a cron after `after` (minutes precision, UTC), as `YYYY-MM-DDTHH:MM`.
    fn next(expr: &str, after: &str) -> String {
        let schedule = Schedule::parse(expr).unwrap();
        let tick = schedule.next_after(at(after), 0, MINUTE_MS).unwrap();
        format_rfc3339_ms(tick)[..16].to_string()
    }

    fn refused(expr: &str) -> String {
        match Schedule::parse(expr) {
            Err(ModelError::Invalid(message)) => message,
            other => panic!("{expr} was not refused: {other:?}"),
        }
    }

    #[test]
    fn the_calendar_agrees_with_the_time_crate() {
        for day in (0..84_000).step_by(37) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
            let text = format_rfc3339_ms(day * DAY_MINUTES * MINUTE_MS);
            assert_eq!(&text[..10], format!("{y:04}-{m:02}-{d:02}"));
        }
        assert_eq!(weekday(0), 5, "1970-01-01 was a Thursday");
    }

    #[test]
    fn user_guide_examples() {
        // 2026-12-02 is a Wednesday.
        assert_eq!(
            next("cron(0 10 * * ? *)", "2026-12-02T10:00"),
            "2026-12-03T10:00"
        );
        assert_eq!(
            next("cron(0 10 * * ? *)", "2026-12-02T09:59"),
            "2026-12-02T10:00"
        );
        assert_eq!(
            next("cron(15 12 * * ? *)", "2026-12-02T10:00"),
            "2026-12-02T12:15"
        );
        assert_eq!(
            next("cron(0 18 ? * MON-FRI *)", "2026-12-04T18:00"),
            "2026-12-07T18:00"
        );
        assert_eq!(
            next("cron(0 8 1 * ? *)", "2026-12-02T10:00"),
            "2027-01-01T08:00"
        );
        assert_eq!(
            next("cron(0/15 * * * ? *)", "2026-12-02T10:07"),
            "2026-12-02T10:15"
        );
        assert_eq!(
            next("cron(0/15 * * * ? *)", "2026-12-02T10:45"),
            "2026-12-02T11:00"
        );
        assert_eq!(
            next("cron(0/10 * ? * MON-FRI *)", "2026-12-04T23:55"),
            "2026-12-07T00:00"
        );
        assert_eq!(
            next("cron(0/5 8-17 ? * MON-FRI *)", "2026-12-02T12:02"),
            "2026-12-02T12:05"
        );
        assert_eq!(
            next("cron(0/5 8-17 ? * MON-FRI *)", "2026-12-02T17:55"),
            "2026-12-03T08:00"
        );
        // The first Monday of the month: December 2026 starts on a Tuesday.
        assert_eq!(
            next("cron(0 9 ? * 2#1 *)", "2026-12-02T10:00"),
            "2026-12-07T09:00"
        );
        assert_eq!(
            next("cron(0 9 ? * 2#1 *)", "2026-12-07T09:00"),
            "2027-01-04T09:00"
        );
    }

    #[test]
    fn ticks_are_strictly_after_and_on_minutes() {
        let schedule = Schedule::parse("cron(* * * * ? *)").unwrap();
        let t = at("2026-12-02T10:00");
        assert_eq!(schedule.next_after(t, 0, MINUTE_MS), Some(t + MINUTE_MS));
        assert_eq!(schedule.next_after(t - 1, 0, MINUTE_MS), Some(t));
        assert_eq!(
            schedule.next_after(t + 1, 0, MINUTE_MS),
            Some(t + MINUTE_MS)
        );
        // minute_ms scales rates only.
        assert_eq!(schedule.next_after(t, 0, 100), Some(t + MINUTE_MS));
    }

    #[test]
    fn lists_ranges_names_and_wrapping() {
        assert_eq!(
            next("cron(0 10,15 ? * MON-FRI *)", "2026-12-02T10:00"),
            "2026-12-02T15:00"
        );
        assert_eq!(
            next("cron(0 22-2 * * ? *)", "2026-12-02T02:00"),
            "2026-12-02T22:00"
        );
        assert_eq!(
            next("cron(0 0 ? * FRI-MON *)", "2026-12-02T00:00"),
            "2026-12-04T00:00"
        );
        assert_eq!(
            next("cron(30 6 ? jan,Jul sun 2027)", "2026-12-02T00:00"),
            "2027-01-03T06:30"
        );
        assert_eq!(
            next("cron(1/20 * * * ? *)", "2026-12-02T10:41"),
            "2026-12-02T11:01"
        );
        assert_eq!(
            next("cron(0 0 1 1/6 ? *)", "2027-01-01T00:00"),
            "2027-07-01T00:00"
        );
    }

    #[test]
    fn last_days_and_leap_years() {
        assert_eq!(
            next("cron(0 0 L * ? *)", "2028-02-01T00:00"),
            "2028-02-29T00:00"
        );
        assert_eq!(
            next("cron(0 0 L * ? *)", "2027-02-01T00:00"),
            "2027-02-28T00:00"
        );
        assert_eq!(
            next("cron(0 0 L 2 ? *)", "2100-01-01T00:00"),
            "2100-02-28T00:00"
        );
        assert_eq!(
            next("cron(0 0 29 2 ? *)", "2028-03-01T00:00"),
            "2032-02-29T00:00"
        );
        // 2027-01-31 is a Sunday: the last weekday is Friday the 29th.
        assert_eq!(
            next("cron(0 0 LW * ? *)", "2027-01-01T00:00"),
            "2027-01-29T00:00"
        );
        // A lone L in day-of-week is Saturday; 6L the month's last Friday.
        assert_eq!(
            next("cron(0 0 ? * L *)", "2026-12-02T00:00"),
            "2026-12-05T00:00"
        );
        assert_eq!(
            next("cron(0 0 ? * 6L *)", "2026-12-02T00:00"),
            "2026-12-25T00:00"
        );
        assert_eq!(
            next("cron(0 0 ? * 5#5 *)", "2026-12-02T00:00"),
            "2026-12-31T00:00"
        );
    }

    #[test]
    fn nearest_weekdays_stay_in_their_month() {
        // 2027-05-15 and 2027-05-01 are Saturdays, 2027-10-31 a Sunday.
        assert_eq!(
            next("cron(0 0 15W * ? *)", "2027-05-01T00:00"),
            "2027-05-14T00:00"
        );
        assert_eq!(
            next("cron(0 0 1W * ? *)", "2027-04-30T00:00"),
            "2027-05-03T00:00"
        );
        assert_eq!(
            next("cron(0 0 31W * ? *)", "2027-10-01T00:00"),
            "2027-10-29T00:00"
        );
        // On a weekday it is the day itself; a month without the day has none.
        assert_eq!(
            next("cron(0 0 3W * ? *)", "2026-12-01T00:00"),
            "2026-12-03T00:00"
        );
        assert_eq!(
            next("cron(0 0 30W * ? *)", "2027-02-01T00:00"),
            "2027-03-30T00:00"
        );
    }

    #[test]
    fn no_tick_after_the_last_year() {
        let once = Schedule::parse("cron(0 0 1 1 ? 2030)").unwrap();
        assert_eq!(
            once.next_after(at("2029-06-01T00:00"), 0, MINUTE_MS),
            Some(at("2030-01-01T00:00"))
        );
        assert_eq!(once.next_after(at("2030-01-01T00:00"), 0, MINUTE_MS), None);
        let every = Schedule::parse("cron(* * * * ? *)").unwrap();
        assert_eq!(every.next_after(at("2199-12-31T23:59"), 0, MINUTE_MS), None);
        let never = Schedule::parse("cron(0 0 31 2 ? *)").unwrap();
        assert_eq!(never.next_after(0, 0, MINUTE_MS), None);
        let rate = Schedule::parse("rate(1 day)").unwrap();
        assert_eq!(rate.next_after(at("2199-12-31T00:00"), 0, MINUTE_MS), None);
    }

    #[test]
    fn rates_count_from_the_anchor_minute() {
        let five = Schedule::parse("rate(5 minutes)").unwrap();
        let anchor = at("2026-12-02T10:02") + 30_000;
        let start = at("2026-12-02T10:02");
        assert_eq!(
            five.next_after(anchor, anchor, MINUTE_MS),
            Some(start + 5 * MINUTE_MS)
        );
        assert_eq!(
            five.next_after(start + 5 * MINUTE_MS, anchor, MINUTE_MS),
            Some(start + 10 * MINUTE_MS)
        );
        assert_eq!(
            five.next_after(start + 5 * MINUTE_MS - 1, anchor, MINUTE_MS),
            Some(start + 5 * MINUTE_MS)
        );
        // Asked about a time before the anchor: the first tick, never the creation minute.
        assert_eq!(
            five.next_after(0, anchor, MINUTE_MS),
            Some(start + 5 * MINUTE_MS)
        );
        let hour = Schedule::parse("rate(1 hour)").unwrap();
        assert_eq!(
            hour.next_after(anchor, anchor, MINUTE_MS),
            Some(start + 60 * MINUTE_MS)
        );
        let days = Schedule::parse("rate(2 days)").unwrap();
        assert_eq!(
            days.next_after(anchor, anchor, MINUTE_MS),
            Some(start + 2 * DAY_MINUTES * MINUTE_MS)
        );
        // A test's scaled minute of 100 ms: rate(1 minute) ticks every 100 ms.
        let one = Schedule::parse("rate(1 minute)").unwrap();
        assert_eq!(one.next_after(1_050, 1_050, 100), Some(1_100));
        assert_eq!(one.next_after(1_100, 1_050, 100), Some(1_200));
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        for (expr, says) in [
            ("cron(0 10 * * ?)", "six fields"),
            ("cron(0 10 * * 2 *)", "both set"),
            ("cron(0 10 ? * ? *)", "both ?"),
            ("cron(60 10 * * ? *)", "minutes field"),
            ("cron(0 24 * * ? *)", "hours field"),
            ("cron(0 0 32 * ? *)", "day-of-month"),
            ("cron(0 0 ? 13 * *)", "month field"),
            ("cron(0 0 ? FOO * *)", "month field"),
            ("cron(0 0 ? * 8 *)", "day-of-week"),
            ("cron(0 0 ? * 3#1,6#3 *)", "day-of-week"),
            ("cron(0 0 ? * 3#6 *)", "day-of-week"),
            ("cron(0 0 ? * MON-FRIL *)", "day-of-week"),
            ("cron(0 0 ? * 1-3#2 *)", "day-of-week"),
            ("cron(0 0 1-5W * ? *)", "W follows one day"),
            ("cron(0 0 * * ? 1969)", "year field"),
            ("cron(0 0 * * ? 2200)", "year field"),
            ("cron(0/0 0 * * ? *)", "step"),
            ("cron(0/+5 0 * * ? *)", "step"),
            ("cron(L 0 * * ? *)", "minutes field"),
            ("cron(0 0 ? * * * *)", "six fields"),
            ("rate(1 minutes)", "singular"),
            ("rate(5 minute)", "plural"),
            ("rate(0 minutes)", "≥ 1"),
            ("rate(-1 minutes)", "≥ 1"),
            ("rate(+5 minutes)", "≥ 1"),
            ("rate(5 weeks)", "unit"),
            ("rate(5)", "value and a unit"),
            ("rate(5 minutes", "end with )"),
            ("every 5 minutes", "neither"),
            ("", "neither"),
            ("RATE(5 minutes)", "neither"),
        ] {
            let message = refused(expr);
            assert!(
                message.starts_with("Parameter ScheduleExpression is not valid: "),
                "{expr}: {message}"
            );
            assert!(message.contains(says), "{expr}: {message}");
        }
    }
}
