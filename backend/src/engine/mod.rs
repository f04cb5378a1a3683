//! The engine: one actor that owns all state.
//!
//! gRPC handlers send [`Command`]s over a channel. The engine runs on its own thread and
//! works in batches: it takes every command available (up to [`MAX_BATCH`]), applies
//! each to the in-memory state, fires due timers, saves all changes of the batch in one
//! SQLite transaction, and only then answers (group commit: what a call accepted is on
//! disk before the caller hears so). Then it hands ready work to the worker streams.
//!
//! If a batch cannot be saved, its callers get an error, nobody else hears of it (no
//! waiter is answered, no work handed out), and the engine goes back to the last
//! committed state by loading it from the store again, as a restart would (see
//! [`Engine::reload`]); if even that fails, the engine stops.

mod actions;
mod activities;
mod dispatch;
mod entities;
mod events;
mod hub;
mod instances;
mod queries;
mod state;
mod timers;
mod tokens;

use std::collections::HashMap;
use std::time::Duration;

use durabletask_proto::*;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tonic::Status;

pub use hub::HubLimits;
pub use state::dispatch::Stream;
pub use state::waiters::WaitUntil;

/// An `eventRaised` event as the engine records it (tests of other modules).
#[cfg(test)]
pub fn test_event_raised(name: String, input: Option<String>) -> HistoryEvent {
    events::event_raised(name, input)
}

use crate::BackendError;
use crate::store::{Op, Store, StoreError};
use hub::Hub;
use tokens::TokenMint;

/// The most commands applied (and committed) together.
const MAX_BATCH: usize = 1024;
/// How often waiters whose callers went away are forgotten.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);

pub type Reply<T> = oneshot::Sender<Result<T, Status>>;

/// A request to the engine.
pub enum Command {
    StartInstance(CreateInstanceRequest, Reply<CreateInstanceResponse>),
    GetInstance(GetInstanceRequest, Reply<GetInstanceResponse>),
    Wait(GetInstanceRequest, WaitUntil, Reply<GetInstanceResponse>),
    RaiseEvent(RaiseEventRequest, Reply<RaiseEventResponse>),
    Terminate(TerminateRequest, Reply<TerminateResponse>),
    Suspend(SuspendRequest, Reply<SuspendResponse>),
    Resume(ResumeRequest, Reply<ResumeResponse>),
    Purge(PurgeInstancesRequest, Reply<PurgeInstancesResponse>),
    Restart(RestartInstanceRequest, Reply<RestartInstanceResponse>),
    Rewind(RewindInstanceRequest, Reply<RewindInstanceResponse>),
    QueryInstances(QueryInstancesRequest, Reply<QueryInstancesResponse>),
    ListInstanceIds(ListInstanceIdsRequest, Reply<ListInstanceIdsResponse>),
    History(StreamInstanceHistoryRequest, Reply<Vec<HistoryEvent>>),
    /// The hub's state for its metrics.
    Stats(Reply<crate::metrics::HubStats>),
    OpenStream {
        id: u64,
        request: GetWorkItemsRequest,
        sender: UnboundedSender<Result<WorkItem, Status>>,
    },
    CloseStream {
        id: u64,
    },
    CompleteOrchestration(OrchestratorResponse, Reply<CompleteTaskResponse>),
    CompleteActivity(ActivityResponse, Reply<CompleteTaskResponse>),
    CompleteEntity(EntityBatchResult, Reply<CompleteTaskResponse>),
    AbandonOrchestration(String, Reply<AbandonOrchestrationTaskResponse>),
    AbandonActivity(String, Reply<AbandonActivityTaskResponse>),
    AbandonEntity(String, Reply<AbandonEntityTaskResponse>),
    SignalEntity(SignalEntityRequest, Reply<SignalEntityResponse>),
    GetEntity(GetEntityRequest, Reply<GetEntityResponse>),
    QueryEntities(QueryEntitiesRequest, Reply<QueryEntitiesResponse>),
    CleanEntityStorage(CleanEntityStorageRequest, Reply<CleanEntityStorageResponse>),
    DeleteHub(Reply<DeleteTaskHubResponse>),
    /// Ends every work-item stream and answers every waiter (the server is stopping).
    Quiesce(Reply<()>),
}

/// A command for one task hub.
pub struct Envelope {
    pub hub: String,
    pub command: Command,
}

enum Control {
    Envelope(Box<Envelope>),
    /// Save, then stop.
    Shutdown,
    /// Stop at once, saving nothing more (tests: as if the process died).
    Halt,
}

/// Sends commands to the engine; cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    sender: UnboundedSender<Control>,
}

