//! Watching the plugins folder (`[plugins] watch = true`): a change in the folder
//! triggers a rescan once the folder has been quiet for a moment, and a periodic rescan
//! catches whatever the file-system events missed (network file systems, a watch limit
//! reached, events lost under load).

use std::path::Path;
use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};

use super::PluginHost;

/// How long the folder must be quiet before a rescan: a deployer's copy and rename land
/// in one scan.
const QUIET: Duration = Duration::from_millis(250);
/// A stream of changes is scanned at least this often, even if it never goes quiet.
const LONGEST_WAIT: Duration = Duration::from_secs(1);
/// The fallback rescan interval.
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);

/// Starts watching `dir` for `host`, on a thread of its own (scans copy, hash and load
/// libraries: blocking work that must not hold up the work-item loop). The thread ends
/// when the host is dropped.
pub(crate) fn spawn(host: Weak<PluginHost>, dir: &Path) -> std::io::Result<()> {
    let (events, changes) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            // A closed channel means the thread is gone; nothing left to tell.
            let _ = events.send(());
        }
    })
    .map_err(std::io::Error::other)?;
    let watched = watcher.watch(dir, RecursiveMode::NonRecursive);
    if let Err(error) = &watched {
        tracing::warn!(
            dir = %dir.display(),
            "cannot watch the plugins folder ({error}); rescanning it every {RESCAN_INTERVAL:?} instead"
        );
    }
    std::thread::Builder::new()
        .name("plugin-watcher".to_owned())
        .spawn(move || {
            // The watcher lives as long as the thread.
            let _watcher = watcher;
            loop {
                match changes.recv_timeout(RESCAN_INTERVAL) {
                    Ok(()) => wait_for_quiet(&changes),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                let Some(host) = host.upgrade() else {
                    return;
                };
                host.rescan();
            }
        })?;
    Ok(())
}

/// Swallows further events until none came for [`QUIET`], or [`LONGEST_WAIT`] passed.
fn wait_for_quiet(changes: &mpsc::Receiver<()>) {
    let deadline = Instant::now() + LONGEST_WAIT;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if changes.recv_timeout(QUIET.min(left)).is_err() {
            return;
        }
    }
}
