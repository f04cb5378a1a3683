//! When a delayed signal is due: `--at` takes an RFC 3339 timestamp or a delay from now.
//!
//! Timestamps must carry their offset (`Z` or `+01:00`): a bare local time would be read
//! as UTC by the backend and silently fire hours early or late.

use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::ClientError;

/// The delay units `+DELAY` accepts, with their lengths (humantime's short names).
const UNITS: [(&str, Duration); 15] = [
    ("ms", Duration::from_millis(1)),
    ("s", Duration::from_secs(1)),
    ("sec", Duration::from_secs(1)),
    ("secs", Duration::from_secs(1)),
    ("m", Duration::from_secs(60)),
    ("min", Duration::from_secs(60)),
    ("mins", Duration::from_secs(60)),
    ("h", Duration::from_secs(3_600)),
    ("hr", Duration::from_secs(3_600)),
    ("hrs", Duration::from_secs(3_600)),
    ("hour", Duration::from_secs(3_600)),
    ("hours", Duration::from_secs(3_600)),
    ("d", Duration::from_secs(86_400)),
    ("day", Duration::from_secs(86_400)),
    ("days", Duration::from_secs(86_400)),
];

/// The time `text` names: an RFC 3339 timestamp (`2026-11-28T12:00:00Z`), or `+` and a
/// delay after `now` (`+30s`, `+2m`, `+1h30m`). The error names the flag and both forms.
pub fn signal_time(flag: &str, text: &str, now: SystemTime) -> Result<SystemTime, ClientError> {
    let parsed = match text.trim().strip_prefix('+') {
        Some(delay) => parse_delay(delay).and_then(|delay| now.checked_add(delay)),
        None => OffsetDateTime::parse(text.trim(), &Rfc3339)
            .ok()
            .map(SystemTime::from),
    };
    parsed.ok_or_else(|| {
        ClientError::Usage(format!(
            "invalid {flag} '{text}': expected an RFC 3339 timestamp with its offset \
             (e.g. 2026-11-28T12:00:00Z) or '+' and a delay from now (e.g. +30s, +2m, \
             +1h30m; units ms, s, m, h, d)"
        ))
    })
}

/// A delay such as `30s`, `2m` or `1h 30m`: whole numbers, each followed by a unit.
fn parse_delay(text: &str) -> Option<Duration> {
    let mut rest = text.trim_start();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let (part, after) = next_part(rest)?;
        total = total.checked_add(part)?;
        rest = after.trim_start();
    }
    Some(total)
}

/// The first `<number><unit>` of `text`, and what follows it.
fn next_part(text: &str) -> Option<(Duration, &str)> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, after) = text.split_at(digits);
    let letters = after
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(after.len());
    let (unit, rest) = after.split_at(letters);
    let count = u32::try_from(number.parse::<u64>().ok()?).ok()?;
    let (_, length) = UNITS.iter().find(|(name, _)| *name == unit)?;
    Some((length.checked_mul(count)?, rest))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use prost_types::Timestamp;

    use super::*;

    fn at(text: &str) -> Result<Timestamp, ClientError> {
        signal_time("--at", text, SystemTime::UNIX_EPOCH).map(Timestamp::from)
    }

    #[test]
    fn timestamps_with_an_offset_are_accepted() {
        assert_eq!(
            at("2026-11-28T12:00:00Z").unwrap().to_string(),
            "2026-11-28T12:00:00Z"
        );
        assert_eq!(
            at("2026-11-28T13:00:00.5+01:00").unwrap().to_string(),
            "2026-11-28T12:00:00.500Z"
        );
    }

    #[test]
    fn delays_count_from_now() {
        assert_eq!(at("+30s").unwrap().seconds, 30);
        assert_eq!(at("+2m").unwrap().seconds, 120);
        assert_eq!(at("+1h30m").unwrap().seconds, 5_400);
        assert_eq!(at("+1h 30m 5s").unwrap().seconds, 5_405);
        let half = at("+1500ms").unwrap();
        assert_eq!((half.seconds, half.nanos), (1, 500_000_000));
    }

    #[test]
    fn anything_else_names_the_flag_and_both_forms() {
        for bad in [
            "",
            "+",
            "+30",
            "+s",
            "+3x",
            "30s",
            "-30s",
            "2026-11-28T12:00:00",
            "2026-11-28",
            "tomorrow",
            "+99999999999d",
        ] {
            let error = at(bad).unwrap_err();
            assert_eq!(error.exit_code(), 2);
            let message = error.to_string();
            assert!(message.contains("--at"), "{bad}: {message}");
            assert!(message.contains("RFC 3339"), "{bad}: {message}");
            assert!(message.contains("+30s"), "{bad}: {message}");
        }
    }
}
