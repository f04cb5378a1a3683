//! The task that takes, renews and gives up this host's lease on the engine, starts and
//! stops the engine accordingly, and points the host's [`Route`] at whoever holds it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_postgres::Client;
use tonic::transport::ClientTlsConfig;

use super::route::{LeaderLink, LocalEngine, Route};
use crate::engine::{self, Command, EngineHandle, HubLimits};
use crate::limits::PayloadLimit;
use crate::pg::Connector;
use crate::pg::lease::{self, Candidate, LeaseClock};
use crate::pg::store::{Fence, PgStore, SessionLimits};
use crate::service::Service;
use crate::store::Store;

/// What the supervisor needs, fixed for the host's run.
pub struct Setup {
    /// The lease's connections.
    pub lease_connector: Connector,
    /// The engine's connection.
    pub engine_connector: Connector,
    pub takeover_time: Duration,
    pub candidate: Candidate,
    pub limits: HubLimits,
    pub payload: PayloadLimit,
    pub peer_tls: Option<ClientTlsConfig>,
    /// The token file whose first token this host presents to the leader (read per
    /// call, so a rotation is followed).
    pub token: Option<Arc<crate::auth::TokenFile>>,
}

pub struct Supervisor {
    setup: Setup,
    route: watch::Sender<Route>,
    stopping: watch::Receiver<bool>,
    engine_slot: Arc<Mutex<Option<EngineHandle>>>,
    clock: Arc<LeaseClock>,
    /// The connection the lease is taken, renewed and read on (made again after an
    /// error).
    connection: Option<Client>,
    /// Terms in a row that ended because this host could not serve.
    failures: u32,
}

/// Whether process `pid` of this machine (and PID namespace) exists: `kill(pid, 0)`,
/// which says so even where /proc hides other users' processes (systemd's
/// `ProtectProc=invisible`): only "no such process" is dead. A pid reused since by
/// another process reads as alive, and the lease is then simply waited out.
fn process_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// What the supervisor does after looking at the lease.
enum Next {
    /// Lead at this epoch (the lease was just taken).
    Lead(i64),
    /// No host holds the lease: take it.
    Free,
    /// Look again at the next beat.
    Wait,
}

/// How a term as leader ended.
enum TermEnd {
    /// The lease was lost (taken over, or not renewed in time): look for it again.
    SteppedBack,
    /// This host could not serve (its engine stopped, or the state did not load): give
    /// other hosts a chance at the lease before trying again.
    Failed,
    /// The host stops.
    Stopped,
}

impl Supervisor {
    pub fn new(
        setup: Setup,
        route: watch::Sender<Route>,
        stopping: watch::Receiver<bool>,
        engine_slot: Arc<Mutex<Option<EngineHandle>>>,
        clock: Arc<LeaseClock>,
    ) -> Supervisor {
        Supervisor {
            setup,
            route,
            stopping,
            engine_slot,
            clock,
            connection: None,
            failures: 0,
        }
    }

    /// How often the leader renews and the others look at the lease: three times per
    /// lease, so that one slow or lost renewal does not cost the lease.
    fn beat(&self) -> Duration {
        self.setup.takeover_time / 3
    }

    pub async fn run(mut self) {
        loop {
            if *self.stopping.borrow() {
                return;
            }
            // A look at the lease first (one read): the lease is only written to when
            // it is free, so hosts that follow cost the database one SELECT a beat.
            let next = match self.follow().await {
                Next::Free => self.try_take().await,
                next => next,
            };
            match next {
                Next::Lead(epoch) => {
                    match self.lead(epoch).await {
                        TermEnd::Stopped => return,
                        TermEnd::Failed => {
                            // Others look every beat: waiting a lease (more after each
                            // failure in a row, up to eight) lets a healthy host take it
                            // instead of this one failing again.
                            self.failures = (self.failures + 1).min(8);
                            let pause = self.setup.takeover_time * self.failures;
                            tracing::warn!(
                                pause_ms = pause.as_millis() as u64,
                                "this host could not serve the task hub's engine; leaving the lease to the others for a while"
                            );
                            let mut stopping = self.stopping.clone();
                            tokio::select! {
                                () = tokio::time::sleep(pause) => {}
                                _ = stopping.changed() => {}
                            }
                        }
                        TermEnd::SteppedBack => self.failures = 0,
                    }
                    // Looked at again right away: another host may hold it by now.
                    continue;
                }
                // Taken by another host in between: follow it at once.
                Next::Free => continue,
                Next::Wait => {}
            }
            let beat = self.beat();
            let mut stopping = self.stopping.clone();
            tokio::select! {
                () = tokio::time::sleep(beat) => {}
                _ = stopping.changed() => {}
            }
        }
    }

