//! Errors as user code sees them ([`Error`], [`TaskFailedError`]) and as the protocol
//! carries them ([`FailureDetails`] ⇄ `TaskFailureDetails`).

use std::any::Any;
use std::fmt;

use durabletask_proto as proto;

/// The `errorType` names the SDK itself produces. They are stable: backends, dashboards and
/// tests may match on them.
///
/// | Name | When |
/// |---|---|
/// | [`TASK_FAILED`] `TaskFailed` | an orchestrator let a failed durable task (an activity) propagate; `innerFailure` holds the task's own failure |
/// | [`NON_DETERMINISM`] `NonDeterminism` | the orchestrator code no longer makes the calls its history recorded (code changed, or non-deterministic logic) |
/// | [`ORCHESTRATOR_NOT_REGISTERED`] `OrchestratorNotRegistered` | the plugin has no orchestrator of the requested name |
/// | [`ACTIVITY_NOT_REGISTERED`] `ActivityNotRegistered` | the plugin has no activity of the requested name |
/// | [`ENTITY_NOT_REGISTERED`] `EntityNotRegistered` | the plugin has no entity of the requested name |
/// | [`PLUGIN_PANIC`] `PluginPanic` | user code panicked; the message is the panic message |
/// | [`INVALID_INPUT`] `InvalidInput` | a payload (input, result, event data) is not valid JSON for the Rust type that reads it, or a request could not be decoded |
/// | [`ORCHESTRATION_STATE_ERROR`] `OrchestrationStateError` | the request itself is unusable (e.g. no new events) |
/// | [`NON_DURABLE_AWAIT`] `NonDurableAwait` | an orchestrator awaited something other than a durable task (a tokio timer, a channel, I/O) |
/// | [`OUTPUT_NOT_SERIALIZABLE`] `OutputNotSerializable` | a value the SDK must send (orchestration output, custom status) failed to serialize to JSON |
pub mod error_types {
    /// An unhandled failed durable task.
    pub const TASK_FAILED: &str = "TaskFailed";
    /// History and code disagree.
    pub const NON_DETERMINISM: &str = "NonDeterminism";
    /// Unknown orchestrator name.
    pub const ORCHESTRATOR_NOT_REGISTERED: &str = "OrchestratorNotRegistered";
    /// Unknown activity name.
    pub const ACTIVITY_NOT_REGISTERED: &str = "ActivityNotRegistered";
    /// Unknown entity name.
    pub const ENTITY_NOT_REGISTERED: &str = "EntityNotRegistered";
    /// User code panicked.
    pub const PLUGIN_PANIC: &str = "PluginPanic";
    /// A payload does not fit the type that reads it.
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// The request cannot be processed.
    pub const ORCHESTRATION_STATE_ERROR: &str = "OrchestrationStateError";
    /// An orchestrator awaited a non-durable future.
    pub const NON_DURABLE_AWAIT: &str = "NonDurableAwait";
    /// A value could not be serialized to JSON.
    pub const OUTPUT_NOT_SERIALIZABLE: &str = "OutputNotSerializable";
}

/// How deep an inner-failure chain may go, both from `source()` and from the wire: deep
/// enough for any real cause chain, small enough that hostile input cannot blow the stack.
const MAX_INNER_DEPTH: usize = 10;

/// A failure as the protocol carries it (`TaskFailureDetails`), in plain Rust.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FailureDetails {
    /// A type name (e.g. `TaskFailed`, `std::io::error::Error`).
    pub error_type: String,
    /// The human-readable message.
    pub message: String,
    /// A stack trace, when one is available.
    pub stack_trace: Option<String>,
    /// The cause, if any.
    pub inner: Option<Box<FailureDetails>>,
    /// `true` asks retry policies not to retry.
    pub is_non_retriable: bool,
}

impl FailureDetails {
    /// A failure with a type and a message, no stack, no cause.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            ..Self::default()
        }
    }

    /// The protocol form. The message is never empty: the reference backend reads an
    /// empty `errorMessage` as "no failure", so an empty message falls back to the type.
    pub fn to_proto(&self) -> proto::TaskFailureDetails {
        self.to_proto_at(0)
    }

    fn to_proto_at(&self, depth: usize) -> proto::TaskFailureDetails {
        let error_message = if !self.message.is_empty() {
            self.message.clone()
        } else if !self.error_type.is_empty() {
            self.error_type.clone()
        } else {
            "unknown error".to_owned()
        };
        proto::TaskFailureDetails {
            error_type: self.error_type.clone(),
            error_message,
            stack_trace: self.stack_trace.clone(),
            inner_failure: match &self.inner {
                Some(inner) if depth < MAX_INNER_DEPTH => {
                    Some(Box::new(inner.to_proto_at(depth + 1)))
                }
                _ => None,
            },
            is_non_retriable: self.is_non_retriable,
            properties: Default::default(),
        }
    }

    /// Reads the protocol form (the chain is cut after a few levels).
    pub fn from_proto(details: &proto::TaskFailureDetails) -> Self {
        Self::from_proto_at(details, 0)
    }

    fn from_proto_at(details: &proto::TaskFailureDetails, depth: usize) -> Self {
        Self {
            error_type: details.error_type.clone(),
            message: details.error_message.clone(),
            stack_trace: details.stack_trace.clone(),
            inner: match &details.inner_failure {
                Some(inner) if depth < MAX_INNER_DEPTH => {
                    Some(Box::new(Self::from_proto_at(inner, depth + 1)))
                }
                _ => None,
            },
            is_non_retriable: details.is_non_retriable,
        }
    }
}

