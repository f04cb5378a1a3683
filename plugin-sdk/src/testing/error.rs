//! Why a [`TestRuntime`](super::TestRuntime) call could not do what the test asked.

use durabletask_proto::OrchestrationStatus;

/// Why a call of the test kit failed. Its `Display` says what happened in words a failing
/// test can show as is.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::Registry;
/// use durabletask_sdk::testing::{TestError, TestRuntime};
///
/// let runtime = TestRuntime::new(Registry::new());
/// let error = runtime.output::<String>("nobody").unwrap_err();
/// assert!(matches!(error, TestError::UnknownInstance(_)));
/// assert_eq!(error.to_string(), "there is no orchestration instance 'nobody'");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestError {
    /// No orchestration instance has this id.
    #[error("there is no orchestration instance '{0}'")]
    UnknownInstance(String),
    /// `start_with_id` named an instance that already exists.
    #[error("orchestration instance '{0}' already exists")]
    AlreadyExists(String),
    /// The output was read of an instance that has not completed.
    #[error("orchestration instance '{instance_id}' has no output: it is {status:?}{failure}")]
    NotCompleted {
        /// The instance.
        instance_id: String,
        /// Its status.
        status: OrchestrationStatus,
        /// `": <type>: <message>"` when it failed, else empty.
        failure: String,
    },
    /// A value given to the test kit could not be serialized to JSON.
    #[error("the {what} could not be serialized to JSON: {source}")]
    Serialize {
        /// What was being serialized.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A recorded payload does not deserialize into the type the test asked for.
    #[error("the {what} does not deserialize into the requested type: {source}")]
    Deserialize {
        /// Which payload.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
    /// Not an entity id of the form `@name@key`.
    #[error("invalid entity id: {0}")]
    InvalidEntityId(String),
    /// The work never ran out: orchestrations or entities kept making new work for each
    /// other (a loop of continue-as-new without a timer, entities signalling each other
    /// forever). The number is how many work items ran in this call.
    #[error(
        "the test runtime ran {0} work items in one call without running out of work; \
         something keeps making new work (continue-as-new without a timer, entities \
         signalling each other)"
    )]
    Runaway(usize),
    /// The clock cannot move that far.
    #[error("the test clock cannot be advanced by {0:?}: the time would overflow")]
    ClockOverflow(std::time::Duration),
    /// A saved history could not be read.
    #[error("the saved history cannot be read: {0}")]
    SavedHistory(String),
}
