//! Async activities multiplex on a few threads: thousands can be in flight in one host
//! without a thread each.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use durabletask_e2e::{Error, Fixture, Result, poll_until};
use serde_json::json;

/// How many `sleep_ms` activities the orchestration fans out.
const ACTIVITIES: usize = 2000;

/// How long each one sleeps. The reference backend hands all of them out in about a
/// second on an idle two-core machine; three seconds leaves room for a busy one to still
/// have half of them started before the first ones finish.
const SLEEP_MS: u64 = 3000;

/// At least this many must be in flight (started, not finished) at one moment.
const MIN_IN_FLIGHT: usize = 1000;

/// The host and its plugin's process may have at most this many threads together at any
/// sample: the host's event loop, the embedded backend's and a few helpers, two per
/// plugin process; in that process, the main thread (which runs the steps), eight
/// activity start threads and the faulty plugin's activity runtime (two threads). A
/// thread per activity would be thousands.
const MAX_THREADS: u32 = 32;

/// The whole fan-out must complete within this.
const COMPLETION_TIMEOUT: Duration = Duration::from_secs(120);

/// One look at the host while the fan-out runs.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    started: usize,
    finished: usize,
    threads: u32,
    at: Duration,
}

impl Sample {
    fn in_flight(&self) -> usize {
        self.started.saturating_sub(self.finished)
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in flight ({} started, {} finished) with {} threads at {:.1?}",
            self.in_flight(),
            self.started,
            self.finished,
            self.threads,
            self.at
        )
    }
}

#[test]
fn thousands_of_async_activities_are_in_flight_without_a_thread_each() -> Result<()> {
    let mut fixture =
        Fixture::start_with(&["faulty"], |config| config.max_concurrent_activities(5000))?;
    let began = Instant::now();
    let id = fixture.client.start(
        "fan_out_sleep",
        Some(&json!({"n": ACTIVITIES, "ms": SLEEP_MS})),
    )?;

    // Sample the host until every activity has finished: how many `sleep_ms` started and
    // finished (the activity logs both), and how many threads the host has meanwhile.
    let mut busiest = Sample::default();
    let mut most_threads = Sample::default();
    let mut samples = 0_usize;
    let host = &mut fixture.host;
    let last = poll_until(COMPLETION_TIMEOUT, || {
        if !host.is_running()? {
            return Err(Error::new(format!(
                "the host exited during the fan-out\n{}",
                host.log_tail()
            )));
        }
        let logs = host.logs();
        let sample = Sample {
            started: logs.matches("sleep_ms started").count(),
            finished: logs.matches("sleep_ms finished").count(),
            threads: host.thread_count()?,
            at: began.elapsed(),
        };
        samples += 1;
        if sample.in_flight() > busiest.in_flight() {
            busiest = sample;
        }
        if sample.threads > most_threads.threads {
            most_threads = sample;
        }
        Ok((sample.finished >= ACTIVITIES).then_some(sample))
    })?;
    let summary = format!(
        "{samples} samples; busiest: {busiest}; most threads: {most_threads}\n{}",
        fixture.host.log_tail()
    );
    let last = last.ok_or_else(|| {
        Error::new(format!(
            "not all {ACTIVITIES} activities finished within {COMPLETION_TIMEOUT:?}: {summary}"
        ))
    })?;

    assert_eq!(
        last.started, ACTIVITIES,
        "each activity should have run exactly once: {summary}"
    );
    assert!(
        busiest.in_flight() >= MIN_IN_FLIGHT,
        "expected at least {MIN_IN_FLIGHT} activities in flight at once: {summary}"
    );
    assert!(
        most_threads.threads <= MAX_THREADS,
        "the host had more than {MAX_THREADS} threads: {summary}"
    );

    let left = COMPLETION_TIMEOUT.saturating_sub(began.elapsed());
    // On a failure, say what the host was doing: every activity finished, so a stuck
    // fan-in is the host's or the backend's, and its log tail tells which.
    let state = fixture
        .client
        .wait(&id, left.max(Duration::from_secs(1)))
        .map_err(|error| {
            Error::new(format!(
                "{error}\nafter every activity had finished\n{}",
                fixture.host.log_tail()
            ))
        })?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    assert_eq!(state["output"], json!(ACTIVITIES));
    assert!(
        began.elapsed() <= COMPLETION_TIMEOUT,
        "the fan-out took {:?}, more than {COMPLETION_TIMEOUT:?}",
        began.elapsed()
    );
    eprintln!(
        "fan-out of {ACTIVITIES} completed in {:.1?}; busiest: {busiest}; most threads: {most_threads}; {samples} samples",
        began.elapsed()
    );
    Ok(())
}
