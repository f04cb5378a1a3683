//! Work-item filters (`GetWorkItemsRequest.workItemFilters`, protocol.md §1.4): generated
//! from what the plugin generations in service register, so that a backend shared with
//! other workers only hands this host work it can run.
//!
//! Off unless `[worker] work_item_filters = true`: without the field the backend sends
//! everything. With it, the backend filters every category, and an empty list matches
//! nothing. The host renews them whenever the set of generations changes.

use std::collections::{BTreeMap, BTreeSet};

use durabletask_proto::{ActivityFilter, EntityFilter, OrchestrationFilter, WorkItemFilters};

use crate::config::{MatchStrategy, VersioningSettings};

/// The filters for a worker that serves `orchestrators` (each name with the plugin
/// versions of the generations that register it), `activities` and `entities`: one filter
/// per name, sorted and without duplicates.
///
/// Orchestration filters list versions only under `strict` (as the reference SDK does,
/// §5): the pinned `[versioning] version` if set, else the versions of the generations in
/// service (each generation is a worker of its own version). Other strategies accept
/// versions no list could name, so they send none (any version).
///
/// Activity filters never list versions, unlike the reference: activities are scheduled
/// without a version (ours and Python's SDK alike), so a versioned activity filter would
/// match none of them and strict workers would never get their activities (§1.4).
///
/// One entity filter per registered entity name, lowercase (entities are matched by the
/// lowercased name of `@name@key`). With none registered the list is empty, which the
/// backend reads as "no entity work" (§1.4).
pub fn generate<'a>(
    orchestrators: impl IntoIterator<Item = (&'a str, Vec<&'a str>)>,
    activities: impl IntoIterator<Item = &'a str>,
    entities: impl IntoIterator<Item = &'a str>,
    versioning: Option<&VersioningSettings>,
) -> WorkItemFilters {
    let strict = versioning.filter(|v| v.match_strategy == MatchStrategy::Strict);
    let pinned = strict
        .and_then(|v| v.version.as_deref())
        .filter(|version| !version.is_empty());
    let mut by_name: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, versions) in orchestrators {
        by_name.entry(name).or_default().extend(versions);
    }
    WorkItemFilters {
        orchestrations: by_name
            .into_iter()
            .map(|(name, versions)| OrchestrationFilter {
                name: name.to_owned(),
                versions: match (strict, pinned) {
                    (None, _) => Vec::new(),
                    (Some(_), Some(pin)) => vec![pin.to_owned()],
                    (Some(_), None) => versions.into_iter().map(str::to_owned).collect(),
                },
            })
            .collect(),
        activities: activities
            .into_iter()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|name| ActivityFilter {
                name: name.to_owned(),
                versions: Vec::new(),
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

/// One line for the log: the names (and versions) the filters let through.
pub fn describe(filters: &WorkItemFilters) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "none".to_owned()
        } else {
            items.join(", ")
        }
    };
    let orchestrations = filters
        .orchestrations
        .iter()
        .map(|f| {
            if f.versions.is_empty() {
                f.name.clone()
            } else {
                format!("{} ({})", f.name, f.versions.join(", "))
            }
        })
        .collect();
    format!(
        "orchestrators: {}; activities: {}; entities: {}",
        list(orchestrations),
        list(filters.activities.iter().map(|f| f.name.clone()).collect()),
        list(filters.entities.iter().map(|f| f.name.clone()).collect()),
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

    /// Each orchestration filter as (name, versions).
    fn orchestrations(filters: &WorkItemFilters) -> Vec<(&str, Vec<&str>)> {
        filters
            .orchestrations
            .iter()
            .map(|f| {
                (
                    f.name.as_str(),
                    f.versions.iter().map(String::as_str).collect(),
                )
            })
            .collect()
    }

    fn served<'a>(names: &[(&'a str, &[&'a str])]) -> Vec<(&'a str, Vec<&'a str>)> {
        names.iter().map(|(n, v)| (*n, v.to_vec())).collect()
    }

    #[test]
    fn one_filter_per_name_sorted_and_deduplicated_without_versions() {
        let filters = generate(
            served(&[
                ("zeta", &["1"]),
                ("alpha", &["1"]),
                ("mid", &[]),
                ("alpha", &["2"]),
            ]),
            ["say_hello", "square", "say_hello"],
            ["Counter", "account", "counter"],
            None,
        );
        let entities: Vec<&str> = filters.entities.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(entities, ["account", "counter"]);
        assert_eq!(
            orchestrations(&filters),
            [("alpha", vec![]), ("mid", vec![]), ("zeta", vec![])]
        );
        let activities: Vec<&str> = filters.activities.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(activities, ["say_hello", "square"]);
        assert!(filters.activities.iter().all(|f| f.versions.is_empty()));
    }

    #[test]
    fn strict_with_a_pinned_version_pins_orchestrations_but_not_activities() {
        let strict = versioning(MatchStrategy::Strict, Some("2.0"));
        let filters = generate(
            served(&[("b", &["1.0"]), ("a", &["1.0"])]),
            ["act"],
            [],
            Some(&strict),
        );
        assert_eq!(
            orchestrations(&filters),
            [("a", vec!["2.0"]), ("b", vec!["2.0"])]
        );
        assert!(filters.activities[0].versions.is_empty());
        assert!(filters.entities.is_empty());
    }

    #[test]
    fn strict_without_a_pin_lists_the_versions_in_service() {
        let strict = versioning(MatchStrategy::Strict, None);
        let filters = generate(
            served(&[("orders", &["1.0.0", "2.0.0"]), ("orders", &["1.0.0"])]),
            ["act"],
            [],
            Some(&strict),
        );
        assert_eq!(
            orchestrations(&filters),
            [("orders", vec!["1.0.0", "2.0.0"])]
        );
    }

    #[test]
    fn other_strategies_leave_versions_empty() {
        for settings in [
            versioning(MatchStrategy::None, Some("2.0")),
            versioning(MatchStrategy::CurrentOrOlder, Some("2.0")),
            versioning(MatchStrategy::CurrentOrOlder, None),
        ] {
            let filters = generate(served(&[("o", &["1.0"])]), ["a"], [], Some(&settings));
            assert!(
                filters.orchestrations[0].versions.is_empty(),
                "{settings:?}"
            );
        }
    }

    #[test]
    fn no_registrations_give_present_but_empty_filters() {
        let filters = generate([], [], [], None);
        assert_eq!(filters, WorkItemFilters::default());
        assert_eq!(
            describe(&filters),
            "orchestrators: none; activities: none; entities: none"
        );
    }

    #[test]
    fn describe_lists_names_and_versions() {
        let strict = versioning(MatchStrategy::Strict, None);
        let filters = generate(
            served(&[("o2", &["1.0"]), ("o1", &["1.0", "2.0"])]),
            ["a"],
            ["e"],
            Some(&strict),
        );
        assert_eq!(
            describe(&filters),
            "orchestrators: o1 (1.0, 2.0), o2 (1.0); activities: a; entities: e"
        );
    }
}
