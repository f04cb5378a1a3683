//! OpenTelemetry traces: with `[tracing] otlp_endpoint`, an orchestration started inside
//! a trace (`client start --traceparent`, the protocol's `parentTraceContext`) is traced
//! by the host in that trace: a span per orchestration step and per activity, named by
//! kind and name, with the instance id and the plugin generation, the activities' spans
//! children of the steps that scheduled them; entity operations have spans of their own.
//! The spans are received by an OTLP/gRPC
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

/// A span per entity operation, timed by the plugin's report, a child of its batch's
/// span, named by entity and operation; a failed operation's span says why.
#[test]
fn entity_operations_have_spans_of_their_own() -> Result<()> {
    let receiver = OtlpReceiver::start()?;
    let mut host = Host::start(
        &HostConfig::embedded()
            .plugin(PluginFile::built("entities")?)
            .section(&format!(
                "[tracing]\notlp_endpoint = \"{}\"\n",
                receiver.endpoint()
            )),
    )?;
    let client = Client::new(host.embedded_endpoint()?)?;
    // count_to signals `add` 3 times to @counter@laps, then calls `get`.
    let state = client
        .run(&[
            "start",
            "count_to",
            "--input",
            r#"{"key": "laps", "times": 3}"#,
            "--wait",
        ])?
        .ok()?;
    assert_eq!(state["status"], "COMPLETED", "{state}");
    let failed = client
        .run(&[
            "start",
            "call_counter",
            "--input",
            r#"{"key": "spans", "operation": "explode"}"#,
            "--wait",
        ])?
        .ok()?;
    assert_eq!(failed["status"], "FAILED", "{failed}");

    let named = |spans: &[ReceivedSpan], name: &str| -> Vec<ReceivedSpan> {
        spans
            .iter()
            .filter(|span| span.name == name)
            .cloned()
            .collect()
    };
    let found = poll_until(WAIT, || {
        let spans = receiver.spans();
        let adds = named(&spans, "entity operation counter add");
        let gets = named(&spans, "entity operation counter get");
        let explodes = named(&spans, "entity operation counter explode");
        let batches = named(&spans, "entity counter");
        Ok(
            (adds.len() >= 3 && !gets.is_empty() && !explodes.is_empty())
                .then_some((adds, gets, explodes, batches)),
        )
    })?;
    let (adds, gets, explodes, batches) = found.unwrap_or_else(|| {
        panic!(
            "not every entity operation's span arrived: {:#?}\n{}",
            receiver.spans(),
            host.log_tail()
        )
    });
    let batch_ids: Vec<&str> = batches.iter().map(|batch| batch.span_id.as_str()).collect();
    for span in adds.iter().chain(&gets).chain(&explodes) {
        assert!(
            batch_ids.contains(&span.parent_span_id.as_str()),
            "{span:?} is not a child of a batch: {batches:#?}"
        );
        assert_eq!(span.attributes["durabletask.kind"], "entity_operation");
        assert_eq!(span.attributes["durabletask.name"], "counter");
        assert!(
            span.attributes["durabletask.instance_id"].starts_with("@counter@"),
            "{span:?}"
        );
        assert!(
            !span.attributes["durabletask.request_id"].is_empty(),
            "{span:?}"
        );
        assert_eq!(span.attributes["durabletask.plugin"], "entities 1.0.0");
        assert!(span.start_unix_nano > 0 && span.start_unix_nano <= span.end_unix_nano);
    }
    for span in adds.iter().chain(&gets) {
        assert_eq!(span.error, None, "{span:?}");
    }
    assert_eq!(
        explodes[0].error.as_deref(),
        Some("UnknownEntityOperation"),
        "{:?}",
        explodes[0]
    );
    assert_eq!(
        explodes[0].attributes["durabletask.instance_id"],
        "@counter@spans"
    );
    // The orchestration that failed has its failed step marked so.
    let failed_steps: Vec<ReceivedSpan> = named(&receiver.spans(), "orchestration call_counter")
        .into_iter()
        .filter(|span| span.error.is_some())
        .collect();
    assert_eq!(failed_steps.len(), 1, "{:#?}", receiver.spans());
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

/// A trace started by Microsoft's Python SDK (its client inside an OpenTelemetry span)
/// continues through the host (the steps of the `faulty` plugin's `calls_python`) and back
/// into Microsoft's Python worker (the `py_greet` activity it calls), all in one trace,
/// each side exporting its spans to the same receiver.
#[test]
fn a_trace_from_the_python_sdk_goes_through_the_host_and_back() -> Result<()> {
    use std::process::Command;
    let receiver = OtlpReceiver::start()?;
    let mut host = Host::start(
        &HostConfig::embedded()
            .plugin(PluginFile::built("faulty")?)
            .work_item_filters(true)
            .section(&format!(
                "[tracing]\notlp_endpoint = \"{}\"\n",
                receiver.endpoint()
            )),
    )?;
    let endpoint = host.embedded_endpoint()?;
    let script = durabletask_e2e::paths::workspace_root()
        .join("tests")
        .join("python_trace.py");
    let output = durabletask_e2e::run_with_timeout(
        Command::new(durabletask_e2e::python::reference_python()?)
            .arg(&script)
            .args(["--address", endpoint.trim_start_matches("http://")])
            .args(["--otlp", receiver.endpoint()]),
        std::time::Duration::from_secs(120),
    )?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let explain = || {
        format!(
            "{stdout}\n{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            host.log_tail()
        )
    };
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_default();
    assert_eq!(result["status"], "COMPLETED", "{}", explain());
    assert_eq!(
        result["output"],
        serde_json::json!(["Hello Ada from Python!", 42]),
        "{}",
        explain()
    );
    let trace_id = result["trace_id"].as_str().unwrap_or_default().to_owned();

    let found = poll_until(WAIT, || {
        let spans: Vec<ReceivedSpan> = receiver
            .spans()
            .into_iter()
            .filter(|span| span.trace_id == trace_id)
            .collect();
        let steps: Vec<&ReceivedSpan> = spans
            .iter()
            .filter(|span| span.name == "orchestration calls_python")
            .collect();
        let step_ids: Vec<&str> = steps.iter().map(|step| step.span_id.as_str()).collect();
        // The Python worker's span for py_greet, a child of a host step.
        let back = spans.iter().any(|span| {
            span.service_name == "python-sdk"
                && span.name.contains("py_greet")
                && step_ids.contains(&span.parent_span_id.as_str())
        });
        let client = spans
            .iter()
            .any(|span| span.service_name == "python-sdk" && span.name == "checkout");
        Ok((!steps.is_empty() && back && client).then_some(()))
    })?;
    assert!(
        found.is_some(),
        "trace {trace_id} does not go from the Python client through the host's steps into the Python worker: {:#?}\n{}",
        receiver
            .spans()
            .iter()
            .map(|span| (
                &span.service_name,
                &span.name,
                &span.trace_id,
                &span.span_id,
                &span.parent_span_id
            ))
            .collect::<Vec<_>>(),
        explain()
    );
    Ok(())
}
