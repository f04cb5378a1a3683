//! Picks the generation that serves a work item, and answers on the plugins' behalf when
//! none does.
//!
//! Orchestrations go by name and version (protocol.md §5): each generation acts as a
//! worker of its own plugin version (unless `[versioning] version` pins one version for
//! all), so an orchestration replays on the generation of exactly its version when one is
//! in service, and otherwise on the newest generation the match strategy accepts. When
//! none does, the failure strategy decides: fail the orchestration (`VersionMismatch`) or
//! reject the work item for another worker. Activities and entities go to the newest
//! generation that registers them.

use std::cmp::Ordering;
use std::sync::Arc;

use durabletask_abi::entity::EntityInstanceId;
use durabletask_abi::{error_types, failure};
use durabletask_proto as proto;
use proto::history_event::EventType;

use super::catalog::Catalog;
use super::generation::Generation;
use crate::config::{FailureStrategy, MatchStrategy, VersioningSettings};
use crate::versioning;
use crate::worker::EntityWork;

/// Why no generation runs an orchestration work item.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// Complete the orchestration with this (failed) response.
    Fail(Box<proto::OrchestratorResponse>),
    /// Abandon the work item for another worker (`failure_strategy = "reject"`).
    Reject(String),
}

/// The generation chosen for an orchestration work item.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) generation: Arc<Generation>,
    /// Chosen because its version is the orchestration's own: no need to remember it.
    pub(crate) exact: bool,
}

/// The generation that runs an orchestration work item, or why none does. `sticky` is
/// the build (content hash) of the generation that ran the orchestration before, if the
/// host remembers one: an orchestration no generation of its own version serves keeps
/// replaying on the code it started on while that code is in service and acceptable.
pub(crate) fn orchestrator(
    catalog: &Catalog,
    versioning: Option<&VersioningSettings>,
    request: &proto::OrchestratorRequest,
    sticky: Option<&str>,
) -> Result<Route, Refusal> {
    let fail = |error_type: &str, message: String| {
        Refusal::Fail(Box::new(failure::orchestration(
            request.instance_id.clone(),
            failure::FIRST_ACTION_ID,
            failure::details(error_type, message),
        )))
    };
    let Some(started) = execution_started(request) else {
        return Err(fail(
            error_types::ORCHESTRATION_STATE_ERROR,
            "the work item's history has no executionStarted event, so the orchestrator to run is unknown".to_owned(),
        ));
    };
    let name = started.name.as_str();
    let candidates = catalog.orchestrator(name);
    if candidates.is_empty() {
        return Err(fail(
            error_types::ORCHESTRATOR_NOT_REGISTERED,
            format!("no loaded plugin registers an orchestrator named '{name}'"),
        ));
    }
    let version = started.version.as_deref();
    let versions: Vec<&str> = candidates
        .iter()
        .map(|g| g.plugin().version.as_str())
        .collect();
    let preferred = sticky.and_then(|build| {
        candidates
            .iter()
            .position(|g| g.plugin().content_hash == build)
    });
    match pick(&versions, version, versioning, preferred) {
        Ok((index, exact)) => Ok(Route {
            generation: Arc::clone(&candidates[index]),
            exact,
        }),
        Err(message) => Err(match versioning.map(|v| v.failure_strategy) {
            Some(FailureStrategy::Reject) => Refusal::Reject(message),
            _ => Refusal::Fail(Box::new(version_mismatch(
                request.instance_id.clone(),
                message,
            ))),
        }),
    }
}

/// The other generations that may run the orchestration of `request` besides `chosen`,
/// newest first: where to try a step that failed as non-deterministic on `chosen` when
/// the host did not know where the orchestration ran (see `executor`).
pub(crate) fn alternatives(
    catalog: &Catalog,
    versioning: Option<&VersioningSettings>,
    request: &proto::OrchestratorRequest,
    chosen: &Arc<Generation>,
) -> Vec<Arc<Generation>> {
    let Some(started) = execution_started(request) else {
        return Vec::new();
    };
    let candidates = catalog.orchestrator(&started.name);
    let versions: Vec<&str> = candidates
        .iter()
        .map(|g| g.plugin().version.as_str())
        .collect();
    let Some(chosen) = candidates.iter().position(|g| Arc::ptr_eq(g, chosen)) else {
        return Vec::new();
    };
    alternative_indexes(&versions, started.version.as_deref(), versioning, chosen)
        .into_iter()
        .map(|index| Arc::clone(&candidates[index]))
        .collect()
}

