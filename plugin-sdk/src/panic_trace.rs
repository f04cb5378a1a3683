//! The backtrace of the latest panic on this thread, for the failure details it becomes.
//!
//! A panic hook runs on the panicking thread before unwinding starts, and the
//! `catch_unwind` that turns the panic into a `PluginPanic` failure runs on the same
//! thread after it: a thread-local hands the backtrace from one to the other. Capturing
//! and formatting a backtrace costs milliseconds, which only panics pay.

use std::cell::RefCell;

thread_local! {
    static LAST: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Records the backtrace of the panic in progress. Called from the panic hook.
pub(crate) fn record() {
    let trace = std::backtrace::Backtrace::force_capture().to_string();
    LAST.with(|last| *last.borrow_mut() = Some(trace));
}

/// Takes the backtrace of the latest panic on this thread, if one was recorded.
pub(crate) fn take() -> Option<String> {
    LAST.with(|last| last.borrow_mut().take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_trace_is_taken_once() {
        record();
        assert!(take().is_some_and(|trace| !trace.is_empty()));
        assert!(take().is_none());
    }
}
