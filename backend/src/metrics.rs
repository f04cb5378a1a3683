//! The embedded backend's metrics, recorded through the `metrics` facade (the host
//! installs the recorder and serves them; without one, nothing is recorded).
//!
//! Commit figures are recorded as each batch commits. What describes the state (instances
//! by status, the ready backlog) is read when asked for ([`HubStats`], through
//! `InProcessClient::stats`) and published by [`publish`], so that a scrape sees it as of
//! that moment and the engine does no work for metrics nobody reads.

use std::collections::BTreeMap;
use std::time::Duration;

/// Instances of the task hub, by `status` (`RUNNING`, `COMPLETED`, ...).
pub const INSTANCES: &str = "durabletask_backend_instances";
/// Work items ready and not handed out, by `kind` and `name` (what an autoscaler scales
/// on). Names past [`MAX_BACKLOG_NAMES`] per kind are summed under `name=""`.
pub const READY_WORK_ITEMS: &str = "durabletask_backend_ready_work_items";
/// How long the oldest ready work item of a `kind` has waited (0 with none).
pub const OLDEST_READY_SECONDS: &str = "durabletask_backend_oldest_ready_work_item_age_seconds";
/// Commands saved together in one SQLite transaction.
pub const COMMIT_BATCH_SIZE: &str = "durabletask_backend_commit_batch_size";
/// How long saving one batch took.
pub const COMMIT_SECONDS: &str = "durabletask_backend_commit_duration_seconds";
/// The database's size on disk (its file and write-ahead log).
pub const DATABASE_BYTES: &str = "durabletask_backend_database_size_bytes";

/// The most names per kind the backlog gauge has a label for: names come from clients,
/// so the rest are summed, the largest backlogs first kept.
pub const MAX_BACKLOG_NAMES: usize = 50;

/// Descriptions for the recorder.
pub fn describe() {
    use metrics::{Unit, describe_gauge, describe_histogram};
    describe_gauge!(
        INSTANCES,
        "Orchestration instances of the task hub, by status."
    );
    describe_gauge!(
        READY_WORK_ITEMS,
        "Work items ready and not handed out, by kind and name (name \"\" sums the names past the 50 largest)."
    );
    describe_gauge!(
        OLDEST_READY_SECONDS,
        Unit::Seconds,
        "How long the oldest ready work item of a kind has waited."
    );
    describe_histogram!(
        COMMIT_BATCH_SIZE,
        Unit::Count,
        "Commands saved together in one transaction."
    );
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "How long saving one batch took."
    );
    describe_gauge!(
        DATABASE_BYTES,
        Unit::Bytes,
        "The database's size on disk (file and write-ahead log)."
    );
}

/// Records one committed batch.
pub(crate) fn committed(commands: usize, took: Duration) {
    // A batch size is far below 2^52: exact as f64.
    #[allow(clippy::cast_precision_loss)]
    metrics::histogram!(COMMIT_BATCH_SIZE).record(commands as f64);
    metrics::histogram!(COMMIT_SECONDS).record(took.as_secs_f64());
}

/// The state of one task hub, as of when it was asked for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HubStats {
    /// Instances by status name (`RUNNING`, ...).
    pub instances: BTreeMap<&'static str, u64>,
    /// Ready work items by kind (`orchestration`, `activity`, `entity`), then name.
    pub ready: BTreeMap<&'static str, BTreeMap<String, u64>>,
    /// The wait of the oldest ready work item, by kind.
    pub oldest_ready: BTreeMap<&'static str, Duration>,
    /// The database file and its write-ahead log, in bytes.
    pub database_bytes: u64,
}

/// Every status an instance can have, as the gauge's label: each is published, zero
/// included, so that a status that empties reads 0 rather than vanishing.
pub const STATUSES: [&str; 8] = [
    "RUNNING",
    "COMPLETED",
    "CONTINUED_AS_NEW",
    "FAILED",
    "CANCELED",
    "TERMINATED",
    "PENDING",
    "SUSPENDED",
];

/// The kinds of ready work.
pub const KINDS: [&str; 3] = ["orchestration", "activity", "entity"];

/// Sets the gauges from `stats`. `published` is what the previous call published (the
/// caller keeps it): names whose backlog emptied are set to 0, then forgotten.
pub fn publish(stats: &HubStats, published: &mut BTreeMap<&'static str, Vec<String>>) {
    for status in STATUSES {
        let count = stats.instances.get(status).copied().unwrap_or(0);
        metrics::gauge!(INSTANCES, "status" => status).set(as_f64(count));
    }
    for kind in KINDS {
        let names = stats.ready.get(kind);
        let labelled = bounded(names);
        let before = published.entry(kind).or_default();
        for gone in before.iter().filter(|name| !labelled.contains_key(*name)) {
            metrics::gauge!(READY_WORK_ITEMS, "kind" => kind, "name" => gone.clone()).set(0.0);
        }
        for (name, count) in &labelled {
            metrics::gauge!(READY_WORK_ITEMS, "kind" => kind, "name" => name.clone())
                .set(as_f64(*count));
        }
        *before = labelled.into_keys().collect();
        let oldest = stats.oldest_ready.get(kind).copied().unwrap_or_default();
        metrics::gauge!(OLDEST_READY_SECONDS, "kind" => kind).set(oldest.as_secs_f64());
    }
    metrics::gauge!(DATABASE_BYTES).set(as_f64(stats.database_bytes));
}

/// The backlog by name, with at most [`MAX_BACKLOG_NAMES`] names (the largest) and the
/// rest summed under "".
fn bounded(names: Option<&BTreeMap<String, u64>>) -> BTreeMap<String, u64> {
    let Some(names) = names else {
        return BTreeMap::new();
    };
    let mut largest: Vec<(&String, &u64)> = names.iter().collect();
    largest.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
    let mut labelled = BTreeMap::new();
    for (index, (name, count)) in largest.into_iter().enumerate() {
        let label = if index < MAX_BACKLOG_NAMES && !name.is_empty() {
            name.clone()
        } else {
            String::new()
        };
        *labelled.entry(label).or_insert(0) += count;
    }
    labelled
}

// Counts far below 2^52 are exact as f64.
#[allow(clippy::cast_precision_loss)]
fn as_f64(count: u64) -> f64 {
    count as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backlog_keeps_the_largest_names_and_sums_the_rest() {
        let mut names = BTreeMap::new();
        for index in 0..(MAX_BACKLOG_NAMES + 3) {
            names.insert(format!("name-{index:03}"), index as u64 + 1);
        }
        let labelled = bounded(Some(&names));
        assert_eq!(labelled.len(), MAX_BACKLOG_NAMES + 1);
        // The three smallest (1, 2 and 3) are summed under "".
        assert_eq!(labelled.get(""), Some(&6));
        assert!(!labelled.contains_key("name-000"));
        assert_eq!(labelled.get("name-052"), Some(&53));
        assert_eq!(labelled.values().sum::<u64>(), names.values().sum::<u64>());
    }

    #[test]
    fn no_backlog_is_no_names() {
        assert!(bounded(None).is_empty());
    }
}
