//! The clap layer of `durabletask-host client`: parse, call [`super::Client`], print.
//!
//! Exactly one JSON object goes to stdout; on an error a one-line explanation also goes to
//! stderr, and the exit code says what kind of error it was (see [`ClientError::exit_code`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{
    Client, ClientError, ClientOptions, DEFAULT_LIST_LIMIT, DEFAULT_PAGE_SIZE, EntityListOptions,
    ListOptions, Paging, SignalOptions, StartOptions, entity_id, parse_status, signal_time,
    validate_json,
};
use crate::config::{BackendMode, Config};
use crate::connection::{BearerToken, TlsTrust};

/// Where the client connects when neither a flag nor a config file says.
const DEFAULT_ENDPOINT: &str = "http://localhost:4001";
const DEFAULT_TASKHUB: &str = "default";
/// The config file read when `--config` is not given, if it exists (as the host does).
const DEFAULT_CONFIG: &str = "host.toml";

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The host's configuration file: the client uses its backend endpoint, task hub,
    /// token and TLS trust (the embedded backend's certificate, or [backend] ca_file), and
    /// its [versioning] default_version for `start`. Default: host.toml in the
    /// current directory, if there is one. Flags win over the file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The backend's address (http:// plaintext, https:// TLS). Default: the config
    /// file's, else http://localhost:4001.
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// The task hub, sent as the `taskhub` header. Default: the config file's, else
    /// "default".
    #[arg(long, global = true)]
    pub taskhub: Option<String>,
    /// An environment variable holding a bearer token (default: the config file's token
    /// settings, if any).
    #[arg(long, global = true, conflicts_with = "token_file")]
    pub token_env: Option<String>,
    /// A file holding a bearer token (its first line that is not blank or a `#` comment;
    /// default: the config file's token settings, if any).
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(subcommand)]
    pub verb: Verb,
}

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

/// The paging flags `list` and `list-entities` share.
#[derive(Debug, Clone, Args)]
pub struct PagingArgs {
    /// At most this many results in all.
    #[arg(long, default_value_t = DEFAULT_LIST_LIMIT)]
    pub limit: usize,
    /// At most this many results per request to the backend.
    #[arg(long, default_value_t = DEFAULT_PAGE_SIZE)]
    pub page_size: usize,
    /// Go on where a previous call of the same verb stopped (its continuation_token).
    #[arg(long)]
    pub continuation_token: Option<String>,
}

