//! The host's telemetry: its metrics' names and labels, and the recorder that keeps them.
//!
//! Code records through the `metrics` facade (a counter increment is an atomic add on a
//! handle the recorder keeps per name and labels); the admin listener renders the
//! Prometheus text exposition from [`Recorder::render`]. Without an installed recorder
//! (the client, `plugins`, unit tests) every call records nothing.
//!
//! Labels stay bounded: names are those of a plugin generation's registrations (a work
//! item no generation serves is counted under [`NO_NAME`], since its name is whatever a
//! client sent), generations are those loaded, kinds and outcomes are fixed sets.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::worker::in_flight::WorkKind;

/// Work items the host took off the work-item stream, by `kind`.
pub const WORK_ITEMS_RECEIVED: &str = "durabletask_work_items_received_total";
/// Work items a plugin generation ran (or the host answered for it), by `kind`, `name`,
/// `plugin` and `outcome` ([`Outcome`]).
pub const WORK_ITEMS_EXECUTED: &str = "durabletask_work_items_executed_total";
/// How long running a work item took (a step, an activity, an entity batch), by `kind`,
/// `name` and `plugin`.
pub const WORK_ITEM_SECONDS: &str = "durabletask_work_item_duration_seconds";
/// Work items handed back to the backend for another worker or later, by `kind`.
pub const WORK_ITEMS_ABANDONED: &str = "durabletask_work_items_abandoned_total";
/// Results the backend did not take (it refused them, or it could not be reached), by
/// `kind`.
pub const COMPLETIONS_FAILED: &str = "durabletask_work_item_completions_failed_total";
/// Work items accepted and not finished, by `kind`.
pub const WORK_ITEMS_IN_FLIGHT: &str = "durabletask_work_items_in_flight";
/// The configured concurrency of a `kind` (`[worker] max_concurrent_*`): what
/// `durabletask_work_items_in_flight` is measured against.
pub const CONCURRENCY_LIMIT: &str = "durabletask_worker_concurrency_limit";
/// 1 while the work-item stream is open, else 0.
pub const STREAM_CONNECTED: &str = "durabletask_worker_stream_connected";
/// Times the work-item stream ended and was opened again.
pub const STREAM_RECONNECTS: &str = "durabletask_worker_stream_reconnects_total";
/// Plugin generations in service.
pub const GENERATIONS_IN_SERVICE: &str = "durabletask_plugin_generations_in_service";
/// Plugin libraries put in service, refused, ignored and retired, by `event`.
pub const PLUGIN_EVENTS: &str = "durabletask_plugin_library_events_total";
/// Always 1; its `version` label is the host's version.
pub const BUILD_INFO: &str = "durabletask_host_build_info";

/// The `name` of a work item no plugin generation served.
pub const NO_NAME: &str = "";

/// How a work item ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It ran and succeeded (an activity returned, a step produced its actions).
    Completed,
    /// It ran and failed (an activity or entity operation failed, the step failed the
    /// orchestration, or the plugin crashed).
    Failed,
    /// No generation serves it: the host answered or rejected it without running code.
    Refused,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Failed => "failed",
            Outcome::Refused => "refused",
        }
    }
}

/// A work kind as a label value.
pub fn kind_label(kind: WorkKind) -> &'static str {
    match kind {
        WorkKind::Orchestration => "orchestration",
        WorkKind::Activity => "activity",
        WorkKind::Entity => "entity",
    }
}

/// The handles the work items of one kind and name of one plugin generation are counted
/// and timed through: registered once, when the generation is put in service, so a work
/// item builds no labels (with no recorder installed, the handles do nothing).
pub struct WorkItemMetrics {
    completed: metrics::Counter,
    failed: metrics::Counter,
    seconds: metrics::Histogram,
}

impl WorkItemMetrics {
    pub fn new(kind: WorkKind, name: &str, plugin: &str) -> WorkItemMetrics {
        let kind = kind_label(kind);
        let counter = |outcome: Outcome| {
            metrics::counter!(
                WORK_ITEMS_EXECUTED,
                "kind" => kind,
                "name" => name.to_owned(),
                "plugin" => plugin.to_owned(),
                "outcome" => outcome.label(),
            )
        };
        WorkItemMetrics {
            completed: counter(Outcome::Completed),
            failed: counter(Outcome::Failed),
            seconds: metrics::histogram!(
                WORK_ITEM_SECONDS,
                "kind" => kind,
                "name" => name.to_owned(),
                "plugin" => plugin.to_owned(),
            ),
        }
    }

