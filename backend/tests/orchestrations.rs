//! Orchestrations, activities, timers, events and sub-orchestrations, driven over gRPC.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::history_event::EventType;
use durabletask_proto::orchestrator_action::OrchestratorActionType as Action;
use durabletask_proto::*;
use tonic::Code;

#[tokio::test]
async fn start_activity_complete() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;

    start(&mut client, "i1", "hello", Some("\"World\"")).await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "i1");
    assert!(request.past_events.is_empty());
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "executionStarted"]
    );
    let Some(EventType::ExecutionStarted(started)) = &request.new_events[1].event_type else {
        panic!()
    };
    assert_eq!(started.name, "hello");
    assert_eq!(started.input.as_deref(), Some("\"World\""));
    assert_eq!(
        state(&mut client, "i1").await.unwrap().orchestration_status,
        OrchestrationStatus::Pending as i32
    );

    complete(
        &mut client,
        "i1",
        &token,
        vec![schedule(1, "greet", Some("\"World\""))],
    )
    .await;
    assert_eq!(
        state(&mut client, "i1").await.unwrap().orchestration_status,
        OrchestrationStatus::Running as i32
    );
    let (activity, activity_token) = worker.next_activity().await;
    assert_eq!(activity.name, "greet");
    assert_eq!(activity.task_id, 1);
    assert_eq!(activity.input.as_deref(), Some("\"World\""));
    complete_activity(
        &mut client,
        &activity,
        &activity_token,
        Some("\"Hello World!\""),
    )
    .await;

    let (request, token) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.past_events),
        [
            "orchestratorStarted",
            "executionStarted",
            "taskScheduled",
            "orchestratorCompleted"
        ]
    );
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "taskCompleted"]
    );
    assert_eq!(request.past_events[2].event_id, 1);
    complete(
        &mut client,
        "i1",
        &token,
        vec![finish(
            2,
            OrchestrationStatus::Completed,
            Some("\"Hello World!\""),
        )],
    )
    .await;

    let done = wait_completion(&mut client, "i1").await;
    assert_eq!(
        done.orchestration_status,
        OrchestrationStatus::Completed as i32
    );
    assert_eq!(done.output.as_deref(), Some("\"Hello World!\""));
    assert_eq!(done.input.as_deref(), Some("\"World\""));
    assert!(done.completed_timestamp.is_some());
    let events = history(&mut client, "i1").await;
    assert_eq!(
        kinds(&events),
        [
            "orchestratorStarted",
            "executionStarted",
            "taskScheduled",
            "orchestratorCompleted",
            "orchestratorStarted",
            "taskCompleted",
            "orchestratorCompleted",
            "executionCompleted"
        ]
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn stale_tokens_and_duplicate_results_are_ignored() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "i", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "i",
        "not-a-token",
        vec![finish(1, OrchestrationStatus::Completed, None)],
    )
    .await;
    assert_eq!(
        state(&mut client, "i").await.unwrap().orchestration_status,
        OrchestrationStatus::Pending as i32
    );
    complete(&mut client, "i", &token, vec![schedule(1, "a", None)]).await;
    let (activity, activity_token) = worker.next_activity().await;
    complete_activity(&mut client, &activity, &activity_token, Some("1")).await;
    complete_activity(&mut client, &activity, &activity_token, Some("2")).await;
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "taskCompleted"]
    );
    assert!(worker.try_next(Duration::from_millis(300)).await.is_none());
    backend.shutdown().await;
}

#[tokio::test]
async fn activity_failure_with_an_empty_message_is_a_failure() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "i", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "i", &token, vec![schedule(1, "a", None)]).await;
    let (activity, activity_token) = worker.next_activity().await;
    client
        .complete_activity_task(ActivityResponse {
            instance_id: "i".into(),
            task_id: activity.task_id,
            result: None,
            failure_details: Some(TaskFailureDetails {
                error_type: "E".into(),
                ..Default::default()
            }),
            completion_token: activity_token,
        })
        .await
        .unwrap();
    let (request, _) = worker.next_orchestration().await;
    let Some(EventType::TaskFailed(failed)) = &request.new_events[1].event_type else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(failed.task_scheduled_id, 1);
    assert_eq!(failed.failure_details.as_ref().unwrap().error_type, "E");
    backend.shutdown().await;
}

