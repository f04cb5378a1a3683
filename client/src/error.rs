//! Why a client operation failed: each kind has its exit code and the JSON printed for it.

use std::time::Duration;

use serde_json::{Value, json};
use tonic::Code;

/// Why an operation failed. Each kind has its own exit code and JSON shape.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A bad argument (invalid JSON, bad endpoint). Exit 2.
    #[error("{0}")]
    Usage(String),
    /// The backend could not be reached or refused the call. Exit 2.
    #[error("{operation} on the backend at {endpoint} failed: {code:?}: {message}")]
    Rpc {
        endpoint: String,
        operation: &'static str,
        code: Code,
        message: String,
    },
    /// Waiting for completion took longer than allowed. Exit 3.
    #[error("instance '{instance_id}' did not complete within {timeout:?}")]
    Timeout {
        instance_id: String,
        timeout: Duration,
    },
    /// No such instance. Exit 4.
    #[error("instance '{instance_id}' does not exist")]
    NotFound { instance_id: String },
    /// No such entity (never signalled, or purged). Exit 4, like an unknown instance.
    #[error("entity '{entity_id}' does not exist")]
    EntityNotFound { entity_id: String },
    /// `start`: StartInstance succeeded (the instance WAS started), but the read that followed
    /// (GetInstance, or the wait of `--wait`) failed. Exit 5, or 3 when the wait timed out.
    #[error("instance '{instance_id}' was started, but {source}")]
    Started {
        instance_id: String,
        source: Box<ClientError>,
    },
    /// The instance exists but is in the wrong state for the operation (rewinding one that
    /// did not fail, restarting one still running). Exit 2.
    #[error("{message}")]
    WrongState {
        instance_id: String,
        message: String,
    },
}

impl ClientError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) | ClientError::Rpc { .. } | ClientError::WrongState { .. } => 2,
            ClientError::Timeout { .. } => 3,
            ClientError::NotFound { .. } | ClientError::EntityNotFound { .. } => 4,
            ClientError::Started { source, .. } => match **source {
                ClientError::Timeout { .. } => 3,
                _ => 5,
            },
        }
    }

    /// The object printed on stdout for this error.
    pub fn to_json(&self) -> Value {
        match self {
            ClientError::NotFound { instance_id } => {
                json!({ "instance_id": instance_id, "exists": false })
            }
            ClientError::EntityNotFound { entity_id } => {
                json!({ "entity_id": entity_id, "exists": false })
            }
            ClientError::Timeout { instance_id, .. }
            | ClientError::WrongState { instance_id, .. } => {
                json!({ "error": self.to_string(), "instance_id": instance_id })
            }
            ClientError::Started { instance_id, .. } => {
                json!({ "error": self.to_string(), "instance_id": instance_id, "started": true })
            }
            ClientError::Usage(_) | ClientError::Rpc { .. } => json!({ "error": self.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn error_shapes() {
        let not_found = ClientError::NotFound {
            instance_id: "x".into(),
        };
        assert_eq!(
            not_found.to_json(),
            json!({"instance_id": "x", "exists": false})
        );
        assert_eq!(not_found.exit_code(), 4);
        let timeout = ClientError::Timeout {
            instance_id: "x".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!(timeout.exit_code(), 3);
        let started = ClientError::Started {
            instance_id: "i".into(),
            source: Box::new(ClientError::Rpc {
                endpoint: "e".into(),
                operation: "GetInstance",
                code: Code::Unavailable,
                message: "gone".into(),
            }),
        };
        assert_eq!(started.exit_code(), 5);
        assert_eq!(started.to_json()["started"], true);
        assert_eq!(started.to_json()["instance_id"], "i");
        assert!(started.to_string().contains("'i' was started"), "{started}");
        assert_eq!(timeout.to_json()["instance_id"], "x");
        let no_entity = ClientError::EntityNotFound {
            entity_id: "@counter@k".into(),
        };
        assert_eq!(
            no_entity.to_json(),
            json!({"entity_id": "@counter@k", "exists": false})
        );
        assert_eq!(no_entity.exit_code(), 4);
        assert_eq!(no_entity.to_string(), "entity '@counter@k' does not exist");
    }
}
