//! The one conversion of the command line: clap's text ([`ClientArgs`]) to a checked,
//! typed [`Invocation`]. Every flag is parsed here, once, before anything is read or
//! connected; a bad one is a usage error (exit 2) naming it.

use std::time::{Duration, SystemTime};

use durabletask_abi::entity::EntityInstanceId;

use super::flags;
use super::settings::ConnectionFlags;
use super::{ClientArgs, Verb};
use crate::{
    ClientError, EntityListOptions, JsonText, ListOptions, SignalOptions, StartOptions,
    TraceParent, entity_id, signal_time,
};

/// A command line, checked: where to connect, as the flags say, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub connection: ConnectionFlags,
    pub command: Command,
}

impl Invocation {
    /// Checks and converts `args`. `now` is when the command was given: a delayed
    /// signal's `--at +30s` counts from it.
    pub fn from_args(args: ClientArgs, now: SystemTime) -> Result<Self, ClientError> {
        // A verb's bad flag is reported before a bad `--endpoint`.
        let connection = ConnectionFlags::from_args(&args);
        let command = Command::from_verb(args.verb, now)?;
        Ok(Self {
            connection: connection?,
            command,
        })
    }
}

/// One verb with its values, checked and typed: what [`Command::run`] performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Start {
        name: String,
        options: StartOptions,
    },
    Status {
        id: String,
    },
    Wait {
        id: String,
        timeout: Duration,
    },
    RaiseEvent {
        id: String,
        name: String,
        data: Option<JsonText>,
    },
    Suspend {
        id: String,
        reason: Option<String>,
    },
    Resume {
        id: String,
        reason: Option<String>,
    },
    Terminate {
        id: String,
        output: Option<JsonText>,
    },
    Purge {
        id: String,
    },
    History {
        id: String,
    },
    Rewind {
        id: String,
        reason: Option<String>,
    },
    Restart {
        id: String,
        new_id: bool,
    },
    List(ListOptions),
    SignalEntity {
        id: EntityInstanceId,
        operation: String,
        options: SignalOptions,
    },
    GetEntity {
        id: EntityInstanceId,
        include_state: bool,
    },
    ListEntities(EntityListOptions),
}