#[tokio::test]
async fn timers_fire_at_their_time() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "t", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    let started = std::time::Instant::now();
    let fire_at = now_plus(Duration::from_millis(400));
    complete(&mut client, "t", &token, vec![timer(1, fire_at)]).await;
    let (request, _) = worker.next_orchestration().await;
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    let Some(EventType::TimerFired(fired)) = &request.new_events[1].event_type else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(fired.timer_id, 1);
    assert_eq!(fired.fire_at, Some(fire_at));
    backend.shutdown().await;
}

#[tokio::test]
async fn events_suspend_resume_and_terminate() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "e", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "e", &token, vec![]).await;

    client
        .raise_event(RaiseEventRequest {
            instance_id: "e".into(),
            name: "go".into(),
            input: Some("1".into()),
        })
        .await
        .unwrap();
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "eventRaised"]
    );
    complete(&mut client, "e", &token, vec![]).await;

    client
        .suspend_instance(SuspendRequest {
            instance_id: "e".into(),
            reason: None,
        })
        .await
        .unwrap();
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "executionSuspended"]
    );
    complete(&mut client, "e", &token, vec![]).await;
    assert_eq!(
        state(&mut client, "e").await.unwrap().orchestration_status,
        OrchestrationStatus::Suspended as i32
    );
    // Events wait while suspended; a second suspend is a no-op.
    client
        .raise_event(RaiseEventRequest {
            instance_id: "e".into(),
            name: "late".into(),
            input: None,
        })
        .await
        .unwrap();
    client
        .suspend_instance(SuspendRequest {
            instance_id: "e".into(),
            reason: None,
        })
        .await
        .unwrap();
    assert!(worker.try_next(Duration::from_millis(300)).await.is_none());
    client
        .resume_instance(ResumeRequest {
            instance_id: "e".into(),
            reason: None,
        })
        .await
        .unwrap();
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.new_events),
        ["orchestratorStarted", "eventRaised", "executionResumed"]
    );
    complete(&mut client, "e", &token, vec![]).await;
    assert_eq!(
        state(&mut client, "e").await.unwrap().orchestration_status,
        OrchestrationStatus::Running as i32
    );
    // A stray resume is ignored.
    client
        .resume_instance(ResumeRequest {
            instance_id: "e".into(),
            reason: None,
        })
        .await
        .unwrap();
    assert!(worker.try_next(Duration::from_millis(200)).await.is_none());

    client
        .terminate_instance(TerminateRequest {
            instance_id: "e".into(),
            output: Some("\"bye\"".into()),
            recursive: false,
        })
        .await
        .unwrap();
    let (request, token) = worker.next_orchestration().await;
    let Some(EventType::ExecutionTerminated(terminated)) = &request.new_events[1].event_type else {
        panic!()
    };
    assert_eq!(terminated.input.as_deref(), Some("\"bye\""));
    complete(
        &mut client,
        "e",
        &token,
        vec![finish(1, OrchestrationStatus::Terminated, Some("\"bye\""))],
    )
    .await;
    let done = wait_completion(&mut client, "e").await;
    assert_eq!(
        done.orchestration_status,
        OrchestrationStatus::Terminated as i32
    );

    let missing = client
        .raise_event(RaiseEventRequest {
            instance_id: "nope".into(),
            name: "x".into(),
            input: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    backend.shutdown().await;
}

#[tokio::test]
async fn sub_orchestrations_know_their_parent_and_report_back() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "p", "parent", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "p",
        &token,
        vec![
            action(
                1,
                Action::CreateSubOrchestration(CreateSubOrchestrationAction {
                    instance_id: "p:0001".into(),
                    name: "child".into(),
                    input: Some("5".into()),
                    ..Default::default()
                }),
            ),
            action(
                2,
                Action::CreateSubOrchestration(CreateSubOrchestrationAction {
                    instance_id: "p:0002".into(),
                    name: "child".into(),
                    ..Default::default()
                }),
            ),
        ],
    )
    .await;
    let mut children = Vec::new();
    for _ in 0..2 {
        children.push(worker.next_orchestration().await);
    }
    children.sort_by(|a, b| a.0.instance_id.cmp(&b.0.instance_id));
    let Some(EventType::ExecutionStarted(started)) = &children[0].0.new_events[1].event_type else {
        panic!()
    };
    let parent = started.parent_instance.as_ref().unwrap();
    assert_eq!(parent.task_scheduled_id, 1);
    assert_eq!(parent.name.as_deref(), Some("parent"));
    assert_eq!(
        parent.orchestration_instance.as_ref().unwrap().instance_id,
        "p"
    );
    assert_eq!(
        state(&mut client, "p:0001")
            .await
            .unwrap()
            .parent_instance_id
            .as_deref(),
        Some("p")
    );
    complete(
        &mut client,
        "p:0001",
        &children[0].1,
        vec![finish(1, OrchestrationStatus::Completed, Some("10"))],
    )
    .await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "p");
    let Some(EventType::SubOrchestrationInstanceCompleted(done)) =
        &request.new_events[1].event_type
    else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(
        (done.task_scheduled_id, done.result.as_deref()),
        (1, Some("10"))
    );
    complete(&mut client, "p", &token, vec![]).await;

    complete(
        &mut client,
        "p:0002",
        &children[1].1,
        vec![fail(1, "MyError", "boom")],
    )
    .await;
    let (request, _) = worker.next_orchestration().await;
    let Some(EventType::SubOrchestrationInstanceFailed(failed)) = &request.new_events[1].event_type
    else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(failed.task_scheduled_id, 2);
    let details = failed.failure_details.as_ref().unwrap();
    assert_eq!(
        (details.error_type.as_str(), details.error_message.as_str()),
        ("MyError", "boom")
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn send_event_delivers_to_running_instances_only() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "rx", "receiver", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "rx", &token, vec![]).await;
    start(&mut client, "tx", "sender", None).await;
    let (_, token) = worker.next_orchestration().await;
    let send = |id: i32, target: &str| {
        action(
            id,
            Action::SendEvent(SendEventAction {
                instance: Some(OrchestrationInstance {
                    instance_id: target.into(),
                    execution_id: None,
                }),
                name: "Approval".into(),
                data: Some("true".into()),
            }),
        )
    };
    complete(
        &mut client,
        "tx",
        &token,
        vec![
            send(1, "rx"),
            send(2, "missing"),
            finish(3, OrchestrationStatus::Completed, None),
        ],
    )
    .await;
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "rx");
    let Some(EventType::EventRaised(raised)) = &request.new_events[1].event_type else {
        panic!()
    };
    assert_eq!(
        (raised.name.as_str(), raised.input.as_deref()),
        ("Approval", Some("true"))
    );
    let sent = history(&mut client, "tx").await;
    assert_eq!(kinds(&sent)[2..4], ["eventSent", "eventSent"]);
    assert_eq!(sent[2].event_id, 1);
    backend.shutdown().await;
}