impl EngineHandle {
    /// Sends `command`; `false` if the engine has stopped.
    pub fn send(&self, hub: String, command: Command) -> bool {
        self.sender
            .send(Control::Envelope(Box::new(Envelope { hub, command })))
            .is_ok()
    }

    /// A handle to no engine (every send fails), for tests of the service alone.
    #[cfg(test)]
    pub fn detached() -> EngineHandle {
        let (sender, _) = unbounded_channel();
        EngineHandle { sender }
    }

    pub fn shutdown(&self) {
        let _ = self.sender.send(Control::Shutdown);
    }

    pub fn halt(&self) {
        let _ = self.sender.send(Control::Halt);
    }
}

/// A reply held back until the batch is committed.
trait Deferred: Send {
    fn ok(self: Box<Self>);
    fn fail(self: Box<Self>, status: Status);
}

struct Held<T> {
    reply: Reply<T>,
    value: Result<T, Status>,
}

impl<T: Send> Deferred for Held<T> {
    fn ok(self: Box<Self>) {
        let _ = self.reply.send(self.value);
    }

    fn fail(self: Box<Self>, status: Status) {
        let _ = self.reply.send(Err(status));
    }
}

#[derive(Default)]
struct Replies(Vec<Box<dyn Deferred>>);

impl Replies {
    fn push<T: Send + 'static>(&mut self, reply: Reply<T>, value: Result<T, Status>) {
        self.0.push(Box::new(Held { reply, value }));
    }
}

struct Engine {
    store: Store,
    hubs: HashMap<String, Hub>,
    mint: TokenMint,
    /// Where the token counter of a hub created now starts: past every counter of the
    /// hubs dropped from memory, so that a hub made again never hands out a token a
    /// worker may still hold.
    token_floor: u64,
    limits: HubLimits,
    /// Set by [`Command::Quiesce`]: new streams end at once, new waiters are refused.
    closing: bool,
}

/// Opens the store, loads its state, and runs the engine on a thread of its own.
/// Returns once the state is loaded (or loading failed).
///
/// `open` runs on the engine's thread: the store is made and used there only.
pub async fn spawn(
    open: impl FnOnce() -> Result<Store, StoreError> + Send + 'static,
    limits: HubLimits,
) -> Result<(EngineHandle, std::thread::JoinHandle<()>), BackendError> {
    let (sender, receiver) = unbounded_channel();
    let (ready_tx, ready_rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("durabletask-backend".into())
        .spawn(move || {
            let engine = match open().and_then(|store| Engine::load(store, limits)) {
                Ok(engine) => {
                    let _ = ready_tx.send(Ok(()));
                    engine
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                    return;
                }
            };
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "could not start the engine's runtime");
                    return;
                }
            };
            runtime.block_on(engine.run(receiver));
        })
        .map_err(BackendError::Thread)?;
    match ready_rx.await {
        Ok(Ok(())) => Ok((EngineHandle { sender }, thread)),
        Ok(Err(error)) => {
            let _ = thread.join();
            Err(BackendError::Store(error))
        }
        Err(_) => {
            let _ = thread.join();
            Err(BackendError::EngineStopped)
        }
    }
}

impl Engine {
    fn load(store: Store, limits: HubLimits) -> Result<Engine, StoreError> {
        let mint = TokenMint::new(store.token_key()?);
        let mut engine = Engine {
            store,
            hubs: HashMap::new(),
            mint,
            token_floor: 0,
            limits,
            closing: false,
        };
        let records = engine.store.load_records()?;
        let count = records.len();
        for record in records {
            let hub = engine.hub(&record.hub.clone());
            hub.load_record(record);
        }
        for hub in engine.hubs.values_mut() {
            hub.finish_load(&engine.store);
        }
        tracing::info!(
            records = count,
            hubs = engine.hubs.len(),
            "backend state loaded"
        );
        Ok(engine)
    }

    /// The hub called `name`, created empty on first use.
    fn hub(&mut self, name: &str) -> &mut Hub {
        let (mint, floor) = (&self.mint, self.token_floor);
        let limits = self.limits;
        self.hubs
            .entry(name.to_owned())
            .or_insert_with(|| Hub::new(name, mint.clone(), floor, limits))
    }

    /// Forgets hubs that hold nothing (no state, no worker, no waiter): a call that only
    /// reads, naming a hub that does not exist, must not leave one behind in memory.
    fn drop_vacant_hubs(&mut self) {
        let floor = &mut self.token_floor;
        self.hubs.retain(|_, hub| {
            let vacant = hub.is_vacant();
            if vacant {
                *floor = (*floor).max(hub.dispatch.token_counter());
            }
            !vacant
        });
    }

