//! `[logging]`: JSON lines for log pipelines, and a copy of the log in a rolling file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use durabletask_e2e::{Error, Fixture, Result, WAIT};
use serde_json::{Map, Value};

/// The hello plugin's version (its Cargo.toml), which tags its log events.
const HELLO_VERSION: &str = "1.0.0";

/// Parses every non-empty line of `text` as a JSON object; `source` names the text in
/// errors.
fn json_lines(text: &str, source: &str) -> Result<Vec<Map<String, Value>>> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(object)) => Ok(object),
            Ok(other) => Err(Error::new(format!(
                "a line of {source} is JSON but not an object: {other}"
            ))),
            Err(error) => Err(Error::new(format!(
                "a line of {source} is not JSON ({error}): {line}"
            ))),
        })
        .collect()
}

/// An event's message: `fields.message` as tracing's JSON format writes it, or a
/// top-level `message`.
fn message(event: &Map<String, Value>) -> &str {
    event
        .get("fields")
        .and_then(|fields| fields.get("message"))
        .or_else(|| event.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An event's field: under `fields`, or at the top level.
fn field<'a>(event: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    event
        .get("fields")
        .and_then(|fields| fields.get(name))
        .or_else(|| event.get(name))
}

/// An event without its timestamp: stdout and the file stamp each event separately.
fn without_timestamp(event: &Map<String, Value>) -> Map<String, Value> {
    let mut event = event.clone();
    event.remove("timestamp");
    event
}

/// The text of every `host.log*` file in `dir` (a rolling file gets a date suffix), in
/// name order.
fn rolled_log_text(dir: &Path) -> Result<String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| Error::new(format!("cannot list {}: {error}", dir.display())))?;
    let mut paths: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("host.log"))
        })
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(Error::new(format!(
            "no host.log* file in {}",
            dir.display()
        )));
    }
    let mut text = String::new();
    for path in paths {
        text.push_str(
            &std::fs::read_to_string(&path)
                .map_err(|error| Error::new(format!("cannot read {}: {error}", path.display())))?,
        );
    }
    Ok(text)
}

#[test]
fn json_logs_and_rolling_file() -> Result<()> {
    let mut fixture = Fixture::start_with(&["hello"], |config| {
        config.log_format("json").log_file("logs/host.log")
    })?;

    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    fixture
        .host
        .wait_for_log_line(&["saying hello", "London"], WAIT)?;

    // Every stdout line is one JSON object with a level and a message.
    let stdout = json_lines(&fixture.host.logs(), "the host's stdout")?;
    for event in &stdout {
        assert!(
            event.get("level").and_then(Value::as_str).is_some(),
            "an event without a level: {event:?}"
        );
        assert!(
            !message(event).is_empty(),
            "an event without a message: {event:?}"
        );
    }

    // The plugin's events are forwarded with its name and version as fields, and the
    // plugin's own fields stay fields (not text in the message), numbers as numbers.
    for city in ["Tokyo", "Seattle", "London"] {
        let event = stdout
            .iter()
            .find(|event| {
                message(event) == "saying hello" && field(event, "city") == Some(&Value::from(city))
            })
            .ok_or_else(|| {
                Error::new(format!(
                    "no \"saying hello\" event for {city} on stdout\n{}",
                    fixture.host.log_tail()
                ))
            })?;
        assert_eq!(event["level"], "INFO", "{event:?}");
        assert_eq!(
            field(event, "plugin"),
            Some(&Value::from("hello")),
            "{event:?}"
        );
        assert_eq!(
            field(event, "plugin_version"),
            Some(&Value::from(HELLO_VERSION)),
            "{event:?}"
        );
        assert_eq!(
            field(event, "letters"),
            Some(&Value::from(city.len())),
            "{event:?}"
        );
        assert_eq!(
            field(event, "instance_id").and_then(Value::as_str),
            state["instance_id"].as_str(),
            "{event:?}"
        );
    }

    // Stop the host so the file's background writer flushes everything, then the file
    // (relative to the config's directory, not the working directory) holds the same
    // events as stdout.
    fixture.host.sigterm()?;
    let status = fixture.host.wait_exit(WAIT)?;
    assert!(status.success(), "{status}\n{}", fixture.host.log_tail());
    let stdout = json_lines(&fixture.host.logs(), "the host's stdout")?;

    let log_dir = fixture.host.config_dir().join("logs");
    let file_text = rolled_log_text(&log_dir)?;
    let file = json_lines(&file_text, "the log file")?;
    let stdout_events: Vec<_> = stdout.iter().map(without_timestamp).collect();
    let file_events: Vec<_> = file.iter().map(without_timestamp).collect();
    assert_eq!(
        file_events, stdout_events,
        "the log file and stdout hold different events"
    );
    Ok(())
}

