//! The status report SIGUSR1 writes to the log: the plugin generations in service and
//! where each runs (its process id under process isolation), then every work item in
//! flight, the longest first, so that an operator can see a long-running or stuck
//! activity while it runs. (The admin listener's status page will serve the same as
//! JSON.)

use crate::plugins::PluginHost;
use crate::worker::InFlight;

/// At most this many work items are listed; the rest are counted.
const MAX_ITEMS: usize = 100;

/// The report's lines.
pub fn report(plugins: &PluginHost, in_flight: &InFlight) -> Vec<String> {
    let generations = plugins.catalog().generations().to_vec();
    let items = in_flight.snapshot();
    let mut lines = vec![format!(
        "status: {} plugin generation(s) in service, {} work item(s) in flight",
        generations.len(),
        items.len()
    )];
    for generation in &generations {
        lines.push(format!(
            "  plugin {}: {}",
            generation.label(),
            generation.plugin().runs_where()
        ));
    }
    for item in items.iter().take(MAX_ITEMS) {
        lines.push(format!("  in flight: {item}"));
    }
    if items.len() > MAX_ITEMS {
        lines.push(format!("  … and {} more", items.len() - MAX_ITEMS));
    }
    lines
}

/// Writes the report to the log, one INFO line each.
pub fn log(plugins: &PluginHost, in_flight: &InFlight) {
    for line in report(plugins, in_flight) {
        tracing::info!("{line}");
    }
}
