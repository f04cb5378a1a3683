//! `[plugins] verify_replay`: before a library deployed while the host runs goes in
//! service, replay the histories of running orchestrations it could be handed, and refuse
//! it if one would fail on it.
//!
//! Which orchestrations: running, pending and suspended instances of the orchestrators it
//! registers that routing would hand it if the host had no memory of where they ran
//! (`plugins::sticky` is the process's and is gone after a restart): those started
//! with the version of another generation in service stay there and are not at stake;
//! unversioned ones are. At most `verify_replay` of them are replayed, and at most
//! [`MAX_LISTED`] running instances are listed to find them.
//!
//! The gate runs on the thread that scans the plugins folder (the watcher's, or a
//! blocking thread for SIGHUP), and waits there for the backend and the replays: the
//! event loop keeps serving meanwhile. A backend it cannot reach leaves the library
//! waiting (judged again at the next scan), never in service unverified.

use std::sync::Arc;

use durabletask_abi::error_types;
use durabletask_backend::InProcessClient;
use durabletask_client::connection::{self, CallMetadata};
use durabletask_proto as proto;
use proto::history_event::EventType;

use super::catalog::Catalog;
use super::generation::Generation;
use super::replay::{self, Verdict};
use super::routing;
use crate::config::{BackendSettings, VersioningSettings};
use crate::worker::BackendClient;

/// The longest a check may take (listing, reading histories, replays): past it the
/// library waits for the next scan.
const CHECK_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// At most this many running instances are listed to find those at stake.
pub const MAX_LISTED: usize = 10_000;
/// Instances asked for per page.
const PAGE_SIZE: i32 = 500;

/// Whether a new generation may go in service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    Admit,
    /// Never, this build: why.
    Refuse(String),
    /// Not yet (the backend could not be asked): why. Judged again at the next scan.
    NotYet(String),
}

/// Where the gate reads running orchestrations and their histories.
#[derive(Clone, Debug)]
pub enum GateBackend {
    /// The host's embedded backend, in process.
    InProcess(InProcessClient),
    /// A remote backend, over its own connection (made at each check, with the token
    /// read then).
    Remote(Box<BackendSettings>),
}

/// The gate: how many to replay, where to read them, and the routing rules.
pub struct ReplayGate {
    limit: usize,
    backend: GateBackend,
    versioning: Option<VersioningSettings>,
    /// The host's event loop, which drives the backend's connection; the gate waits on it
    /// from the scanning thread.
    runtime: tokio::runtime::Handle,
}

/// A running instance found at stake.
struct AtStake {
    instance_id: String,
    orchestrator: String,
}

