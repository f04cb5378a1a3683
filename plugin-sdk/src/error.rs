//! Errors as user code sees them ([`Error`], [`TaskFailedError`]) and as the protocol
//! carries them ([`FailureDetails`] ⇄ `TaskFailureDetails`).

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::fmt::{self, Write as _};
use std::panic::Location;

use durabletask_proto as proto;

use crate::entity::InvalidEntityId;

/// The `errorType` names the SDK itself produces, defined in `durabletask-abi` (the host
/// reports some of them too).
pub use durabletask_abi::error_types;

/// How deep an inner-failure chain may go, both from `source()` and from the wire: deep
/// enough for any real cause chain, small enough that hostile input cannot blow the stack.
const MAX_INNER_DEPTH: usize = 10;

/// A failure as the protocol carries it (`TaskFailureDetails`), in plain Rust.
///
/// This is what an [`Error`] reports ([`Error::details`]), what a failed activity looks
/// like from the orchestrator ([`TaskFailedError::details`]), and what clients see as the
/// orchestration's failure. Causes nest through [`inner`](Self::inner).
///
/// # Examples
///
/// ```
/// use durabletask_sdk::FailureDetails;
///
/// let mut failure = FailureDetails::new("PaymentDeclined", "card expired");
/// failure.inner = Some(Box::new(FailureDetails::new("HttpError", "402 Payment Required")));
///
/// // The protocol form, and back.
/// let wire = failure.to_proto();
/// assert_eq!(wire.error_type, "PaymentDeclined");
/// let inner = wire.inner_failure.as_ref().map(|i| i.error_message.as_str());
/// assert_eq!(inner, Some("402 Payment Required"));
/// assert_eq!(FailureDetails::from_proto(&wire), failure);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct FailureDetails {
    /// A type name (e.g. `TaskFailed`, `std::io::error::Error`).
    pub error_type: String,
    /// The human-readable message.
    pub message: String,
    /// Where the failure arose, when known. The SDK puts here the location of the `?` that
    /// converted an error into an [`Error`] (`at src/lib.rs:42:17`, with a backtrace
    /// after it when `RUST_BACKTRACE` asks for one: see [`Error`]'s `From` impl), or, for a
    /// `PluginPanic`, the panic's location and backtrace. Other SDKs put their own
    /// languages' stack traces here.
    pub stack_trace: Option<String>,
    /// The cause, if any.
    pub inner: Option<Box<FailureDetails>>,
    /// `true` asks retry policies not to retry.
    pub is_non_retriable: bool,
}

