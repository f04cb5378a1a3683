//! The clap layer of `durabletask-host client`: parse, call [`super::Client`], print.
//!
//! Exactly one JSON object goes to stdout; on an error a one-line explanation also goes to
//! stderr, and the exit code says what kind of error it was (see [`ClientError::exit_code`]).

mod args;
mod output;
mod settings;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub use args::{ClientArgs, PagingArgs, Verb};
pub use output::{EXIT_BROKEN_PIPE, print_stderr, print_stdout, write_failure_code};
pub use settings::ConfigDefaults;

use crate::{
    Client, ClientError, EntityListOptions, ListOptions, SignalOptions, StartOptions, entity_id,
    parse_status, signal_time, validate_json,
};
use output::EXIT_ERROR;
use settings::connection_settings;

/// A W3C `traceparent` value: `00-<32 hex, not all 0>-<16 hex, not all 0>-<2 hex>`.
fn check_traceparent(value: &str) -> Result<(), ClientError> {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |part: &str, length: usize| {
        part.len() == length
            && part.bytes().all(|byte| byte.is_ascii_hexdigit())
            && part.bytes().any(|byte| byte != b'0')
    };
    let valid = parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && hex(parts[2], 16)
        && parts[3].len() == 2
        && parts[3].bytes().all(|byte| byte.is_ascii_hexdigit());
    if valid {
        Ok(())
    } else {
        Err(ClientError::Usage(format!(
            "invalid --traceparent \"{value}\": expected 00-<32 hex digits>-<16 hex digits>-<2 hex digits>"
        )))
    }
}

/// Runs the client command, prints its result, and returns the process exit code.
/// `load_defaults` reads the host's configuration file at the path given (`--config`, or
/// `host.toml` here if there is one); its error is printed as a usage error.
pub async fn run(
    args: ClientArgs,
    load_defaults: impl FnOnce(&Path) -> Result<ConfigDefaults, String>,
) -> i32 {
    let (value, code) = match execute(args, load_defaults).await {
        Ok(value) => (value, 0),
        Err(error) => {
            print_stderr(&format!("error: {error}"));
            (error.to_json(), error.exit_code())
        }
    };
    match print_stdout(&format!("{value}\n")) {
        Ok(()) => code,
        // The result was lost: the call's outcome cannot be read, an error like any other.
        Err(error) => write_failure_code(&error, EXIT_ERROR),
    }
}

