//! Telling systemd where the daemon is (`Type=notify` units): `READY=1` once it serves,
//! `STOPPING=1` when a drain starts, and `WATCHDOG=1` at half the unit's `WatchdogSec`
//! from the event loop, so that a loop that stops turning gets the service restarted.
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

use crate::worker::StreamState;

/// `READY=1`, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `STOPPING=1`: the drain starts (sent as the stop signal is taken, not from a task
/// that might not run before the process exits).
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining: finishing the work in flight"),
    ]);
}

/// Follows the work-item stream, as the unit's status line (`systemctl status` shows
/// it).
pub fn follow(mut stream: watch::Receiver<StreamState>) {
    tokio::spawn(async move {
        while stream.changed().await.is_ok() {
            let state = stream.borrow_and_update().clone();
            match state {
                StreamState::Draining => return,
                StreamState::Open { .. } => {
                    send(&[NotifyState::Status("serving: the work-item stream is open")]);
                }
                StreamState::Down { reason, .. } => {
                    let line = format!("the work-item stream is down: {reason}");
                    send(&[NotifyState::Status(&line)]);
                }
                StreamState::Connecting => {}
            }
        }
    });
}

/// Starts the watchdog pings if the unit asks for them (`WatchdogSec=`).
pub fn watchdog() {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let period = Duration::from_micros(usec) / 2;
    tracing::info!(
        period_ms = period.as_millis(),
        "systemd watchdog: pinging from the event loop"
    );
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        loop {
            ticks.tick().await;
            send(&[NotifyState::Watchdog]);
        }
    });
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(error) = sd_notify::notify(false, states) {
        tracing::debug!(%error, "cannot notify systemd");
    }
}
