//! # The `orders` sample plugin, version 1.0.0
//!
//! The first release of an order-processing plugin. Together with its next release,
//! `orders-v2` (plugin version 2.0.0), it walks through **orchestration versioning**:
//! changing an orchestrator while instances started by the old code are still running.
//!
//! Version 1.0.0's [`process_order`] reserves stock, waits, then charges the payment.
//! Version 2.0.0 adds a third step, sending a confirmation. An orchestrator is replayed
//! from its history, so an order that 1.0.0 started, and that is waiting between its steps
//! when 2.0.0 is deployed, must finish with 1.0.0's steps: replaying it with 2.0.0's code
//! unchanged would make calls its history does not have. Both plugins have the same
//! plugin name, `orders`, and register the same orchestrator and activity names; only
//! the plugin version (`export_plugin!`'s `version`, taken from `Cargo.toml`) differs.
//!
//! ## Walkthrough: a redeploy without a restart
//!
//! 1. Build both: `cargo build --workspace`, which gives `target/debug/liborders_v1.so`
//!    and `target/debug/liborders_v2.so`.
//! 2. Put `liborders_v1.so` in the host's plugins folder (with `[plugins] watch = true`,
//!    the default) and start an order that pauses for a minute between its steps:
//!
//!    ```text
//!    durabletask-host client start process_order --input '{"id": "o-1", "pause_ms": 60000}'
//!    ```
//!
//! 3. While it waits, deploy 2.0.0 beside it, under a temporary name first so the host
//!    never reads a half-written file: `cp liborders_v2.so plugins/.orders-v2.tmp && mv
//!    plugins/.orders-v2.tmp plugins/liborders_v2.so`. The host logs `loaded plugin
//!    orders 2.0.0: in service` within a second. Start `o-2` the same way.
//! 4. `o-1` completes with `"code": "1.0.0"` and two steps: the host keeps an
//!    orchestration on the code it started on (by its version when it was started with
//!    one, `--version 1.0.0`, else by remembering it). `o-2` completes with `"code":
//!    "2.0.0"` and three steps. `durabletask-host plugins` lists both generations.
//!
//! When 1.0.0 is unloaded instead, only 2.0.0's code is left to run `o-1`. That is safe
//! with `match_strategy = "current_or_older"` because 2.0.0's `process_order` is
//! *version-aware*: it runs 1.0.0's steps for orchestrations started at an older version.
//! See the `orders-v2` crate.
//!
//! The output of [`process_order`] says which code ran it (`code`) and what it did
//! (`steps`), so a test can tell the two apart.

use std::time::Duration;

use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
use serde::{Deserialize, Serialize};