/// [`alternatives`] over the versions of the generations that register the orchestrator
/// (oldest first): the indexes of those other than `chosen` that may run an
/// orchestration at `version`, newest first.
fn alternative_indexes(
    versions: &[&str],
    version: Option<&str>,
    versioning: Option<&VersioningSettings>,
    chosen: usize,
) -> Vec<usize> {
    (0..versions.len())
        .rev()
        .filter(|&index| index != chosen)
        .filter(|&index| allowed(index, version, versions, versioning))
        .collect()
}

/// Picks among the versions of the generations that register the orchestrator (oldest
/// first, never empty) the one to run an orchestration at `version`: its index and
/// whether its version is the orchestration's own, or the version mismatch message.
/// `preferred` (the generation that ran it before) wins over the newest when allowed.
fn pick(
    versions: &[&str],
    version: Option<&str>,
    versioning: Option<&VersioningSettings>,
    preferred: Option<usize>,
) -> Result<(usize, bool), String> {
    let newest = versions.len().saturating_sub(1);
    let compare_to = |index: &usize| versioning::compare(version, Some(versions[*index]));
    // The generation that ran it before keeps it, as long as the rules allow: switching
    // code mid-run (even to a generation of its own version that arrived meanwhile)
    // would replay its history on code that did not write it.
    if let Some(preferred) = preferred.filter(|p| *p < versions.len())
        && allowed(preferred, version, versions, versioning)
    {
        return Ok((preferred, compare_to(&preferred) == Ordering::Equal));
    }
    if let Some(exact) = (0..versions.len())
        .rev()
        .find(|index| compare_to(index) == Ordering::Equal)
    {
        let strategy = versioning.map_or(MatchStrategy::None, |v| v.match_strategy);
        if let Some(pin) = pinned(versioning) {
            versioning::check(strategy, version, Some(pin))?;
        }
        return Ok((exact, true));
    }
    let strategy = versioning.map_or(MatchStrategy::None, |v| v.match_strategy);
    let mismatch = || {
        versioning::check(strategy, version, Some(versions[newest]))
            .err()
            .unwrap_or_default()
    };
    let chosen = if let Some(pin) = pinned(versioning) {
        // One worker version for every generation: the check is the same for all.
        versioning::check(strategy, version, Some(pin))?;
        preferred.unwrap_or(newest)
    } else {
        match strategy {
            MatchStrategy::None => preferred.unwrap_or(newest),
            MatchStrategy::Strict => return Err(mismatch()),
            MatchStrategy::CurrentOrOlder => preferred
                .into_iter()
                .chain((0..versions.len()).rev())
                .find(|index| compare_to(index) != Ordering::Greater)
                .ok_or_else(mismatch)?,
        }
    };
    Ok((chosen, false))
}

/// Whether the generation at `index` may run an orchestration at `version` under the
/// versioning settings.
fn allowed(
    index: usize,
    version: Option<&str>,
    versions: &[&str],
    versioning: Option<&VersioningSettings>,
) -> bool {
    let strategy = versioning.map_or(MatchStrategy::None, |v| v.match_strategy);
    let worker = pinned(versioning).unwrap_or(versions[index]);
    versioning::check(strategy, version, Some(worker)).is_ok()
}

/// `[versioning] version`, when it pins one worker version for every generation.
fn pinned(versioning: Option<&VersioningSettings>) -> Option<&str> {
    versioning
        .and_then(|v| v.version.as_deref())
        .filter(|pin| !pin.is_empty())
}

/// The generation for an activity, or the response that fails it.
pub(crate) fn activity(
    catalog: &Catalog,
    request: &proto::ActivityRequest,
) -> Result<Arc<Generation>, Box<proto::ActivityResponse>> {
    catalog.activity(&request.name).cloned().ok_or_else(|| {
        Box::new(failure::activity(
            durabletask_abi::activity::instance_id(request),
            request.task_id,
            failure::details(
                error_types::ACTIVITY_NOT_REGISTERED,
                format!(
                    "no loaded plugin registers an activity named '{}'",
                    request.name
                ),
            ),
        ))
    })
}

