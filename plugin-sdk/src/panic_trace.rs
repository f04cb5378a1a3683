//! The backtrace of the latest panic on this thread, for the failure details it becomes.
//!
//! A panic hook runs on the panicking thread before unwinding starts, and the
//! `catch_unwind` that turns the panic into a `PluginPanic` failure runs on the same
//! thread after it: a thread-local hands the backtrace from one to the other.
//!
//! The hook only captures the backtrace: walking the stack takes microseconds. Symbolising
//! it is what costs: the first time in a process it reads the debug information of every
//! library on the stack (the plugin's and the host's), 100-200 ms and about 100 MB that
//! std keeps for later backtraces; after that, tens of microseconds. So symbolising waits
//! until the failure is reported ([`Trace::resolve`]), and that happens where the failure
//! leaves the plugin: an activity's on the plugin's own runtime, off the host's threads
//! (see `export::start_activity`); an orchestration step's or entity batch's on the
//! thread that runs the step, since the failure is the call's return value.

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::panic::Location;

thread_local! {
    static LAST: RefCell<Option<Trace>> = const { RefCell::new(None) };
}

/// A panic's location and its backtrace, not yet symbolised.
pub(crate) struct Trace {
    location: Option<String>,
    backtrace: Backtrace,
}

impl Trace {
    /// The text for the failure's `stackTrace`: `at <file>:<line>:<column>` of the panic,
    /// as a `?`-propagated failure starts (see `error.rs`), then the backtrace.
    /// Symbolises the backtrace, on the calling thread.
    pub(crate) fn resolve(self) -> String {
        match self.location {
            Some(location) => format!("at {location}\n{}", self.backtrace),
            None => self.backtrace.to_string(),
        }
    }
}

/// Records the location and backtrace of the panic in progress, unresolved. Called from
/// the panic hook.
pub(crate) fn record(location: Option<&Location<'_>>) {
    let trace = Trace {
        location: location.map(ToString::to_string),
        backtrace: Backtrace::force_capture(),
    };
    LAST.with(|last| *last.borrow_mut() = Some(trace));
}

/// Takes the trace of the latest panic on this thread, if one was recorded, unresolved.
pub(crate) fn take_unresolved() -> Option<Trace> {
    LAST.with(|last| last.borrow_mut().take())
}

/// Takes the trace of the latest panic on this thread, if one was recorded, and
/// symbolises it here.
pub(crate) fn take() -> Option<String> {
    take_unresolved().map(Trace::resolve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_trace_is_taken_once() {
        record(None);
        assert!(take().is_some_and(|trace| !trace.is_empty()));
        assert!(take().is_none());
    }

    #[test]
    fn a_trace_starts_with_the_panics_location() {
        let line = line!() + 1;
        record(Some(Location::caller()));
        let trace = take().unwrap_or_default();
        assert!(
            trace.starts_with(&format!("at {}:{line}:", file!())),
            "{trace}"
        );
        // The backtrace follows, captured whatever RUST_BACKTRACE says.
        assert!(trace.lines().count() > 1, "{trace}");
    }
}