    /// Takes the free lease: `Lead` with its epoch, `Free` if another host was faster,
    /// `Wait` if the database could not be reached.
    async fn try_take(&mut self) -> Next {
        let sent = Instant::now();
        let (candidate, takeover) = (self.setup.candidate.clone(), self.setup.takeover_time);
        let beat = self.beat();
        let taken = match self.client().await {
            Some(client) => {
                tokio::time::timeout(beat, lease::try_acquire(client, &candidate, takeover)).await
            }
            None => return Next::Wait,
        };
        match taken {
            Ok(Ok(Some(epoch))) => {
                self.clock.extend(sent, takeover);
                Next::Lead(epoch)
            }
            Ok(Ok(None)) => Next::Free,
            Ok(Err(error)) => {
                self.connection_failed(&error);
                self.set_route(Route::Electing);
                Next::Wait
            }
            Err(_) => {
                self.timed_out();
                Next::Wait
            }
        }
    }

    /// A lease call that did not answer within a beat (a connection gone dead
    /// silently): the connection is dropped, so the next beat starts on a new one.
    fn timed_out(&mut self) {
        tracing::warn!("a call to the task hub's PostgreSQL database timed out; reconnecting");
        self.connection = None;
        self.set_route(Route::Electing);
    }

    /// The lease connection, connected if need be; `None` (logged) if the database
    /// cannot be reached now.
    async fn client(&mut self) -> Option<&mut Client> {
        if self.connection.as_ref().is_some_and(Client::is_closed) {
            self.connection = None;
        }
        if self.connection.is_none() {
            let connecting = self.setup.lease_connector.connect();
            match tokio::time::timeout(self.beat(), connecting).await {
                Ok(Ok((client, _connection))) => self.connection = Some(client),
                Ok(Err(error)) => {
                    let error = crate::pg::describe(&error);
                    tracing::warn!(%error, "cannot reach the task hub's PostgreSQL database");
                    return None;
                }
                Err(_) => {
                    tracing::warn!("cannot reach the task hub's PostgreSQL database: timed out");
                    return None;
                }
            }
        }
        self.connection.as_mut()
    }

    fn connection_failed(&mut self, error: &tokio_postgres::Error) {
        let error = crate::pg::describe(error);
        tracing::warn!(%error, "the lease's PostgreSQL call failed; reconnecting");
        self.connection = None;
    }

    fn set_route(&self, route: Route) {
        self.route.send_replace(route);
    }