impl PagingArgs {
    /// The paging, once the counts are known to be positive.
    fn checked(&self) -> Result<Paging, ClientError> {
        Ok(Paging {
            limit: positive("--limit", self.limit)?,
            page_size: positive("--page-size", self.page_size)?,
            continuation_token: self.continuation_token.clone(),
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Start an orchestration.
    Start {
        /// The orchestrator's name.
        name: String,
        /// The input, as JSON.
        #[arg(long)]
        input: Option<String>,
        /// The instance id (default: chosen by the backend).
        #[arg(long)]
        id: Option<String>,
        /// The orchestration's version (default: [versioning] default_version of the
        /// config file, if any).
        #[arg(long)]
        version: Option<String>,
        /// A tag for the instance, KEY=VALUE (repeat for several); the backend copies the
        /// tags into its executionStarted event.
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
        /// Wait for the orchestration to finish and print its final state.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 3).
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
        /// Start it inside this W3C trace context (a `traceparent` header's value,
        /// 00-<trace id>-<span id>-<flags>): the host's spans for it join that trace.
        #[arg(long, value_name = "TRACEPARENT")]
        traceparent: Option<String>,
    },
    /// Print an instance's state (exit 4 if it does not exist).
    Status {
        /// The instance id.
        id: String,
    },
    /// Wait for an instance to finish and print its final state.
    Wait {
        /// The instance id.
        id: String,
        /// Give up after this many seconds (exit 3).
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Send an external event to an instance (to a finished one, it is accepted and
    /// read by nothing: a note says so).
    RaiseEvent {
        /// The instance id.
        id: String,
        /// The event's name, as the orchestration waits for it.
        name: String,
        /// The event's data, as JSON.
        #[arg(long)]
        data: Option<String>,
    },
    /// Suspend a running instance: it takes no step until resumed (events that arrive
    /// meanwhile are kept).
    Suspend {
        /// The instance id.
        id: String,
        /// Why, recorded in its history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Resume a suspended instance.
    Resume {
        /// The instance id.
        id: String,
        /// Why, recorded in its history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Terminate an instance: it ends as TERMINATED at once, whatever it was waiting for
    /// (a finished instance is left as it is, with a note saying so).
    Terminate {
        /// The instance id.
        id: String,
        /// The instance's output, as JSON.
        #[arg(long)]
        output: Option<String>,
    },
    /// Delete a finished instance and its history (exit 2, saying so, if it has not
    /// finished; exit 4 if it does not exist).
    Purge {
        /// The instance id.
        id: String,
    },
    /// Print an instance's history, oldest event first.
    History {
        /// The instance id.
        id: String,
    },
    /// Rewind a FAILED instance: its failed activities and sub-orchestrations run again.
    Rewind {
        /// The instance id.
        id: String,
        /// Why, recorded in its history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Run a finished instance again from the start, with the same input.
    Restart {
        /// The instance id.
        id: String,
        /// Run it under a new instance id (default: the same id, replacing it).
        #[arg(long)]
        new_id: bool,
    },
    /// List instances, newest last.
    List {
        /// Only instances in this status (RUNNING, COMPLETED, FAILED, ...; any case).
        /// Repeat the flag or separate with commas for several.
        #[arg(long = "status", value_name = "STATUS", value_delimiter = ',')]
        statuses: Vec<String>,
        /// Only instances whose id starts with this.
        #[arg(long)]
        prefix: Option<String>,
        #[command(flatten)]
        paging: PagingArgs,
    },
    /// Send an operation to an entity without waiting for it to run.
    ///
    /// A one-way signal: the entity (created by its first signal) runs the operation when
    /// the host next picks it up; read the result with get-entity.
    SignalEntity {
        /// The entity, as @name@key (e.g. @counter@k1); the name is case-insensitive and
        /// printed lowercase, the key is kept as given.
        #[arg(value_name = "ID")]
        id: String,
        /// The operation to run, e.g. add.
        #[arg(value_name = "OP")]
        operation: String,
        /// The operation's input, as JSON.
        #[arg(long, value_name = "JSON")]
        input: Option<String>,
        /// Deliver the signal later (default: now): an RFC 3339 timestamp with its offset
        /// (2026-11-28T12:00:00Z) or '+' and a delay from now (+30s, +2m, +1h30m; units
        /// ms, s, m, h, d). A time already past delivers at once.
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        at: Option<String>,
    },
    /// Print an entity's state and metadata (exit 4 if it does not exist).
    GetEntity {
        /// The entity, as @name@key (the name is case-insensitive).
        #[arg(value_name = "ID")]
        id: String,
        /// Leave out the state (printed as null): only whether it exists and its metadata.
        #[arg(long)]
        no_state: bool,
    },
    /// List entities and their states.
    ///
    /// In id order on the reference backend. Entities with operations still queued are
    /// left out until those have run. Prints {"entities": [...], "continuation_token"}.
    ListEntities {
        /// Only entities whose whole id starts with this. Ids are @name@key with the name
        /// lowercase: --prefix @counter@ lists every counter entity, @counter@eu- those
        /// whose key starts with eu-.
        #[arg(long)]
        prefix: Option<String>,
        /// Leave out the states (printed as null).
        #[arg(long)]
        no_state: bool,
        #[command(flatten)]
        paging: PagingArgs,
    },
}

/// Where to connect, and the version `start` gives orchestrations started without
/// `--version`: from the flags, else the config file (`--config`, or `host.toml` here
/// if it exists), else the defaults.
fn connection_settings(args: &ClientArgs) -> Result<(ClientOptions, Option<String>), ClientError> {
    let config = match &args.config {
        Some(path) => Some(load_config(path)?),
        None if Path::new(DEFAULT_CONFIG).is_file() => {
            Some(load_config(Path::new(DEFAULT_CONFIG))?)
        }
        None => None,
    };
    let token = match (&args.token_env, &args.token_file, &config) {
        (Some(name), _, _) => Some(BearerToken::from_env(name).map_err(usage)?),
        (None, Some(file), _) => Some(BearerToken::from_file(file).map_err(usage)?),
        (None, None, Some(config)) => BearerToken::from_settings(&config.backend).map_err(usage)?,
        (None, None, None) => None,
    };
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| config.as_ref().map(backend_endpoint))
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
    let taskhub = args
        .taskhub
        .clone()
        .or_else(|| config.as_ref().map(|c| c.backend.taskhub.clone()))
        .unwrap_or_else(|| DEFAULT_TASKHUB.to_owned());
    let tls = config
        .as_ref()
        .map(|config| TlsTrust::from_settings(&config.backend))
        .unwrap_or_default();
    let default_version = config
        .and_then(|c| c.versioning)
        .and_then(|versioning| versioning.default_version);
    Ok((
        ClientOptions {
            endpoint,
            taskhub,
            token,
            tls,
        },
        default_version,
    ))
}

/// Where the configured backend is: the embedded one's address, or the remote endpoint.
fn backend_endpoint(config: &Config) -> String {
    match config.backend.mode() {
        BackendMode::Embedded => config.embedded.client_endpoint().to_string(),
        BackendMode::Remote => config.backend.endpoint.to_string(),
    }
}

fn load_config(path: &Path) -> Result<Config, ClientError> {
    Config::load(path).map_err(|error| ClientError::Usage(error.to_string()))
}

fn usage(error: impl std::fmt::Display) -> ClientError {
    ClientError::Usage(error.to_string())
}

/// Runs the client command, prints its result, and returns the process exit code.
pub async fn run(args: ClientArgs) -> i32 {
    let (value, code) = match execute(args).await {
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

/// The exit code when stdout was closed before the result was written (`client list | head
/// -n1`): 128 + SIGPIPE, what shells report for a writer killed by a broken pipe.
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// The exit code of errors (a gRPC or usage error, and a result that could not be written).
const EXIT_ERROR: i32 = 2;

/// Writes `text` to stdout and flushes it. A closed stdout (EPIPE) or any other write error is
/// returned instead of panicking as `println!` would.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

/// The exit code after writing the result to stdout failed: [`EXIT_BROKEN_PIPE`], quietly,
/// when the reader closed the pipe (it did not want more: not an error to report), else
/// `otherwise`, with the reason on stderr (a full disk must not pass for a closed pipe).
pub fn write_failure_code(error: &std::io::Error, otherwise: i32) -> i32 {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        EXIT_BROKEN_PIPE
    } else {
        print_stderr(&format!(
            "error: cannot write the result to stdout: {error}"
        ));
        otherwise
    }
}

/// Writes one line to stderr; a closed stderr is ignored (there is nowhere left to say it).
pub fn print_stderr(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Parses the arguments further (JSON, durations) and performs the call.
pub async fn execute(args: ClientArgs) -> Result<Value, ClientError> {
    let (connection, default_version) = connection_settings(&args)?;
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
        execute(ClientArgs {
            config: None,
            endpoint: Some("http://127.0.0.1:1".into()),
            taskhub: None,
            token_env: None,
            token_file: None,
            verb: parse(args),
        })
        .await
        .unwrap_err()
    }

    fn args_with(config: Option<PathBuf>, flags: &[(&str, &str)]) -> ClientArgs {
        let flag = |name: &str| {
            flags
                .iter()
                .find(|(flag, _)| *flag == name)
                .map(|(_, value)| (*value).to_owned())
        };
        ClientArgs {
            config,
            endpoint: flag("endpoint"),
            taskhub: flag("taskhub"),
            token_env: None,
            token_file: None,
            verb: parse(&["status", "x"]),
        }
    }

    #[test]
    fn a_config_file_gives_endpoint_taskhub_and_default_version_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            "[backend]\nendpoint = \"http://backend.example:4100\"\ntaskhub = \"orders\"\n\n[versioning]\ndefault_version = \"1.2.3\"\n",
        )
        .unwrap();
        let (options, default_version) =
            connection_settings(&args_with(Some(path.clone()), &[])).unwrap();
        assert_eq!(options.endpoint, "http://backend.example:4100");
        assert_eq!(options.taskhub, "orders");
        assert_eq!(default_version.as_deref(), Some("1.2.3"));

        let flags = [("endpoint", "http://other:1"), ("taskhub", "hub2")];
        let (options, _) = connection_settings(&args_with(Some(path), &flags)).unwrap();
        assert_eq!(
            (options.endpoint.as_str(), options.taskhub.as_str()),
            ("http://other:1", "hub2")
        );
    }

    #[test]
    fn with_an_embedded_backend_the_client_connects_to_its_listen_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            "[embedded]\nlisten = \"0.0.0.0:4100\"\ninsecure = true\n",
        )
        .unwrap();
        let (options, _) = connection_settings(&args_with(Some(path), &[])).unwrap();
        assert_eq!(options.endpoint, "http://127.0.0.1:4100");
    }

    #[test]
    fn with_an_embedded_backend_serving_tls_the_client_uses_https_and_trusts_its_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(
            &path,
            "[embedded]\nlisten = \"127.0.0.1:4100\"\ntls_cert_file = \"tls/cert.pem\"\ntls_key_file = \"tls/key.pem\"\n",
        )
        .unwrap();
        let (options, _) = connection_settings(&args_with(Some(path), &[])).unwrap();
        assert_eq!(options.endpoint, "https://127.0.0.1:4100");
        assert_eq!(
            options.tls,
            TlsTrust {
                ca_file: Some(dir.path().join("tls/cert.pem")),
                server_name: Some("localhost".to_owned()),
                identity: None,
            }
        );
    }

    #[test]
    fn without_a_config_file_the_defaults_apply_and_a_bad_file_is_a_usage_error() {
        let (options, default_version) = connection_settings(&args_with(None, &[])).unwrap();
        assert_eq!(options.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(options.taskhub, DEFAULT_TASKHUB);
        assert_eq!(default_version, None);
        let error = connection_settings(&args_with(Some("/nonexistent/host.toml".into()), &[]))
            .unwrap_err();
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
        assert!(
            error.to_string().contains("/nonexistent/host.toml"),
            "{error}"
        );
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
    fn a_closed_pipe_exits_141_and_other_write_errors_keep_their_own_code() {
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(write_failure_code(&closed, 2), EXIT_BROKEN_PIPE);
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(write_failure_code(&full, 2), 2);
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
