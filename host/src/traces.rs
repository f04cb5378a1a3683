//! OpenTelemetry traces (`[tracing]`): a span for each orchestration step, activity,
//! entity batch and entity operation the host runs, exported over OTLP/gRPC.
//!
//! Spans are made with the OpenTelemetry API directly, not through `tracing` spans and
//! tracing-opentelemetry: that bridge cost about twice as many instructions per span
//! (`bench/operations-cost`). Without `[tracing] otlp_endpoint` no tracer is installed
//! and [`start`] returns `None` after one atomic load.
//!
//! The SDK's batch processor runs on a thread of its own, and the exporter's gRPC
//! connection on a runtime of its own (one thread): exporting never holds up the event
//! loop, and the last batch can be flushed after the event loop has stopped.
//!
//! W3C trace context comes the way Microsoft's SDKs carry it: the `TraceContext` of the
//! protocol's messages (`executionStarted` for an orchestration, the activity request for
//! an activity). A step's span continues the trace its orchestration was started in, and
//! what the step schedules gets the step's span as parent ([`stamp_scheduled_work`]).
//! An entity operation's span ([`OperationSpans`]) continues the trace context the
//! operation carries (`OperationRequest.traceContext`), else its batch's span.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use durabletask_abi::entity::EntityWorkItem;
use durabletask_proto as proto;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    Link, Span as _, SpanKind, Status, TraceContextExt as _, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue, StringValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::config::TracingSettings;

/// The tracer, once `[tracing]` configured one.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The exporter, kept for a flush at shutdown.
pub struct Traces {
    provider: SdkTracerProvider,
    /// Runs the exporter's connection.
    runtime: tokio::runtime::Runtime,
}

impl Traces {
    /// Starts the exporter and installs the tracer, if `[tracing] otlp_endpoint` is set.
    pub fn start(settings: &TracingSettings) -> Result<Option<Traces>, String> {
        let Some(endpoint) = &settings.otlp_endpoint else {
            return Ok(None);
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("trace-exporter")
            .enable_all()
            .build()
            .map_err(|error| format!("[tracing]: cannot start the exporter's runtime: {error}"))?;
        // The exporter's channel (its connection task) belongs to that runtime.
        let entered = runtime.enter();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|error| format!("[tracing] otlp_endpoint = \"{endpoint}\": {error}"))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(settings.service_name.clone())
            .build();
        // The SDK's batch processor: a thread of its own, fed by a channel; its exports
        // travel on the exporter's channel, whose connection runs on `runtime`.
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                settings.sampling_ratio,
            ))))
            .with_resource(resource)
            .build();
        drop(entered);
        if TRACER.set(provider.tracer("durabletask-host")).is_err() {
            return Err("[tracing]: a tracer is installed already".to_owned());
        }
        Ok(Some(Traces { provider, runtime }))
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

/// The name and attributes every span of one kind and name of one plugin generation
/// shares, made once (see `plugins::generation_telemetry`): a span then copies no
/// strings but its instance id.
pub struct SpanNames {
    kind: &'static str,
    span_name: String,
    name: StringValue,
    plugin: StringValue,
}

impl SpanNames {
    pub fn new(kind: &'static str, name: &str, plugin: &str) -> SpanNames {
        SpanNames {
            kind,
            span_name: format!("{kind} {name}"),
            name: StringValue::from(Arc::<str>::from(name)),
            plugin: StringValue::from(Arc::<str>::from(plugin)),
        }
    }

    /// `<kind> <name>`: the spans' name.
    pub fn span_name(&self) -> &str {
        &self.span_name
    }

    /// The generation's `plugin-name version`.
    pub fn plugin(&self) -> &str {
        self.plugin.as_str()
    }
}

/// Starts the span of one work item, continuing `parent` (the protocol's trace context
/// it carries); `None` when traces are off. The span ends when the returned context and
/// its clones are dropped.
pub fn start(
    names: &SpanNames,
    instance_id: &str,
    parent: Option<&proto::TraceContext>,
) -> Option<Context> {
    let tracer = TRACER.get()?;
    let parent = parent.map_or_else(Context::new, extract);
    let span = tracer
        .span_builder(names.span_name.clone())
        .with_kind(SpanKind::Consumer)
        .with_attributes([
            KeyValue::new(KIND, names.kind),
            KeyValue::new(NAME, names.name.clone()),
            KeyValue::new(INSTANCE_ID, instance_id.to_owned()),
            KeyValue::new(PLUGIN, names.plugin.clone()),
        ])
        .start_with_context(tracer, &parent);
    Some(parent.with_span(span))
}

