//! Waiting out a backend outage, and saying so in the log.
//!
//! Between reconnect attempts the worker backs off (full jitter, capped at 30 s), which
//! keeps a fleet of workers from hammering a backend that is up but failing. But once an
//! outage has lasted a while the backoff sleeps for many seconds, and a backend that
//! comes back would wait that long for its workers. So while it sleeps, the worker
//! probes the backend's address with a plain TCP connect every [`PROBE_INTERVAL`]: as
//! soon as something listens there again, the sleep ends and the worker reconnects.
//!
//! The log: an unreachable backend is one WARN line, then a WARN summary every
//! [`SUMMARY_INTERVAL`] while it stays unreachable, and an INFO line when it is back;
//! each attempt in between is logged at DEBUG.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Endpoint;

/// How often a sleeping worker checks whether the backend listens again.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How often a continuing outage is summarised at WARN.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(30);

/// The worker's view of one outage (from the first failed attempt to the next
/// successful connection).
#[derive(Debug, Default)]
pub struct Outage {
    started: Option<Instant>,
    attempts: u32,
    last_summary: Option<Instant>,
}

impl Outage {
    /// A reconnect attempt failed (or the connection was lost) for `reason`.
    pub fn failed(&mut self, reason: &str, delay: Duration) {
        let now = Instant::now();
        self.attempts += 1;
        let Some(started) = self.started else {
            self.started = Some(now);
            self.last_summary = Some(now);
            tracing::warn!(reason, retry_in = ?delay, "cannot reach the backend; reconnecting");
            return;
        };
        tracing::debug!(attempt = self.attempts, delay = ?delay, reason, "reconnecting");
        if self
            .last_summary
            .is_none_or(|last| now.duration_since(last) >= SUMMARY_INTERVAL)
        {
            self.last_summary = Some(now);
            tracing::warn!(
                "the backend is still unreachable after {:.0?} ({} attempts): {reason}",
                now.duration_since(started),
                self.attempts
            );
        }
    }

    /// Connected again: ends the outage, if there was one.
    pub fn ended(&mut self) {
        if let Some(started) = self.started.take() {
            tracing::info!(
                "reconnected to the backend after {:.1?} ({} attempts)",
                started.elapsed(),
                self.attempts
            );
        }
        self.attempts = 0;
        self.last_summary = None;
    }
}

/// Sleeps `delay`, or less: returns as soon as something accepts TCP connections at the
/// endpoint's address again (probed every [`PROBE_INTERVAL`]).
pub async fn sleep_or_until_listening(delay: Duration, endpoint: &Endpoint) {
    let deadline = Instant::now() + delay;
    let address = probe_address(endpoint);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let Some(address) = &address else {
            tokio::time::sleep_until(deadline).await;
            return;
        };
        tokio::time::sleep_until(deadline.min(now + PROBE_INTERVAL)).await;
        if Instant::now() >= deadline {
            return;
        }
        let probe = tokio::net::TcpStream::connect(address.as_str());
        if let Ok(Ok(_stream)) = tokio::time::timeout(PROBE_TIMEOUT, probe).await {
            tracing::debug!(address, "the backend's address accepts connections again");
            return;
        }
    }
}

/// `host:port` of the endpoint (the scheme's default port when none is written).
fn probe_address(endpoint: &Endpoint) -> Option<String> {
    let uri: tonic::codegen::http::Uri = endpoint.uri().parse().ok()?;
    let host = uri.host()?;
    let port = uri
        .port_u16()
        .unwrap_or(if endpoint.uses_tls() { 443 } else { 80 });
    // An IPv6 host comes bracketed from the URI, as TcpStream::connect wants it.
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_probe_address_has_a_port() {
        let endpoint = |text: &str| Endpoint::parse(text).unwrap();
        assert_eq!(
            probe_address(&endpoint("http://127.0.0.1:4001")).as_deref(),
            Some("127.0.0.1:4001")
        );
        assert_eq!(
            probe_address(&endpoint("https://dts.example")).as_deref(),
            Some("dts.example:443")
        );
        assert_eq!(
            probe_address(&endpoint("http://[::1]:9")).as_deref(),
            Some("[::1]:9")
        );
    }

    #[tokio::test]
    async fn a_long_backoff_ends_as_soon_as_the_address_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let started = std::time::Instant::now();
        sleep_or_until_listening(Duration::from_secs(30), &endpoint).await;
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    }

    #[tokio::test]
    async fn with_nothing_listening_the_whole_delay_is_slept() {
        // A port that was just free: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let started = Instant::now();
        sleep_or_until_listening(Duration::from_millis(1500), &endpoint).await;
        assert!(started.elapsed() >= Duration::from_millis(1500));
    }
}
