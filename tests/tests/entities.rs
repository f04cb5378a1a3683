//! Entities run by the host: an orchestration calls a function entity in a plugin through
//! Microsoft's reference backend (v2 entity work items, answered with operationInfos).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::{Fixture, Result};
use serde_json::json;

#[test]
fn an_orchestration_calls_a_plugin_entity_and_a_failed_operation_changes_nothing() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    let state = fixture.run("count_with_entity", Some(json!("k1")))?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    // 5 + 3 = 8; the failed operation's +1000 was rolled back, so get still says 8.
    assert_eq!(
        state["output"],
        json!([8, "the counter refuses", 8]),
        "{state:#}"
    );
    Ok(())
}

#[test]
fn a_call_to_an_unregistered_entity_fails_clearly() -> Result<()> {
    let fixture = Fixture::start(&["faulty"])?;
    let state = fixture.run("call_unknown_entity", None)?;
    assert_eq!(state["status"], "FAILED", "{}", fixture.explain(&state));
    let details = &state["failure_details"];
    assert_eq!(details["error_type"], "TaskFailed", "{state:#}");
    let message = details["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("@nobody@k")
            && message.contains("no loaded plugin registers an entity named 'nobody'"),
        "{state:#}"
    );
    Ok(())
}
