//! Activities: run for real (the registered function's future, driven to its end on a
//! tokio current-thread runtime) or replaced per name by a test's closure; their results
//! go back to the orchestration as `taskCompleted` / `taskFailed`.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};

use durabletask_proto as proto;
use proto::history_event::EventType;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::runtime::TestRuntime;
use crate::error::{Error, FailureDetails, error_types};
use crate::orchestration::payload;

/// A test's replacement for an activity: raw JSON input in, raw JSON output out.
type Mock = Box<dyn Fn(Option<&str>) -> Result<Option<String>, Error>>;

/// An activity scheduled by an orchestration, waiting in the queue.
#[derive(Debug)]
pub(super) struct ActivityWork {
    pub(super) instance_id: String,
    /// The execution that scheduled it: a result for an earlier one is dropped.
    pub(super) generation: u64,
    pub(super) request: proto::ActivityRequest,
}

/// The mocks, and the tokio runtime real activities run on (made at first use).
#[derive(Default)]
pub(super) struct Activities {
    mocks: BTreeMap<String, Mock>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Activities {
    pub(super) fn mock<F, I, O>(&mut self, name: String, f: F)
    where
        F: Fn(I) -> Result<O, Error> + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
    {
        let label = name.clone();
        let mock = move |raw: Option<&str>| -> Result<Option<String>, Error> {
            let input: I = payload::decode(raw).map_err(|e| {
                Error::new(
                    error_types::INVALID_INPUT,
                    format!(
                        "the input of activity '{label}' does not fit its mock's input type: {e}"
                    ),
                )
            })?;
            let output = f(input)?;
            payload::encode(&output).map_err(|e| {
                Error::new(
                    error_types::OUTPUT_NOT_SERIALIZABLE,
                    format!("the activity output could not be serialized to JSON: {e}"),
                )
            })
        };
        self.mocks.insert(name, Box::new(mock));
    }

    /// Runs the activity of `request`: its mock if it has one, else the registered
    /// function. A panic fails it with errorType `PluginPanic`, as the host's runtime
    /// would.
    fn run(
        &mut self,
        registry: &crate::Registry,
        request: proto::ActivityRequest,
    ) -> Result<Option<String>, FailureDetails> {
        if let Some(mock) = self.mocks.get(&request.name) {
            let input = payload::non_empty(request.input.as_ref());
            return match catch_unwind(AssertUnwindSafe(|| mock(input))) {
                Ok(outcome) => outcome.map_err(Error::into_details),
                Err(panic) => Err(panic_failure(panic.as_ref())),
            };
        }
        let future = registry.run_activity(request);
        let response = match catch_unwind(AssertUnwindSafe(|| self.block_on(future))) {
            Ok(Ok(response)) => response,
            Ok(Err(failure)) => return Err(failure),
            Err(panic) => return Err(panic_failure(panic.as_ref())),
        };
        match response.failure_details {
            Some(details) => Err(FailureDetails::from_proto(&details)),
            None => Ok(response.result),
        }
    }

    /// Drives an activity's future to its end. Inside a tokio runtime (a `#[tokio::test]`)
    /// a runtime cannot be blocked on, so the future then runs on a thread of its own.
    fn block_on<F>(&mut self, future: F) -> Result<F::Output, FailureDetails>
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return std::thread::scope(|scope| {
                let handle = scope.spawn(|| Ok(new_runtime()?.block_on(future)));
                match handle.join() {
                    Ok(outcome) => outcome,
                    Err(panic) => Err(panic_failure(panic.as_ref())),
                }
            });
        }
        if self.runtime.is_none() {
            self.runtime = Some(new_runtime()?);
        }
        match &self.runtime {
            Some(runtime) => Ok(runtime.block_on(future)),
            None => Err(FailureDetails::new(
                error_types::PLUGIN_PANIC,
                "the test kit has no tokio runtime for activities",
            )),
        }
    }
}

fn new_runtime() -> Result<tokio::runtime::Runtime, FailureDetails> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            FailureDetails::new(
                error_types::PLUGIN_PANIC,
                format!("the test kit could not start a tokio runtime for activities: {e}"),
            )
        })
}

/// The failure of a panicking activity or mock.
fn panic_failure(panic: &(dyn std::any::Any + Send)) -> FailureDetails {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "the activity panicked with a non-string payload".to_owned());
    FailureDetails::new(error_types::PLUGIN_PANIC, message)
}

impl TestRuntime {
    /// Runs a queued activity, unless its execution has ended meanwhile (the backend
    /// cancels such work), and delivers its result.
    pub(super) fn run_activity(&mut self, work: ActivityWork) {
        if !self.is_current(&work.instance_id, work.generation) {
            return;
        }
        let task_id = work.request.task_id;
        let outcome = self.activities.run(&self.registry, work.request);
        // The activity may not change the instance, but check again: nothing else may
        // deliver a result to a finished execution.
        if !self.is_current(&work.instance_id, work.generation) {
            return;
        }
        let kind = match outcome {
            Ok(result) => EventType::TaskCompleted(proto::TaskCompletedEvent {
                task_scheduled_id: task_id,
                result,
            }),
            Err(details) => EventType::TaskFailed(proto::TaskFailedEvent {
                task_scheduled_id: task_id,
                failure_details: Some(details.to_proto()),
            }),
        };
        let event = self.event(-1, kind);
        self.push_event(&work.instance_id, event);
    }

    /// Whether the execution `generation` of the instance is still running.
    pub(super) fn is_current(&self, instance_id: &str, generation: u64) -> bool {
        self.instances
            .get(instance_id)
            .is_some_and(|instance| instance.generation == generation && !instance.is_terminal())
    }
}
