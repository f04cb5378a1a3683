//! The `OrchestratorRequest.properties` keys through which the host passes its worker
//! settings to the plugins' replay engines. The host sets them on every orchestration
//! request; its values win over anything the backend put under the same keys.

/// The request property under which the host passes the maximum timer interval, in
/// seconds, as a `google.protobuf.Value` number (`OrchestratorRequest.properties`).
///
/// A timer longer than this is created as a chain of shorter timers, each at most this
/// long, because some backends cannot store timers far in the future. Absent, zero,
/// negative or not a number: timers are never split (the default).
///
/// # Examples
///
/// How a host asks for 3-day chunks:
///
/// ```
/// use durabletask_abi::properties::MAXIMUM_TIMER_INTERVAL_PROPERTY;
/// use durabletask_proto::{self as proto, prost_types};
///
/// let mut request = proto::OrchestratorRequest::default();
/// request.properties.insert(
///     MAXIMUM_TIMER_INTERVAL_PROPERTY.to_owned(),
///     prost_types::Value {
///         kind: Some(prost_types::value::Kind::NumberValue(3.0 * 24.0 * 3600.0)),
///     },
/// );
/// ```
pub const MAXIMUM_TIMER_INTERVAL_PROPERTY: &str = "durabletask.maximum_timer_interval_seconds";

/// The request property under which the host passes the worker's default version, as a
/// `google.protobuf.Value` string (`OrchestratorRequest.properties`, protocol.md §5).
///
/// A sub-orchestration started without a version (or with an empty one) is started with
/// this version instead (spec §4.3); an explicit version always wins. The orchestration's
/// own version, and that of the execution it continues as, are never affected. Absent,
/// empty or not a string: children without a version get none (the default).
///
/// # Examples
///
/// How a host passes its default version, `"2.0.0"`:
///
/// ```
/// use durabletask_abi::properties::DEFAULT_VERSION_PROPERTY;
/// use durabletask_proto::{self as proto, prost_types};
///
/// let mut request = proto::OrchestratorRequest::default();
/// request.properties.insert(
///     DEFAULT_VERSION_PROPERTY.to_owned(),
///     prost_types::Value {
///         kind: Some(prost_types::value::Kind::StringValue("2.0.0".to_owned())),
///     },
/// );
/// ```
pub const DEFAULT_VERSION_PROPERTY: &str = "durabletask.default_version";

/// The `ScheduleTaskAction.tags` key (and so `ActivityRequest.tags`) that carries an
/// activity call's own timeout, in seconds, as a decimal number (`0`: none). The SDK's
/// `ActivityOptions::timeout` sets it; the host prefers it to its `[worker]
/// activity_timeout`. It reaches the host only through a backend that passes tags on to
/// the activity (the embedded backend does).
pub const ACTIVITY_TIMEOUT_TAG: &str = "durabletask.activity_timeout_seconds";