/// The generation for an entity batch, by the name in `@name@key` (case-insensitive),
/// or the result that fails every operation of the batch: `EntityNotRegistered`, or
/// `InvalidInput` for an id that is not `@name@key`, as a plugin's batch runner fails
/// them (with `operationInfos` aligned and the state returned as it came).
pub(crate) fn entity(
    catalog: &Catalog,
    work: &EntityWork,
) -> Result<Arc<Generation>, Box<proto::EntityBatchResult>> {
    let details = match EntityInstanceId::parse(work.instance_id()) {
        Ok(id) => match catalog.entity(id.name()) {
            Some(generation) => return Ok(Arc::clone(generation)),
            None => failure::details(
                error_types::ENTITY_NOT_REGISTERED,
                format!("no loaded plugin registers an entity named '{}'", id.name()),
            ),
        },
        Err(invalid) => failure::details(error_types::INVALID_INPUT, invalid.to_string()),
    };
    Err(Box::new(failure::every_operation(work.clone(), details)))
}

fn execution_started(
    request: &proto::OrchestratorRequest,
) -> Option<&proto::ExecutionStartedEvent> {
    request
        .past_events
        .iter()
        .chain(&request.new_events)
        .find_map(|event| match &event.event_type {
            Some(EventType::ExecutionStarted(started)) => Some(started),
            _ => None,
        })
}

/// The response that fails an orchestration whose version no generation serves: the
/// details every SDK gives a version mismatch (`VersionMismatch`, not retriable).
fn version_mismatch(instance_id: String, message: String) -> proto::OrchestratorResponse {
    let mut details = failure::details(error_types::VERSION_MISMATCH, message);
    details.is_non_retriable = true;
    failure::orchestration(instance_id, failure::FIRST_ACTION_ID, details)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn settings(
        strategy: MatchStrategy,
        pinned: Option<&str>,
        failure: FailureStrategy,
    ) -> VersioningSettings {
        VersioningSettings {
            version: pinned.map(str::to_owned),
            default_version: None,
            match_strategy: strategy,
            failure_strategy: failure,
        }
    }

    const IN_SERVICE: &[&str] = &["1.0.0", "1.5.0", "2.0.0"];

    fn picked(
        version: Option<&str>,
        versioning: Option<&VersioningSettings>,
    ) -> Result<&'static str, String> {
        pick(IN_SERVICE, version, versioning, None).map(|(index, _)| IN_SERVICE[index])
    }

    #[test]
    fn the_alternatives_to_a_guess_are_the_others_the_rules_allow_newest_first() {
        // No versioning: every other generation, newest first.
        assert_eq!(alternative_indexes(IN_SERVICE, None, None, 2), [1, 0]);
        assert_eq!(alternative_indexes(IN_SERVICE, None, None, 0), [2, 1]);
        // current_or_older: a generation runs orchestrations of its version and older,
        // so 1.0.0 is no alternative for one started at 1.5.0.
        let current = settings(MatchStrategy::CurrentOrOlder, None, FailureStrategy::Fail);
        assert_eq!(
            alternative_indexes(IN_SERVICE, Some("1.5.0"), Some(&current), 1),
            [2]
        );
        // strict: only a generation of exactly its version (and that one was chosen).
        let strict = settings(MatchStrategy::Strict, None, FailureStrategy::Fail);
        assert!(alternative_indexes(IN_SERVICE, Some("2.0.0"), Some(&strict), 2).is_empty());
    }

    #[test]
    fn the_generation_an_orchestration_ran_on_before_keeps_it_while_the_rules_allow() {
        let preferred = |version, versioning| {
            pick(IN_SERVICE, version, versioning, Some(0))
                .map(|(index, exact)| (IN_SERVICE[index], exact))
        };
        // No version, or one no generation has: stays where it was.
        assert_eq!(preferred(None, None), Ok(("1.0.0", false)));
        assert_eq!(preferred(Some("0.5"), None), Ok(("1.0.0", false)));
        // Even when a generation of its own version is in service: no switch mid-run.
        assert_eq!(preferred(Some("2.0"), None), Ok(("1.0.0", false)));
        let strict = settings(MatchStrategy::Strict, None, FailureStrategy::Fail);
        assert_eq!(preferred(Some("2.0"), Some(&strict)), Ok(("2.0.0", true)));
        // current_or_older: stays unless that generation is too old for it.
        let current = settings(MatchStrategy::CurrentOrOlder, None, FailureStrategy::Fail);
        assert_eq!(preferred(Some("0.9"), Some(&current)), Ok(("1.0.0", false)));
        assert_eq!(preferred(Some("1.2"), Some(&current)), Ok(("2.0.0", false)));
    }

    #[test]
    fn without_versioning_an_orchestration_runs_on_its_own_version_else_the_newest() {
        assert_eq!(picked(Some("1.0.0"), None), Ok("1.0.0"));
        assert_eq!(picked(Some("1.5"), None), Ok("1.5.0"));
        assert_eq!(picked(Some("3.0"), None), Ok("2.0.0"));
        assert_eq!(picked(None, None), Ok("2.0.0"));
        let none = settings(MatchStrategy::None, None, FailureStrategy::Fail);
        assert_eq!(picked(Some("1.0.0"), Some(&none)), Ok("1.0.0"));
        assert_eq!(picked(Some("0.1"), Some(&none)), Ok("2.0.0"));
    }

    #[test]
    fn strict_runs_only_on_a_generation_of_exactly_that_version() {
        let strict = settings(MatchStrategy::Strict, None, FailureStrategy::Fail);
        assert_eq!(picked(Some("1.5.0"), Some(&strict)), Ok("1.5.0"));
        let refused = picked(Some("1.2.0"), Some(&strict)).unwrap_err();
        assert!(
            refused.contains("'1.2.0' does not match the worker version '2.0.0'"),
            "{refused}"
        );
        assert!(picked(None, Some(&strict)).is_err());
    }

    #[test]
    fn current_or_older_runs_on_its_version_or_the_newest_generation_not_older_than_it() {
        let current = settings(MatchStrategy::CurrentOrOlder, None, FailureStrategy::Fail);
        assert_eq!(picked(Some("1.0.0"), Some(&current)), Ok("1.0.0"));
        assert_eq!(picked(Some("1.2.0"), Some(&current)), Ok("2.0.0"));
        assert_eq!(picked(None, Some(&current)), Ok("2.0.0"));
        let refused = picked(Some("2.1"), Some(&current)).unwrap_err();
        assert!(
            refused.contains("'2.1' is greater than the worker version '2.0.0'"),
            "{refused}"
        );
    }

    #[test]
    fn a_pinned_worker_version_checks_every_orchestration_against_it() {
        let pinned = settings(MatchStrategy::Strict, Some("1.5"), FailureStrategy::Fail);
        assert_eq!(picked(Some("1.5.0"), Some(&pinned)), Ok("1.5.0"));
        assert!(
            picked(Some("2.0.0"), Some(&pinned))
                .unwrap_err()
                .contains("'1.5'")
        );
        let older = settings(
            MatchStrategy::CurrentOrOlder,
            Some("1.5"),
            FailureStrategy::Fail,
        );
        // Passes the check; no generation of its exact version, so the newest runs it.
        assert_eq!(picked(Some("1.2"), Some(&older)), Ok("2.0.0"));
        assert_eq!(picked(Some("1.0.0"), Some(&older)), Ok("1.0.0"));
        assert!(picked(Some("1.6"), Some(&older)).is_err());
    }
}

