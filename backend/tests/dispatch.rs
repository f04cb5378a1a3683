//! Dispatch: redelivery after a stream ends, abandons, filters, concurrency limits, and
//! durability across a crash.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::history_event::EventType;
use durabletask_proto::*;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn leases_of_a_dropped_stream_are_redelivered() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut first = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "r", "o", None).await;
    let (_, token) = first.next_orchestration().await;
    complete(&mut client, "r", &token, vec![schedule(1, "a", None)]).await;
    let (_, _activity_token) = first.next_activity().await;
    start(&mut client, "r2", "o", None).await;
    let (_, stale_token) = first.next_orchestration().await;
    drop(first);

    let mut second = Worker::open(&mut client, unlimited()).await;
    let mut orchestration = None;
    let mut activity = None;
    for _ in 0..2 {
        let item = second.next().await;
        match item.request {
            Some(work_item::Request::OrchestratorRequest(request)) => {
                orchestration = Some((request, item.completion_token))
            }
            Some(work_item::Request::ActivityRequest(request)) => {
                activity = Some((request, item.completion_token))
            }
            other => panic!("{other:?}"),
        }
    }
    let (request, token) = orchestration.unwrap();
    assert_eq!(request.instance_id, "r2");
    assert_ne!(token, stale_token);
    // The old token is void now.
    complete(
        &mut client,
        "r2",
        &stale_token,
        vec![finish(1, OrchestrationStatus::Completed, None)],
    )
    .await;
    assert_eq!(
        state(&mut client, "r2").await.unwrap().orchestration_status,
        OrchestrationStatus::Pending as i32
    );
    complete(
        &mut client,
        "r2",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, None)],
    )
    .await;
    let (activity, token) = activity.unwrap();
    assert_eq!(activity.name, "a");
    complete_activity(&mut client, &activity, &token, None).await;
    let (request, _) = second.next_orchestration().await;
    assert_eq!(request.instance_id, "r");
    backend.shutdown().await;
}