impl FailureDetails {
    /// A failure with a type and a message, no stack, no cause.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::FailureDetails;
    ///
    /// let failure = FailureDetails::new("Timeout", "the inventory service did not answer");
    /// assert_eq!(failure.error_type, "Timeout");
    /// assert!(failure.inner.is_none() && !failure.is_non_retriable);
    /// ```
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            ..Self::default()
        }
    }

    /// The protocol form. The message is never empty: the reference backend reads an
    /// empty `errorMessage` as "no failure", so an empty message falls back to the type.
    /// The inner-failure chain is cut after a few levels.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::FailureDetails;
    ///
    /// let wire = FailureDetails::new("Cancelled", "").to_proto();
    /// assert_eq!(wire.error_message, "Cancelled");
    /// ```
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
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{FailureDetails, proto};
    ///
    /// let wire = proto::TaskFailureDetails {
    ///     error_type: "Timeout".into(),
    ///     error_message: "no answer".into(),
    ///     is_non_retriable: true,
    ///     ..Default::default()
    /// };
    /// let failure = FailureDetails::from_proto(&wire);
    /// assert_eq!((failure.error_type.as_str(), failure.is_non_retriable), ("Timeout", true));
    /// ```
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
///
/// It is the error type of [`ActivityTask`](crate::orchestration::ActivityTask) and
/// [`EventTask`](crate::orchestration::EventTask). Match on it to handle the failure, or
/// let `?` turn it into an [`Error`] of type [`error_types::TASK_FAILED`] whose inner
/// failure is the task's own [`details`](Self::details).
///
/// # Examples
///
/// Handling a failed activity in an orchestrator:
///
/// ```
/// use durabletask_sdk::{Error, OrchestrationContext};
///
/// async fn ship(ctx: OrchestrationContext, order: String) -> Result<String, Error> {
///     match ctx.call_activity::<_, String>("ship_express", &order).await {
///         Ok(tracking) => Ok(tracking),
///         // A declined express shipment falls back to standard; anything else fails the
///         // orchestration (`?` keeps the activity's failure as the inner failure).
///         Err(failed) if failed.details.error_type == "NoExpressService" => {
///             Ok(ctx.call_activity::<_, String>("ship_standard", &order).await?)
///         }
///         Err(failed) => Err(failed.into()),
///     }
/// }
/// # let _ = durabletask_sdk::Registry::new().orchestrator("ship", ship);
/// ```
///
/// What `?` makes of it:
///
/// ```
/// use durabletask_sdk::{Error, FailureDetails, TaskFailedError, error_types};
///
/// let failed = TaskFailedError {
///     task_id: 3,
///     message: "order-7: Activity task #3 failed: card expired".into(),
///     details: FailureDetails::new("PaymentDeclined", "card expired"),
/// };
/// let error = Error::from(failed);
/// assert_eq!(error.details().error_type, error_types::TASK_FAILED);
/// let inner = error.details().inner.as_ref().map(|i| i.error_type.as_str());
/// assert_eq!(inner, Some("PaymentDeclined"));
/// ```
#[derive(Debug, Clone)]
pub struct TaskFailedError {
    /// The task's action id (`-1` for an [`EventTask`](crate::orchestration::EventTask),
    /// which has none).
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
///
/// What it carries is a [`FailureDetails`]: the orchestration's failure, or the activity's
/// as its orchestrator sees it in [`TaskFailedError::details`].
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{ActivityContext, Error};
///
/// async fn parse_quantity(_ctx: ActivityContext, text: String) -> Result<u32, Error> {
///     if text.is_empty() {
///         // An explicit type name, and no point in retrying.
///         return Err(Error::new("InvalidQuantity", "the quantity is empty").non_retriable());
///     }
///     // Any std::error::Error converts with `?`.
///     Ok(text.trim().parse::<u32>()?)
/// }
/// # let _ = durabletask_sdk::Registry::new().activity("parse_quantity", parse_quantity);
/// ```
///
/// A converted error keeps the Rust type name and the message:
///
/// ```
/// use durabletask_sdk::Error;
///
/// let error = Error::from("x".parse::<u32>().unwrap_err());
/// assert!(error.details().error_type.ends_with("ParseIntError"));
/// assert_eq!(error.details().message, "invalid digit found in string");
/// ```
pub struct Error {
    details: FailureDetails,
}

impl Error {
    /// An error with an explicit type name and message.
    ///
    /// The type name is what clients, dashboards and retry policies see as `errorType`;
    /// pick a stable one.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::Error;
    ///
    /// let error = Error::new("OutOfStock", "no more blue widgets");
    /// assert_eq!(error.to_string(), "OutOfStock: no more blue widgets");
    /// ```
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            details: FailureDetails::new(error_type, message),
        }
    }

    /// An error of type `Error` with this message.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::Error;
    ///
    /// let error = Error::message("the order was cancelled");
    /// assert_eq!(error.details().error_type, "Error");
    /// ```
    pub fn message(message: impl Into<String>) -> Self {
        Self::new("Error", message)
    }

    /// Wraps failure details as they are, e.g. to pass on a failure unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, FailureDetails};
    ///
    /// let mut details = FailureDetails::new("Timeout", "the warehouse did not answer");
    /// details.stack_trace = Some("at warehouse::reserve".into());
    /// let error = Error::from_details(details.clone());
    /// assert_eq!(error.into_details(), details);
    /// ```
    pub fn from_details(details: FailureDetails) -> Self {
        Self { details }
    }

    /// Marks the failure as not worth retrying (`isNonRetriable`): retry policies give up
    /// at once.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::Error;
    ///
    /// let error = Error::new("InvalidAddress", "no such street").non_retriable();
    /// assert!(error.details().is_non_retriable);
    /// ```
    pub fn non_retriable(mut self) -> Self {
        self.details.is_non_retriable = true;
        self
    }

    /// The failure as it will be reported, by reference.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::Error;
    ///
    /// let error = Error::new("OutOfStock", "no more blue widgets");
    /// assert_eq!(error.details().message, "no more blue widgets");
    /// ```
    pub fn details(&self) -> &FailureDetails {
        &self.details
    }

    /// The failure as it will be reported, by value.
    ///
    /// # Examples
    ///
    /// ```
    /// use durabletask_sdk::{Error, FailureDetails};
    ///
    /// let details = Error::new("OutOfStock", "no more blue widgets").into_details();
    /// assert_eq!(details, FailureDetails::new("OutOfStock", "no more blue widgets"));
    /// ```
    pub fn into_details(self) -> FailureDetails {
        self.details
    }
}