/// Parses the arguments further (JSON, durations) and performs the call.
pub async fn execute(
    args: ClientArgs,
    load_defaults: impl FnOnce(&Path) -> Result<ConfigDefaults, String>,
) -> Result<Value, ClientError> {
    let (connection, default_version) = connection_settings(&args, load_defaults)?;
    let json_flag = |flag: &str, value: Option<String>| {
        value.map(|text| validate_json(flag, &text)).transpose()
    };
    // Validate every argument before touching the network.
    let verb = match args.verb {
        Verb::Start {
            name,
            input,
            id,
            version,
            tags,
            wait,
            timeout,
            traceparent,
        } => {
            parse_tags(&tags)?;
            if let Some(traceparent) = &traceparent {
                check_traceparent(traceparent)?;
            }
            Verb::Start {
                name,
                input: json_flag("--input", input)?,
                id,
                version,
                tags,
                wait,
                timeout,
                traceparent,
            }
        }
        Verb::RaiseEvent { id, name, data } => Verb::RaiseEvent {
            id,
            name,
            data: json_flag("--data", data)?,
        },
        Verb::Terminate { id, output } => Verb::Terminate {
            id,
            output: json_flag("--output", output)?,
        },
        Verb::List {
            statuses,
            prefix,
            paging,
        } => {
            list_options(&statuses, prefix.clone(), &paging)?;
            Verb::List {
                statuses,
                prefix,
                paging,
            }
        }
        Verb::SignalEntity {
            id,
            operation,
            input,
            at,
        } => Verb::SignalEntity {
            id: entity_id(&id)?,
            operation: non_empty("OP", operation)?,
            input: json_flag("--input", input)?,
            // Resolved here to an absolute time, so a delay counts from when the command
            // was given and the second parse below reads that same time.
            at: at
                .map(|text| signal_time("--at", &text, SystemTime::now()).map(|at| at.to_string()))
                .transpose()?,
        },
        Verb::GetEntity { id, no_state } => Verb::GetEntity {
            id: entity_id(&id)?,
            no_state,
        },
        Verb::ListEntities {
            prefix,
            no_state,
            paging,
        } => {
            paging.checked()?;
            Verb::ListEntities {
                prefix,
                no_state,
                paging,
            }
        }
        other => other,
    };
    let client = Client::connect(&connection)?;
    match verb {
        Verb::Start {
            name,
            input,
            id,
            version,
            tags,
            wait,
            timeout,
            traceparent,
        } => {
            let wait = if wait {
                Some(seconds("--timeout", timeout)?)
            } else {
                None
            };
            let options = StartOptions {
                input,
                instance_id: id,
                version: version.or(default_version),
                tags: parse_tags(&tags)?,
                wait,
                traceparent,
            };
            client.start(&name, options).await
        }
        Verb::Status { id } => client.status(&id).await,
        Verb::Wait { id, timeout } => client.wait(&id, seconds("--timeout", timeout)?).await,
        Verb::RaiseEvent { id, name, data } => client.raise_event(&id, &name, data).await,
        Verb::Suspend { id, reason } => client.suspend(&id, reason).await,
        Verb::Resume { id, reason } => client.resume(&id, reason).await,
        Verb::Terminate { id, output } => client.terminate(&id, output).await,
        Verb::Purge { id } => client.purge(&id).await,
        Verb::History { id } => client.history(&id).await,
        Verb::Rewind { id, reason } => client.rewind(&id, reason).await,
        Verb::Restart { id, new_id } => client.restart(&id, new_id).await,
        Verb::List {
            statuses,
            prefix,
            paging,
        } => client.list(list_options(&statuses, prefix, &paging)?).await,
        Verb::SignalEntity {
            id,
            operation,
            input,
            at,
        } => {
            let at = at
                .map(|text| signal_time("--at", &text, SystemTime::now()))
                .transpose()?;
            let options = SignalOptions { input, at };
            client.signal_entity(&id, &operation, options).await
        }
        Verb::GetEntity { id, no_state } => client.get_entity(&id, !no_state).await,
        Verb::ListEntities {
            prefix,
            no_state,
            paging,
        } => {
            let options = EntityListOptions {
                prefix,
                include_state: !no_state,
                paging: paging.checked()?,
            };
            client.list_entities(options).await
        }
    }
}

/// Checks `list`'s flags: known status names, positive counts.
fn list_options(
    statuses: &[String],
    prefix: Option<String>,
    paging: &PagingArgs,
) -> Result<ListOptions, ClientError> {
    let statuses = statuses
        .iter()
        .filter(|name| !name.trim().is_empty())
        .map(|name| parse_status("--status", name))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ListOptions {
        statuses,
        prefix,
        paging: paging.checked()?,
    })
}

/// A required argument that must not be empty (an empty operation name reaches no code).
fn non_empty(name: &str, value: String) -> Result<String, ClientError> {
    if value.is_empty() {
        Err(ClientError::Usage(format!("{name} must not be empty")))
    } else {
        Ok(value)
    }
}

/// `--tag KEY=VALUE` flags as a map: split at the first `=` (the value may hold more, or
/// be empty); a flag without `=`, with an empty key, or repeating a key is a usage error.
fn parse_tags(tags: &[String]) -> Result<HashMap<String, String>, ClientError> {
    let mut parsed = HashMap::with_capacity(tags.len());
    for tag in tags {
        let Some((key, value)) = tag.split_once('=') else {
            return Err(ClientError::Usage(format!(
                "invalid --tag '{tag}': expected KEY=VALUE"
            )));
        };
        if key.is_empty() {
            return Err(ClientError::Usage(format!(
                "invalid --tag '{tag}': the key before '=' is empty"
            )));
        }
        if parsed.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(ClientError::Usage(format!(
                "invalid --tag '{tag}': the key '{key}' is given twice"
            )));
        }
    }
    Ok(parsed)
}

fn positive(flag: &str, value: usize) -> Result<usize, ClientError> {
    if value == 0 {
        Err(ClientError::Usage(format!(
            "invalid {flag}: expected a positive number, got 0"
        )))
    } else {
        Ok(value)
    }
}