#[cfg(test)]
mod sticky_tests {
    use super::*;

    /// Rolling deployment with `match_strategy = "none"` (or current_or_older): the
    /// client already starts orchestrations at 1.5.0, the 1.5.0 plugin is not deployed
    /// yet, so they start on 2.0.0 (newest) and are remembered there. When 1.5.0 is
    /// dropped in, their next replay moves to the 1.5.0 build: history written by 2.0.0
    /// code replayed on other code (non-determinism), which the sticky memory exists to
    /// prevent.
    #[test]
    fn an_orchestration_that_already_ran_on_a_build_keeps_it_when_its_own_version_arrives() {
        let none = VersioningSettings {
            version: None,
            default_version: None,
            match_strategy: MatchStrategy::None,
            failure_strategy: FailureStrategy::Fail,
        };
        // Before: 1.0.0 and 2.0.0 in service; the 1.5 orchestration runs on 2.0.0.
        let before = pick(&["1.0.0", "2.0.0"], Some("1.5.0"), Some(&none), None);
        assert_eq!(before, Ok((1, false)));
        // After 1.5.0 arrives; 2.0.0 (now index 2) is the remembered build.
        let after = pick(
            &["1.0.0", "1.5.0", "2.0.0"],
            Some("1.5.0"),
            Some(&none),
            Some(2),
        );
        assert_eq!(
            after.map(|(index, _)| index),
            Ok(2),
            "moved to another build mid-run"
        );
    }
}