#[tokio::test]
async fn abandoned_work_is_redelivered() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "ab", "o", None).await;
    let (first, token) = worker.next_orchestration().await;
    client
        .abandon_task_orchestrator_work_item(AbandonOrchestrationTaskRequest {
            completion_token: token.clone(),
        })
        .await
        .unwrap();
    let (again, token) = worker.next_orchestration().await;
    assert_eq!(kinds(&again.new_events), kinds(&first.new_events));
    complete(&mut client, "ab", &token, vec![schedule(1, "a", None)]).await;

    let (activity, token) = worker.next_activity().await;
    client
        .abandon_task_activity_work_item(AbandonActivityTaskRequest {
            completion_token: token,
        })
        .await
        .unwrap();
    let (again, token) = worker.next_activity().await;
    assert_eq!(
        (again.name, again.task_id),
        (activity.name, activity.task_id)
    );
    client
        .abandon_task_activity_work_item(AbandonActivityTaskRequest {
            completion_token: token.clone(),
        })
        .await
        .unwrap();
    let (again, token) = worker.next_activity().await;
    complete_activity(&mut client, &again, &token, Some("1")).await;
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "taskCompleted"]
    );

    client
        .signal_entity(SignalEntityRequest {
            instance_id: "@counter@k".into(),
            name: "add".into(),
            input: Some("1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let (entity, token) = worker.next_entity().await;
    client
        .abandon_task_entity_work_item(AbandonEntityTaskRequest {
            completion_token: token,
        })
        .await
        .unwrap();
    let (again, _) = worker.next_entity().await;
    assert_eq!(again.operation_requests, entity.operation_requests);
    backend.shutdown().await;
}

fn filters(
    orchestrations: &[(&str, &[&str])],
    activities: &[&str],
    entities: &[&str],
) -> GetWorkItemsRequest {
    GetWorkItemsRequest {
        work_item_filters: Some(WorkItemFilters {
            orchestrations: orchestrations
                .iter()
                .map(|(name, versions)| OrchestrationFilter {
                    name: (*name).into(),
                    versions: versions.iter().map(|v| (*v).to_owned()).collect(),
                })
                .collect(),
            activities: activities
                .iter()
                .map(|name| ActivityFilter {
                    name: (*name).into(),
                    versions: vec![],
                })
                .collect(),
            entities: entities
                .iter()
                .map(|name| EntityFilter {
                    name: (*name).into(),
                })
                .collect(),
        }),
        ..Default::default()
    }
}

async fn start_versioned(client: &mut Client, id: &str, name: &str, version: Option<&str>) {
    client
        .start_instance(CreateInstanceRequest {
            instance_id: id.into(),
            name: name.into(),
            version: version.map(str::to_owned),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn work_item_filters_select_names_and_versions() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    start_versioned(&mut client, "v1", "orch", Some("1.0")).await;
    start_versioned(&mut client, "v2", "orch", Some("2.0")).await;
    start_versioned(&mut client, "none", "orch", None).await;
    start_versioned(&mut client, "other", "other", None).await;
    client
        .signal_entity(SignalEntityRequest {
            instance_id: "@Blocked@k".into(),
            name: "op".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    client
        .signal_entity(SignalEntityRequest {
            instance_id: "@Allowed@k".into(),
            name: "op".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Only entities: no orchestration, no activity.
    let mut entities_only = Worker::open(&mut client, filters(&[], &[], &["allowed"])).await;
    let (entity, _) = entities_only.next_entity().await;
    assert_eq!(entity.instance_id, "@Allowed@k");
    assert!(entities_only.try_next(QUIET).await.is_none());

    let mut strict = Worker::open(&mut client, filters(&[("orch", &["2.0"])], &[], &[])).await;
    let (request, token) = strict.next_orchestration().await;
    assert_eq!(request.instance_id, "v2");
    assert!(strict.try_next(QUIET).await.is_none());
    // The activity it schedules is filtered too: this worker lists no activities.
    complete(&mut client, "v2", &token, vec![schedule(1, "act", None)]).await;
    assert!(strict.try_next(QUIET).await.is_none());

    let mut any_version = Worker::open(&mut client, filters(&[("orch", &[])], &["act"], &[])).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let item = any_version.next().await;
        got.push(match item.request {
            Some(work_item::Request::OrchestratorRequest(request)) => request.instance_id,
            Some(work_item::Request::ActivityRequest(request)) => request.name,
            other => panic!("{other:?}"),
        });
    }
    got.sort();
    assert_eq!(got, ["act", "none", "v1"]);
    assert!(any_version.try_next(QUIET).await.is_none());

    // An empty filter set matches nothing; no filters match everything.
    let mut nothing = Worker::open(&mut client, filters(&[], &[], &[])).await;
    assert!(nothing.try_next(QUIET).await.is_none());
    let mut everything = Worker::open(&mut client, unlimited()).await;
    let kinds: Vec<String> = vec![everything.next().await, everything.next().await]
        .into_iter()
        .map(|item| match item.request {
            Some(work_item::Request::OrchestratorRequest(request)) => request.instance_id,
            Some(work_item::Request::EntityRequestV2(request)) => request.instance_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(kinds.contains(&"other".to_owned()) && kinds.contains(&"@Blocked@k".to_owned()));
    backend.shutdown().await;
}

#[tokio::test]
async fn concurrency_limits_are_respected() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(
        &mut client,
        GetWorkItemsRequest {
            max_concurrent_orchestration_work_items: 2,
            max_concurrent_activity_work_items: 1,
            ..Default::default()
        },
    )
    .await;
    for i in 0..4 {
        start(&mut client, &format!("c{i}"), "o", None).await;
    }
    let (a, token_a) = worker.next_orchestration().await;
    let (_, _token_b) = worker.next_orchestration().await;
    assert!(worker.try_next(QUIET).await.is_none());
    complete(
        &mut client,
        &a.instance_id,
        &token_a,
        vec![schedule(1, "x", None), schedule(2, "y", None)],
    )
    .await;
    // One orchestration slot and one activity slot are free now.
    let mut orchestrations = 0;
    let mut activities = Vec::new();
    for _ in 0..2 {
        let item = worker.next().await;
        match item.request {
            Some(work_item::Request::OrchestratorRequest(_)) => orchestrations += 1,
            Some(work_item::Request::ActivityRequest(request)) => {
                activities.push((request, item.completion_token))
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((orchestrations, activities.len()), (1, 1));
    assert!(worker.try_next(QUIET).await.is_none());
    let (activity, token) = activities.pop().unwrap();
    complete_activity(&mut client, &activity, &token, None).await;
    let (next, _) = worker.next_activity().await;
    assert_ne!(next.task_id, activity.task_id);
    backend.shutdown().await;
}

#[tokio::test]
async fn state_survives_a_crash_and_leased_work_is_redelivered() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "d", "durable", Some("1")).await;
    let (_, token) = worker.next_orchestration().await;
    // Due after the restart (which waits out the lease on PostgreSQL).
    let fire_at = now_plus(Duration::from_millis(600) + db.restart_delay());
    complete(
        &mut client,
        "d",
        &token,
        vec![schedule(1, "a", None), timer(2, fire_at)],
    )
    .await;
    let (_activity, _token) = worker.next_activity().await;
    start(&mut client, "d2", "durable", None).await;
    let (_, _token) = worker.next_orchestration().await;
    client
        .signal_entity(SignalEntityRequest {
            instance_id: "@e@k".into(),
            name: "op".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, _token) = worker.next_entity().await;
    // As if the process died: no shutdown.
    drop(worker);
    drop(client);
    drop(backend);

    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let d = state(&mut client, "d").await.unwrap();
    assert_eq!(d.orchestration_status, OrchestrationStatus::Running as i32);
    assert_eq!(d.input.as_deref(), Some("1"));
    assert_eq!(
        kinds(&history(&mut client, "d").await),
        [
            "orchestratorStarted",
            "executionStarted",
            "taskScheduled",
            "timerCreated",
            "orchestratorCompleted"
        ]
    );
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let item = worker.next().await;
        seen.push(match item.request {
            Some(work_item::Request::OrchestratorRequest(request)) => {
                assert_eq!(
                    kinds(&request.new_events),
                    ["orchestratorStarted", "executionStarted"]
                );
                request.instance_id
            }
            Some(work_item::Request::ActivityRequest(request)) => {
                complete_activity(&mut client, &request, &item.completion_token, Some("7")).await;
                request.name
            }
            Some(work_item::Request::EntityRequestV2(request)) => request.instance_id,
            other => panic!("{other:?}"),
        });
    }
    seen.sort();
    assert_eq!(seen, ["@e@k", "a", "d2"]);
    // The activity result and the timer reach "d".
    let mut fired = false;
    let mut completed = false;
    while !(fired && completed) {
        let (request, token) = worker.next_orchestration().await;
        assert_eq!(request.instance_id, "d");
        for event in &request.new_events {
            match &event.event_type {
                Some(EventType::TaskCompleted(done)) => {
                    assert_eq!(done.result.as_deref(), Some("7"));
                    completed = true;
                }
                Some(EventType::TimerFired(timer)) => {
                    assert_eq!(timer.timer_id, 2);
                    fired = true;
                }
                _ => {}
            }
        }
        complete(&mut client, "d", &token, vec![]).await;
    }
    backend.shutdown().await;

    // And after a clean shutdown too.
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let events = history(&mut client, "d").await;
    assert_eq!(
        kinds(&events)
            .iter()
            .filter(|k| **k == "orchestratorCompleted")
            .count(),
        3
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn work_finished_after_its_stream_closed_is_accepted_until_handed_out_again() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "drain", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    client
        .signal_entity(SignalEntityRequest {
            instance_id: "@e@drain".into(),
            name: "op".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (entity, entity_token) = worker.next_entity().await;
    // The worker closes its stream first, then delivers what it was running.
    drop(worker);
    tokio::time::sleep(Duration::from_millis(100)).await;
    complete(
        &mut client,
        "drain",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some("1"))],
    )
    .await;
    client
        .complete_entity_task(EntityBatchResult {
            results: entity
                .operation_requests
                .iter()
                .map(|_| OperationResult {
                    result_type: Some(operation_result::ResultType::Success(
                        OperationResultSuccess::default(),
                    )),
                })
                .collect(),
            entity_state: Some("5".into()),
            completion_token: entity_token,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        wait_completion(&mut client, "drain")
            .await
            .output
            .as_deref(),
        Some("1")
    );
    let state = client
        .get_entity(GetEntityRequest {
            instance_id: "@e@drain".into(),
            include_state: true,
        })
        .await
        .unwrap()
        .into_inner()
        .entity
        .unwrap();
    assert_eq!(state.serialized_state.as_deref(), Some("5"));
    assert_eq!(state.backlog_queue_size, 0);
    // Nothing is left to redeliver.
    let mut worker = Worker::open(&mut client, unlimited()).await;
    assert!(worker.try_next(QUIET).await.is_none());
    backend.shutdown().await;
}

#[tokio::test]
async fn a_crash_under_load_loses_and_duplicates_nothing() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let worker = spawn_auto_worker(client.clone());
    const N: usize = 200;
    for i in 0..N {
        start(&mut client, &format!("load-{i}"), "o", None).await;
    }
    // Crash once a quarter has finished: the rest is at every stage of its life.
    loop {
        let finished = client
            .query_instances(QueryInstancesRequest {
                query: Some(InstanceQuery {
                    runtime_status: vec![OrchestrationStatus::Completed as i32],
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .orchestration_state
            .len();
        if finished >= N / 4 {
            assert!(finished < N, "everything finished before the crash");
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    worker.abort();
    drop(client);
    drop(backend);

    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let worker = spawn_auto_worker(client.clone());
    for i in 0..N {
        let id = format!("load-{i}");
        let done = wait_completion(&mut client, &id).await;
        assert_eq!(done.output.as_deref(), Some("3"), "{id}");
        let events = history(&mut client, &id).await;
        let count = |kind: &str| kinds(&events).iter().filter(|k| **k == kind).count();
        assert_eq!(
            (count("taskScheduled"), count("taskCompleted")),
            (3, 3),
            "{id}: {:?}",
            kinds(&events)
        );
        assert_eq!(count("executionCompleted"), 1, "{id}");
    }
    worker.abort();
    backend.shutdown().await;
}
