//! Wall-clock helpers: switchyard stores times as Unix milliseconds and shows them as RFC 3339.

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock, for what needs a [`SystemTime`] (HTTP dates, signature timestamps); stored
/// times use [`now_ms`].
#[expect(
    clippy::disallowed_methods,
    reason = "the one reading of the wall clock"
)]
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// Milliseconds since the Unix epoch. A clock before 1970 reads as 0 rather than panicking.
pub fn now_ms() -> u64 {
    now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Parses an RFC 3339 time (`2026-11-24T10:00:00Z`, any offset) into Unix milliseconds; the
/// error names `field`.
pub fn parse_rfc3339_ms(field: &str, text: &str) -> Result<u64, crate::ModelError> {
    let parsed = ::time::OffsetDateTime::parse(
        text,
        &::time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| {
        crate::ModelError::Invalid(format!(
            "field \"{field}\" must be an RFC 3339 time such as 2026-11-24T10:00:00Z, not {text:?}"
        ))
    })?;
    u64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).map_err(|_| {
        crate::ModelError::Invalid(format!("field \"{field}\" {text:?} is before 1970"))
    })
}

/// `2026-11-24T10:00:00.123Z` for a Unix-milliseconds time.
pub fn format_rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    let Ok(t) = ::time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
        return String::from("1970-01-01T00:00:00Z");
    };
    let (year, month, day) = (t.year(), u8::from(t.month()), t.day());
    let (hour, minute, second) = (t.hour(), t.minute(), t.second());
    let millis = t.millisecond();
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_milliseconds_in_utc() {
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_ms(1_764_000_000_123),
            "2025-11-24T16:00:00.123Z"
        );
    }
}
