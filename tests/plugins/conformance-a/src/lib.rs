//! Conformance scenarios of shared/spec/protocol.md §8 (test-only plugin).

use durabletask_sdk::{Error, OrchestrationContext};

async fn a_placeholder(_ctx: OrchestrationContext, _input: ()) -> Result<(), Error> {
    Ok(())
}

durabletask_sdk::export_plugin! {
    name: "conformance_a",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [a_placeholder],
    activities: [],
}