    /// Points the route at the current leader (keeping the link if it did not change),
    /// and says what to do next: `Free` when no host holds the lease, `Lead` when the
    /// leader was this host's dead predecessor (same machine, its process gone) and this
    /// host took the lease from it.
    async fn follow(&mut self) -> Next {
        let beat = self.beat();
        let leader = match self.client().await {
            Some(client) => match tokio::time::timeout(beat, lease::leader(&*client)).await {
                Ok(leader) => leader,
                Err(_) => {
                    self.timed_out();
                    return Next::Wait;
                }
            },
            None => {
                self.set_route(Route::Electing);
                return Next::Wait;
            }
        };
        match leader {
            Ok(Some(leader)) if self.is_dead_predecessor(&leader) => {
                let (candidate, takeover) =
                    (self.setup.candidate.clone(), self.setup.takeover_time);
                let sent = Instant::now();
                let Some(client) = self.client().await else {
                    return Next::Wait;
                };
                let taking = lease::take_from_dead(client, &candidate, takeover, leader.epoch);
                let Ok(taken) = tokio::time::timeout(beat, taking).await else {
                    self.timed_out();
                    return Next::Wait;
                };
                match taken {
                    Ok(Some(epoch)) => {
                        tracing::info!(
                            previous = %leader.host_name,
                            "the lease was held by a process of this machine that is gone; taken over without waiting for it to expire"
                        );
                        self.clock.extend(sent, takeover);
                        return Next::Lead(epoch);
                    }
                    Ok(None) => {}
                    Err(error) => self.connection_failed(&error),
                }
                self.set_route(Route::Electing);
            }
            Ok(Some(leader)) if leader.address == self.setup.candidate.address => {
                // Forwarding to our own address would loop through this host.
                tracing::warn!(
                    leader = %leader.host_name,
                    "the lease is held by another host advertising this host's address; waiting for it to expire"
                );
                self.set_route(Route::Electing);
            }
            Ok(Some(leader)) => {
                let same =
                    matches!(&*self.route.borrow(), Route::Follower(link) if link.leader == leader);
                if same {
                    return Next::Wait;
                }
                match LeaderLink::new(
                    leader.clone(),
                    self.setup.peer_tls.as_ref(),
                    self.setup.token.clone(),
                    self.setup.takeover_time,
                ) {
                    Ok(link) => {
                        tracing::info!(
                            leader = %leader.host_name,
                            address = %leader.address,
                            epoch = leader.epoch,
                            "following the host that runs the task hub's engine"
                        );
                        self.set_route(Route::Follower(Arc::new(link)));
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot forward calls to the host that runs the task hub's engine");
                        self.set_route(Route::Electing);
                    }
                }
            }
            Ok(None) => {
                self.set_route(Route::Electing);
                return Next::Free;
            }
            Err(error) => {
                self.connection_failed(&error);
                self.set_route(Route::Electing);
            }
        }
        Next::Wait
    }

    /// Whether `leader` is a process of this machine that no longer runs (a host killed
    /// and restarted here). A pid reused since by another process reads as alive: then
    /// the lease is simply waited out.
    fn is_dead_predecessor(&self, leader: &lease::Leader) -> bool {
        let me = &self.setup.candidate;
        if leader.host_id == me.host_id {
            // This host's own lease, which it could not give up (its release failed):
            // nobody else holds it, so it takes it back at once.
            return true;
        }
        // An empty identity (a part could not be read) matches nothing.
        !me.machine.is_empty()
            && leader.machine == me.machine
            && leader.pid != me.pid
            && !process_alive(leader.pid)
    }

    /// Renews the lease held at `epoch`: `false` once it is lost (taken over, refused,
    /// or not renewed before this host's own bound on it passed).
    async fn renew(&mut self, epoch: i64) -> bool {
        let sent = Instant::now();
        let (beat, takeover) = (self.beat(), self.setup.takeover_time);
        let host_id = self.setup.candidate.host_id.clone();
        let renewed = match self.client().await {
            Some(client) => {
                match tokio::time::timeout(beat, lease::renew(client, &host_id, epoch, takeover))
                    .await
                {
                    Ok(Ok(renewed)) => Some(renewed),
                    Ok(Err(error)) => {
                        self.connection_failed(&error);
                        None
                    }
                    Err(_) => {
                        tracing::warn!("renewing the lease timed out; reconnecting");
                        self.connection = None;
                        None
                    }
                }
            }
            None => None,
        };
        match renewed {
            Some(true) => {
                self.clock.extend(sent, takeover);
                true
            }
            Some(false) => false,
            // Not known: tried again at the next beat while the lease surely lasts.
            None => self.clock.is_valid(),
        }
    }