#[tokio::test]
async fn continue_as_new_starts_a_fresh_history_with_carried_events() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "c", "loop", Some("0")).await;
    let (_, token) = worker.next_orchestration().await;
    client
        .raise_event(RaiseEventRequest {
            instance_id: "c".into(),
            name: "arrived".into(),
            input: Some("9".into()),
        })
        .await
        .unwrap();
    complete(
        &mut client,
        "c",
        &token,
        vec![action(
            1,
            Action::CompleteOrchestration(CompleteOrchestrationAction {
                orchestration_status: OrchestrationStatus::ContinuedAsNew as i32,
                result: Some("1".into()),
                carryover_events: vec![HistoryEvent {
                    event_id: -1,
                    timestamp: None,
                    event_type: Some(EventType::EventRaised(EventRaisedEvent {
                        name: "kept".into(),
                        input: Some("2".into()),
                    })),
                }],
                ..Default::default()
            }),
        )],
    )
    .await;
    let (request, token) = worker.next_orchestration().await;
    assert!(request.past_events.is_empty());
    assert_eq!(
        kinds(&request.new_events),
        [
            "orchestratorStarted",
            "executionStarted",
            "eventRaised",
            "eventRaised"
        ]
    );
    let Some(EventType::ExecutionStarted(started)) = &request.new_events[1].event_type else {
        panic!()
    };
    assert_eq!(started.input.as_deref(), Some("1"));
    let names: Vec<String> = request.new_events[2..]
        .iter()
        .map(|event| match &event.event_type {
            Some(EventType::EventRaised(raised)) => raised.name.clone(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(names, ["kept", "arrived"]);
    complete(
        &mut client,
        "c",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, Some("3"))],
    )
    .await;
    let done = wait_completion(&mut client, "c").await;
    assert_eq!(done.input.as_deref(), Some("1"));
    assert_eq!(done.output.as_deref(), Some("3"));
    backend.shutdown().await;
}

