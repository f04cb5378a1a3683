//! Work-item filters (`GetWorkItemsRequest.workItemFilters`, protocol.md §1.4): generated
//! from the names the loaded plugins register, so that a backend shared with other workers
//! only hands this host work it can run.
//!
//! Off unless `[worker] work_item_filters = true`: without the field the backend sends
//! everything. With it, the backend filters every category, and an empty list matches
//! nothing.

use std::collections::BTreeSet;

use durabletask_proto::{ActivityFilter, EntityFilter, OrchestrationFilter, WorkItemFilters};

use crate::config::{MatchStrategy, VersioningSettings};

/// The filters for a worker that registers `orchestrators` and `activities`: one
/// orchestration filter per orchestrator name and one activity filter per activity name,
/// sorted and without duplicates (plugins may register the same name twice).
///
/// `versions` is `[version]` on every filter when `versioning` is `strict` with a version
/// (as the reference SDK does, §5), else empty (any version). Like the reference, this
/// pins activities too, although the SDK schedules activities without a version: on the
/// reference backend, `strict` with filters then dispatches none of them (§1.4's caveat).
///
/// One entity filter per registered entity name, lowercase (entities are matched by the
/// lowercased name of `@name@key`). With none registered the list is empty, which the
/// backend reads as "no entity work" (§1.4).
pub fn generate<'a>(
    orchestrators: impl IntoIterator<Item = &'a str>,
    activities: impl IntoIterator<Item = &'a str>,
    entities: impl IntoIterator<Item = &'a str>,
    versioning: Option<&VersioningSettings>,
) -> WorkItemFilters {
    let versions: Vec<String> = versioning
        .filter(|versioning| versioning.match_strategy == MatchStrategy::Strict)
        .and_then(|versioning| versioning.version.clone())
        .filter(|version| !version.is_empty())
        .into_iter()
        .collect();
    WorkItemFilters {
        orchestrations: orchestrators
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|name| OrchestrationFilter {
                name: name.to_owned(),
                versions: versions.clone(),
            })
            .collect(),
        activities: activities
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|name| ActivityFilter {
                name: name.to_owned(),
                versions: versions.clone(),
            })
            .collect(),
        entities: entities
            .into_iter()
            .map(str::to_lowercase)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|name| EntityFilter { name })
            .collect(),
    }
}

/// One line for the log: the names and versions the filters let through.
pub fn describe(filters: &WorkItemFilters) -> String {
    let names = |names: Vec<&str>| {
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    let versions = filters
        .orchestrations
        .first()
        .map(|filter| filter.versions.as_slice())
        .or_else(|| filters.activities.first().map(|f| f.versions.as_slice()))
        .unwrap_or_default();
    format!(
        "orchestrators: {}; activities: {}; entities: {}; versions: {}",
        names(
            filters
                .orchestrations
                .iter()
                .map(|f| f.name.as_str())
                .collect()
        ),
        names(filters.activities.iter().map(|f| f.name.as_str()).collect()),
        names(filters.entities.iter().map(|f| f.name.as_str()).collect()),
        if versions.is_empty() {
            "any".to_owned()
        } else {
            versions.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailureStrategy;

    fn versioning(strategy: MatchStrategy, version: Option<&str>) -> VersioningSettings {
        VersioningSettings {
            version: version.map(str::to_owned),
            default_version: None,
            match_strategy: strategy,
            failure_strategy: FailureStrategy::Fail,
        }
    }

    /// Each filter as (name, versions).
    type Listed<'a> = Vec<(&'a str, &'a [String])>;

    fn names_and_versions(filters: &WorkItemFilters) -> (Listed<'_>, Listed<'_>) {
        (
            filters
                .orchestrations
                .iter()
                .map(|f| (f.name.as_str(), f.versions.as_slice()))
                .collect(),
            filters
                .activities
                .iter()
                .map(|f| (f.name.as_str(), f.versions.as_slice()))
                .collect(),
        )
    }

    #[test]
    fn one_filter_per_name_sorted_and_deduplicated_without_versions() {
        let filters = generate(
            ["zeta", "alpha", "mid", "alpha"],
            ["say_hello", "square", "say_hello"],
            ["Counter", "account", "counter"],
            None,
        );
        let entities: Vec<&str> = filters.entities.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(entities, ["account", "counter"]);
        let (orchestrations, activities) = names_and_versions(&filters);
        let none: &[String] = &[];
        assert_eq!(
            orchestrations,
            [("alpha", none), ("mid", none), ("zeta", none)]
        );
        assert_eq!(activities, [("say_hello", none), ("square", none)]);
    }

    #[test]
    fn strict_with_a_version_pins_every_orchestration_and_activity_filter() {
        let strict = versioning(MatchStrategy::Strict, Some("2.0"));
        let filters = generate(["b", "a"], ["act"], [], Some(&strict));
        let (orchestrations, activities) = names_and_versions(&filters);
        let pinned: &[String] = &["2.0".to_owned()];
        assert_eq!(orchestrations, [("a", pinned), ("b", pinned)]);
        assert_eq!(activities, [("act", pinned)]);
        assert!(filters.entities.is_empty());
    }

    #[test]
    fn other_strategies_or_no_version_leave_versions_empty() {
        for settings in [
            versioning(MatchStrategy::None, Some("2.0")),
            versioning(MatchStrategy::CurrentOrOlder, Some("2.0")),
            versioning(MatchStrategy::Strict, None),
            versioning(MatchStrategy::Strict, Some("")),
        ] {
            let filters = generate(["o"], ["a"], [], Some(&settings));
            assert!(
                filters.orchestrations[0].versions.is_empty(),
                "{settings:?}"
            );
            assert!(filters.activities[0].versions.is_empty(), "{settings:?}");
        }
    }

    #[test]
    fn no_registrations_give_present_but_empty_filters() {
        let filters = generate([], [], [], None);
        assert_eq!(filters, WorkItemFilters::default());
        assert_eq!(
            describe(&filters),
            "orchestrators: none; activities: none; entities: none; versions: any"
        );
    }

    #[test]
    fn describe_lists_names_and_versions() {
        let strict = versioning(MatchStrategy::Strict, Some("1.0"));
        let filters = generate(["o2", "o1"], ["a"], [], Some(&strict));
        assert_eq!(
            describe(&filters),
            "orchestrators: o1, o2; activities: a; entities: none; versions: 1.0"
        );
    }
}