    /// Counts one work item that ran, completed or failed, and how long it took.
    pub fn record(&self, failed: bool, took: Duration) {
        if failed {
            self.failed.increment(1);
        } else {
            self.completed.increment(1);
        }
        self.seconds.record(took.as_secs_f64());
    }
}

/// Counts one work item of `kind` that no generation served (its name is whatever a
/// client sent, so it is not a label).
pub fn refused(kind: WorkKind) {
    metrics::counter!(
        WORK_ITEMS_EXECUTED,
        "kind" => kind_label(kind),
        "name" => NO_NAME,
        "plugin" => "",
        "outcome" => Outcome::Refused.label(),
    )
    .increment(1);
}

/// The process's recorder, installed once.
pub struct Recorder {
    handle: PrometheusHandle,
}

/// Histogram buckets in seconds: from a fast step (100 µs) to a long activity (5 min).
const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Buckets of sizes (commit batches).
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

impl Recorder {
    /// Installs the process-wide recorder. Fails if one is installed already.
    pub fn install() -> Result<Recorder, String> {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Suffix("_size".to_owned()), SIZE_BUCKETS)
            })
            .map_err(|error| format!("cannot configure the metrics: {error}"))?;
        let handle = builder
            .install_recorder()
            .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
        describe();
        metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(Recorder { handle })
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric recorded so far.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Drains histogram samples into their buckets; called now and then so that a host
    /// nobody scrapes does not keep them.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        WORK_ITEMS_RECEIVED,
        "Work items taken off the work-item stream, by kind."
    );
    describe_counter!(
        WORK_ITEMS_EXECUTED,
        "Work items run by a plugin generation or answered for it, by kind, name, plugin and outcome (completed, failed, refused)."
    );
    describe_histogram!(
        WORK_ITEM_SECONDS,
        Unit::Seconds,
        "How long running a work item took (an orchestration step, an activity, an entity batch)."
    );
    describe_counter!(
        WORK_ITEMS_ABANDONED,
        "Work items handed back to the backend, by kind."
    );
    describe_counter!(
        COMPLETIONS_FAILED,
        "Results the backend did not take, by kind."
    );
    describe_gauge!(
        WORK_ITEMS_IN_FLIGHT,
        "Work items accepted and not finished, by kind."
    );
    describe_gauge!(
        CONCURRENCY_LIMIT,
        "The configured concurrency of a kind ([worker] max_concurrent_*)."
    );
    describe_gauge!(
        STREAM_CONNECTED,
        "1 while the work-item stream to the backend is open."
    );
    describe_counter!(
        STREAM_RECONNECTS,
        "Times the work-item stream ended and was opened again."
    );
    describe_gauge!(GENERATIONS_IN_SERVICE, "Plugin generations in service.");
    describe_counter!(
        PLUGIN_EVENTS,
        "Plugin libraries put in service (loaded), refused, ignored and retired."
    );
    describe_gauge!(BUILD_INFO, "Always 1; the version label is the host's.");
    durabletask_backend::metrics::describe();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_and_kind_labels_are_the_documented_ones() {
        assert_eq!(Outcome::Completed.label(), "completed");
        assert_eq!(Outcome::Failed.label(), "failed");
        assert_eq!(Outcome::Refused.label(), "refused");
        assert_eq!(kind_label(WorkKind::Orchestration), "orchestration");
        assert_eq!(kind_label(WorkKind::Activity), "activity");
        assert_eq!(kind_label(WorkKind::Entity), "entity");
    }

    #[test]
    fn every_name_follows_the_prometheus_conventions() {
        for counter in [
            WORK_ITEMS_RECEIVED,
            WORK_ITEMS_EXECUTED,
            WORK_ITEMS_ABANDONED,
            COMPLETIONS_FAILED,
            STREAM_RECONNECTS,
            PLUGIN_EVENTS,
        ] {
            assert!(counter.starts_with("durabletask_"), "{counter}");
            assert!(counter.ends_with("_total"), "{counter}");
        }
        assert!(WORK_ITEM_SECONDS.ends_with("_seconds"));
        for gauge in [
            WORK_ITEMS_IN_FLIGHT,
            CONCURRENCY_LIMIT,
            STREAM_CONNECTED,
            GENERATIONS_IN_SERVICE,
        ] {
            assert!(!gauge.ends_with("_total"), "{gauge}");
        }
    }
}
