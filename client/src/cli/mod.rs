//! The clap layer of `durabletask-host client`: parse, call [`crate::Client`], print.
//!
//! Three steps, each on the last one's output: clap reads the text ([`ClientArgs`]);
//! [`Invocation::from_args`] checks and converts every flag once, into a typed
//! [`Command`] and [`ConnectionFlags`]; [`Command::run`] performs it. A bad flag is a
//! usage error (exit 2) before the config file is read or anything is connected.
//!
//! Exactly one JSON object goes to stdout; on an error a one-line explanation also goes to
//! stderr, and the exit code says what kind of error it was (see [`ClientError::exit_code`]).

mod args;
mod command;
mod execute;
mod flags;
mod output;
mod settings;

use std::path::Path;
use std::time::SystemTime;

use serde_json::Value;

pub use args::{ClientArgs, PagingArgs, Verb};
pub use command::{Command, Invocation};
pub use output::{EXIT_BROKEN_PIPE, print_stderr, print_stdout, write_failure_code};
pub use settings::{ConfigDefaults, ConnectionFlags};

use crate::{Client, ClientError};
use output::EXIT_ERROR;
use settings::connection_settings;

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

/// Converts the arguments, settles the connection (flags, config file, token) and
/// performs the command: the JSON object to print.
pub async fn execute(
    args: ClientArgs,
    load_defaults: impl FnOnce(&Path) -> Result<ConfigDefaults, String>,
) -> Result<Value, ClientError> {
    let Invocation {
        connection,
        command,
    } = Invocation::from_args(args, SystemTime::now())?;
    let (options, default_version) = connection_settings(connection, load_defaults)?;
    let client = Client::connect(&options)?;
    command
        .with_default_version(default_version)
        .run(&client)
        .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use args::parse_args;

    /// Runs `words` against port 1, where nothing listens: a usage error proves the
    /// network was never tried.
    async fn offline(words: &[&str]) -> ClientError {
        let words: Vec<&str> = ["--endpoint", "http://127.0.0.1:1"]
            .into_iter()
            .chain(words.iter().copied())
            .collect();
        execute(parse_args(&words), |_| Err("no config file".to_owned()))
            .await
            .unwrap_err()
    }

    #[tokio::test]
    async fn every_verb_validates_before_connecting() {
        for (words, flag) in [
            (&["list", "--status", "finished"][..], "--status"),
            (&["start", "orch", "--tag", "Tagged"][..], "--tag"),
            (
                &["start", "orch", "--wait", "--timeout", "0"][..],
                "--timeout",
            ),
            (&["signal-entity", "counter@k1", "add"][..], "'counter@k1'"),
            (&["get-entity", "counter@k1"][..], "'counter@k1'"),
            (&["signal-entity", "@counter@k", ""][..], "OP"),
            (
                &["signal-entity", "@counter@k", "add", "--at", "soon"][..],
                "--at",
            ),
            (
                &["signal-entity", "@counter@k", "add", "--input", "{"][..],
                "--input",
            ),
            (&["list-entities", "--page-size", "0"][..], "--page-size"),
        ] {
            let error = offline(words).await;
            assert!(matches!(error, ClientError::Usage(_)), "{words:?}: {error}");
            assert!(error.to_string().contains(flag), "{words:?}: {error}");
        }
    }

    #[tokio::test]
    async fn a_bad_config_file_is_a_usage_error() {
        let args = parse_args(&["--config", "/nonexistent/host.toml", "status", "x"]);
        let error = execute(args, |path| Err(format!("{}: unreadable", path.display())))
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
        assert_eq!(error.to_string(), "/nonexistent/host.toml: unreadable");
    }
}
