//! # The `orders` sample plugin, version 2.0.0
//!
//! The second release of the `orders` plugin (see the `orders-v1` crate for the first,
//! and for the walkthrough). Same plugin name, same orchestrator and activity names;
//! [`process_order`] gains a step: after charging the payment it sends a confirmation.
//!
//! ## Changing an orchestrator safely
//!
//! An orchestrator is replayed from its history every time it makes progress, and the
//! calls it makes must match the calls recorded there. An order that 1.0.0 started has a
//! history of `reserve_stock`, (pause), `charge_payment`; if 2.0.0's code replays it, it
//! must make those calls, in that order, and nothing else before them. Two ways to get
//! there:
//!
//! - **Routing by version.** Start orchestrations with a version (the client's
//!   `--version`, or the host's `default_version`) and keep the old plugin loaded beside
//!   the new one: the host runs each orchestration with the code of the plugin whose
//!   version matches, so 1.0.0 orders finish on 1.0.0's code. Nothing to do in the code.
//! - **Version-aware code** (this crate). [`process_order`] reads the version the
//!   orchestration was started with ([`OrchestrationContext::version`]) and, for one
//!   older than 2.0.0, makes exactly 1.0.0's calls. With `match_strategy =
//!   "current_or_older"`, a host with only 2.0.0 loaded then finishes old orders
//!   correctly, and the old plugin can be retired before its orders are done.
//!
//! A version never changes during an execution, so branching on it is deterministic.
//! The output's `code` is always `"2.0.0"` here; `steps` shows which branch ran.

use std::time::Duration;

use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
use serde::{Deserialize, Serialize};

/// The version of this plugin's code: the plugin version the host sees, and the `code`
/// of every [`OrderOutcome`].
pub const CODE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The input of [`process_order`], e.g. `{"id": "o-1", "pause_ms": 500}`. Unchanged from
/// 1.0.0, so orders started by either version can be read by both.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// The order's id, passed to every activity.
    pub id: String,
    /// How long to wait between steps, in milliseconds, on a durable timer. It keeps the
    /// orchestration in flight, e.g. across a redeploy. 0 (the default) waits not at all.
    #[serde(default)]
    pub pause_ms: u64,
}

/// The output of [`process_order`], e.g. `{"order": "o-2", "version": "2.0.0", "steps":
/// ["reserve_stock", "charge_payment", "send_confirmation"], "code": "2.0.0",
/// "started_on": "2.0.0"}`.
#[derive(Debug, Clone, Serialize)]
pub struct OrderOutcome {
    /// The order's id.
    pub order: String,
    /// The version the orchestration was started with (`null` when none).
    pub version: Option<String>,
    /// The activities that ran, in order.
    pub steps: Vec<&'static str>,
    /// The version of the plugin code that ran the orchestration: [`CODE_VERSION`].
    pub code: &'static str,
    /// The version of the plugin code that ran its first step, as recorded in its
    /// history by `reserve_stock`. It equals `code` unless an orchestration changed code
    /// mid-flight, which the host's routing by version prevents.
    pub started_on: String,
}

/// The input and the result of `reserve_stock`: which order, and the version of the
/// orchestrator code that asked. Its result is kept in the orchestration's history, so
/// the orchestration can always tell which code started it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    /// The order's id.
    pub order: String,
    /// The orchestrator code version that made the reservation.
    pub code: String,
}

/// Activity: reserves the order's items and returns the reservation made.
///
/// Activities may run more than once (if a worker dies mid-way), so a real one would be
/// idempotent, e.g. keyed by the order id.
pub async fn reserve_stock(
    _ctx: ActivityContext,
    reservation: Reservation,
) -> Result<Reservation, Error> {
    Ok(reservation)
}

/// Activity: charges the order's payment. Returns a receipt.
pub async fn charge_payment(_ctx: ActivityContext, order_id: String) -> Result<String, Error> {
    Ok(format!("payment charged for {order_id}"))
}

/// Activity, new in 2.0.0: tells the customer the order went through. Returns a receipt.
pub async fn send_confirmation(_ctx: ActivityContext, order_id: String) -> Result<String, Error> {
    Ok(format!("confirmation sent for {order_id}"))
}

/// Orchestrator: reserves stock, pauses, charges the payment, pauses, then sends a
/// confirmation. An orchestration started at a version older than 2.0.0 stops after
/// charging, as 1.0.0's code did, so that its history replays (see the crate docs).
pub async fn process_order(ctx: OrchestrationContext, order: Order) -> Result<OrderOutcome, Error> {
    let log = ctx.logger();
    let started_by_v1 = ctx.version_str().is_some_and(is_before_v2);

    // The steps 1.0.0 made, unchanged: same calls, same order, same pause.
    let asked = Reservation {
        order: order.id.clone(),
        code: CODE_VERSION.to_owned(),
    };
    let reservation: Reservation = ctx.call_activity("reserve_stock", asked).await?;
    log.info(format!("stock reserved for {}", reservation.order));
    pause_between_steps(&ctx, &order).await;
    let payment: String = ctx.call_activity("charge_payment", &order.id).await?;
    log.info(&payment);

    let mut steps = vec!["reserve_stock", "charge_payment"];
    if !started_by_v1 {
        pause_between_steps(&ctx, &order).await;
        let confirmation: String = ctx.call_activity("send_confirmation", &order.id).await?;
        log.info(&confirmation);
        steps.push("send_confirmation");
    }

    Ok(OrderOutcome {
        order: order.id,
        version: ctx.version(),
        steps,
        code: CODE_VERSION,
        started_on: reservation.code,
    })
}

