//! What the operations take beyond an instance id: connection, start, listing and signal
//! options, in checked types (the CLI makes them once, from the flags).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use durabletask_proto::OrchestrationStatus;

use crate::connection::{BearerToken, TlsTrust};
use crate::{Endpoint, JsonText, TraceParent};

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub endpoint: Endpoint,
    pub taskhub: String,
    pub token: Option<BearerToken>,
    /// How an https endpoint's certificate is checked.
    pub tls: TlsTrust,
}

/// What `start` needs beyond the orchestrator name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartOptions {
    pub input: Option<JsonText>,
    pub instance_id: Option<String>,
    pub version: Option<String>,
    /// Copied by the backend into the orchestration's `executionStarted` event.
    pub tags: HashMap<String, String>,
    /// Wait for completion, at most this long.
    pub wait: Option<Duration>,
    /// The W3C trace context it starts in.
    pub traceparent: Option<TraceParent>,
}

/// How much of a listing to fetch; `list` and `list-entities` page alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paging {
    /// At most this many results in all (at least 1).
    pub limit: usize,
    /// At most this many results per backend call (at least 1).
    pub page_size: usize,
    /// Where a previous listing stopped (its `continuation_token`).
    pub continuation_token: Option<String>,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            limit: DEFAULT_LIST_LIMIT,
            page_size: DEFAULT_PAGE_SIZE,
            continuation_token: None,
        }
    }
}

/// What `list` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only instances in one of these statuses (none: any status).
    pub statuses: Vec<OrchestrationStatus>,
    /// Only instances whose id starts with this.
    pub prefix: Option<String>,
    /// Only instances created at or after this time.
    pub created_from: Option<SystemTime>,
    /// Only instances created before this time.
    pub created_to: Option<SystemTime>,
    /// Fetch each instance's input, output, custom status and failure details (they may
    /// be megabytes each: a listing that shows only statuses asks without, and gets
    /// none of them).
    pub payloads: bool,
    pub paging: Paging,
}

/// One backend page of a listing by name ([`crate::Client::list_page_named`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NamedPage {
    /// The page's instances of that name, as `list` gives them.
    pub instances: Vec<serde_json::Value>,
    /// How many instances the page held, of any name.
    pub scanned: usize,
    /// Where the next page starts (None: this was the last).
    pub continuation_token: Option<String>,
}

/// What `list-entities` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityListOptions {
    /// Only entities whose whole id (`@name@key`, name lowercase) starts with this.
    pub prefix: Option<String>,
    /// Fetch each entity's state (else `state` is null).
    pub include_state: bool,
    pub paging: Paging,
}

/// What `signal-entity` sends beyond the entity and the operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignalOptions {
    pub input: Option<JsonText>,
    /// Deliver the signal at this time rather than now.
    pub at: Option<SystemTime>,
}

/// How many results a listing returns unless told otherwise.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// How many results a listing asks for per call unless told otherwise.
pub const DEFAULT_PAGE_SIZE: usize = 100;