    async fn run(mut self, mut receiver: UnboundedReceiver<Control>) {
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            let next_due = self
                .hubs
                .values_mut()
                .filter_map(|hub| hub.timers.next_due())
                .min();
            let first = match next_due {
                Some(due) => {
                    let wait = u64::try_from(due.saturating_sub(events::now())).unwrap_or(0);
                    tokio::select! {
                        control = receiver.recv() => Some(control),
                        () = tokio::time::sleep(Duration::from_nanos(wait)) => None,
                    }
                }
                None => Some(receiver.recv().await),
            };
            let mut replies = Replies::default();
            let mut stop = None;
            if let Some(control) = first {
                match control {
                    None | Some(Control::Shutdown) => stop = Some(true),
                    Some(Control::Halt) => return,
                    Some(Control::Envelope(envelope)) => self.handle(*envelope, &mut replies),
                }
                let mut taken = 1;
                while stop.is_none() && taken < MAX_BATCH {
                    match receiver.try_recv() {
                        Ok(Control::Envelope(envelope)) => self.handle(*envelope, &mut replies),
                        Ok(Control::Shutdown) => stop = Some(true),
                        Ok(Control::Halt) => return,
                        Err(_) => break,
                    }
                    taken += 1;
                }
            }
            let now = events::now();
            for hub in self.hubs.values_mut() {
                hub.fire_due(now);
            }
            if let Err(error) = self.commit(replies) {
                // Nothing of this batch may be seen: no waiter answered, no work handed
                // out from state that is not on disk.
                if matches!(error, StoreError::LeaseLost) {
                    // Another host runs the engine now (or will): what this one holds in
                    // memory may be stale, so it answers nothing more. Its streams and
                    // waiters end with it; its callers retry (through the new leader).
                    tracing::warn!("lease on the task hub lost; this host's engine steps back");
                    return;
                }
                if stop.is_some() {
                    tracing::info!("backend engine stopped");
                    return;
                }
                if let Err(error) = self.recover() {
                    tracing::error!(%error, "could not reload the backend state after a failed save; the backend engine stops");
                    return;
                }
                continue;
            }
            if !self.store.holds_lease() {
                // Committed (its callers were answered), but the lease may have ended
                // since: another host may be loading the state, and must be the only one
                // to answer waiters and hand out work from now on.
                tracing::warn!(
                    "lease on the task hub lost after a commit; this host's engine steps back"
                );
                return;
            }
            for hub in self.hubs.values_mut() {
                hub.notify_waiters(&self.store);
            }
            if stop.is_some() {
                tracing::info!("backend engine stopped");
                return;
            }
            for hub in self.hubs.values_mut() {
                hub.pump(&self.store);
            }
            if last_sweep.elapsed() >= SWEEP_INTERVAL {
                last_sweep = tokio::time::Instant::now();
                for hub in self.hubs.values_mut() {
                    hub.waiters.sweep();
                }
            }
            self.drop_vacant_hubs();
        }
    }

    /// Saves the batch, then answers its callers (with an error if it could not be
    /// saved: nothing was acknowledged that is not on disk). The error if it could not be
    /// saved: the in-memory state then holds changes that are not on disk, and must be
    /// replaced (see [`Engine::reload`]) before anything else is done with it.
    fn commit(&mut self, replies: Replies) -> Result<(), StoreError> {
        let mut ops: Vec<Op> = Vec::new();
        for hub in self.hubs.values_mut() {
            if hub.is_dirty() {
                hub.collect_ops(&mut ops);
            }
        }
        let started = std::time::Instant::now();
        match self.store.apply(&ops) {
            Ok(()) => {
                if !ops.is_empty() {
                    crate::metrics::committed(replies.0.len(), started.elapsed());
                }
                for hub in self.hubs.values_mut() {
                    hub.mark_flushed();
                }
                for reply in replies.0 {
                    reply.ok();
                }
                Ok(())
            }
            Err(error) => {
                if !matches!(error, StoreError::LeaseLost) {
                    tracing::error!(%error, "could not save the backend state; the batch's changes are dropped and the last saved state is reloaded");
                }
                let status = match error {
                    // Not saved, and the caller should try again, elsewhere if need be.
                    StoreError::LeaseLost => Status::unavailable(
                        "this host stopped running the task hub's engine (another host took it over); try again",
                    ),
                    _ => {
                        Status::internal(format!("the backend could not save the change: {error}"))
                    }
                };
                for reply in replies.0 {
                    reply.fail(status.clone());
                }
                Err(error)
            }
        }
    }

    /// Brings every hub back to the last committed state: each part reads back only
    /// the records the failed batch changed (see [`Hub::recover`]), so recovering costs
    /// what the batch touched, not the size of the database. Like a restart, every
    /// work-item stream ends and handed-out work is redelivered.
    fn recover(&mut self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut read_back = 0;
        for hub in self.hubs.values_mut() {
            read_back += hub.recover(&self.store)?;
        }
        tracing::warn!(
            hubs = self.hubs.len(),
            records_read_back = read_back,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "backend state restored to the last save"
        );
        Ok(())
    }

    fn handle(&mut self, envelope: Envelope, replies: &mut Replies) {
        let Envelope { hub: name, command } = envelope;
        let command = match command {
            Command::Quiesce(reply) => {
                self.closing = true;
                for hub in self.hubs.values_mut() {
                    hub.quiesce();
                }
                replies.push(reply, Ok(()));
                return;
            }
            // Dropping the sender ends the stream.
            Command::OpenStream { .. } if self.closing => return,
            Command::Wait(_, _, reply) if self.closing => {
                replies.push(
                    reply,
                    Err(Status::unavailable("the backend is shutting down")),
                );
                return;
            }
            command => command,
        };
        let mint = self.mint.clone();
        let floor = self.token_floor;
        let limits = self.limits;
        let store = &self.store;
        let hub = self
            .hubs
            .entry(name.clone())
            .or_insert_with(|| Hub::new(&name, mint, floor, limits));
        match command {
            Command::StartInstance(request, reply) => {
                replies.push(reply, hub.start_instance(request));
            }
            Command::GetInstance(request, reply) => {
                let response = hub.instance_response(
                    &request.instance_id,
                    request.get_inputs_and_outputs,
                    store,
                );
                replies.push(reply, response);
            }
            Command::Wait(request, until, reply) => {
                if let Some((reply, response)) = hub.wait(request, until, reply, store) {
                    replies.push(reply, response);
                }
            }
            Command::RaiseEvent(request, reply) => replies.push(reply, hub.raise_event(request)),
            Command::Terminate(request, reply) => replies.push(reply, hub.terminate(request)),
            Command::Suspend(request, reply) => replies.push(reply, hub.suspend(request)),
            Command::Resume(request, reply) => replies.push(reply, hub.resume(request)),
            Command::Purge(request, reply) => replies.push(reply, hub.purge(request)),
            Command::Restart(request, reply) => replies.push(reply, hub.restart(request, store)),
            Command::Rewind(request, reply) => replies.push(reply, hub.rewind(request, store)),
            Command::QueryInstances(request, reply) => {
                replies.push(reply, hub.query_instances(&request, store));
            }
            Command::ListInstanceIds(request, reply) => {
                replies.push(reply, hub.list_instance_ids(&request));
            }
            Command::History(request, reply) => {
                replies.push(reply, hub.history(&request.instance_id, store));
            }
            Command::Stats(reply) => {
                let mut stats = hub.stats();
                stats.database_bytes = store.size_bytes();
                replies.push(reply, Ok(stats));
            }
            Command::OpenStream {
                id,
                request,
                sender,
            } => hub.dispatch.open_stream(id, Stream::new(&request, sender)),
            Command::CloseStream { id } => hub.close_stream(id),
            Command::CompleteOrchestration(response, reply) => {
                replies.push(
                    reply,
                    hub.complete_orchestration_within_limits(response, store),
                );
            }
            Command::CompleteActivity(response, reply) => {
                hub.complete_activity(response);
                replies.push(reply, Ok(CompleteTaskResponse {}));
            }
            Command::CompleteEntity(result, reply) => {
                hub.complete_entity(result);
                replies.push(reply, Ok(CompleteTaskResponse {}));
            }
            Command::AbandonOrchestration(token, reply) => {
                hub.abandon_orchestration(&token);
                replies.push(reply, Ok(AbandonOrchestrationTaskResponse {}));
            }
            Command::AbandonActivity(token, reply) => {
                hub.abandon_activity(&token);
                replies.push(reply, Ok(AbandonActivityTaskResponse {}));
            }
            Command::AbandonEntity(token, reply) => {
                hub.abandon_entity(&token);
                replies.push(reply, Ok(AbandonEntityTaskResponse {}));
            }
            Command::SignalEntity(request, reply) => {
                replies.push(reply, hub.signal_entity(request))
            }
            Command::GetEntity(request, reply) => replies.push(reply, Ok(hub.get_entity(&request))),
            Command::QueryEntities(request, reply) => {
                replies.push(reply, Ok(hub.query_entities(&request)));
            }
            Command::CleanEntityStorage(request, reply) => {
                replies.push(reply, Ok(hub.clean_entity_storage(&request)));
            }
            Command::DeleteHub(reply) => {
                *hub = hub.emptied();
                replies.push(reply, Ok(DeleteTaskHubResponse {}));
            }
            Command::Quiesce(reply) => replies.push(reply, Ok(())),
        }
    }
}