/// A durable task (an activity) that failed, as the orchestrator sees it when it awaits
/// the task.
#[derive(Debug, Clone)]
pub struct TaskFailedError {
    /// The task's action id.
    pub task_id: i32,
    /// The wrapped message, e.g. `"<instanceId>: Activity task #<id> failed: <inner message>"`.
    pub message: String,
    /// The failure as the task itself reported it.
    pub details: FailureDetails,
}

impl fmt::Display for TaskFailedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskFailedError {}

/// The error type orchestrators and activities return.
///
/// Like `anyhow::Error`, any `std::error::Error` converts into it with `?`, keeping its
/// type name, message and `source()` chain. It deliberately does not implement
/// `std::error::Error` itself, which is what makes that blanket conversion possible.
pub struct Error {
    details: FailureDetails,
}

impl Error {
    /// An error with an explicit type name and message.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            details: FailureDetails::new(error_type, message),
        }
    }

    /// An error of type `Error` with this message.
    pub fn message(message: impl Into<String>) -> Self {
        Self::new("Error", message)
    }

    /// Wraps failure details as they are.
    pub fn from_details(details: FailureDetails) -> Self {
        Self { details }
    }

    /// Marks the failure as not worth retrying (`isNonRetriable`).
    pub fn non_retriable(mut self) -> Self {
        self.details.is_non_retriable = true;
        self
    }

    /// The failure as it will be reported.
    pub fn details(&self) -> &FailureDetails {
        &self.details
    }

    /// The failure as it will be reported.
    pub fn into_details(self) -> FailureDetails {
        self.details
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        // A failed task propagated with `?` keeps the task's own failure as the cause, so
        // the orchestration's failure says both what was awaited and why it failed.
        if let Some(task) = (&error as &dyn Any).downcast_ref::<TaskFailedError>() {
            return Self {
                details: FailureDetails {
                    error_type: error_types::TASK_FAILED.to_owned(),
                    message: task.message.clone(),
                    stack_trace: None,
                    inner: Some(Box::new(task.details.clone())),
                    is_non_retriable: false,
                },
            };
        }
        Self {
            details: FailureDetails {
                error_type: std::any::type_name::<E>().to_owned(),
                message: error.to_string(),
                stack_trace: None,
                inner: source_chain(error.source(), 0),
                is_non_retriable: false,
            },
        }
    }
}

/// The `source()` chain as nested details. Sources are `dyn Error`, whose concrete type
/// name is unknowable, hence the generic type name.
fn source_chain(
    source: Option<&(dyn std::error::Error + 'static)>,
    depth: usize,
) -> Option<Box<FailureDetails>> {
    let source = source?;
    if depth >= MAX_INNER_DEPTH {
        return None;
    }
    Some(Box::new(FailureDetails {
        error_type: "Error".to_owned(),
        message: source.to_string(),
        stack_trace: None,
        inner: source_chain(source.source(), depth + 1),
        is_non_retriable: false,
    }))
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.details.error_type, self.details.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("error_type", &self.details.error_type)
            .field("message", &self.details.message)
            .field("inner", &self.details.inner)
            .field("is_non_retriable", &self.details.is_non_retriable)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn from_std_error_keeps_type_message_and_chain() {
        let error = Error::from(Outer(std::io::Error::other("disk on fire")));
        let details = error.details();
        assert!(
            details.error_type.ends_with("Outer"),
            "{}",
            details.error_type
        );
        assert_eq!(details.message, "outer");
        assert_eq!(
            details.inner.as_ref().map(|i| i.message.as_str()),
            Some("disk on fire")
        );
    }

    #[test]
    fn task_failed_becomes_task_failed_with_inner() {
        let task = TaskFailedError {
            task_id: 1,
            message: "i: Activity task #1 failed: boom".into(),
            details: FailureDetails::new("X", "boom"),
        };
        let details = Error::from(task).into_details();
        assert_eq!(details.error_type, "TaskFailed");
        assert_eq!(details.message, "i: Activity task #1 failed: boom");
        assert_eq!(details.inner.map(|i| i.message), Some("boom".to_owned()));
    }

    #[test]
    fn to_proto_never_sends_an_empty_message() {
        assert_eq!(FailureDetails::new("T", "").to_proto().error_message, "T");
        assert!(
            !FailureDetails::default()
                .to_proto()
                .error_message
                .is_empty()
        );
    }

    #[test]
    fn proto_round_trip() {
        let mut details = FailureDetails::new("A", "a").non_retriable_for_test();
        details.inner = Some(Box::new(FailureDetails::new("B", "b")));
        details.stack_trace = Some("trace".into());
        assert_eq!(FailureDetails::from_proto(&details.to_proto()), details);
    }

    impl FailureDetails {
        fn non_retriable_for_test(mut self) -> Self {
            self.is_non_retriable = true;
            self
        }
    }
}