/// Issue 13: a plugin's log fields are fields of the host's JSON lines with their types
/// (a list logged with `?` is a JSON array), and `name=value` pairs in text, whether the
/// plugin runs in a child process or in the host's.
#[test]
fn plugin_log_fields_stay_fields_with_their_types() -> Result<()> {
    for in_process in [false, true] {
        let mut fixture = Fixture::start_with(&["faulty"], |config| {
            let config = config.log_format("json");
            if in_process {
                config.in_process()
            } else {
                config
            }
        })?;
        let state = fixture.run("call_log_fields", None)?;
        assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
        fixture.host.wait_for_log("fields of every kind", WAIT)?;
        let stdout = json_lines(&fixture.host.logs(), "the host's stdout")?;
        let event = stdout
            .iter()
            .find(|event| message(event) == "fields of every kind")
            .ok_or_else(|| Error::new(fixture.host.log_tail()))?;
        let fields = event.get("fields").cloned().unwrap_or_default();
        let expected = serde_json::json!({
            "message": "fields of every kind",
            "plugin": "faulty",
            "instance_id": state["instance_id"],
            "city": "Seattle",
            "count": 3,
            "delta": -2,
            "ratio": 0.5,
            "done": true,
            "cities": ["Tokyo", "London"],
            "stock": {"apples": 3, "pears": 0},
            "maybe": "Some(7)",
        });
        for (name, value) in expected.as_object().into_iter().flatten() {
            assert_eq!(
                fields.get(name),
                Some(value),
                "field {name} (in_process = {in_process}): {event:?}"
            );
        }
    }

    // In text, the same fields follow the message as `name=value`.
    let mut fixture = Fixture::start(&["faulty"])?;
    let state = fixture.run("call_log_fields", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    let line = fixture.host.wait_for_log("fields of every kind", WAIT)?;
    for pair in [
        r#"city=Seattle"#,
        r#"count=3"#,
        r#"delta=-2"#,
        r#"done=true"#,
        r#"cities=["Tokyo", "London"]"#,
    ] {
        assert!(line.contains(pair), "no {pair} in: {line}");
    }
    Ok(())
}

/// Issue 10, item 5: the log files are private to the host's user (0600), whatever the
/// umask it was started with, and so is the log folder it creates (0700): a log can hold
/// instance ids, inputs in error messages and plugin output.
#[test]
fn the_log_file_and_the_folder_the_host_creates_for_it_are_private() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;

    let mut fixture = Fixture::start_with(&["hello"], |config| {
        config.log_file("private-logs/host.log")
    })?;
    let state = fixture.run("hello_cities", None)?;
    assert_eq!(state["status"], "COMPLETED", "{}", fixture.explain(&state));
    fixture.host.sigterm()?;
    let status = fixture.host.wait_exit(WAIT)?;
    assert!(status.success(), "{status}\n{}", fixture.host.log_tail());

    let log_dir = fixture.host.config_dir().join("private-logs");
    let mode = |path: &Path| -> Result<u32> {
        let metadata = std::fs::metadata(path)
            .map_err(|error| Error::new(format!("cannot stat {}: {error}", path.display())))?;
        Ok(metadata.permissions().mode() & 0o777)
    };
    assert_eq!(
        mode(&log_dir)?,
        0o700,
        "the log folder {} is not private",
        log_dir.display()
    );
    // The file written (its name carries the date) holds the run's log.
    assert!(rolled_log_text(&log_dir)?.contains("saying hello"));
    for entry in std::fs::read_dir(&log_dir)? {
        let path = entry?.path();
        assert_eq!(
            mode(&path)?,
            0o600,
            "the log file {} is not private",
            path.display()
        );
    }
    Ok(())
}