/// The version of this plugin's code: the plugin version the host sees, and the `code`
/// of every [`OrderOutcome`].
pub const CODE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The input of [`process_order`], e.g. `{"id": "o-1", "pause_ms": 500}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// The order's id, passed to every activity.
    pub id: String,
    /// How long to wait between steps, in milliseconds, on a durable timer. It keeps the
    /// orchestration in flight, e.g. across a redeploy. 0 (the default) waits not at all.
    #[serde(default)]
    pub pause_ms: u64,
}

/// The output of [`process_order`], e.g. `{"order": "o-1", "version": "1.0.0", "steps":
/// ["reserve_stock", "charge_payment"], "code": "1.0.0", "started_on": "1.0.0"}`.
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

/// Orchestrator: reserves stock, pauses for `pause_ms`, then charges the payment.
pub async fn process_order(ctx: OrchestrationContext, order: Order) -> Result<OrderOutcome, Error> {
    // Replay-safe: each line is logged once, not on every replay.
    let log = ctx.logger();

    let asked = Reservation {
        order: order.id.clone(),
        code: CODE_VERSION.to_owned(),
    };
    let reservation: Reservation = ctx.call_activity("reserve_stock", asked).await?;
    log.info(format!("stock reserved for {}", reservation.order));
    pause_between_steps(&ctx, &order).await;
    let payment: String = ctx.call_activity("charge_payment", &order.id).await?;
    log.info(&payment);

    Ok(OrderOutcome {
        order: order.id,
        version: ctx.version(),
        steps: vec!["reserve_stock", "charge_payment"],
        code: CODE_VERSION,
        started_on: reservation.code,
    })
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
    activities: [reserve_stock, charge_payment],
}

#[cfg(test)]
mod tests {
    //! `process_order` run whole, in process, with the SDK's test kit: its pause is a
    //! durable timer of days that fires when the test moves the clock.
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use durabletask_sdk::proto::OrchestrationStatus;
    use durabletask_sdk::testing::{TestRuntime, Verdict, replay};
    use durabletask_sdk::{Error, OrchestrationContext, Registry, error_types};
    use serde_json::{Value, json};

    use super::{Order, Reservation, charge_payment, reserve_stock};

    const DAYS_3: Duration = Duration::from_secs(3 * 86_400);

    fn order() -> Value {
        json!({"id": "o-1", "pause_ms": DAYS_3.as_millis()})
    }

    /// A careless change of `process_order`: it charges before it reserves. Orders in
    /// flight recorded `reserve_stock` first.
    async fn swapped_process_order(ctx: OrchestrationContext, order: Order) -> Result<(), Error> {
        let _: String = ctx.call_activity("charge_payment", &order.id).await?;
        ctx.create_timer_after(Duration::from_millis(order.pause_ms))
            .await;
        let asked = Reservation {
            order: order.id,
            code: "changed".into(),
        };
        let _: Reservation = ctx.call_activity("reserve_stock", asked).await?;
        Ok(())
    }

    fn swapped_registry() -> Registry {
        let mut registry = Registry::new();
        registry
            .orchestrator("process_order", swapped_process_order)
            .activity("reserve_stock", reserve_stock)
            .activity("charge_payment", charge_payment);
        registry
    }

    #[test]
    fn an_order_waits_for_its_approval_and_passes_its_data_on() {
        let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
        let id = runtime
            .start("approve_order", json!({"id": "o-7"}))
            .unwrap();
        runtime.advance(DAYS_3).unwrap();
        assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Running));
        runtime
            .raise_event(&id, "approval", json!({"by": "alice"}))
            .unwrap();
        assert_eq!(
            runtime.output::<Value>(&id).unwrap(),
            json!({"order": "o-7", "approved": {"by": "alice"}})
        );
    }

    #[test]
    fn an_order_pausing_three_days_completes_once_they_have_passed() {
        let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
        let id = runtime.start("process_order", order()).unwrap();
        runtime.advance(DAYS_3 - Duration::from_secs(1)).unwrap();
        assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Running));
        runtime.advance(Duration::from_secs(1)).unwrap();
        assert_eq!(
            runtime.output::<Value>(&id).unwrap(),
            json!({
                "order": "o-1",
                "version": null,
                "steps": ["reserve_stock", "charge_payment"],
                "code": "1.0.0",
                "started_on": "1.0.0",
            })
        );
    }

    #[test]
    fn an_order_in_flight_fails_as_non_deterministic_on_changed_code() {
        let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
        let id = runtime.start("process_order", order()).unwrap();
        // Paused between its steps when the changed code is deployed.
        runtime.replace_registry(swapped_registry());
        runtime.advance(DAYS_3).unwrap();
        assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Failed));
        let failure = runtime.failure(&id).unwrap();
        assert_eq!(failure.error_type, error_types::NON_DETERMINISM);
        assert!(
            failure.message.contains("reserve_stock"),
            "{}",
            failure.message
        );
    }

    #[test]
    fn a_finished_orders_history_replays_on_its_code_and_not_on_the_changed_one() {
        let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
        let id = runtime.start("process_order", order()).unwrap();
        runtime.advance(DAYS_3).unwrap();
        let history = runtime.history(&id).unwrap().to_vec();
        let same = durabletask_sdk::plugin_registry!();
        assert_eq!(replay(&same, &id, history.clone()), Verdict::Deterministic);
        let verdict = replay(&swapped_registry(), &id, history);
        assert!(
            matches!(verdict, Verdict::NonDeterministic(_)),
            "{verdict:?}"
        );
    }
}
