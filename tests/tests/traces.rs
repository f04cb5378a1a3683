//! OpenTelemetry traces: with `[tracing] otlp_endpoint`, an orchestration started inside
//! a trace (`client start --traceparent`, the protocol's `parentTraceContext`) is traced
//! by the host in that trace: a span per orchestration step and per activity, named by
//! kind and name, with the instance id and the plugin generation, the activities' spans
//! children of the steps that scheduled them. The spans are received by an OTLP/gRPC
//! receiver of the test harness (no collector can be installed here).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use durabletask_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use durabletask_e2e::{Client, Host, HostConfig, PluginFile, Result, WAIT, poll_until};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn an_orchestration_started_in_a_trace_is_traced_in_it() -> Result<()> {
    let receiver = OtlpReceiver::start()?;
    let mut host = Host::start(
        &HostConfig::embedded()
            .plugin(PluginFile::built("hello")?)
            .section(&format!(
                "[tracing]\notlp_endpoint = \"{}\"\nservice_name = \"orders-workers\"\n",
                receiver.endpoint()
            )),
    )?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let run = client.run(&[
        "start",
        "hello_cities",
        "--traceparent",
        &traceparent,
        "--wait",
    ])?;
    let state = run.ok()?;
    assert_eq!(state["status"], "COMPLETED", "{state}");
    let instance_id = state["instance_id"].as_str().unwrap().to_owned();

    // hello_cities: 4 steps, 3 say_hello activities. Spans are exported in batches.
    let in_trace = |spans: &[ReceivedSpan], name: &str| -> Vec<ReceivedSpan> {
        spans
            .iter()
            .filter(|span| span.trace_id == TRACE_ID && span.name == name)
            .cloned()
            .collect()
    };
    let found = poll_until(WAIT, || {
        let spans = receiver.spans();
        let steps = in_trace(&spans, "orchestration hello_cities");
        let activities = in_trace(&spans, "activity say_hello");
        Ok((steps.len() >= 4 && activities.len() >= 3).then_some((steps, activities)))
    })?;
    let (steps, activities) = found.unwrap_or_else(|| {
        panic!(
            "not every span arrived in trace {TRACE_ID}: {:#?}\n{}",
            receiver.spans(),
            host.log_tail()
        )
    });
    for span in steps.iter().chain(&activities) {
        assert_eq!(span.service_name, "orders-workers", "{span:?}");
        assert_eq!(
            span.attributes.get("durabletask.instance_id"),
            Some(&instance_id),
            "{span:?}"
        );
        assert_eq!(
            span.attributes
                .get("durabletask.plugin")
                .map(String::as_str),
            Some("hello 1.0.0"),
            "{span:?}"
        );
    }
    // Steps continue the client's trace; activities are children of the steps that
    // scheduled them.
    for step in &steps {
        assert_eq!(step.parent_span_id, PARENT_SPAN, "{step:?}");
    }
    let step_ids: Vec<&str> = steps.iter().map(|step| step.span_id.as_str()).collect();
    for activity in &activities {
        assert!(
            step_ids.contains(&activity.parent_span_id.as_str()),
            "{activity:?} is not a child of a step: {steps:#?}"
        );
    }
    host.sigterm()?;
    host.wait_exit(WAIT)?;
    Ok(())
}

#[test]
fn a_malformed_traceparent_is_refused_by_the_client() -> Result<()> {
    let host_config = HostConfig::embedded().plugin(PluginFile::built("hello")?);
    let mut host = Host::start(&host_config)?;
    let client = Client::new(host.embedded_endpoint()?)?;
    let run = client.run(&["start", "hello_cities", "--traceparent", "00-nothex-01"])?;
    assert_eq!(
        run.exit_code,
        Some(durabletask_e2e::exit_codes::ERROR),
        "{run:?}"
    );
    assert!(run.stderr.contains("invalid --traceparent"), "{run:?}");
    Ok(())
}
