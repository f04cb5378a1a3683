//! The `errorType` names the SDK and the host themselves produce. They are stable:
//! backends, dashboards and tests may match on them.
//!
//! | Name | When |
//! |---|---|
//! | [`TASK_FAILED`] `TaskFailed` | an orchestrator let a failed durable task (an activity, a sub-orchestration) propagate; `innerFailure` holds the task's own failure |
//! | [`NON_DETERMINISM`] `NonDeterminism` | the orchestrator code no longer makes the calls its history recorded (code changed, or non-deterministic logic) |
//! | [`ORCHESTRATOR_NOT_REGISTERED`] `OrchestratorNotRegistered` | no plugin has an orchestrator of the requested name |
//! | [`ACTIVITY_NOT_REGISTERED`] `ActivityNotRegistered` | no plugin has an activity of the requested name |
//! | [`ENTITY_NOT_REGISTERED`] `EntityNotRegistered` | no plugin has an entity of the requested name |
//! | [`PLUGIN_PANIC`] `PluginPanic` | user code panicked (the message is the panic message), or a plugin answered something the host cannot read |
//! | [`INVALID_INPUT`] `InvalidInput` | a payload (input, result, event data) is not valid JSON for the Rust type that reads it, a request could not be decoded, or an entity name, key or id is invalid ([`InvalidEntityId`](crate::entity::InvalidEntityId)) |
//! | [`ORCHESTRATION_STATE_ERROR`] `OrchestrationStateError` | the request itself is unusable (e.g. no new events) |
//! | [`NON_DURABLE_AWAIT`] `NonDurableAwait` | an orchestrator awaited something other than a durable task (a tokio timer, a channel, I/O) |
//! | [`OUTPUT_NOT_SERIALIZABLE`] `OutputNotSerializable` | a value the SDK must send (orchestration output, custom status) failed to serialize to JSON |
//! | [`TASK_CANCELLED`] `TaskCancelled` | an orchestrator awaited an event wait it had cancelled |
//! | [`CRITICAL_SECTION_VIOLATION`] `CriticalSectionViolation` | an orchestrator broke a rule of its critical section (`lock_entities`): a nested lock, a call before the grant, to an entity not locked or already being called, a signal to a locked entity |
//! | [`CONTINUED_AS_NEW`] `ContinuedAsNew` | the `Err` that `OrchestrationContext::continue_as_new` returns for the orchestrator to return; the engine knows it is not a failure, so it is never reported |
//! | [`VERSION_MISMATCH`] `VersionMismatch` | the orchestration's version is not one the worker serves |
//! | [`UNKNOWN_ENTITY_OPERATION`] `UnknownEntityOperation` | a class entity was asked for an operation it does not have |
//! | [`ACTIVITY_TIMEOUT`] `ActivityTimeout` | the host stopped waiting for an activity that ran past its timeout (`[worker] activity_timeout`, or the call's own); retriable |
//! | [`PLUGIN_CRASHED`] `PluginCrashed` | the host refused a work item that crashed its plugin (and, in process, the host) `[worker] max_crashes` times; not retriable |
//!
//! Errors a plugin creates itself carry whatever type name it gives them, or the Rust
//! type name of the error converted with `?`.
//!
//! # Examples
//!
//! Telling the SDK's own failures apart from an activity's failure:
//!
//! ```
//! use durabletask_abi::error_types;
//! use durabletask_proto::TaskFailureDetails;
//!
//! fn is_bug_in_plugin(failure: &TaskFailureDetails) -> bool {
//!     matches!(
//!         failure.error_type.as_str(),
//!         error_types::PLUGIN_PANIC
//!             | error_types::NON_DETERMINISM
//!             | error_types::NON_DURABLE_AWAIT
//!     )
//! }
//!
//! let failure = |error_type: &str| TaskFailureDetails {
//!     error_type: error_type.into(),
//!     ..Default::default()
//! };
//! assert!(is_bug_in_plugin(&failure("PluginPanic")));
//! assert!(!is_bug_in_plugin(&failure("PaymentDeclined")));
//! ```

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
/// An awaited timer or event wait was cancelled.
pub const TASK_CANCELLED: &str = "TaskCancelled";
/// A rule of an orchestration's critical section was broken.
pub const CRITICAL_SECTION_VIOLATION: &str = "CriticalSectionViolation";
/// The marker error `continue_as_new` returns; never reported as a failure.
pub const CONTINUED_AS_NEW: &str = "ContinuedAsNew";
/// The orchestration's version is not one the worker serves (the worker's versioning
/// settings); never retried. The name is shared by every Durable Task SDK.
pub const VERSION_MISMATCH: &str = "VersionMismatch";
/// The `errorType` of an operation a class entity does not have.
pub const UNKNOWN_ENTITY_OPERATION: &str = "UnknownEntityOperation";
/// The `errorType` of an activity the host failed because it ran past its timeout. The
/// host cannot stop the plugin's code; it stops waiting and ignores a late result.
pub const ACTIVITY_TIMEOUT: &str = "ActivityTimeout";
/// The `errorType` of a work item the host refused to run again because it crashed its
/// plugin (for an in-process plugin, the whole host) `[worker] max_crashes` times: an
/// orchestration step, an activity or every operation of an entity batch. Not
/// retriable: running it again would crash again.
pub const PLUGIN_CRASHED: &str = "PluginCrashed";
