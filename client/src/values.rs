//! The checks of argument values the operations rely on: JSON payloads, status names,
//! entity ids. Each error names the flag or argument, as a usage error (exit 2).

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

/// Checks that a flag's value is JSON; the error names the flag.
pub fn validate_json(flag: &str, text: &str) -> Result<String, ClientError> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| text.to_owned())
        .map_err(|error| ClientError::Usage(format!("invalid JSON in {flag}: {error}")))
}

/// The canonical form of an entity id (`@Counter@K` is `@counter@K`); the error names the
/// id and the expected form.
pub fn entity_id(text: &str) -> Result<String, ClientError> {
    EntityInstanceId::parse(text)
        .map(|id| id.to_string())
        .map_err(|error| ClientError::Usage(format!("invalid entity id: {error}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::status_name;

    #[test]
    fn invalid_json_names_the_flag() {
        let error = validate_json("--input", "{nope").unwrap_err();
        assert!(error.to_string().contains("--input"));
        assert_eq!(error.exit_code(), 2);
        assert_eq!(validate_json("--data", " [1, 2] ").unwrap(), " [1, 2] ");
    }

    #[test]
    fn entity_ids_are_canonical_or_refused() {
        assert_eq!(entity_id("@Counter@K").unwrap(), "@counter@K");
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
