//! The command line of `durabletask-host client`, as clap reads it: the connection flags
//! and one verb with its flags, still as text. [`super::Invocation::from_args`] checks
//! and converts them, once; nothing reads these types after that.
//!
//! The doc comments of the flags are clap's `--help` text, written for a terminal:
//! `[backend] ca_file` names a section of the config file, `<trace id>` a placeholder,
//! not a link or a tag, so rustdoc's link and HTML checks are off here.

#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::{DEFAULT_LIST_LIMIT, DEFAULT_PAGE_SIZE};

/// `durabletask-host client [FLAGS] <VERB> ...`.
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

/// What the client is asked to do, with the verb's own flags.
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

/// The arguments clap makes of `client <words>`, for the tests of what comes of them.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(super) fn parse_args(words: &[&str]) -> ClientArgs {
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        client: ClientArgs,
    }

    Cli::try_parse_from(std::iter::once("client").chain(words.iter().copied()))
        .unwrap()
        .client
}