impl ReplayGate {
    /// A gate replaying up to `limit` orchestrations; call it from within the host's
    /// event loop (it keeps a handle to it).
    pub fn new(
        limit: u32,
        backend: GateBackend,
        versioning: Option<VersioningSettings>,
    ) -> ReplayGate {
        ReplayGate {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            backend,
            versioning,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// Judges `candidate` beside the generations in service, `active`. Blocks: call it
    /// from a thread that is not the event loop's.
    /// `properties` are the worker settings the host adds to every step.
    pub(crate) fn admit(
        &self,
        candidate: &Arc<Generation>,
        active: &[Arc<Generation>],
        properties: &[(String, prost_types::Value)],
    ) -> Admission {
        if self.limit == 0 || candidate.plugin().orchestrators.is_empty() {
            return Admission::Admit;
        }
        self.runtime.block_on(async {
            // Bounded: the scanning thread (and the manager) waits for the verdict.
            tokio::time::timeout(CHECK_DEADLINE, self.verify(candidate, active, properties))
                .await
                .unwrap_or_else(|_| {
                    Admission::NotYet(format!(
                        "the replay check did not finish within {CHECK_DEADLINE:?}"
                    ))
                })
        })
    }

    async fn verify(
        &self,
        candidate: &Arc<Generation>,
        active: &[Arc<Generation>],
        properties: &[(String, prost_types::Value)],
    ) -> Admission {
        let client = match self.client() {
            Ok(client) => client,
            Err(error) => return Admission::NotYet(error),
        };
        let at_stake = match self.at_stake(&client, candidate, active).await {
            Ok(at_stake) => at_stake,
            Err(error) => return Admission::NotYet(error),
        };
        for instance in at_stake.iter().take(self.limit) {
            let request = proto::StreamInstanceHistoryRequest {
                instance_id: instance.instance_id.clone(),
                ..Default::default()
            };
            let history = match client.instance_history(request).await {
                Ok(history) => history,
                Err(status) => {
                    return Admission::NotYet(format!(
                        "cannot read the history of {}: {}",
                        instance.instance_id,
                        connection::describe_status(&status)
                    ));
                }
            };
            let verdict =
                replay::replay(candidate, &instance.instance_id, history, properties).await;
            match verdict {
                Verdict::Deterministic => {}
                // Its process could not be started: nothing is known of the code yet.
                Verdict::Fails {
                    error_type,
                    message,
                } if error_type == error_types::PLUGIN_CRASHED
                    && message.contains("has no process") =>
                {
                    return Admission::NotYet(message);
                }
                other => {
                    return Admission::Refuse(format!(
                        "running orchestration {} ({}) would fail on it: {}",
                        instance.instance_id,
                        instance.orchestrator,
                        other.describe()
                    ));
                }
            }
        }
        tracing::info!(
            plugin = %candidate.label(),
            replayed = at_stake.len().min(self.limit),
            at_stake = at_stake.len(),
            "running orchestrations replay on the new plugin build"
        );
        Admission::Admit
    }

    fn client(&self) -> Result<BackendClient, String> {
        match &self.backend {
            GateBackend::InProcess(client) => Ok(BackendClient::InProcess(client.clone())),
            GateBackend::Remote(settings) => {
                let token = settings
                    .token_source()
                    .map(|source| source.read())
                    .transpose()
                    .map_err(|error| error.to_string())?;
                let metadata = CallMetadata::new(&settings.taskhub, None, token.as_ref())
                    .map_err(|error| error.to_string())?;
                connection::connect(&settings.endpoint, &settings.tls_trust(), metadata)
                    .map(BackendClient::Grpc)
                    .map_err(|error| error.to_string())
            }
        }
    }

    /// The running instances of `candidate`'s orchestrators that routing would hand it,
    /// oldest listed first.
    async fn at_stake(
        &self,
        client: &BackendClient,
        candidate: &Arc<Generation>,
        active: &[Arc<Generation>],
    ) -> Result<Vec<AtStake>, String> {
        let with_candidate = Catalog::new(
            active
                .iter()
                .cloned()
                .chain([Arc::clone(candidate)])
                .collect(),
        );
        let names = &candidate.plugin().orchestrators;
        let mut at_stake = Vec::new();
        let mut listed = 0;
        let mut continuation_token = None;
        loop {
            let request = proto::QueryInstancesRequest {
                query: Some(proto::InstanceQuery {
                    runtime_status: vec![
                        proto::OrchestrationStatus::Running as i32,
                        proto::OrchestrationStatus::Pending as i32,
                        proto::OrchestrationStatus::Suspended as i32,
                    ],
                    max_instance_count: PAGE_SIZE,
                    continuation_token: continuation_token.take(),
                    fetch_inputs_and_outputs: false,
                    ..Default::default()
                }),
            };
            let page = client.query_instances(request).await.map_err(|status| {
                format!(
                    "cannot list the running orchestrations: {}",
                    connection::describe_status(&status)
                )
            })?;
            listed += page.orchestration_state.len();
            for state in page.orchestration_state {
                if names.contains(&state.name)
                    && routes_to(&with_candidate, self.versioning.as_ref(), &state, candidate)
                {
                    at_stake.push(AtStake {
                        instance_id: state.instance_id,
                        orchestrator: state.name,
                    });
                }
            }
            continuation_token = page.continuation_token.filter(|token| !token.is_empty());
            if continuation_token.is_none() || listed >= MAX_LISTED || at_stake.len() >= self.limit
            {
                return Ok(at_stake);
            }
        }
    }
}

/// Whether routing, with no memory of where the instance ran, would hand it to
/// `candidate`.
fn routes_to(
    catalog: &Catalog,
    versioning: Option<&VersioningSettings>,
    state: &proto::OrchestrationState,
    candidate: &Arc<Generation>,
) -> bool {
    let request = proto::OrchestratorRequest {
        instance_id: state.instance_id.clone(),
        past_events: vec![proto::HistoryEvent {
            event_id: -1,
            timestamp: None,
            event_type: Some(EventType::ExecutionStarted(proto::ExecutionStartedEvent {
                name: state.name.clone(),
                version: state.version.clone(),
                ..Default::default()
            })),
        }],
        ..Default::default()
    };
    routing::orchestrator(catalog, versioning, &request, None)
        .is_ok_and(|route| Arc::ptr_eq(&route.generation, candidate))
}