/// Whether `version` is older than 2.0.0, judged by its major number: `"1.0.0"`, `"1.4"`
/// and `"v1"` are, `"2.0.0"` and `"3.1"` are not.
///
/// Deliberately simple: the major number is all this plugin's branch needs, where the
/// host compares full PEP 440 versions. A version whose major number cannot be read, and
/// an orchestration started without a version, run the current (2.0.0) steps: this
/// plugin's orders are started at `1.x` or `2.x`, and an unversioned order is taken to be
/// a new one.
fn is_before_v2(version: &str) -> bool {
    let version = version.strip_prefix(['v', 'V']).unwrap_or(version);
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u64>().ok())
        .is_some_and(|major| major < 2)
}

/// Waits `order.pause_ms` on a durable timer, which survives restarts and redeploys (a
/// `sleep` would not, and would break replay). No timer at all for 0: whether there is
/// one depends only on the input, so replays stay deterministic.
async fn pause_between_steps(ctx: &OrchestrationContext, order: &Order) {
    if order.pause_ms > 0 {
        ctx.create_timer_after(Duration::from_millis(order.pause_ms))
            .await;
    }
}

/// The input of [`approve_order`], e.g. `{"id": "o-1"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ApprovalRequest {
    /// The order waiting for approval.
    pub id: String,
}

/// Orchestrator: waits, as long as it takes, for a person's decision on an order: an
/// external event named `approval`, raised from the dashboard or with `client raise-event
/// <instance> approval --data '{"by": "alice"}'`. Completes with `{"order": <id>,
/// "approved": <the event's data>}`. Waiting costs nothing: the orchestration is unloaded
/// until the event arrives.
pub async fn approve_order(
    ctx: OrchestrationContext,
    request: ApprovalRequest,
) -> Result<serde_json::Value, Error> {
    let approval: serde_json::Value = ctx.wait_for_external_event("approval").await?;
    Ok(serde_json::json!({ "order": request.id, "approved": approval }))
}