/// Converts any error, keeping its Rust type name as the error type, its message, and its
/// `source()` chain as inner failures. Two SDK errors get stable names instead:
/// - a [`TaskFailedError`] becomes an error of type [`error_types::TASK_FAILED`] with the
///   task's own failure as the inner failure;
/// - an [`InvalidEntityId`] (a bad entity name, key or
///   `@name@key` string) becomes an error of type [`error_types::INVALID_INPUT`] with its
///   message.
///
/// # Examples
///
/// ```
/// use durabletask_sdk::{EntityInstanceId, Error, error_types};
///
/// fn account(key: &str) -> Result<EntityInstanceId, Error> {
///     Ok(EntityInstanceId::new("account", key)?)
/// }
///
/// let error = account("al@ice").unwrap_err();
/// assert_eq!(error.details().error_type, error_types::INVALID_INPUT);
/// assert!(error.details().message.contains("'al@ice'"));
/// ```
///
/// # Stack traces
///
/// The conversion records where it happened, the `?` (or the `Error::from` or `.into()`
/// call), as the failure's [`stack_trace`](FailureDetails::stack_trace):
/// `at src/lib.rs:42:17`. That costs a few hundred nanoseconds and no memory that
/// stays, so a failure that is part of normal operation (an activity that retries, an
/// orchestration that gives up) stays cheap. A full backtrace follows that line only when
/// `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` asks for one, as
/// [`Backtrace::capture`](std::backtrace::Backtrace::capture) decides; it is captured and
/// symbolised on the thread that converts, and the first one in a process costs
/// 100-200 ms and about 100 MB of debug information that stays loaded
/// (`RUST_LIB_BACKTRACE=0` turns them off while `RUST_BACKTRACE=1` is set). A conversion
/// inside Rust's standard library, as with `.map_err(Error::from)`, has no location to
/// tell. [`Error::new`] and [`Error::from_details`] carry no stack trace of their own.
///
/// ```
/// use durabletask_sdk::Error;
///
/// fn parse(text: &str) -> Result<u32, Error> {
///     Ok(text.parse::<u32>()?)
/// }
///
/// let error = parse("x").unwrap_err();
/// let trace = error.details().stack_trace.clone().unwrap_or_default();
/// // The `?` above, in this file.
/// assert!(trace.starts_with("at ") && trace.contains(file!()), "{trace}");
/// ```
impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    // The caller's location is the `?`'s: the standard library's `?` passes it through.
    #[track_caller]
    fn from(error: E) -> Self {
        let stack_trace = propagation_trace(Location::caller());
        // A failed task propagated with `?` keeps the task's own failure as the cause, so
        // the orchestration's failure says both what was awaited and why it failed.
        if let Some(task) = (&error as &dyn Any).downcast_ref::<TaskFailedError>() {
            return Self {
                details: FailureDetails {
                    error_type: error_types::TASK_FAILED.to_owned(),
                    message: task.message.clone(),
                    // Where the orchestrator gave up on the task.
                    stack_trace,
                    inner: Some(Box::new(task.details.clone())),
                    is_non_retriable: false,
                },
            };
        }
        // An invalid entity id is bad input (usually a key taken from the orchestration's
        // input); its Rust path would name a private module of the SDK.
        if let Some(invalid) = (&error as &dyn Any).downcast_ref::<InvalidEntityId>() {
            return Self {
                details: FailureDetails {
                    error_type: error_types::INVALID_INPUT.to_owned(),
                    message: invalid.to_string(),
                    stack_trace,
                    inner: None,
                    is_non_retriable: false,
                },
            };
        }
        Self {
            details: FailureDetails {
                error_type: std::any::type_name::<E>().to_owned(),
                message: error.to_string(),
                stack_trace,
                inner: source_chain(error.source(), 0),
                is_non_retriable: false,
            },
        }
    }
}