#[tokio::test]
async fn scheduled_starts_wait_for_their_time() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let started = std::time::Instant::now();
    client
        .start_instance(CreateInstanceRequest {
            instance_id: "later".into(),
            name: "o".into(),
            scheduled_start_timestamp: Some(now_plus(Duration::from_millis(500))),
            ..Default::default()
        })
        .await
        .unwrap();
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "later");
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn start_instance_reuse_policy() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "dup", "o", None).await;
    let again = client
        .start_instance(CreateInstanceRequest {
            instance_id: "dup".into(),
            name: "o".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "dup",
        &token,
        vec![finish(1, OrchestrationStatus::Completed, None)],
    )
    .await;
    client
        .start_instance(CreateInstanceRequest {
            instance_id: "dup".into(),
            name: "o".into(),
            input: Some("2".into()),
            orchestration_id_reuse_policy: Some(OrchestrationIdReusePolicy {
                replaceable_status: vec![OrchestrationStatus::Completed as i32],
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let (request, _) = worker.next_orchestration().await;
    assert!(request.past_events.is_empty());
    assert_eq!(
        state(&mut client, "dup").await.unwrap().input.as_deref(),
        Some("2")
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn wait_rpcs_honour_deadlines() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    start(&mut client, "w", "o", None).await;
    let mut request = tonic::Request::new(GetInstanceRequest {
        instance_id: "w".into(),
        get_inputs_and_outputs: false,
    });
    request.set_timeout(Duration::from_millis(300));
    let error = client
        .wait_for_instance_completion(request)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::DeadlineExceeded);

    let mut request = tonic::Request::new(GetInstanceRequest {
        instance_id: "unknown".into(),
        get_inputs_and_outputs: false,
    });
    request.set_timeout(Duration::from_millis(300));
    let response = client
        .wait_for_instance_start(request)
        .await
        .unwrap()
        .into_inner();
    assert!(!response.exists);

    // A waiter registered before the start is answered when it starts.
    let mut waiting = client.clone();
    let waiter = tokio::spawn(async move {
        let mut request = tonic::Request::new(GetInstanceRequest {
            instance_id: "w".into(),
            get_inputs_and_outputs: false,
        });
        request.set_timeout(WAIT);
        waiting.wait_for_instance_start(request).await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "w", &token, vec![]).await;
    let started = waiter.await.unwrap().unwrap().into_inner();
    assert_eq!(
        started.orchestration_state.unwrap().orchestration_status,
        OrchestrationStatus::Running as i32
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn task_hubs_are_separate() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = client(&backend).await;
    let mut worker_a = Worker::open_in(&mut client, "a", unlimited()).await;
    let mut worker_b = Worker::open_in(&mut client, "b", unlimited()).await;
    client
        .start_instance(in_hub(
            "a",
            CreateInstanceRequest {
                instance_id: "same".into(),
                name: "in-a".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    client
        .start_instance(in_hub(
            "b",
            CreateInstanceRequest {
                instance_id: "same".into(),
                name: "in-b".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let (a, _) = worker_a.next_orchestration().await;
    let (b, _) = worker_b.next_orchestration().await;
    let name = |request: &OrchestratorRequest| match &request.new_events[1].event_type {
        Some(EventType::ExecutionStarted(started)) => started.name.clone(),
        _ => unreachable!(),
    };
    assert_eq!((name(&a), name(&b)), ("in-a".to_owned(), "in-b".to_owned()));
    assert!(
        worker_a
            .try_next(Duration::from_millis(200))
            .await
            .is_none()
    );
    // No header: the "default" hub, which has nothing.
    assert!(state(&mut client, "same").await.is_none());
    backend.shutdown().await;
}

#[tokio::test]
async fn a_scheduled_instance_can_be_terminated_before_its_start() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    client
        .start_instance(CreateInstanceRequest {
            instance_id: "far".into(),
            name: "o".into(),
            scheduled_start_timestamp: Some(now_plus(Duration::from_secs(3600))),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(worker.try_next(Duration::from_millis(200)).await.is_none());
    client
        .terminate_instance(TerminateRequest {
            instance_id: "far".into(),
            output: None,
            recursive: false,
        })
        .await
        .unwrap();
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.new_events),
        [
            "orchestratorStarted",
            "executionStarted",
            "executionTerminated"
        ]
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn a_running_child_id_cannot_be_reused() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "busy", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(&mut client, "busy", &token, vec![]).await;
    start(&mut client, "p", "parent", None).await;
    let (_, token) = worker.next_orchestration().await;
    complete(
        &mut client,
        "p",
        &token,
        vec![action(
            1,
            Action::CreateSubOrchestration(CreateSubOrchestrationAction {
                instance_id: "busy".into(),
                name: "child".into(),
                ..Default::default()
            }),
        )],
    )
    .await;
    let (request, _) = worker.next_orchestration().await;
    assert_eq!(request.instance_id, "p");
    let Some(EventType::SubOrchestrationInstanceFailed(failed)) = &request.new_events[1].event_type
    else {
        panic!("{:?}", request.new_events)
    };
    assert_eq!(
        failed.failure_details.as_ref().unwrap().error_type,
        "OrchestrationAlreadyExists"
    );
    backend.shutdown().await;
}

#[tokio::test]
async fn suspend_and_resume_while_in_flight_both_reach_the_worker() {
    let db = TestDb::new();
    let backend = db.start().await;
    let mut client = common::client(&backend).await;
    let mut worker = Worker::open(&mut client, unlimited()).await;
    start(&mut client, "sr", "o", None).await;
    let (_, token) = worker.next_orchestration().await;
    client
        .suspend_instance(SuspendRequest {
            instance_id: "sr".into(),
            reason: None,
        })
        .await
        .unwrap();
    // Not suspended yet (the worker has not seen it), but a resume must not be lost.
    client
        .resume_instance(ResumeRequest {
            instance_id: "sr".into(),
            reason: None,
        })
        .await
        .unwrap();
    complete(&mut client, "sr", &token, vec![]).await;
    let (request, token) = worker.next_orchestration().await;
    assert_eq!(
        kinds(&request.new_events),
        [
            "orchestratorStarted",
            "executionSuspended",
            "executionResumed"
        ]
    );
    complete(&mut client, "sr", &token, vec![]).await;
    assert_eq!(
        state(&mut client, "sr").await.unwrap().orchestration_status,
        OrchestrationStatus::Running as i32
    );
    backend.shutdown().await;
}
