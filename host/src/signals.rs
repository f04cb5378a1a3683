//! What the daemon does on each signal.
//!
//! - SIGINT, SIGTERM: stop. The worker drains (`worker::drain`), then the host exits 0; a
//!   second one exits at once (130), for an operator who does not want to wait.
//! - SIGHUP: reload. The plugins folder is scanned now, as the watcher would (with
//!   `[plugins] watch = false` too), and `[logging] level` is read again from the config
//!   file and applied. One INFO line says what was reloaded. Nothing else is re-read: other
//!   settings take effect at the next start.
//! - SIGUSR1: the status report (`status`): generations in service, where each runs, and
//!   the work items in flight.
//! - SIGUSR2: ignored, with one log line (its default action would end the host without a
//!   drain).
//! - SIGPIPE: nothing to do. The Rust runtime sets it to "ignore" before `main`, so a write
//!   to a closed pipe or socket fails with EPIPE instead of killing the process.
//!
//! Every handler is installed by [`install`], before anything slow at start-up: a signal
//! that arrives early is then never fatal. A SIGHUP or SIGUSR1 received before the plugins
//! are up is remembered and handled once [`ControlSignals::spawn`] runs.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Config;
use crate::logging::LevelHandle;
use crate::plugins::{PluginHost, Rescan};

/// The exit code after a second stop signal (128 + SIGINT, as shells report Ctrl-C).
const EXIT_SECOND_SIGNAL: i32 = 130;

/// How long a SIGHUP rescan waits before looking again at a file that changed since the
/// last scan: the watcher's pause too (a file is read once it looks the same twice).
const SETTLE_PAUSE: Duration = Duration::from_millis(300);

/// At most this many scans per SIGHUP while files are still settling (about 3 s): a
/// file still being written after that is left to the next SIGHUP or the watcher.
const MAX_SCANS: u32 = 10;

/// SIGHUP, SIGUSR1 and SIGUSR2, caught; handled once [`ControlSignals::spawn`] is called.
pub struct ControlSignals {
    hangup: Signal,
    user1: Signal,
    user2: Signal,
}

/// Installs the handlers of every signal above. Returns a future that resolves on the first
/// SIGINT or SIGTERM (a task watching for them is already running), and the other
/// signals.
pub fn install() -> std::io::Result<(impl Future<Output = ()>, ControlSignals)> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let control = ControlSignals {
        hangup: signal(SignalKind::hangup())?,
        user1: signal(SignalKind::user_defined1())?,
        user2: signal(SignalKind::user_defined2())?,
    };
    let (first_signal, shutdown) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let name = next_stop_signal(&mut terminate, &mut interrupt).await;
        tracing::info!(
            signal = name,
            "shutting down; send the signal again to exit at once"
        );
        let _ = first_signal.send(());
        let name = next_stop_signal(&mut terminate, &mut interrupt).await;
        tracing::warn!(
            signal = name,
            "second signal: exiting without finishing in-flight work"
        );
        std::process::exit(EXIT_SECOND_SIGNAL);
    });
    let shutdown = async move {
        // An error means the signal task is gone; stopping is the safe reading of that.
        let _ = shutdown.await;
    };
    Ok((shutdown, control))
}

async fn next_stop_signal(terminate: &mut Signal, interrupt: &mut Signal) -> &'static str {
    tokio::select! {
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    }
}

impl ControlSignals {
    /// Handles SIGHUP with `reloader`, SIGUSR1 with `status` (the status report) and
    /// SIGUSR2 by saying it is ignored, for as long as the runtime runs.
    pub fn spawn(mut self, mut reloader: Reloader, status: impl Fn() + Send + 'static) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(()) = self.hangup.recv() => reloader.reload().await,
                    Some(()) = self.user1.recv() => status(),
                    Some(()) = self.user2.recv() => tracing::info!("ignoring SIGUSR2"),
                    else => return,
                }
            }
        });
    }
}

/// What SIGHUP reloads, and from where.
pub struct Reloader {
    /// The config file the host was started with; its `[logging] level` is read again.
    pub config_path: PathBuf,
    /// The running logger's level.
    pub level: LevelHandle,
    /// The level in force (from the file at start, or the last reload).
    pub current_level: String,
    /// `None` for a backend-only host (`durabletask-host serve`): only the level reloads.
    pub plugins: Option<Arc<PluginHost>>,
}

impl Reloader {
    /// Applies the config file's log level, then rescans the plugins folder (after the
    /// level, so that a level raised for the occasion shows the scan's details too). The
    /// rescan goes on in a task of its own: it may wait for the replay gate (up to its
    /// deadline), and meanwhile the other signals are still handled.
    async fn reload(&mut self) {
        let level = self.reload_level();
        let current_level = self.current_level.clone();
        let Some(plugins) = self.plugins.clone() else {
            if level {
                tracing::info!("SIGHUP: reloaded the log level (\"{current_level}\")");
            }
            return;
        };
        tokio::spawn(async move {
            let scan = tokio::task::spawn_blocking(move || {
                let scan =
                    rescan_until_settled(|| plugins.rescan(), || std::thread::sleep(SETTLE_PAUSE));
                (scan, plugins.catalog().generations().len())
            })
            .await
            // A panic in the scan was already reported by the panic hook; the manager's
            // next scan compares the folder afresh.
            .map_err(|error| error.to_string());
            tracing::info!("{}", reload_line(scan, level, &current_level));
        });
    }

