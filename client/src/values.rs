//! The values the operations take that must be checked first: JSON payloads, W3C trace
//! parents, status names, entity ids. Each is checked once, where it is made; the error
//! names the flag or argument, as a usage error (exit 2).

use durabletask_abi::entity::EntityInstanceId;
use durabletask_proto::OrchestrationStatus;

use crate::ClientError;

/// The statuses `list --status` accepts, in protocol order.
const STATUS_NAMES: [(&str, OrchestrationStatus); 8] = [
    ("RUNNING", OrchestrationStatus::Running),
    ("COMPLETED", OrchestrationStatus::Completed),
    ("CONTINUED_AS_NEW", OrchestrationStatus::ContinuedAsNew),
    ("FAILED", OrchestrationStatus::Failed),
    ("CANCELED", OrchestrationStatus::Canceled),
    ("TERMINATED", OrchestrationStatus::Terminated),
    ("PENDING", OrchestrationStatus::Pending),
    ("SUSPENDED", OrchestrationStatus::Suspended),
];

/// A status by the name `status` prints (`COMPLETED`, ...), in any case; the error names
/// the flag and every accepted name.
pub fn parse_status(flag: &str, name: &str) -> Result<OrchestrationStatus, ClientError> {
    let wanted = name.trim().replace('-', "_");
    STATUS_NAMES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(&wanted))
        .map(|(_, status)| *status)
        .ok_or_else(|| {
            let accepted: Vec<&str> = STATUS_NAMES.iter().map(|(known, _)| *known).collect();
            ClientError::Usage(format!(
                "invalid {flag} '{name}': expected one of {} (in any case)",
                accepted.join(", ")
            ))
        })
}

/// A payload known to be JSON, kept as the text given: the backend stores what the user
/// wrote (a parsed and re-serialized value could reorder keys or round numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonText(String);

impl JsonText {
    /// `text`, if it is JSON; the error names the flag.
    pub fn parse(flag: &str, text: String) -> Result<Self, ClientError> {
        match serde_json::from_str::<serde::de::IgnoredAny>(&text) {
            Ok(_) => Ok(Self(text)),
            Err(error) => Err(ClientError::Usage(format!(
                "invalid JSON in {flag}: {error}"
            ))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A W3C `traceparent` value: `00-<32 hex, not all 0>-<16 hex, not all 0>-<2 hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent(String);

impl TraceParent {
    /// `value`, if it has the form above; the error names `--traceparent`.
    pub fn parse(value: String) -> Result<Self, ClientError> {
        let parts: Vec<&str> = value.split('-').collect();
        let hex = |part: &str, length: usize| {
            part.len() == length
                && part.bytes().all(|byte| byte.is_ascii_hexdigit())
                && part.bytes().any(|byte| byte != b'0')
        };
        let valid = parts.len() == 4
            && parts[0] == "00"
            && hex(parts[1], 32)
            && hex(parts[2], 16)
            && parts[3].len() == 2
            && parts[3].bytes().all(|byte| byte.is_ascii_hexdigit());
        if valid {
            Ok(Self(value))
        } else {
            Err(ClientError::Usage(format!(
                "invalid --traceparent \"{value}\": expected 00-<32 hex digits>-<16 hex digits>-<2 hex digits>"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// An entity id (`@name@key`; the name is case-insensitive, `@Counter@K` is
/// `@counter@K`); the error names the id and the expected form.
pub fn entity_id(text: &str) -> Result<EntityInstanceId, ClientError> {
    EntityInstanceId::parse(text)
        .map_err(|error| ClientError::Usage(format!("invalid entity id: {error}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::status_name;

    #[test]
    fn invalid_json_names_the_flag() {
        let error = JsonText::parse("--input", "{nope".to_owned()).unwrap_err();
        assert!(error.to_string().contains("--input"));
        assert_eq!(error.exit_code(), 2);
        let kept = JsonText::parse("--data", " [1, 2] ".to_owned()).unwrap();
        assert_eq!(kept.as_str(), " [1, 2] ");
    }

    #[test]
    fn a_traceparent_has_the_w3c_form() {
        let valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            TraceParent::parse(valid.to_owned()).unwrap().as_str(),
            valid
        );
        for bad in [
            "00-abc",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
        ] {
            let error = TraceParent::parse(bad.to_owned()).unwrap_err();
            assert_eq!(error.exit_code(), 2);
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("invalid --traceparent \"{bad}\"")),
                "{error}"
            );
        }
    }

    #[test]
    fn entity_ids_are_canonical_or_refused() {
        assert_eq!(entity_id("@Counter@K").unwrap().to_string(), "@counter@K");
        let error = entity_id("@counter@a@b").unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_string();
        assert!(message.contains("'@counter@a@b'"), "{message}");
        assert!(message.contains("@name@key"), "{message}");
    }

    #[test]
    fn statuses_parse_by_their_printed_names() {
        for status in [
            OrchestrationStatus::Running,
            OrchestrationStatus::Completed,
            OrchestrationStatus::ContinuedAsNew,
            OrchestrationStatus::Failed,
            OrchestrationStatus::Canceled,
            OrchestrationStatus::Terminated,
            OrchestrationStatus::Pending,
            OrchestrationStatus::Suspended,
        ] {
            let name = status_name(status as i32);
            assert_eq!(parse_status("--status", &name).unwrap(), status);
            assert_eq!(
                parse_status("--status", &name.to_lowercase()).unwrap(),
                status
            );
        }
        assert_eq!(
            parse_status("--status", "continued-as-new").unwrap(),
            OrchestrationStatus::ContinuedAsNew
        );
        let error = parse_status("--status", "ORCHESTRATION_STATUS_FOO").unwrap_err();
        assert_eq!(error.exit_code(), 2);
        assert!(error.to_string().contains("--status"), "{error}");
    }
}
