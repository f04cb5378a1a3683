//! The clap layer of `durabletask-host client`: parse, call [`super::Client`], print.
//!
//! Exactly one JSON object goes to stdout; on an error a one-line explanation also goes to
//! stderr, and the exit code says what kind of error it was (see [`ClientError::exit_code`]).

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::{Client, ClientError, ClientOptions, StartOptions, validate_json};
use crate::connection::BearerToken;

#[derive(Debug, Args)]
pub struct ClientArgs {
    /// The backend's address (http:// plaintext, https:// TLS).
    #[arg(long, global = true, default_value = "http://localhost:4001")]
    pub endpoint: String,
    /// The task hub, sent as the `taskhub` header.
    #[arg(long, global = true, default_value = "default")]
    pub taskhub: String,
    /// An environment variable holding a bearer token.
    #[arg(long, global = true)]
    pub token_env: Option<String>,
    #[command(subcommand)]
    pub verb: Verb,
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
        #[arg(long)]
        version: Option<String>,
        /// Wait for the orchestration to finish and print its final state.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds (exit 3).
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Print an instance's state (exit 4 if it does not exist).
    Status { id: String },
    /// Wait for an instance to finish and print its final state.
    Wait {
        id: String,
        #[arg(long, default_value_t = 60.0)]
        timeout: f64,
    },
    /// Send an external event to an instance.
    RaiseEvent {
        id: String,
        name: String,
        /// The event's data, as JSON.
        #[arg(long)]
        data: Option<String>,
    },
    Suspend {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Resume {
        id: String,
        #[arg(long)]
        reason: Option<String>,
    },
    Terminate {
        id: String,
        /// The instance's output, as JSON.
        #[arg(long)]
        output: Option<String>,
    },
    /// Delete a finished instance.
    Purge { id: String },
}

/// Runs the client command, prints its result, and returns the process exit code.
pub async fn run(args: ClientArgs) -> i32 {
    let (value, code) = match execute(args).await {
        Ok(value) => (value, 0),
        Err(error) => {
            eprintln!("error: {error}");
            (error.to_json(), error.exit_code())
        }
    };
    println!("{value}");
    code
}

/// Parses the arguments further (JSON, durations) and performs the call.
pub async fn execute(args: ClientArgs) -> Result<Value, ClientError> {
    let token = match &args.token_env {
        Some(name) => Some(
            BearerToken::from_env(name).map_err(|error| ClientError::Usage(error.to_string()))?,
        ),
        None => None,
    };
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
            wait,
            timeout,
        } => Verb::Start {
            name,
            input: json_flag("--input", input)?,
            id,
            version,
            wait,
            timeout,
        },
        Verb::RaiseEvent { id, name, data } => Verb::RaiseEvent {
            id,
            name,
            data: json_flag("--data", data)?,
        },
        Verb::Terminate { id, output } => Verb::Terminate {
            id,
            output: json_flag("--output", output)?,
        },
        other => other,
    };
    let client = Client::connect(&ClientOptions {
        endpoint: args.endpoint,
        taskhub: args.taskhub,
        token,
    })?;
    match verb {
        Verb::Start {
            name,
            input,
            id,
            version,
            wait,
            timeout,
        } => {
            let wait = if wait {
                Some(seconds("--timeout", timeout)?)
            } else {
                None
            };
            let options = StartOptions {
                input,
                instance_id: id,
                version,
                wait,
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