impl Command {
    /// Checks and converts one verb's arguments (see [`Invocation::from_args`] for `now`).
    pub fn from_verb(verb: Verb, now: SystemTime) -> Result<Self, ClientError> {
        Ok(match verb {
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
                let tags = flags::tags(&tags)?;
                let traceparent = traceparent.map(TraceParent::parse).transpose()?;
                let input = flags::json("--input", input)?;
                // `--timeout` means something only with `--wait`.
                let wait = if wait {
                    Some(flags::seconds("--timeout", timeout)?)
                } else {
                    None
                };
                Command::Start {
                    name,
                    options: StartOptions {
                        input,
                        instance_id: id,
                        version,
                        tags,
                        wait,
                        traceparent,
                    },
                }
            }
            Verb::Status { id } => Command::Status { id },
            Verb::Wait { id, timeout } => Command::Wait {
                id,
                timeout: flags::seconds("--timeout", timeout)?,
            },
            Verb::RaiseEvent { id, name, data } => Command::RaiseEvent {
                id,
                name,
                data: flags::json("--data", data)?,
            },
            Verb::Suspend { id, reason } => Command::Suspend { id, reason },
            Verb::Resume { id, reason } => Command::Resume { id, reason },
            Verb::Terminate { id, output } => Command::Terminate {
                id,
                output: flags::json("--output", output)?,
            },
            Verb::Purge { id } => Command::Purge { id },
            Verb::History { id } => Command::History { id },
            Verb::Rewind { id, reason } => Command::Rewind { id, reason },
            Verb::Restart { id, new_id } => Command::Restart { id, new_id },
            Verb::List {
                statuses,
                prefix,
                paging,
            } => Command::List(ListOptions {
                statuses: flags::statuses(&statuses)?,
                prefix,
                payloads: true,
                paging: flags::paging(paging)?,
                ..ListOptions::default()
            }),
            Verb::SignalEntity {
                id,
                operation,
                input,
                at,
            } => Command::SignalEntity {
                id: entity_id(&id)?,
                operation: flags::non_empty("OP", operation)?,
                options: SignalOptions {
                    input: flags::json("--input", input)?,
                    at: at.map(|text| signal_time("--at", &text, now)).transpose()?,
                },
            },
            Verb::GetEntity { id, no_state } => Command::GetEntity {
                id: entity_id(&id)?,
                include_state: !no_state,
            },
            Verb::ListEntities {
                prefix,
                no_state,
                paging,
            } => Command::ListEntities(EntityListOptions {
                prefix,
                include_state: !no_state,
                paging: flags::paging(paging)?,
            }),
        })
    }

    /// The command with `version` for a `start` given no `--version` (the config file's
    /// `[versioning] default_version`, known only once the file is read).
    pub fn with_default_version(mut self, version: Option<String>) -> Self {
        if let Command::Start { options, .. } = &mut self {
            options.version = options.version.take().or(version);
        }
        self
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;
    use std::path::PathBuf;

    use durabletask_proto::OrchestrationStatus;

    use super::*;
    use crate::Paging;
    use crate::cli::args::parse_args;
    use crate::connection::TokenSource;

    /// A fixed "now", so that delays have known results.
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000)
    }

    fn command(words: &[&str]) -> Result<Command, ClientError> {
        Invocation::from_args(parse_args(words), now()).map(|invocation| invocation.command)
    }

    fn usage_error(words: &[&str]) -> String {
        match command(words) {
            Err(ClientError::Usage(message)) => message,
            other => panic!("{words:?}: not a usage error: {other:?}"),
        }
    }

    #[test]
    fn start_gives_typed_options() {
        let Command::Start { name, options } = command(&[
            "start",
            "orch",
            "--input",
            " {\"b\": 1, \"a\": 2} ",
            "--id",
            "i1",
            "--tag",
            "team=a",
            "--tag",
            "expr=x=1",
            "--wait",
            "--timeout",
            "2.5",
            "--traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ])
        .unwrap() else {
            panic!("not a start");
        };
        assert_eq!(name, "orch");
        // The input travels as written.
        assert_eq!(options.input.unwrap().as_str(), " {\"b\": 1, \"a\": 2} ");
        assert_eq!(options.instance_id.as_deref(), Some("i1"));
        assert_eq!(
            options.tags,
            HashMap::from([
                ("team".to_owned(), "a".to_owned()),
                ("expr".to_owned(), "x=1".to_owned()),
            ])
        );
        assert_eq!(options.wait, Some(Duration::from_millis(2_500)));
        assert_eq!(
            options.traceparent.unwrap().as_str(),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
    }

    #[test]
    fn start_checks_its_timeout_only_with_wait() {
        let Command::Start { options, .. } = command(&["start", "orch", "--timeout", "0"]).unwrap()
        else {
            panic!("not a start");
        };
        assert_eq!(options.wait, None);
        let message = usage_error(&["start", "orch", "--wait", "--timeout", "0"]);
        assert!(message.starts_with("invalid --timeout"), "{message}");
        let Command::Start { options, .. } = command(&["start", "orch", "--wait"]).unwrap() else {
            panic!("not a start");
        };
        assert_eq!(options.wait, Some(Duration::from_secs(60)));
    }

    #[test]
    fn start_refuses_bad_tags_traceparents_and_input_naming_the_flag() {
        for (words, flag) in [
            (&["start", "orch", "--tag", "Tagged"][..], "--tag"),
            (
                &["start", "orch", "--traceparent", "00-abc"][..],
                "--traceparent",
            ),
            (&["start", "orch", "--input", "{"][..], "--input"),
        ] {
            let message = usage_error(words);
            assert!(message.contains(flag), "{words:?}: {message}");
        }
    }

    #[test]
    fn the_default_version_applies_to_a_start_without_version_only() {
        let start = command(&["start", "orch"]).unwrap();
        let Command::Start { options, .. } = start.with_default_version(Some("1.0".into())) else {
            panic!("not a start");
        };
        assert_eq!(options.version.as_deref(), Some("1.0"));
        let start = command(&["start", "orch", "--version", "2.0"]).unwrap();
        let Command::Start { options, .. } = start.with_default_version(Some("1.0".into())) else {
            panic!("not a start");
        };
        assert_eq!(options.version.as_deref(), Some("2.0"));
        let status = command(&["status", "x"]).unwrap();
        assert_eq!(
            status.clone().with_default_version(Some("1.0".into())),
            status
        );
    }

    #[test]
    fn payloads_and_timeouts_of_the_instance_verbs_are_typed() {
        assert_eq!(
            command(&["wait", "x", "--timeout", "3"]).unwrap(),
            Command::Wait {
                id: "x".into(),
                timeout: Duration::from_secs(3)
            }
        );
        assert!(usage_error(&["wait", "x", "--timeout", "nan"]).contains("got NaN"));
        let Command::RaiseEvent { data, .. } =
            command(&["raise-event", "x", "ev", "--data", "[1]"]).unwrap()
        else {
            panic!("not a raise-event");
        };
        assert_eq!(data.unwrap().as_str(), "[1]");
        assert!(usage_error(&["raise-event", "x", "ev", "--data", "{"]).contains("--data"));
        assert!(usage_error(&["terminate", "x", "--output", "nope"]).contains("--output"));
        assert_eq!(
            command(&["rewind", "abc", "--reason", "fixed"]).unwrap(),
            Command::Rewind {
                id: "abc".into(),
                reason: Some("fixed".into())
            }
        );
        assert_eq!(
            command(&["restart", "abc", "--new-id"]).unwrap(),
            Command::Restart {
                id: "abc".into(),
                new_id: true
            }
        );
        assert_eq!(
            command(&["history", "abc"]).unwrap(),
            Command::History { id: "abc".into() }
        );
    }

    #[test]
    fn status_names_are_case_insensitive_and_repeatable() {
        let Command::List(options) = command(&[
            "list",
            "--status",
            "completed",
            "--status",
            "Failed,continued_as_new",
            "--prefix",
            "batch-",
        ])
        .unwrap() else {
            panic!("not a list");
        };
        assert_eq!(
            options.statuses,
            vec![
                OrchestrationStatus::Completed,
                OrchestrationStatus::Failed,
                OrchestrationStatus::ContinuedAsNew
            ]
        );
        assert_eq!(options.prefix.as_deref(), Some("batch-"));
        assert_eq!(options.paging, Paging::default());
        assert!(usage_error(&["list", "--status", "finished"]).contains("'finished'"));
        assert!(usage_error(&["list", "--limit", "0"]).contains("--limit"));
    }

    #[test]
    fn the_entity_verbs_give_canonical_ids_and_absolute_times() {
        let Command::SignalEntity {
            id,
            operation,
            options,
        } = command(&[
            "signal-entity",
            "@Counter@K",
            "add",
            "--input",
            "5",
            "--at",
            "+2s",
        ])
        .unwrap()
        else {
            panic!("not a signal-entity");
        };
        assert_eq!(
            (id.to_string().as_str(), operation.as_str()),
            ("@counter@K", "add")
        );
        assert_eq!(options.input.unwrap().as_str(), "5");
        // Resolved once, from when the command was given.
        assert_eq!(options.at, Some(now() + Duration::from_secs(2)));
        let Command::SignalEntity { options, .. } = command(&[
            "signal-entity",
            "@counter@k",
            "add",
            "--at",
            "1970-01-01T00:01:00Z",
        ])
        .unwrap() else {
            panic!("not a signal-entity");
        };
        assert_eq!(
            options.at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
        );
        assert!(matches!(
            command(&["get-entity", "@counter@k"]).unwrap(),
            Command::GetEntity {
                include_state: true,
                ..
            }
        ));
        assert!(matches!(
            command(&["get-entity", "@counter@k", "--no-state"]).unwrap(),
            Command::GetEntity {
                include_state: false,
                ..
            }
        ));
        let Command::ListEntities(options) = command(&[
            "list-entities",
            "--prefix",
            "@counter@",
            "--page-size",
            "1",
            "--continuation-token",
            "3",
        ])
        .unwrap() else {
            panic!("not a list-entities");
        };
        assert_eq!(options.prefix.as_deref(), Some("@counter@"));
        assert!(options.include_state);
        assert_eq!(
            options.paging,
            Paging {
                limit: 100,
                page_size: 1,
                continuation_token: Some("3".into())
            }
        );
    }

    #[test]
    fn malformed_entity_ids_operations_and_times_are_refused() {
        for words in [
            &["signal-entity", "counter@k1", "add"][..],
            &["get-entity", "counter@k1"][..],
        ] {
            let message = usage_error(words);
            assert!(message.contains("'counter@k1'"), "{message}");
            assert!(message.contains("@name@key"), "{message}");
        }
        assert_eq!(
            usage_error(&["signal-entity", "@counter@k", ""]),
            "OP must not be empty"
        );
        for at in ["soon", "+2", "-2s", "2026-11-28T12:00:00"] {
            let message = usage_error(&["signal-entity", "@counter@k", "add", "--at", at]);
            assert!(message.contains(&format!("--at '{at}'")), "{message}");
            assert!(message.contains("RFC 3339"), "{message}");
        }
        let message = usage_error(&["signal-entity", "@counter@k", "add", "--input", "{"]);
        assert!(message.contains("--input"), "{message}");
        let message = usage_error(&["list-entities", "--page-size", "0"]);
        assert!(message.contains("--page-size"), "{message}");
    }

    #[test]
    fn the_connection_flags_come_along_and_the_verbs_errors_come_first() {
        let invocation = Invocation::from_args(
            parse_args(&[
                "--endpoint",
                "http://b:1",
                "--token-file",
                "t",
                "purge",
                "x",
            ]),
            now(),
        )
        .unwrap();
        assert_eq!(invocation.command, Command::Purge { id: "x".into() });
        assert_eq!(invocation.connection.endpoint.unwrap().uri(), "http://b:1");
        assert_eq!(
            invocation.connection.token,
            Some(TokenSource::File(PathBuf::from("t")))
        );
        let message = usage_error(&["--endpoint", "ftp://x", "list", "--limit", "0"]);
        assert!(message.contains("--limit"), "{message}");
        let message = usage_error(&["--endpoint", "ftp://x", "list"]);
        assert!(message.starts_with("invalid --endpoint"), "{message}");
    }
}
