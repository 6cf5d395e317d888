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
            to_rfc3339(1_582_641_000 * NANOS_PER_SEC),
            "2020-02-25T14:30:00Z"
        );
    }
}