/// Attribute keys.
const KIND: &str = "durabletask.kind";
const NAME: &str = "durabletask.name";
const INSTANCE_ID: &str = "durabletask.instance_id";
const PLUGIN: &str = "durabletask.plugin";
const OPERATION: &str = "durabletask.operation";
const REQUEST_ID: &str = "durabletask.request_id";

/// Names `plugin` as the generation that ran the current work item's span (when the
/// step moved to another generation than the one it started on); nothing outside a
/// span.
pub fn set_plugin(plugin: &str) {
    Context::current()
        .span()
        .set_attribute(KeyValue::new(PLUGIN, plugin.to_owned()));
}

/// Marks a work item's span (made by [`start`]) as failed: the orchestration step failed
/// its orchestration, the activity or the entity batch failed (`kind` names which, in
/// the status's description).
pub fn fail(span: &Context, kind: &str) {
    span.span()
        .set_status(Status::error(format!("the {kind} failed")));
}

/// The operations of one entity batch, taken before the batch runs, to be given a span
/// each once it has run ([`OperationSpans::end`]): the plugin reports each operation's
/// start and end time in its result, so the spans are made afterwards with those times.
pub struct OperationSpans {
    entity_id: String,
    entity_name: StringValue,
    plugin: StringValue,
    operations: Vec<Operation>,
}

/// What an operation's span needs from its request.
struct Operation {
    name: String,
    request_id: String,
    parent: Option<proto::TraceContext>,
}

impl OperationSpans {
    /// The operations of `work` (an entity batch; `names` are its batch spans'), or
    /// `None` when traces are off.
    pub fn before(work: &EntityWorkItem, names: &SpanNames) -> Option<OperationSpans> {
        TRACER.get()?;
        let operations = match work {
            EntityWorkItem::V1(request) => request
                .operations
                .iter()
                .map(|operation| Operation {
                    name: operation.operation.clone(),
                    request_id: operation.request_id.clone(),
                    parent: operation.trace_context.clone(),
                })
                .collect(),
            EntityWorkItem::V2(request) => {
                use proto::history_event::EventType;
                request
                    .operation_requests
                    .iter()
                    .filter_map(|event| match &event.event_type {
                        Some(EventType::EntityOperationSignaled(signal)) => Some(Operation {
                            name: signal.operation.clone(),
                            request_id: signal.request_id.clone(),
                            parent: None,
                        }),
                        Some(EventType::EntityOperationCalled(call)) => Some(Operation {
                            name: call.operation.clone(),
                            request_id: call.request_id.clone(),
                            parent: None,
                        }),
                        _ => None,
                    })
                    .collect()
            }
        };
        Some(OperationSpans {
            entity_id: work.instance_id().to_owned(),
            entity_name: names.name.clone(),
            plugin: names.plugin.clone(),
            operations,
        })
    }

    /// Makes and ends one span per operation, timed as `result` says (the batch's end
    /// when it says nothing, as when the batch failed as a whole), failed when the
    /// operation failed. Called inside the batch's span: an operation that carries no
    /// trace context of its own is its child; one that does continues that trace, linked
    /// to the batch's span.
    pub fn end(self, result: &proto::EntityBatchResult) {
        use proto::operation_result::ResultType;
        let Some(tracer) = TRACER.get() else {
            return;
        };
        let batch = Context::current();
        let batch_span = batch.span().span_context().clone();
        let now = SystemTime::now();
        for (index, operation) in self.operations.into_iter().enumerate() {
            let outcome = result
                .results
                .get(index)
                .and_then(|result| result.result_type.as_ref());
            let (started, ended, failure) = match outcome {
                Some(ResultType::Success(success)) => {
                    (success.start_time_utc, success.end_time_utc, None)
                }
                Some(ResultType::Failure(failed)) => (
                    failed.start_time_utc,
                    failed.end_time_utc,
                    failed.failure_details.as_ref(),
                ),
                None => (None, None, result.failure_details.as_ref()),
            };
            let own_parent = operation
                .parent
                .as_ref()
                .map(extract)
                .filter(|parent| parent.span().span_context().is_valid());
            let mut builder = tracer
                .span_builder(format!(
                    "entity operation {} {}",
                    self.entity_name.as_str(),
                    operation.name
                ))
                .with_kind(SpanKind::Consumer)
                .with_start_time(started.and_then(system_time).unwrap_or(now))
                .with_attributes([
                    KeyValue::new(KIND, "entity_operation"),
                    KeyValue::new(NAME, self.entity_name.clone()),
                    KeyValue::new(OPERATION, operation.name),
                    KeyValue::new(INSTANCE_ID, self.entity_id.clone()),
                    KeyValue::new(REQUEST_ID, operation.request_id),
                    KeyValue::new(PLUGIN, self.plugin.clone()),
                ]);
            if own_parent.is_some() && batch_span.is_valid() {
                builder = builder.with_links(vec![Link::with_context(batch_span.clone())]);
            }
            let mut span =
                builder.start_with_context(tracer, own_parent.as_ref().unwrap_or(&batch));
            if let Some(failure) = failure {
                span.set_status(Status::error(failure.error_type.clone()));
            }
            span.end_with_timestamp(ended.and_then(system_time).unwrap_or(now));
        }
    }
}

