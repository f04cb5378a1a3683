//! Conversions between `SystemTime` and protobuf `Timestamp`s, total over hostile input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost_types::Timestamp;

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// A protobuf timestamp as a `SystemTime`. Out-of-range values (garbage history) clamp
/// to the epoch rather than fail: the clock must always have a value.
pub(crate) fn from_timestamp(ts: &Timestamp) -> SystemTime {
    // Normalise nanos into 0..1e9 so the arithmetic below is exact.
    let total_nanos = i128::from(ts.seconds) * i128::from(NANOS_PER_SEC) + i128::from(ts.nanos);
    let secs = total_nanos.div_euclid(i128::from(NANOS_PER_SEC));
    let nanos = total_nanos.rem_euclid(i128::from(NANOS_PER_SEC));
    let nanos = u32::try_from(nanos).unwrap_or(0);
    let time = if secs >= 0 {
        u64::try_from(secs)
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::new(s, nanos)))
    } else {
        u64::try_from(-secs).ok().and_then(|s| {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(s))
                .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        })
    };
    time.unwrap_or(UNIX_EPOCH)
}

/// A `SystemTime` as a protobuf timestamp.
pub(crate) fn to_timestamp(time: SystemTime) -> Timestamp {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => Timestamp {
            seconds: i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            nanos: i32::try_from(after.subsec_nanos()).unwrap_or(0),
        },
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            let sub = i64::from(before.subsec_nanos());
            if sub == 0 {
                Timestamp {
                    seconds: -secs,
                    nanos: 0,
                }
            } else {
                Timestamp {
                    seconds: -secs - 1,
                    nanos: i32::try_from(NANOS_PER_SEC - sub).unwrap_or(0),
                }
            }
        }
    }
}

/// `%Y-%m-%dT%H:%M:%S.%fZ` with microseconds truncated, as Python formats the clock for
/// `new_uuid` (spec §4.11). Times before the epoch format as the epoch.
pub(crate) fn format_utc_micros(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let micros = since.subsec_micros();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (seconds, nanos) in [(0, 0), (1_700_000_000, 123_456_789), (-5, 500)] {
            let ts = Timestamp { seconds, nanos };
            assert_eq!(to_timestamp(from_timestamp(&ts)), ts);
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        for (seconds, nanos) in [(i64::MAX, i32::MAX), (i64::MIN, i32::MIN), (0, -1)] {
            let _ = to_timestamp(from_timestamp(&Timestamp { seconds, nanos }));
        }
    }

    #[test]
    fn formats_like_python() {
        let t = from_timestamp(&Timestamp {
            seconds: 1_714_979_289,
            nanos: 123_456_999,
        });
        assert_eq!(format_utc_micros(t), "2024-05-06T07:08:09.123456Z");
    }
}
