//! A newcomer's plugin whose activity is named like one the `orders` sample registers,
//! `charge_payment`, with another input: served beside `orders`, one of the two would run
//! the other's code. The host refuses the later of the two.

use durabletask_sdk::{ActivityContext, Error, OrchestrationContext};

/// Activity: charges `cents`, a number (the `orders` sample's takes an order id).
pub async fn charge_payment(_ctx: ActivityContext, cents: u64) -> Result<String, Error> {
    Ok(format!("charged {cents} cents"))
}

/// Orchestrator: charges 250 cents.
pub async fn pay(ctx: OrchestrationContext, _input: ()) -> Result<String, Error> {
    Ok(ctx.call_activity("charge_payment", 250_u64).await?)
}

durabletask_sdk::export_plugin! {
    name: "payments",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [pay],
    activities: [charge_payment],
}