durabletask_sdk::export_plugin! {
    name: "orders",
    version: CODE_VERSION,
    orchestrators: [process_order, approve_order],
    activities: [reserve_stock, charge_payment, send_confirmation],
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use durabletask_sdk::Registry;
    use durabletask_sdk::proto::orchestrator_action::OrchestratorActionType as Action;
    use durabletask_sdk::proto::{self, history_event::EventType};
    use serde_json::{Value, json};

    use super::{is_before_v2, process_order};

    #[test]
    fn versions_before_2_are_told_apart_by_their_major_number() {
        for old in ["1.0.0", "1.4", "v1", "V1.9.9", "0.1", "1.0.0a1"] {
            assert!(is_before_v2(old), "{old}");
        }
        for current in ["2.0.0", "2", "v2.1", "10.0", "abc", "", "1a.0"] {
            assert!(!is_before_v2(current), "{current}");
        }
    }

    fn event(kind: EventType) -> proto::HistoryEvent {
        proto::HistoryEvent {
            event_id: -1,
            timestamp: None,
            event_type: Some(kind),
        }
    }

    /// Runs `process_order` for `{"id": "o-1", "pause_ms": 500}`, started at `version`,
    /// to its end, step by step as a backend would, replaying the history each time.
    /// Returns every action it sent as (id, activity name or "timer") and its output.
    fn run_to_completion(version: Option<&str>) -> (Vec<(i32, String)>, Value) {
        let mut registry = Registry::new();
        registry.orchestrator("process_order", process_order);
        let mut past = Vec::new();
        let mut new = vec![
            event(EventType::OrchestratorStarted(Default::default())),
            event(EventType::ExecutionStarted(proto::ExecutionStartedEvent {
                name: "process_order".into(),
                version: version.map(Into::into),
                input: Some(r#"{"id": "o-1", "pause_ms": 500}"#.into()),
                ..Default::default()
            })),
        ];
        let mut sent = Vec::new();
        for _ in 0..10 {
            let response = registry.run_orchestrator(&proto::OrchestratorRequest {
                instance_id: "o-1".into(),
                past_events: past.clone(),
                new_events: new.clone(),
                ..Default::default()
            });
            past.append(&mut new);
            let [action] = response.actions.as_slice() else {
                panic!("expected one action per step, got {:?}", response.actions);
            };
            let id = action.id;
            let mut scheduled = |kind, outcome| {
                let mut confirmation = event(kind);
                confirmation.event_id = id;
                past.push(confirmation);
                new = vec![
                    event(EventType::OrchestratorStarted(Default::default())),
                    event(outcome),
                ];
            };
            match &action.orchestrator_action_type {
                Some(Action::ScheduleTask(task)) => {
                    sent.push((id, task.name.clone()));
                    scheduled(
                        EventType::TaskScheduled(proto::TaskScheduledEvent {
                            name: task.name.clone(),
                            ..Default::default()
                        }),
                        EventType::TaskCompleted(proto::TaskCompletedEvent {
                            task_scheduled_id: id,
                            // Every activity of this plugin returns a value of the
                            // type of its input: echoing it is a valid result.
                            result: task.input.clone(),
                        }),
                    );
                }
                Some(Action::CreateTimer(timer)) => {
                    sent.push((id, "timer".into()));
                    scheduled(
                        EventType::TimerCreated(proto::TimerCreatedEvent {
                            fire_at: timer.fire_at,
                        }),
                        EventType::TimerFired(proto::TimerFiredEvent {
                            fire_at: timer.fire_at,
                            timer_id: id,
                        }),
                    );
                }
                Some(Action::CompleteOrchestration(done)) => {
                    let output = done.result.as_deref().unwrap_or("null");
                    return (sent, serde_json::from_str(output).unwrap());
                }
                other => panic!("unexpected action {other:?}"),
            }
        }
        panic!("process_order did not complete in 10 steps")
    }

    fn actions(names: &[&str]) -> Vec<(i32, String)> {
        (1..).zip(names.iter().map(|n| (*n).to_owned())).collect()
    }

    #[test]
    fn orchestrations_started_by_v1_make_exactly_v1s_calls() {
        let (sent, output) = run_to_completion(Some("1.0.0"));
        // 1.0.0's process_order: reserve_stock, its pause, charge_payment.
        assert_eq!(sent, actions(&["reserve_stock", "timer", "charge_payment"]));
        assert_eq!(
            output,
            json!({
                "order": "o-1",
                "version": "1.0.0",
                "steps": ["reserve_stock", "charge_payment"],
                "code": "2.0.0",
                "started_on": "2.0.0",
            })
        );
    }

    #[test]
    fn current_and_unversioned_orchestrations_send_a_confirmation() {
        for version in [Some("2.0.0"), None] {
            let (sent, output) = run_to_completion(version);
            assert_eq!(
                sent,
                actions(&[
                    "reserve_stock",
                    "timer",
                    "charge_payment",
                    "timer",
                    "send_confirmation",
                ])
            );
            assert_eq!(
                output,
                json!({
                    "order": "o-1",
                    "version": version,
                    "steps": ["reserve_stock", "charge_payment", "send_confirmation"],
                    "code": "2.0.0",
                    "started_on": "2.0.0",
                })
            );
        }
    }

    // ---- with the SDK's test kit: whole orders, durable time under the test's control ----

    use std::time::Duration;

    use durabletask_sdk::proto::OrchestrationStatus;
    use durabletask_sdk::testing::TestRuntime;
    use durabletask_sdk::{Error, OrchestrationContext};

    use super::{Order, Reservation, pause_between_steps};

    const DAYS_2: Duration = Duration::from_secs(2 * 86_400);

    fn order() -> Value {
        json!({"id": "o-1", "pause_ms": DAYS_2.as_millis()})
    }

    /// 1.0.0's `process_order` as it was released (see the `orders-v1` crate): reserve,
    /// pause, charge.
    async fn v1_process_order(ctx: OrchestrationContext, order: Order) -> Result<Value, Error> {
        let asked = Reservation {
            order: order.id.clone(),
            code: "1.0.0".into(),
        };
        let _: Reservation = ctx.call_activity("reserve_stock", asked).await?;
        pause_between_steps(&ctx, &order).await;
        let _: String = ctx.call_activity("charge_payment", &order.id).await?;
        Ok(json!({"code": "1.0.0"}))
    }

    #[test]
    fn a_current_order_pauses_twice_and_sends_a_confirmation() {
        let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
        let id = runtime.start("process_order", order()).unwrap();
        runtime.advance(DAYS_2).unwrap();
        assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Running));
        runtime.advance(DAYS_2).unwrap();
        assert_eq!(
            runtime.output::<Value>(&id).unwrap()["steps"],
            json!(["reserve_stock", "charge_payment", "send_confirmation"])
        );
    }

    #[test]
    fn an_order_started_by_v1_continues_on_v2s_version_aware_code() {
        let mut v1 = Registry::new();
        v1.orchestrator("process_order", v1_process_order)
            .activity("reserve_stock", super::reserve_stock)
            .activity("charge_payment", super::charge_payment);
        let mut runtime = TestRuntime::new(v1);
        runtime
            .start_versioned("o-1", "process_order", Some("1.0.0"), order())
            .unwrap();
        // 2.0.0 is deployed while the order waits between its steps.
        runtime.replace_registry(durabletask_sdk::plugin_registry!());
        runtime.advance(DAYS_2).unwrap();
        assert_eq!(
            runtime.output::<Value>("o-1").unwrap(),
            json!({
                "order": "o-1",
                "version": "1.0.0",
                "steps": ["reserve_stock", "charge_payment"],
                "code": "2.0.0",
                "started_on": "1.0.0",
            })
        );
    }
}
