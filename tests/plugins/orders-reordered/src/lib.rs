//! A careless 2.0.0 of the `orders` sample: `process_order` charges the payment before it
//! reserves the stock. Orders that 1.0.0 started and that have reserved their stock would
//! replay on this code with a different first call, so it must be caught before it serves
//! them (`replay-check`, `[plugins] verify_replay`).

use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};
use serde::{Deserialize, Serialize};

/// An order, as 1.0.0 takes it.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: String,
    #[serde(default)]
    pub pause_ms: u64,
}

/// What 1.0.0's `reserve_stock` takes and returns.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    pub order: String,
    pub code: String,
}

/// Activity: as in 1.0.0.
pub async fn reserve_stock(
    _ctx: ActivityContext,
    reservation: Reservation,
) -> Result<Reservation, Error> {
    Ok(reservation)
}

/// Activity: as in 1.0.0.
pub async fn charge_payment(_ctx: ActivityContext, order_id: String) -> Result<String, Error> {
    Ok(format!("payment charged for {order_id}"))
}

/// Orchestrator: 1.0.0's two calls, swapped.
pub async fn process_order(ctx: OrchestrationContext, order: Order) -> Result<String, Error> {
    let payment: String = ctx.call_activity("charge_payment", &order.id).await?;
    let reservation = Reservation {
        order: order.id.clone(),
        code: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let _: Reservation = ctx.call_activity("reserve_stock", reservation).await?;
    Ok(payment)
}

durabletask_sdk::export_plugin! {
    name: "orders",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [process_order],
    activities: [reserve_stock, charge_payment],
}