/// A protobuf timestamp as a `SystemTime` (`None` before the epoch or out of range).
fn system_time(timestamp: prost_types::Timestamp) -> Option<SystemTime> {
    SystemTime::try_from(timestamp).ok()
}

/// The context a protocol `TraceContext` names (an empty one if it names none), read by
/// the SDK's W3C propagator straight from the message's fields.
fn extract(context: &proto::TraceContext) -> Context {
    TraceContextPropagator::new().extract(&Carrier(context))
}

/// A protocol `TraceContext` as the propagator's carrier of `traceparent` and
/// `tracestate`, without copying them into a map.
struct Carrier<'a>(&'a proto::TraceContext);

impl opentelemetry::propagation::Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.0.trace_parent.as_str()),
            "tracestate" => self.0.trace_state.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Gives the activities and sub-orchestrations a step schedules the step's span as their
/// parent, where the plugin set none: what Microsoft's SDKs put in `parentTraceContext`,
/// so the backend carries it to the work it hands out and their spans join the trace.
/// Called inside the step's span (its context is the current one); does nothing outside
/// one.
pub fn stamp_scheduled_work(response: &mut proto::OrchestratorResponse) {
    use proto::orchestrator_action::OrchestratorActionType;
    let current = Context::current();
    let span = current.span();
    let context = span.span_context();
    if !context.is_valid() {
        return;
    }
    let state = context.trace_state().header();
    let trace_context = proto::TraceContext {
        trace_parent: format!(
            "00-{}-{}-{:02x}",
            context.trace_id(),
            context.span_id(),
            context.trace_flags().to_u8()
        ),
        trace_state: (!state.is_empty()).then_some(state),
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
            *slot = Some(trace_context.clone());
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
    fn without_a_tracer_no_span_is_made() {
        let names = SpanNames::new("activity", "say_hello", "hello 1.0.0");
        assert_eq!(names.span_name(), "activity say_hello");
        assert!(start(&names, "i", None).is_none());
    }

    #[test]
    fn a_traceparent_is_read_as_the_parent() {
        let context = extract(&proto::TraceContext {
            trace_parent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
            trace_state: Some("vendor=x".to_owned()),
            ..Default::default()
        });
        let span = context.span();
        let parent = span.span_context();
        assert!(parent.is_valid());
        assert_eq!(
            parent.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(parent.span_id().to_string(), "b7ad6b7169203331");
        assert_eq!(parent.trace_state().header(), "vendor=x");
    }

    #[test]
    fn outside_a_span_scheduled_work_is_left_alone() {
        use proto::orchestrator_action::OrchestratorActionType;
        let mut response = proto::OrchestratorResponse {
            actions: vec![proto::OrchestratorAction {
                orchestrator_action_type: Some(OrchestratorActionType::ScheduleTask(
                    proto::ScheduleTaskAction::default(),
                )),
                ..Default::default()
            }],
            ..Default::default()
        };
        stamp_scheduled_work(&mut response);
        assert!(matches!(
            &response.actions[0].orchestrator_action_type,
            Some(OrchestratorActionType::ScheduleTask(task)) if task.parent_trace_context.is_none()
        ));
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
