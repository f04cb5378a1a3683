//! Where this host sends a call to a PostgreSQL task hub: to its own engine while it
//! holds the lease, to the leader's address while another host does, nowhere (the call
//! is refused with `UNAVAILABLE`, and workers and clients retry) while no host does.
//!
//! [`RouteSwitch`] is the gRPC service a host serves: it forwards whole HTTP/2 requests
//! (every method, streams included, headers such as `taskhub` and `authorization` as
//! they came), so other hosts need no per-method code to serve as a front door.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use durabletask_proto::task_hub_sidecar_service_server::TaskHubSidecarServiceServer;
use tokio::sync::watch;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service as TowerService};
use tonic::server::NamedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::pg::lease::Leader;
use crate::service::Service;

/// The header a host adds to a call it forwards; a host never forwards a call that has
/// it.
pub const FORWARDED: &str = "x-durabletask-forwarded";

/// How this host reaches the engine now.
#[derive(Clone)]
pub enum Route {
    /// No host holds the lease (a takeover is under way), or this host is changing role.
    Electing,
    /// This host runs the engine.
    Leader(LocalEngine),
    /// Another host does; calls go to it.
    Follower(Arc<LeaderLink>),
}

/// The engine of this host, as the gRPC server and the in-process client call it.
#[derive(Clone)]
pub struct LocalEngine {
    pub service: Service,
    pub server: TaskHubSidecarServiceServer<Service>,
}

impl LocalEngine {
    pub fn new(service: Service) -> LocalEngine {
        let server = TaskHubSidecarServiceServer::new(service.clone())
            .max_decoding_message_size(crate::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::MAX_MESSAGE_SIZE);
        LocalEngine { service, server }
    }
}

/// A connection to the host that holds the lease.
pub struct LeaderLink {
    pub leader: Leader,
    pub channel: Channel,
    /// The token file whose first token this host presents for its own worker's calls
    /// (hosts of one task hub share their tokens; read per call, to follow rotations).
    token: Option<Arc<crate::auth::TokenFile>>,
}

impl LeaderLink {
    /// A link to `leader`, connected on first use. The connection is pinged every
    /// `ping` and dropped if the leader does not answer within it again: a leader that
    /// is paused or cut off loses its forwarded streams within twice `ping`, so their
    /// workers reconnect through the next leader.
    pub fn new(
        leader: Leader,
        tls: Option<&ClientTlsConfig>,
        token: Option<Arc<crate::auth::TokenFile>>,
        ping: Duration,
    ) -> Result<LeaderLink, String> {
        let mut endpoint = Endpoint::from_shared(leader.address.clone())
            .map_err(|error| format!("the leader's address {:?}: {error}", leader.address))?
            .http2_keep_alive_interval(ping)
            .keep_alive_timeout(ping)
            .keep_alive_while_idle(true)
            .connect_timeout(ping)
            .tcp_nodelay(true);
        if let Some(tls) = tls {
            endpoint = endpoint
                .tls_config(tls.clone())
                .map_err(|error| format!("TLS to the leader {}: {error}", leader.address))?;
        }
        Ok(LeaderLink {
            leader,
            channel: endpoint.connect_lazy(),
            token,
        })
    }

    /// The bearer token to present, if the hosts require one.
    pub fn token(&self) -> Option<String> {
        self.token.as_ref().and_then(|tokens| tokens.first())
    }

    /// A typed client of the leader (the in-process client's calls when this host
    /// follows).
    pub fn client(&self) -> TaskHubSidecarServiceClient<Channel> {
        TaskHubSidecarServiceClient::new(self.channel.clone())
            .max_decoding_message_size(crate::MAX_MESSAGE_SIZE)
            .max_encoding_message_size(crate::MAX_MESSAGE_SIZE)
    }
}

/// The refusal while no host holds the lease.
pub fn electing() -> Status {
    Status::unavailable(
        "no host runs the task hub's engine right now (a takeover is under way); try again",
    )
}

/// The gRPC service of a host on a PostgreSQL task hub (see the module's documentation).
#[derive(Clone)]
pub struct RouteSwitch {
    pub route: watch::Receiver<Route>,
}

impl NamedService for RouteSwitch {
    const NAME: &'static str = <TaskHubSidecarServiceServer<Service> as NamedService>::NAME;
}

impl TowerService<http::Request<Body>> for RouteSwitch {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let route = self.route.borrow().clone();
        match route {
            Route::Leader(engine) => {
                let mut server = engine.server;
                Box::pin(async move { server.call(request).await })
            }
            Route::Follower(_) if request.headers().contains_key(FORWARDED) => {
                // Forwarded to this host by another, which took it for the leader: the
                // two disagree about who leads (a moment during a takeover, or two hosts
                // advertising addresses that lead to each other). Never forward twice.
                Box::pin(async {
                    Ok(Status::unavailable(
                        "this host does not run the task hub's engine and the call was already forwarded once; try again",
                    )
                    .into_http())
                })
            }
            Route::Follower(link) => {
                let mut channel = link.channel.clone();
                let leader = link.leader.address.clone();
                let mut request = request;
                request
                    .headers_mut()
                    .insert(FORWARDED, http::HeaderValue::from_static("1"));
                Box::pin(async move {
                    let forwarded = async {
                        // The channel buffers calls: it must say it is ready first.
                        futures::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
                        channel.call(request).await
                    };
                    match forwarded.await {
                        Ok(response) => Ok(response),
                        Err(error) => Ok(Status::unavailable(format!(
                            "cannot reach the host that runs the task hub's engine ({leader}): {error}"
                        ))
                        .into_http()),
                    }
                })
            }
            Route::Electing => Box::pin(async { Ok(electing().into_http()) }),
        }
    }
}
