//! OpenTelemetry traces (`[tracing]`): a span for each orchestration step, activity and
//! entity batch the host runs, exported over OTLP/gRPC.
//!
//! The spans are `tracing` spans of the target [`TARGET`], at TRACE level: the log's
//! filter does not print them (unless it asks for TRACE), and with no exporter configured
//! no other layer enables them. With `[tracing] otlp_endpoint`, a layer that accepts only
//! this target hands them to OpenTelemetry (tracing-opentelemetry), whose batch exporter
//! and its gRPC connection run on a runtime of their own (one thread), off the event
//! loop: exporting never holds up work, and the last batch can be flushed after the
//! event loop has stopped.
//!
//! W3C trace context comes the way Microsoft's SDKs carry it: the `TraceContext` of the
//! protocol's messages (`executionStarted` for an orchestration, the activity request for
//! an activity). A step's span continues the trace its orchestration was started in.

use std::collections::HashMap;

use durabletask_proto as proto;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::config::TracingSettings;

/// The target of the spans exported as traces.
pub const TARGET: &str = "durabletask_host::traces";

/// The exporter, kept for a flush at shutdown.
pub struct Traces {
    provider: SdkTracerProvider,
    /// Runs the batch exporter and its connection.
    runtime: tokio::runtime::Runtime,
}

/// A boxed layer of the logging subscriber.
pub type TracesLayer =
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static>;

impl Traces {
    /// The exporter and the subscriber's layer for it, if `[tracing] otlp_endpoint` is
    /// set.
    pub fn start(settings: &TracingSettings) -> Result<Option<(Traces, TracesLayer)>, String> {
        use tracing_subscriber::Layer as _;
        let Some(endpoint) = &settings.otlp_endpoint else {
            return Ok(None);
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("trace-exporter")
            .enable_all()
            .build()
            .map_err(|error| format!("[tracing]: cannot start the exporter's runtime: {error}"))?;
        // The exporter's channel and the batch task belong to that runtime.
        let entered = runtime.enter();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|error| format!("[tracing] otlp_endpoint = \"{endpoint}\": {error}"))?;
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("durabletask-host");
        let layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                metadata.target() == TARGET
            }))
            .boxed();
        drop(entered);
        Ok(Some((Traces { provider, runtime }, layer)))
    }

    /// Sends what is buffered and stops the exporter. Called outside any runtime (it
    /// blocks until the last batch is sent).
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "the trace exporter did not shut down cleanly");
        }
        self.runtime
            .shutdown_timeout(std::time::Duration::from_secs(1));
    }
}

/// A span for one work item; `parent` is the protocol's trace context it continues.
pub fn span(
    kind: &'static str,
    name: &str,
    instance_id: &str,
    plugin: &str,
    parent: Option<&proto::TraceContext>,
) -> tracing::Span {
    let span = tracing::trace_span!(
        target: TARGET,
        "work item",
        otel.name = %format!("{kind} {name}"),
        durabletask.kind = kind,
        durabletask.name = %name,
        durabletask.instance_id = %instance_id,
        durabletask.plugin = %plugin,
    );
    if !span.is_disabled()
        && let Some(parent) = parent.filter(|parent| !parent.trace_parent.is_empty())
    {
        let mut carrier = HashMap::new();
        carrier.insert("traceparent".to_owned(), parent.trace_parent.clone());
        if let Some(state) = &parent.trace_state {
            carrier.insert("tracestate".to_owned(), state.clone());
        }
        let context = TraceContextPropagator::new().extract(&carrier);
        if let Err(error) = span.set_parent(context) {
            tracing::debug!(?error, "cannot continue the work item's trace");
        }
    }
    span
}

/// Gives the activities and sub-orchestrations a step schedules the step's span as their
/// parent, where the plugin set none: what Microsoft's SDKs put in `parentTraceContext`,
/// so the backend carries it to the work it hands out and their spans join the trace.
/// Does nothing when the current span is not exported.
pub fn stamp_scheduled_work(response: &mut proto::OrchestratorResponse) {
    use proto::orchestrator_action::OrchestratorActionType;
    let span = tracing::Span::current();
    if span.is_disabled() {
        return;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    let Some(trace_parent) = carrier.remove("traceparent") else {
        return;
    };
    let context = proto::TraceContext {
        trace_parent,
        trace_state: carrier
            .remove("tracestate")
            .filter(|state| !state.is_empty()),
        ..Default::default()
    };
    for action in &mut response.actions {
        let slot = match &mut action.orchestrator_action_type {
            Some(OrchestratorActionType::ScheduleTask(task)) => &mut task.parent_trace_context,
            Some(OrchestratorActionType::CreateSubOrchestration(sub)) => {
                &mut sub.parent_trace_context
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(context.clone());
        }
    }
}

/// The trace context an orchestration was started in (its `executionStarted` event).
pub fn orchestration_parent(request: &proto::OrchestratorRequest) -> Option<&proto::TraceContext> {
    use proto::history_event::EventType;
    request
        .past_events
        .iter()
        .chain(request.new_events.iter())
        .find_map(|event| match &event.event_type {
            Some(EventType::ExecutionStarted(started)) => started.parent_trace_context.as_ref(),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_exporter_the_spans_are_disabled() {
        let span = span("activity", "say_hello", "i", "hello 1.0.0", None);
        assert!(span.is_disabled());
    }

    #[test]
    fn an_orchestrations_parent_is_its_execution_started_context() {
        use proto::history_event::EventType;
        let context = proto::TraceContext {
            trace_parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            ..Default::default()
        };
        let request = proto::OrchestratorRequest {
            new_events: vec![proto::HistoryEvent {
                event_type: Some(EventType::ExecutionStarted(proto::ExecutionStartedEvent {
                    parent_trace_context: Some(context.clone()),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(orchestration_parent(&request), Some(&context));
    }
}
