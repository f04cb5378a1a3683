//! One flag's text to its checked value: tags, counts, durations, statuses, paging, JSON.
//! Each error is a usage error naming the flag, raised before anything is connected.

use std::collections::HashMap;
use std::time::Duration;

use durabletask_proto::OrchestrationStatus;

use super::PagingArgs;
use crate::{ClientError, JsonText, Paging, parse_status};

/// A required argument that must not be empty (an empty operation name reaches no code).
pub(super) fn non_empty(name: &str, value: String) -> Result<String, ClientError> {
    if value.is_empty() {
        Err(ClientError::Usage(format!("{name} must not be empty")))
    } else {
        Ok(value)
    }
}

/// An optional JSON flag (`--input`, `--data`, `--output`).
pub(super) fn json(flag: &str, value: Option<String>) -> Result<Option<JsonText>, ClientError> {
    value.map(|text| JsonText::parse(flag, text)).transpose()
}

/// `--tag KEY=VALUE` flags as a map: split at the first `=` (the value may hold more, or
/// be empty); a flag without `=`, with an empty key, or repeating a key is a usage error.
pub(super) fn tags(tags: &[String]) -> Result<HashMap<String, String>, ClientError> {
    let mut parsed = HashMap::with_capacity(tags.len());
    for tag in tags {
        let Some((key, value)) = tag.split_once('=') else {
            return Err(ClientError::Usage(format!(
                "invalid --tag '{tag}': expected KEY=VALUE"
            )));
        };
        if key.is_empty() {
            return Err(ClientError::Usage(format!(
                "invalid --tag '{tag}': the key before '=' is empty"
            )));
        }
        if parsed.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(ClientError::Usage(format!(
                "invalid --tag '{tag}': the key '{key}' is given twice"
            )));
        }
    }
    Ok(parsed)
}

/// `--status` flags (repeated or comma-separated; blanks ignored), any case.
pub(super) fn statuses(names: &[String]) -> Result<Vec<OrchestrationStatus>, ClientError> {
    names
        .iter()
        .filter(|name| !name.trim().is_empty())
        .map(|name| parse_status("--status", name))
        .collect()
}

/// The paging flags, once the counts are known to be positive.
pub(super) fn paging(paging: PagingArgs) -> Result<Paging, ClientError> {
    Ok(Paging {
        limit: positive("--limit", paging.limit)?,
        page_size: positive("--page-size", paging.page_size)?,
        continuation_token: paging.continuation_token,
    })
}

fn positive(flag: &str, value: usize) -> Result<usize, ClientError> {
    if value == 0 {
        Err(ClientError::Usage(format!(
            "invalid {flag}: expected a positive number, got 0"
        )))
    } else {
        Ok(value)
    }
}

/// A positive number of seconds (`--timeout`).
pub(super) fn seconds(flag: &str, value: f64) -> Result<Duration, ClientError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "invalid {flag}: expected a positive number of seconds, got {value}"
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn pages(limit: usize, page_size: usize, continuation_token: Option<&str>) -> PagingArgs {
        PagingArgs {
            limit,
            page_size,
            continuation_token: continuation_token.map(str::to_owned),
        }
    }

    #[test]
    fn tags_are_key_value_pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            tags(&strings(&["team=a", "expr=x=1", "empty="])).unwrap(),
            HashMap::from([
                ("team".to_owned(), "a".to_owned()),
                ("expr".to_owned(), "x=1".to_owned()),
                ("empty".to_owned(), String::new()),
            ])
        );
        assert!(tags(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_bad_tag_is_a_usage_error_naming_the_flag() {
        for (tag, reason) in [
            ("novalue", "expected KEY=VALUE"),
            ("=x", "the key before '=' is empty"),
        ] {
            let error = tags(&[tag.to_owned()]).unwrap_err();
            assert!(matches!(error, ClientError::Usage(_)), "{error}");
            assert_eq!(error.exit_code(), 2);
            let message = error.to_string();
            assert!(message.contains("--tag"), "{message}");
            assert!(message.contains(reason), "{message}");
        }
        let error = tags(&strings(&["k=1", "k=2"])).unwrap_err();
        assert!(error.to_string().contains("given twice"), "{error}");
    }

    #[test]
    fn a_bad_status_names_the_flag_and_the_accepted_names() {
        let error = statuses(&strings(&["COMPLETED", "DONE"])).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains("--status"), "{message}");
        assert!(message.contains("'DONE'"), "{message}");
        for name in [
            "RUNNING",
            "COMPLETED",
            "CONTINUED_AS_NEW",
            "FAILED",
            "CANCELED",
            "TERMINATED",
            "PENDING",
            "SUSPENDED",
        ] {
            assert!(message.contains(name), "{name} missing from {message}");
        }
    }

    #[test]
    fn no_status_means_any_status_and_blanks_are_ignored() {
        assert!(statuses(&[]).unwrap().is_empty());
        assert_eq!(
            statuses(&strings(&["", " running "])).unwrap(),
            vec![OrchestrationStatus::Running]
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let error = paging(pages(0, 10, None)).unwrap_err();
        assert!(error.to_string().contains("--limit"), "{error}");
        let error = paging(pages(10, 0, None)).unwrap_err();
        assert!(error.to_string().contains("--page-size"), "{error}");
        let kept = paging(pages(5, 2, Some("10"))).unwrap();
        assert_eq!(kept.continuation_token.as_deref(), Some("10"));
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(
            seconds("--timeout", 1.5).unwrap(),
            Duration::from_millis(1_500)
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let error = seconds("--timeout", bad).unwrap_err();
            assert!(matches!(error, ClientError::Usage(_)), "{error}");
            assert!(
                error.to_string().starts_with("invalid --timeout: "),
                "{error}"
            );
        }
    }

    #[test]
    fn json_flags_are_checked_and_kept_as_given() {
        assert_eq!(json("--input", None).unwrap(), None);
        let kept = json("--input", Some("{\"a\": 1}".to_owned())).unwrap();
        assert_eq!(kept.unwrap().as_str(), "{\"a\": 1}");
        let error = json("--data", Some("{".to_owned())).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid JSON in --data: "),
            "{error}"
        );
        assert!(
            non_empty("OP", String::new())
                .unwrap_err()
                .to_string()
                .contains("OP must not be empty")
        );
    }
}
