//! Time helpers: marketd keeps every timestamp as nanoseconds since the Unix
//! epoch (UTC) in an `i64`, which is exact, cheap to compare and the same in
//! both storage dialects.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const NANOS_PER_SEC: i64 = 1_000_000_000;
pub const NANOS_PER_MILLI: i64 = 1_000_000;

/// Current wall-clock time in nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// RFC 3339 rendering of a nanosecond timestamp (UTC, `Z` suffix).
pub fn to_rfc3339(ns: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ns.to_string())
}

/// Parses either an RFC 3339 timestamp or an integer of seconds, milliseconds
/// or nanoseconds since the epoch (told apart by magnitude, as most market APIs
/// mix them).
pub fn parse_ts(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(epoch_number_to_ns(n));
    }
    OffsetDateTime::parse(s, &Rfc3339)
        .ok()
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos()).ok())
}

/// What an epoch-number time bound of a query looks like
/// ([`parse_bound`]); the other form is an RFC 3339 `date-time`.
pub const EPOCH_BOUND_PATTERN: &str = "^[+-]?[0-9]+$";

/// Parses a time bound of a query (`from`, `to`): an integer number of
/// seconds, milliseconds, microseconds or nanoseconds since the epoch
/// (as [`epoch_number_to_ns`]; [`EPOCH_BOUND_PATTERN`]), or an RFC 3339
/// date-time with `T` (or `t`) between date and time (JSON Schema's
/// `date-time`). Nothing is trimmed. A bound past what nanoseconds in an
/// `i64` hold (before 1677, after 2262, or a longer number) is clamped to
/// the nearest one: it still bounds every stored time.
pub fn parse_bound(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let n = s.parse::<i64>().unwrap_or(if s.starts_with('-') {
            i64::MIN
        } else {
            i64::MAX
        });
        return Some(epoch_number_to_ns(n));
    }
    if !matches!(s.as_bytes().get(10), Some(b'T' | b't')) {
        return None;
    }
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let ns = t.unix_timestamp_nanos();
    Some(i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX }))
}

/// Interprets an epoch number by its magnitude: seconds (< 1e11), milliseconds
/// (< 1e14), microseconds (< 1e17), else nanoseconds.
pub fn epoch_number_to_ns(n: i64) -> i64 {
    let a = n.unsigned_abs();
    if a < 100_000_000_000 {
        n.saturating_mul(NANOS_PER_SEC)
    } else if a < 100_000_000_000_000 {
        n.saturating_mul(NANOS_PER_MILLI)
    } else if a < 100_000_000_000_000_000 {
        n.saturating_mul(1_000)
    } else {
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_epoch_units_and_rfc3339() {
        assert_eq!(parse_ts("1582641000"), Some(1_582_641_000 * NANOS_PER_SEC));
        assert_eq!(
            parse_ts("1582641000123"),
            Some(1_582_641_000_123 * NANOS_PER_MILLI)
        );
        assert_eq!(
            parse_ts("2020-02-25T14:30:00Z"),
            Some(1_582_641_000 * NANOS_PER_SEC)
        );
        assert_eq!(parse_ts("yesterday"), None);
        assert_eq!(
            parse_ts(" 1582641000 "),
            Some(1_582_641_000 * NANOS_PER_SEC)
        );
        assert_eq!(
            to_rfc3339(1_582_641_000 * NANOS_PER_SEC),
            "2020-02-25T14:30:00Z"
        );
    }

    #[test]
    fn query_bounds_are_epoch_numbers_or_rfc3339_date_times_clamped_to_i64() {
        assert_eq!(
            parse_bound("1582641000"),
            Some(1_582_641_000 * NANOS_PER_SEC)
        );
        assert_eq!(
            parse_bound("+1582641000"),
            Some(1_582_641_000 * NANOS_PER_SEC)
        );
        assert_eq!(parse_bound("-1"), Some(-NANOS_PER_SEC));
        assert_eq!(parse_bound("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_bound("-99999999999999999999999"), Some(i64::MIN));
        assert_eq!(
            parse_bound("2020-02-25T14:30:00Z"),
            Some(1_582_641_000 * NANOS_PER_SEC)
        );
        assert_eq!(
            parse_bound("2020-02-25t15:30:00.5+01:00"),
            Some(1_582_641_000 * NANOS_PER_SEC + 500_000_000)
        );
        // Leap second at the end of a UTC day.
        assert!(parse_bound("2016-12-31T23:59:60Z").is_some());
        assert_eq!(parse_bound("0001-01-01T00:00:00Z"), Some(i64::MIN));
        assert_eq!(parse_bound("9999-12-31T23:59:59Z"), Some(i64::MAX));
        for bad in [
            "",
            "+",
            " 1582641000",
            "1582641000 ",
            "1.5",
            "2020-02-25 14:30:00Z",
            "2020-02-25x14:30:00Z",
            "2020-02-30T00:00:00Z",
            "2020-02-25T24:00:00Z",
            "2020-02-25T14:30:00",
            "2020-02-25T14:30:00+24:00",
            "2020-02-25T12:00:60Z",
            "yesterday",
        ] {
            assert_eq!(parse_bound(bad), None, "{bad:?}");
        }
    }
}