    /// One term as leader: loads the engine, serves, renews; ends when the lease is
    /// lost, the engine stops, or the host stops.
    async fn lead(&mut self, epoch: i64) -> TermEnd {
        tracing::info!(
            epoch,
            "this host took the lease on the task hub's engine; loading its state"
        );
        let started = Instant::now();
        let fence = Fence {
            host_id: self.setup.candidate.host_id.clone(),
            epoch,
            clock: self.clock.clone(),
        };
        let session = SessionLimits {
            lock_timeout: self.setup.takeover_time.max(Duration::from_secs(10)),
            idle_in_transaction: self.setup.takeover_time / 2,
        };
        let connector = self.setup.engine_connector.clone();
        let spawning = engine::spawn(
            move || {
                PgStore::open(connector, fence, session)
                    .map(|store| Store::Postgres(Box::new(store)))
            },
            self.setup.limits,
        );
        tokio::pin!(spawning);
        let mut beat = tokio::time::interval(self.beat());
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.tick().await;
        let mut lost = false;
        let mut stopping = self.stopping.clone();
        // The lease is renewed while the state loads (it may take longer than a lease).
        let spawned = loop {
            tokio::select! {
                spawned = &mut spawning => break spawned,
                _ = beat.tick() => {
                    if !lost && !self.renew(epoch).await {
                        lost = true;
                        self.clock.revoke();
                    }
                }
                _ = stopping.changed() => {
                    // The host stops: the loading engine, whose handle goes with the
                    // dropped future, stops once loaded, having served nothing.
                    self.clock.revoke();
                    self.release(epoch).await;
                    return TermEnd::Stopped;
                }
            }
        };
        let (engine, thread) = match spawned {
            Ok(spawned) => spawned,
            Err(error) => {
                tracing::error!(%error, "could not load the task hub's state; giving the lease up");
                self.step_back(epoch, None).await;
                return TermEnd::Failed;
            }
        };
        if lost {
            tracing::warn!("the lease was lost while the state loaded; stepping back");
            return self.step_back(epoch, Some((engine, thread))).await;
        }
        tracing::info!(
            epoch,
            load_ms = started.elapsed().as_millis() as u64,
            "this host runs the task hub's engine"
        );
        if let Ok(mut slot) = self.engine_slot.lock() {
            *slot = Some(engine.clone());
        }
        self.set_route(Route::Leader(LocalEngine::new(Service::new(
            engine.clone(),
            self.setup.payload,
        ))));
        let ended = Arc::new(tokio::sync::Notify::new());
        let watcher = {
            let ended = ended.clone();
            tokio::task::spawn_blocking(move || {
                let _ = thread.join();
                ended.notify_one();
            })
        };
        let end = loop {
            tokio::select! {
                _ = beat.tick() => {
                    if !self.renew(epoch).await {
                        tracing::warn!(epoch, "lease on the task hub's engine lost; stepping back");
                        break TermEnd::SteppedBack;
                    }
                }
                () = ended.notified() => {
                    // Stopped on a refused fence (the store revoked the clock) or on a
                    // lapsed lease: lost. Otherwise it could not go on (its database
                    // connection died and the state could not be read back): failed.
                    if self.clock.is_valid() {
                        tracing::warn!(epoch, "the task hub's engine stopped; stepping back");
                        break TermEnd::Failed;
                    }
                    tracing::warn!(epoch, "lease on the task hub's engine lost; stepping back");
                    break TermEnd::SteppedBack;
                }
                _ = stopping.changed() => break TermEnd::Stopped,
            }
        };
        self.set_route(Route::Electing);
        match end {
            TermEnd::SteppedBack | TermEnd::Failed => {
                self.clock.revoke();
                engine.halt();
            }
            TermEnd::Stopped => {
                // A clean stop: streams end, waiters are answered, the batch is saved.
                let (reply, quiesced) = tokio::sync::oneshot::channel();
                if engine.send(String::new(), Command::Quiesce(reply)) {
                    let _ = quiesced.await;
                }
                engine.shutdown();
            }
        }
        let _ = watcher.await;
        if let Ok(mut slot) = self.engine_slot.lock() {
            *slot = None;
        }
        self.clock.revoke();
        self.release(epoch).await;
        end
    }

    /// Ends a term that never served: stops the engine if it loaded, gives the lease up.
    async fn step_back(
        &mut self,
        epoch: i64,
        engine: Option<(EngineHandle, std::thread::JoinHandle<()>)>,
    ) -> TermEnd {
        self.clock.revoke();
        if let Some((engine, thread)) = engine {
            engine.halt();
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        self.release(epoch).await;
        TermEnd::SteppedBack
    }

    /// Gives the lease up (if this host still holds it at `epoch`), so another host
    /// takes over without waiting for it to expire.
    async fn release(&mut self, epoch: i64) {
        let host_id = self.setup.candidate.host_id.clone();
        let beat = self.beat();
        if let Some(client) = self.client().await {
            match tokio::time::timeout(beat, lease::release(client, &host_id, epoch)).await {
                Ok(Ok(())) => tracing::info!(epoch, "lease on the task hub's engine given up"),
                Ok(Err(error)) => self.connection_failed(&error),
                Err(_) => tracing::warn!("giving the lease up timed out; it will expire"),
            }
        }
    }
}