    /// Reads `[logging] level` from the config file and applies it. Whether it was
    /// applied, for the reload's log line; why not is logged here.
    fn reload_level(&mut self) -> bool {
        let loaded = Config::load(&self.config_path)
            .map_err(|error| error.to_string())
            .and_then(|config| {
                self.level
                    .set(&config.logging.level)
                    .map(|()| config.logging.level)
                    .map_err(|error| error.to_string())
            });
        match loaded {
            Ok(level) => {
                self.current_level = level;
                true
            }
            Err(error) => {
                tracing::error!(
                    "SIGHUP: cannot reload the log level from {}: {error}",
                    self.config_path.display()
                );
                false
            }
        }
    }
}

/// The one INFO line a SIGHUP logs: what the scan found (and how many generations are in
/// service after it), and whether `level` is the config file's new level or the old one.
fn reload_line(scan: Result<(Scan, usize), String>, level_reloaded: bool, level: &str) -> String {
    let plugins = match scan {
        Ok((scan, in_service)) => describe_scan(scan, in_service),
        Err(error) => format!("nothing from the plugins folder (the scan failed: {error})"),
    };
    if level_reloaded {
        format!("SIGHUP: reloaded {plugins} and the log level (\"{level}\")")
    } else {
        format!(
            "SIGHUP: reloaded {plugins}; the log level stays \"{level}\" (the config file could not be used: see the error above)"
        )
    }
}

/// What one SIGHUP's rescans found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scan {
    /// The generations in service changed.
    changed: bool,
    /// A file was still changing after the last scan.
    unsettled: bool,
    scans: u32,
}

/// Rescans until no file is still settling (a new or changed file is read once it looks
/// the same in two scans in a row), pausing between scans, at most [`MAX_SCANS`] times.
fn rescan_until_settled(mut rescan: impl FnMut() -> Rescan, mut pause: impl FnMut()) -> Scan {
    let mut scan = Scan {
        changed: false,
        unsettled: false,
        scans: 0,
    };
    loop {
        let outcome = rescan();
        scan.scans += 1;
        scan.changed |= outcome.changed;
        scan.unsettled = outcome.settling;
        if !outcome.settling || scan.scans >= MAX_SCANS {
            return scan;
        }
        pause();
    }
}

fn describe_scan(scan: Scan, in_service: usize) -> String {
    let plural = if in_service == 1 { "" } else { "s" };
    let change = if scan.changed { "changed" } else { "no change" };
    let unsettled = if scan.unsettled {
        "; a file still being written is left for later"
    } else {
        ""
    };
    format!("the plugins folder ({in_service} generation{plural} in service, {change}{unsettled})")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(changed: bool, settling: bool) -> Rescan {
        Rescan { changed, settling }
    }

    #[test]
    fn a_settled_folder_is_scanned_once() {
        let mut pauses = 0;
        let scan = rescan_until_settled(|| outcome(false, false), || pauses += 1);
        assert_eq!(
            scan,
            Scan {
                changed: false,
                unsettled: false,
                scans: 1
            }
        );
        assert_eq!(pauses, 0);
    }

    #[test]
    fn a_new_file_is_scanned_again_until_it_is_in_service() {
        // What a deployed file looks like: settling at first sight, loaded at the second.
        let mut outcomes = vec![outcome(true, false), outcome(false, true)];
        let mut pauses = 0;
        let scan = rescan_until_settled(|| outcomes.pop().unwrap_or_default(), || pauses += 1);
        assert_eq!(
            scan,
            Scan {
                changed: true,
                unsettled: false,
                scans: 2
            }
        );
        assert_eq!(pauses, 1);
    }

    #[test]
    fn a_file_that_never_settles_ends_the_scans_after_the_limit() {
        let scan = rescan_until_settled(|| outcome(false, true), || {});
        assert_eq!(scan.scans, MAX_SCANS);
        assert!(scan.unsettled);
    }

    #[test]
    fn the_reload_line_says_what_is_in_service() {
        let scan = Scan {
            changed: true,
            unsettled: false,
            scans: 2,
        };
        assert_eq!(
            describe_scan(scan, 1),
            "the plugins folder (1 generation in service, changed)"
        );
        let scan = Scan {
            changed: false,
            unsettled: true,
            scans: MAX_SCANS,
        };
        assert_eq!(
            describe_scan(scan, 0),
            "the plugins folder (0 generations in service, no change; a file still being written is left for later)"
        );
    }

    #[test]
    fn the_reload_line_says_whether_the_level_was_reloaded() {
        let scan = Scan {
            changed: false,
            unsettled: false,
            scans: 1,
        };
        assert_eq!(
            reload_line(Ok((scan, 2)), true, "debug"),
            r#"SIGHUP: reloaded the plugins folder (2 generations in service, no change) and the log level ("debug")"#
        );
        let line = reload_line(Ok((scan, 2)), false, "info");
        assert!(
            line.contains(r#"; the log level stays "info" (the config file could not be used"#),
            "{line}"
        );
        let line = reload_line(Err("panicked".to_owned()), true, "info");
        assert!(
            line.starts_with(
                "SIGHUP: reloaded nothing from the plugins folder (the scan failed: panicked)"
            ),
            "{line}"
        );
    }
}
