//! What the work items of a generation record, built once when the generation is put in
//! service: the metric handles and span names of each name it registers, so a work item
//! looks them up instead of building labels and names from strings.

use std::collections::HashMap;
use std::sync::Arc;

use super::loaded_plugin::LoadedPlugin;
use crate::telemetry::{self, WorkItemMetrics};
use crate::traces::SpanNames;
use crate::worker::in_flight::WorkKind;

/// What the work items of one kind and name record.
pub(crate) struct WorkTelemetry {
    pub(crate) metrics: WorkItemMetrics,
    pub(crate) span: SpanNames,
}

impl WorkTelemetry {
    fn new(kind: WorkKind, name: &str, label: &str) -> Arc<WorkTelemetry> {
        Arc::new(WorkTelemetry {
            metrics: WorkItemMetrics::new(kind, name, label),
            span: SpanNames::new(telemetry::kind_label(kind), name, label),
        })
    }
}

/// A generation's [`WorkTelemetry`] by kind and name.
pub(crate) struct GenerationTelemetry {
    label: String,
    orchestrators: HashMap<String, Arc<WorkTelemetry>>,
    activities: HashMap<String, Arc<WorkTelemetry>>,
    entities: HashMap<String, Arc<WorkTelemetry>>,
}

impl GenerationTelemetry {
    pub(crate) fn new(plugin: &LoadedPlugin) -> GenerationTelemetry {
        Self::for_names(
            format!("{} {}", plugin.name, plugin.version),
            &plugin.orchestrators,
            &plugin.activities,
            &plugin.entities,
        )
    }

    /// The telemetry of a generation labelled `label` that registers these names.
    fn for_names(
        label: String,
        orchestrators: &[String],
        activities: &[String],
        entities: &[String],
    ) -> GenerationTelemetry {
        let of = |kind: WorkKind, names: &[String]| {
            names
                .iter()
                .map(|name| (name.clone(), WorkTelemetry::new(kind, name, &label)))
                .collect()
        };
        GenerationTelemetry {
            orchestrators: of(WorkKind::Orchestration, orchestrators),
            activities: of(WorkKind::Activity, activities),
            entities: of(WorkKind::Entity, entities),
            label,
        }
    }

    /// What a work item of `kind` and `name` records. Routing hands a generation only
    /// names it registers; any other is served by handles made for it on the spot.
    pub(crate) fn of(&self, kind: WorkKind, name: &str) -> Arc<WorkTelemetry> {
        let registered = match kind {
            WorkKind::Orchestration => &self.orchestrators,
            WorkKind::Activity => &self.activities,
            WorkKind::Entity => &self.entities,
        };
        registered
            .get(name)
            .cloned()
            .unwrap_or_else(|| WorkTelemetry::new(kind, name, &self.label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_name_has_its_own_telemetry() {
        let names = |name: &str| vec![name.to_owned()];
        let telemetry = GenerationTelemetry::for_names(
            "orders 2.0.0".to_owned(),
            &names("process_order"),
            &names("charge"),
            &names("account"),
        );
        let step = telemetry.of(WorkKind::Orchestration, "process_order");
        assert!(Arc::ptr_eq(
            &step,
            &telemetry.of(WorkKind::Orchestration, "process_order")
        ));
        assert_eq!(step.span.span_name(), "orchestration process_order");
        assert_eq!(
            telemetry.of(WorkKind::Activity, "charge").span.span_name(),
            "activity charge"
        );
        assert_eq!(
            telemetry.of(WorkKind::Entity, "account").span.plugin(),
            "orders 2.0.0"
        );
        // A name of another kind is not shared.
        assert!(!Arc::ptr_eq(
            &telemetry.of(WorkKind::Activity, "process_order"),
            &step
        ));
    }
}