fn seconds(flag: &str, value: f64) -> Result<Duration, ClientError> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|duration| !duration.is_zero())
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "invalid {flag}: expected a positive number of seconds, got {value}"
            ))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::Parser;
    use durabletask_proto::OrchestrationStatus;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    fn parse(args: &[&str]) -> Verb {
        Cli::try_parse_from(std::iter::once("client").chain(args.iter().copied()))
            .unwrap()
            .client
            .verb
    }

    fn pages(limit: usize, page_size: usize, continuation_token: Option<&str>) -> PagingArgs {
        PagingArgs {
            limit,
            page_size,
            continuation_token: continuation_token.map(str::to_owned),
        }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn status_names_are_case_insensitive_and_repeatable() {
        let Verb::List {
            statuses,
            prefix,
            paging,
        } = parse(&[
            "list",
            "--status",
            "completed",
            "--status",
            "Failed,continued_as_new",
            "--prefix",
            "batch-",
        ])
        else {
            panic!("not a list");
        };
        assert_eq!(paging.limit, 100);
        let options = list_options(&statuses, prefix, &paging).unwrap();
        assert_eq!(
            options.statuses,
            vec![
                OrchestrationStatus::Completed,
                OrchestrationStatus::Failed,
                OrchestrationStatus::ContinuedAsNew
            ]
        );
        assert_eq!(options.prefix.as_deref(), Some("batch-"));
        assert_eq!(options.paging.limit, 100);
        assert_eq!(options.paging.page_size, 100);
    }

    #[test]
    fn a_bad_status_names_the_flag_and_the_accepted_names() {
        let error =
            list_options(&strings(&["COMPLETED", "DONE"]), None, &pages(10, 10, None)).unwrap_err();
        assert_eq!(error.exit_code(), 2);
        let message = error.to_json()["error"].as_str().unwrap().to_owned();
        assert!(message.contains("--status"), "{message}");
        assert!(message.contains("'DONE'"), "{message}");
        for name in [
            "RUNNING",
            "COMPLETED",
            "CONTINUED_AS_NEW",
            "FAILED",
            "CANCELED",
            "TERMINATED",
            "PENDING",
            "SUSPENDED",
        ] {
            assert!(message.contains(name), "{name} missing from {message}");
        }
    }

    #[test]
    fn no_status_means_any_status() {
        let options = list_options(&[], None, &pages(5, 2, Some("10"))).unwrap();
        assert!(options.statuses.is_empty());
        assert_eq!(options.paging.continuation_token.as_deref(), Some("10"));
    }

    #[test]
    fn zero_limits_are_refused() {
        let error = list_options(&[], None, &pages(0, 10, None)).unwrap_err();
        assert!(error.to_string().contains("--limit"), "{error}");
        let error = list_options(&[], None, &pages(10, 0, None)).unwrap_err();
        assert!(error.to_string().contains("--page-size"), "{error}");
    }

    #[tokio::test]
    async fn list_validates_before_connecting() {
        let error = offline(&["list", "--status", "finished"]).await;
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
    }

    #[test]
    fn tags_are_key_value_pairs_split_at_the_first_equals_sign() {
        let Verb::Start { tags, .. } = parse(&[
            "start", "orch", "--tag", "team=a", "--tag", "expr=x=1", "--tag", "empty=",
        ]) else {
            panic!("not a start");
        };
        assert_eq!(
            parse_tags(&tags).unwrap(),
            HashMap::from([
                ("team".to_owned(), "a".to_owned()),
                ("expr".to_owned(), "x=1".to_owned()),
                ("empty".to_owned(), String::new()),
            ])
        );
        assert!(parse_tags(&[]).unwrap().is_empty());
    }

    #[test]
    fn a_bad_tag_is_a_usage_error_naming_the_flag() {
        for (tag, reason) in [
            ("novalue", "expected KEY=VALUE"),
            ("=x", "the key before '=' is empty"),
        ] {
            let error = parse_tags(&[tag.to_owned()]).unwrap_err();
            assert!(matches!(error, ClientError::Usage(_)), "{error}");
            assert_eq!(error.exit_code(), 2);
            let message = error.to_string();
            assert!(message.contains("--tag"), "{message}");
            assert!(message.contains(reason), "{message}");
        }
        let error = parse_tags(&["k=1".to_owned(), "k=2".to_owned()]).unwrap_err();
        assert!(error.to_string().contains("given twice"), "{error}");
    }

    #[tokio::test]
    async fn start_validates_tags_before_connecting() {
        let error = offline(&["start", "orch", "--tag", "Tagged"]).await;
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
        assert!(error.to_string().contains("--tag"), "{error}");
    }

    /// Runs `args` against port 1, where nothing listens: a usage error proves the network
    /// was never tried.
    async fn offline(args: &[&str]) -> ClientError {
        let args = ClientArgs {
            config: None,
            endpoint: Some("http://127.0.0.1:1".into()),
            taskhub: None,
            token_env: None,
            token_file: None,
            verb: parse(args),
        };
        execute(args, |_| Err("no config file".to_owned()))
            .await
            .unwrap_err()
    }

    #[test]
    fn the_entity_verbs_parse() {
        let Verb::SignalEntity {
            id,
            operation,
            input,
            at,
        } = parse(&[
            "signal-entity",
            "@Counter@K",
            "add",
            "--input",
            "5",
            "--at",
            "+2s",
        ])
        else {
            panic!("not a signal-entity");
        };
        assert_eq!((id.as_str(), operation.as_str()), ("@Counter@K", "add"));
        assert_eq!((input.as_deref(), at.as_deref()), (Some("5"), Some("+2s")));
        assert!(matches!(
            parse(&["get-entity", "@counter@k"]),
            Verb::GetEntity {
                no_state: false,
                ..
            }
        ));
        assert!(matches!(
            parse(&["get-entity", "@counter@k", "--no-state"]),
            Verb::GetEntity { no_state: true, .. }
        ));
        let Verb::ListEntities {
            prefix,
            no_state,
            paging,
        } = parse(&[
            "list-entities",
            "--prefix",
            "@counter@",
            "--page-size",
            "1",
            "--continuation-token",
            "3",
        ])
        else {
            panic!("not a list-entities");
        };
        assert_eq!(prefix.as_deref(), Some("@counter@"));
        assert_eq!((paging.limit, paging.page_size, no_state), (100, 1, false));
        assert_eq!(paging.continuation_token.as_deref(), Some("3"));
    }

    #[tokio::test]
    async fn a_malformed_entity_id_is_refused_before_connecting() {
        for args in [
            &["signal-entity", "counter@k1", "add"][..],
            &["get-entity", "counter@k1"][..],
        ] {
            let error = offline(args).await;
            assert!(matches!(error, ClientError::Usage(_)), "{error}");
            let message = error.to_string();
            assert!(message.contains("'counter@k1'"), "{message}");
            assert!(message.contains("@name@key"), "{message}");
        }
        let error = offline(&["signal-entity", "@counter@k", ""]).await;
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
    }

    #[tokio::test]
    async fn a_bad_at_is_refused_before_connecting() {
        for at in ["soon", "+2", "-2s", "2026-11-28T12:00:00"] {
            let error = offline(&["signal-entity", "@counter@k", "add", "--at", at]).await;
            assert!(matches!(error, ClientError::Usage(_)), "{at}: {error}");
            let message = error.to_string();
            assert!(message.contains("--at"), "{message}");
            assert!(message.contains(&format!("'{at}'")), "{message}");
            assert!(message.contains("RFC 3339"), "{message}");
        }
        let error = offline(&["signal-entity", "@counter@k", "add", "--input", "{"]).await;
        assert!(error.to_string().contains("--input"), "{error}");
    }

    #[tokio::test]
    async fn list_entities_validates_before_connecting() {
        let error = offline(&["list-entities", "--page-size", "0"]).await;
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
        assert!(error.to_string().contains("--page-size"), "{error}");
    }

    #[test]
    fn the_new_verbs_parse() {
        assert!(matches!(parse(&["history", "abc"]), Verb::History { id } if id == "abc"));
        assert!(matches!(
            parse(&["rewind", "abc", "--reason", "fixed"]),
            Verb::Rewind { id, reason: Some(reason) } if id == "abc" && reason == "fixed"
        ));
        assert!(matches!(
            parse(&["restart", "abc"]),
            Verb::Restart { new_id: false, .. }
        ));
        assert!(matches!(
            parse(&["restart", "abc", "--new-id"]),
            Verb::Restart { new_id: true, .. }
        ));
    }
}
