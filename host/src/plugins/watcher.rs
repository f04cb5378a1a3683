//! Watching the plugins folder (`[plugins] watch = true`): a change in the folder
//! triggers a rescan once the folder has been quiet for a moment, and a periodic rescan
//! catches whatever the file-system events missed (network file systems, a watch limit
//! reached, events lost under load).

use std::path::Path;
use std::sync::Weak;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher as _};

use super::plugin_host::PluginHost;

/// How long the folder must be quiet before a rescan: a deployer's copy and rename land
/// in one scan.
const QUIET: Duration = Duration::from_millis(250);
/// A stream of changes is scanned at least this often, even if it never goes quiet.
const LONGEST_WAIT: Duration = Duration::from_secs(1);
/// The fallback rescan interval.
const RESCAN_INTERVAL: Duration = Duration::from_secs(2);
/// How soon to look again at a file that changed since the last scan (it is read once it
/// looks the same twice in a row).
const SETTLE: Duration = Duration::from_millis(300);

/// Starts watching `dir` for `host`, on a thread of its own (scans copy, hash and load
/// libraries: blocking work that must not hold up the work-item loop). The thread ends
/// when the host is dropped.
pub(crate) fn spawn(host: Weak<PluginHost>, dir: &Path) -> std::io::Result<()> {
    let (events, changes) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok_and(|event| changes_files(&event.kind)) {
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
            let mut next_look = RESCAN_INTERVAL;
            loop {
                match changes.recv_timeout(next_look) {
                    Ok(()) => wait_for_quiet(&changes),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                let Some(host) = host.upgrade() else {
                    return;
                };
                next_look = if host.rescan().settling {
                    SETTLE
                } else {
                    RESCAN_INTERVAL
                };
            }
        })?;
    Ok(())
}

/// Whether an event can change what the folder holds. Opening, reading and listing the
/// folder are events too (inotify's IN_OPEN, IN_CLOSE_NOWRITE), and every rescan lists
/// it: reacting to those would make each rescan trigger the next.
fn changes_files(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::AccessKind;
    match kind {
        // A file written and closed: its contents are complete for now.
        EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Other => false,
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Events of `dir` for `wait` after `action` ran.
    fn events_of(dir: &Path, action: impl FnOnce(), wait: Duration) -> Vec<notify::Event> {
        let (events, seen) = mpsc::channel::<notify::Event>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    let _ = events.send(event);
                }
            })
            .unwrap();
        watcher.watch(dir, RecursiveMode::NonRecursive).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        while seen.try_recv().is_ok() {}
        action();
        std::thread::sleep(wait);
        seen.try_iter().collect()
    }

    #[test]
    fn a_rescan_listing_the_folder_does_not_trigger_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("liba.so"), b"x").unwrap();
        let listed = events_of(
            dir.path(),
            || {
                let _ = super::super::loader::discover(dir.path()).unwrap();
                let _ = std::fs::read(dir.path().join("liba.so")).unwrap();
            },
            Duration::from_millis(300),
        );
        let triggering: Vec<_> = listed.iter().filter(|e| changes_files(&e.kind)).collect();
        assert!(triggering.is_empty(), "{triggering:?}");
    }

    #[test]
    fn writing_renaming_and_removing_a_library_are_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liba.so");
        let seen = events_of(
            dir.path(),
            || {
                std::fs::write(dir.path().join(".tmp"), b"x").unwrap();
                std::fs::rename(dir.path().join(".tmp"), &path).unwrap();
                std::fs::remove_file(&path).unwrap();
            },
            Duration::from_millis(300),
        );
        assert!(seen.iter().any(|e| changes_files(&e.kind)), "{seen:?}");
    }
}