/// The stack trace of a conversion at `location`: the location, then the backtrace when
/// `RUST_BACKTRACE` or `RUST_LIB_BACKTRACE` turns capture on. Failures can be frequent and
/// expected (an activity that retries), and symbolising a backtrace costs milliseconds and
/// loads the debug information for good, so the full backtrace is Rust's own opt-in; the
/// location alone already says which `?` gave up.
fn propagation_trace(location: &Location<'_>) -> Option<String> {
    let mut trace = String::new();
    // A location in Rust's own library (`map_err(Error::from)` calls through `FnOnce`)
    // names the standard library's source, which tells the reader nothing.
    if !location.file().starts_with("/rustc/") {
        trace = format!(
            "at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    let backtrace = Backtrace::capture();
    if backtrace.status() == BacktraceStatus::Captured {
        if !trace.is_empty() {
            trace.push('\n');
        }
        let _ = write!(trace, "{backtrace}");
    }
    (!trace.is_empty()).then_some(trace)
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::EntityInstanceId;

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

    /// Whether `RUST_BACKTRACE` / `RUST_LIB_BACKTRACE` turn backtraces on in this process
    /// (the tests run either way).
    fn backtraces_on() -> bool {
        Backtrace::capture().status() == BacktraceStatus::Captured
    }

    #[test]
    fn question_mark_records_its_location_and_a_backtrace_only_when_asked() {
        let line = line!() + 2;
        let propagate = |failed: TaskFailedError| -> Result<(), Error> {
            Err(failed)?;
            Ok(())
        };
        let task = TaskFailedError {
            task_id: 1,
            message: "i: Activity task #1 failed: boom".into(),
            details: FailureDetails::new("X", "boom"),
        };
        let trace = propagate(task).unwrap_err().into_details().stack_trace;
        let trace = trace.unwrap_or_default();
        let mut lines = trace.lines();
        assert_eq!(
            lines.next(),
            Some(format!("at {}:{line}:13", file!()).as_str()),
            "{trace}"
        );
        assert_eq!(lines.next().is_some(), backtraces_on(), "{trace}");
    }

    #[test]
    fn every_conversion_records_its_location() {
        // Each `line!()` is on the line of its conversion.
        let outer = (Error::from(Outer(std::io::Error::other("x"))), line!());
        let invalid = EntityInstanceId::parse("").unwrap_err();
        let entity = (Error::from(invalid), line!());
        let parsed: (Error, u32) = ("x".parse::<u32>().unwrap_err().into(), line!());
        for (error, line) in [outer, entity, parsed] {
            let trace = error.into_details().stack_trace.unwrap_or_default();
            let at = format!("at {}:{line}:", file!());
            assert!(trace.starts_with(&at), "{trace}");
        }
    }

    #[test]
    fn a_conversion_inside_std_names_no_location() {
        let result: Result<u32, _> = "x".parse::<u32>();
        let trace = result
            .map_err(Error::from)
            .unwrap_err()
            .into_details()
            .stack_trace;
        if backtraces_on() {
            assert!(trace.is_some_and(|trace| !trace.starts_with("at /rustc/")));
        } else {
            assert_eq!(trace, None);
        }
    }

    #[test]
    fn errors_made_by_hand_carry_no_stack_trace() {
        assert_eq!(Error::new("T", "m").into_details().stack_trace, None);
        assert_eq!(Error::message("m").into_details().stack_trace, None);
    }

    #[test]
    fn invalid_entity_id_becomes_invalid_input_with_its_message() {
        for invalid in [
            crate::EntityInstanceId::new("account", "al@ice").unwrap_err(),
            crate::EntityInstanceId::new("", "alice").unwrap_err(),
            crate::EntityInstanceId::parse("account@alice").unwrap_err(),
        ] {
            let message = invalid.to_string();
            let details = Error::from(invalid).into_details();
            assert_eq!(details.error_type, error_types::INVALID_INPUT);
            assert_eq!(details.message, message);
            assert!(details.inner.is_none());
        }
        // As `?` does it.
        fn key(key: &str) -> Result<crate::EntityInstanceId, Error> {
            Ok(crate::EntityInstanceId::new("account", key)?)
        }
        let details = key("").unwrap_err().into_details();
        assert_eq!(details.error_type, "InvalidInput");
        assert_eq!(details.message, "an entity key must not be empty");
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
