//! The crash journal: which work items were inside a plugin when the host died, and how
//! many times each has done so, so that a work item that kills its plugin (and, in
//! process, the host) is not run forever (issue 11, "poison work").
//!
//! Before the host calls into a plugin for a work item it appends `start <key>` to the
//! journal; when the work item leaves the plugin it appends `end <key>`. An activity that
//! is still running after its first poll (it moved to the plugin's own runtime) appends
//! `wait <key>`: it is in the plugin, but no call of the host's is. The file is opened
//! `O_APPEND` and each line is one `write(2)`: the line is in the kernel before the plugin
//! runs, so it survives the process dying however it dies. There is no fsync: a machine
//! that loses power did not crash a plugin.
//!
//! At start, a work item started and never ended was running when the host died. Which
//! one killed it cannot be known for sure, so the suspects are the items that were inside
//! a call (`start` without `wait`: orchestration steps, entity batches and activity first
//! polls run one at a time on the event loop, and a plugin that exits or aborts does so
//! in such a call); only when no call was open are the activities that were running on
//! plugin runtimes (`wait`) the suspects, all of them. Each suspect's crash count goes up
//! by one. An item that later ends normally loses its count; a clean shutdown leaves no
//! open entries behind. A host killed from outside (SIGKILL, the OOM killer) counts
//! whatever was inside a plugin then: a work item is refused only after `max_crashes` of
//! those in a row.
//!
//! Work item keys are a hash (SHA-256, first 128 bits, hex) of what stays the same when
//! the backend hands the same work out again:
//! - an orchestration step: instance id, execution id, number of past events (the same
//!   step redelivered has the same history, whatever new events joined it);
//! - an activity: instance id, execution id, task id;
//! - an entity batch: entity id, first operation's request id.
//!
//! The lines have a fixed format (`start`/`wait`/`end` `<key>`, and `crashed <key> <n>`
//! after a compaction); a line that is not whole (the host died while writing it) or not
//! understood is ignored. The file is compacted (rewritten with the open entries and the
//! crash counts only, then renamed over the old one) at start and whenever it has grown
//! past four times its compacted size (and 64 KiB).
//!
//! One host per journal: `<journal>.lock` is held (`flock`) while the host runs. A second
//! host finding it held runs without a journal, and says so.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use durabletask_abi::entity::EntityWorkItem;
use durabletask_proto as proto;
use proto::history_event::EventType;
use sha2::{Digest, Sha256};

/// The journal holds which work items were running and the crash counts: private to the
/// host's user, like the database beside which it lives by default.
const FILE_MODE: u32 = 0o600;

/// The journal is compacted once it has grown past this, and past four times its size
/// after the last compaction: about 1,600 steps between rewrites at the least.
const COMPACT_AFTER_BYTES: u64 = 64 * 1024;

/// The failure of a work item that is not run again because it crashed its plugin (or
/// the host) too often, logged as it is handed back: not retriable, since a retry would
/// crash again.
pub(crate) fn plugin_crashed(
    plugin: &str,
    crashes: u32,
    message: String,
) -> proto::TaskFailureDetails {
    tracing::error!(
        plugin,
        crashes,
        "failing a work item with PluginCrashed: {message}"
    );
    let mut details =
        durabletask_abi::failure::details(durabletask_abi::error_types::PLUGIN_CRASHED, message);
    details.is_non_retriable = true;
    details
}

/// Identifies one work item across redeliveries (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key([u8; 16]);

impl Key {
    fn of(parts: &[&[u8]]) -> Key {
        let mut hash = Sha256::new();
        for part in parts {
            // Length-prefixed, so that ("ab", "c") and ("a", "bc") differ.
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part);
        }
        let digest = hash.finalize();
        let mut key = [0; 16];
        key.copy_from_slice(&digest[..16]);
        Key(key)
    }

    /// An orchestration step: instance id, execution id, number of past events.
    pub(crate) fn orchestration(request: &proto::OrchestratorRequest) -> Key {
        let execution_id = request.execution_id.as_deref().unwrap_or_else(|| {
            request
                .past_events
                .iter()
                .chain(&request.new_events)
                .find_map(|event| match &event.event_type {
                    Some(EventType::ExecutionStarted(started)) => started
                        .orchestration_instance
                        .as_ref()
                        .and_then(|instance| instance.execution_id.as_deref()),
                    _ => None,
                })
                .unwrap_or_default()
        });
        let past = (request.past_events.len() as u64).to_le_bytes();
        Key::of(&[
            b"orchestration",
            request.instance_id.as_bytes(),
            execution_id.as_bytes(),
            &past,
        ])
    }

    /// An activity: instance id, execution id, task id.
    pub(crate) fn activity(request: &proto::ActivityRequest) -> Key {
        let instance_id = durabletask_abi::activity::instance_id(request);
        let execution_id = durabletask_abi::activity::execution_id(request);
        Key::of(&[
            b"activity",
            instance_id.as_bytes(),
            execution_id.as_bytes(),
            &request.task_id.to_le_bytes(),
        ])
    }

    /// An entity batch: entity id, first operation's request id.
    pub(crate) fn entity(work: &EntityWorkItem) -> Key {
        let first = match work {
            EntityWorkItem::V1(request) => request
                .operations
                .first()
                .map(|operation| operation.request_id.as_str()),
            EntityWorkItem::V2(request) => {
                request
                    .operation_requests
                    .iter()
                    .find_map(|event| match &event.event_type {
                        Some(EventType::EntityOperationSignaled(signal)) => {
                            Some(signal.request_id.as_str())
                        }
                        Some(EventType::EntityOperationCalled(call)) => {
                            Some(call.request_id.as_str())
                        }
                        _ => None,
                    })
            }
        };
        Key::of(&[
            b"entity",
            work.instance_id().as_bytes(),
            first.unwrap_or_default().as_bytes(),
        ])
    }

    fn write_hex(&self, out: &mut [u8; 32]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, byte) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(byte >> 4)];
            out[2 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
    }

    fn parse_hex(text: &[u8]) -> Option<Key> {
        if text.len() != 32 {
            return None;
        }
        let digit = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut key = [0; 16];
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = (digit(text[2 * i])? << 4) | digit(text[2 * i + 1])?;
        }
        Some(Key(key))
    }
}

/// Where an open work item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Inside a call of the host's into the plugin.
    Calling,
    /// Running on the plugin's own runtime (an activity past its first poll).
    Waiting,
}

impl Phase {
    fn verb(self) -> &'static [u8] {
        match self {
            Phase::Calling => b"start",
            Phase::Waiting => b"wait",
        }
    }
}

/// What the journal said at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Recovery {
    /// Work items that were inside a plugin when the last host died.
    pub(crate) open: usize,
    /// Those whose crash count went up (see the module's documentation).
    pub(crate) suspects: usize,
    /// Work items with a crash count, after counting these.
    pub(crate) counted: usize,
}

/// The crash journal of one host.
#[derive(Debug)]
pub(crate) struct CrashJournal {
    path: PathBuf,
    max_crashes: u32,
    state: Mutex<State>,
    /// A failed write is logged once, not at every step.
    warned: AtomicBool,
    _lock: File,
}

#[derive(Debug)]
struct State {
    file: File,
    open: HashMap<Key, Phase>,
    crashes: HashMap<Key, u32>,
    /// The file's size after the last compaction, and what was appended since.
    compacted_bytes: u64,
    appended_bytes: u64,
}

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JournalError {
    #[error(
        "{} is used by another host (lock {} held); give each host its own [worker] crash_journal",
        journal.display(),
        lock.display()
    )]
    Held { journal: PathBuf, lock: PathBuf },
    #[error("cannot use {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl CrashJournal {
    /// Opens (or creates) the journal at `path`, counts the crashes of the last host, and
    /// compacts it. `max_crashes` is at least 1 (0, off, means no journal at all).
    pub(crate) fn open(
        path: &Path,
        max_crashes: u32,
    ) -> Result<(Arc<CrashJournal>, Recovery), JournalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        let lock_path = with_suffix(path, ".lock");
        let lock = open_private(&lock_path, false).map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Held {
                    journal: path.to_path_buf(),
                    lock: lock_path,
                });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io(&lock_path)(error)),
        }
        let mut text = Vec::new();
        match File::open(path) {
            Ok(mut file) => {
                file.read_to_end(&mut text).map_err(io(path))?;
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io(path)(error)),
        }
        let (mut crashes, open) = replay(&text);
        let recovery = count_crashes(&mut crashes, &open);
        let (file, compacted_bytes) = rewrite(path, &HashMap::new(), &crashes).map_err(io(path))?;
        let journal = CrashJournal {
            path: path.to_path_buf(),
            max_crashes,
            state: Mutex::new(State {
                file,
                open: HashMap::new(),
                crashes,
                compacted_bytes,
                appended_bytes: 0,
            }),
            warned: AtomicBool::new(false),
            _lock: lock,
        };
        Ok((Arc::new(journal), recovery))
    }

    /// The crash limit: a work item with this many crashes is not run.
    pub(crate) fn max_crashes(&self) -> u32 {
        self.max_crashes
    }

    /// How many times `key` was inside a plugin when the host died.
    pub(crate) fn crashes(&self, key: Key) -> u32 {
        self.lock().crashes.get(&key).copied().unwrap_or(0)
    }

    /// How many times `key` was inside a plugin when the host died, if that is
    /// `max_crashes` or more: the work item must not run again.
    pub(crate) fn poisoned(&self, key: Key) -> Option<u32> {
        let crashes = self.crashes(key);
        (crashes >= self.max_crashes).then_some(crashes)
    }

    /// Records that `key` goes into a plugin (on disk before this returns); the entry
    /// ends when the returned guard is dropped.
    pub(crate) fn enter(self: &Arc<Self>, key: Key) -> Entry {
        self.append(key, Phase::Calling.verb(), Some(Phase::Calling));
        Entry {
            journal: Arc::clone(self),
            key,
        }
    }

    /// Counts one crash of `key` that the host saw happen (a plugin's child process died
    /// while the work item was inside it) and returns its count now. On disk before this
    /// returns, as a `crashed <key> <n>` line: the count survives the host.
    pub(crate) fn count_crash(&self, key: Key) -> u32 {
        let mut hex = [0u8; 32];
        key.write_hex(&mut hex);
        let mut state = self.lock();
        let count = state.crashes.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        let count = *count;
        let mut line = Vec::with_capacity(48);
        line.extend_from_slice(b"crashed ");
        line.extend_from_slice(&hex);
        line.extend_from_slice(format!(" {count}\n").as_bytes());
        if let Err(error) = state.file.write_all(&line) {
            self.warn(&error);
        }
        state.appended_bytes += line.len() as u64;
        count
    }

    /// Forgets the crashes of `key`, which has now run to the end (on disk as a
    /// `crashed <key> 0` line, which the next start reads as none).
    pub(crate) fn forget_crashes(&self, key: Key) {
        let mut state = self.lock();
        if state.crashes.remove(&key).is_none() {
            return;
        }
        let mut hex = [0u8; 32];
        key.write_hex(&mut hex);
        let mut line = Vec::with_capacity(48);
        line.extend_from_slice(b"crashed ");
        line.extend_from_slice(&hex);
        line.extend_from_slice(b" 0\n");
        if let Err(error) = state.file.write_all(&line) {
            self.warn(&error);
        }
        state.appended_bytes += line.len() as u64;
    }

    /// Clears every open entry: the host stops cleanly, so whatever is still running
    /// (past the drain) did not crash anything.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.open.clear();
        self.compact(&mut state);
    }

    /// What a host that dies inside the call leaves behind: the `start` line only.
    #[cfg(test)]
    fn enter_and_die(&self, key: Key) {
        self.append(key, Phase::Calling.verb(), Some(Phase::Calling));
    }

    fn append(&self, key: Key, verb: &[u8], phase: Option<Phase>) {
        // One line, one write(2), no allocation: "start " + 32 hex digits + "\n".
        let mut line = [0u8; 40];
        let mut hex = [0u8; 32];
        key.write_hex(&mut hex);
        let verb_end = verb.len();
        line[..verb_end].copy_from_slice(verb);
        line[verb_end] = b' ';
        line[verb_end + 1..verb_end + 33].copy_from_slice(&hex);
        line[verb_end + 33] = b'\n';
        let line = &line[..verb_end + 34];
        let mut state = self.lock();
        match phase {
            Some(phase) => {
                state.open.insert(key, phase);
            }
            None => {
                if state.open.remove(&key).is_some() {
                    // It left the plugin on its own: whatever crashed before, it runs now.
                    state.crashes.remove(&key);
                }
            }
        }
        if let Err(error) = state.file.write_all(line) {
            self.warn(&error);
        }
        state.appended_bytes += line.len() as u64;
        if state.appended_bytes > COMPACT_AFTER_BYTES.max(4 * state.compacted_bytes) {
            self.compact(&mut state);
        }
    }

    fn compact(&self, state: &mut State) {
        match rewrite(&self.path, &state.open, &state.crashes) {
            Ok((file, bytes)) => {
                state.file = file;
                state.compacted_bytes = bytes;
                state.appended_bytes = 0;
            }
            Err(error) => self.warn(&error),
        }
    }

    fn warn(&self, error: &std::io::Error) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                journal = %self.path.display(),
                "cannot write the crash journal: work items that crash the host may not be counted ({error}); later failures are not logged"
            );
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to the state is one insert or remove: nothing is half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A work item inside a plugin; dropping it records that it left.
#[derive(Debug)]
pub(crate) struct Entry {
    journal: Arc<CrashJournal>,
    key: Key,
}

impl Entry {
    /// The host's call returned but the work item still runs in the plugin (an activity
    /// that moved to the plugin's runtime).
    pub(crate) fn waiting(&self) {
        self.journal
            .append(self.key, Phase::Waiting.verb(), Some(Phase::Waiting));
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.journal.append(self.key, b"end", None);
    }
}

/// The crash counts and open entries a journal's text describes. A line that is not
/// whole or not understood is skipped.
fn replay(text: &[u8]) -> (HashMap<Key, u32>, HashMap<Key, Phase>) {
    let mut crashes = HashMap::new();
    let mut open = HashMap::new();
    let mut lines: Vec<&[u8]> = text.split(|&byte| byte == b'\n').collect();
    // The part after the last newline is a line the host died while writing.
    lines.pop();
    for line in lines {
        let mut words = line.split(|&byte| byte == b' ');
        let (Some(verb), Some(key)) = (words.next(), words.next().and_then(Key::parse_hex)) else {
            continue;
        };
        let count = words
            .next()
            .map(|count| std::str::from_utf8(count).ok()?.parse::<u32>().ok());
        match (verb, count) {
            (b"start", None) => {
                open.insert(key, Phase::Calling);
            }
            (b"wait", None) => {
                open.insert(key, Phase::Waiting);
            }
            (b"end", None) => {
                // It left the plugin on its own: whatever crashed before, it ran.
                let ended = open.remove(&key).is_some();
                if ended {
                    crashes.remove(&key);
                }
            }
            (b"crashed", Some(Some(0))) => {
                crashes.remove(&key);
            }
            (b"crashed", Some(Some(count))) => {
                crashes.insert(key, count);
            }
            _ => {}
        }
    }
    (crashes, open)
}

/// Counts one crash for each suspect among the entries open when the last host died.
fn count_crashes(crashes: &mut HashMap<Key, u32>, open: &HashMap<Key, Phase>) -> Recovery {
    let calling = open.values().any(|phase| *phase == Phase::Calling);
    let mut suspects = 0;
    for (key, phase) in open {
        if !calling || *phase == Phase::Calling {
            let count = crashes.entry(*key).or_insert(0);
            *count = count.saturating_add(1);
            suspects += 1;
        }
    }
    Recovery {
        open: open.len(),
        suspects,
        counted: crashes.len(),
    }
}

/// Writes the open entries and the crash counts to a new file and renames it over the
/// journal; returns the journal opened for appending, and its size.
fn rewrite(
    path: &Path,
    open: &HashMap<Key, Phase>,
    crashes: &HashMap<Key, u32>,
) -> std::io::Result<(File, u64)> {
    let mut text = Vec::with_capacity(48 * (open.len() + crashes.len()));
    let mut hex = [0u8; 32];
    for (key, count) in crashes {
        key.write_hex(&mut hex);
        text.extend_from_slice(b"crashed ");
        text.extend_from_slice(&hex);
        text.extend_from_slice(format!(" {count}\n").as_bytes());
    }
    for (key, phase) in open {
        key.write_hex(&mut hex);
        text.extend_from_slice(phase.verb());
        text.push(b' ');
        text.extend_from_slice(&hex);
        text.push(b'\n');
    }
    let temporary = with_suffix(path, ".new");
    let mut file = open_private(&temporary, true)?;
    file.write_all(&text)?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    let file = OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    Ok((owned_by_us(file, path)?, text.len() as u64))
}

/// Opens `path` for writing, creating it private to the host's user, never through a
/// symbolic link (one planted at the path could make the host write elsewhere).
fn open_private(path: &Path, truncate: bool) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(truncate)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    owned_by_us(file, path)
}

/// The file, if the host's user owns it. Another local user who can create files in the
/// journal's folder could otherwise plant the journal (or its `.new` or `.lock`) and
/// write crash counts into it that fail healthy work with `PluginCrashed`.
fn owned_by_us(file: File, path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = file.metadata()?.uid();
    let us = rustix::process::geteuid().as_raw();
    if owner != us {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{} belongs to user {owner}, not to the host's user {us}: remove it, or point [worker] crash_journal at a folder only the host's user can write",
                path.display()
            ),
        ));
    }
    Ok(file)
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    #[test]
    fn a_journal_file_another_user_owns_is_refused_by_name() {
        // Only root can give a file away; as another user the check cannot be staged.
        if rustix::process::geteuid().as_raw() != 0 {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        std::fs::write(&path, "").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        let error = super::rewrite(&path, &Default::default(), &Default::default())
            .map(|_| ())
            .err();
        // The rewrite replaces it with a file of our own (rename), so the planted one is
        // gone; a planted `.new` is what must be refused.
        assert!(error.is_none(), "{error:?}");
        let planted = super::with_suffix(&path, ".new");
        std::fs::write(&planted, "").unwrap();
        std::os::unix::fs::chown(&planted, Some(65534), Some(65534)).unwrap();
        let error = super::rewrite(&path, &Default::default(), &Default::default())
            .err()
            .unwrap();
        assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("user 65534"), "{error}");
    }

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_crash_counted_while_the_host_runs_is_on_disk_for_the_next_host() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("journal");
        let key = Key::of(&[b"child crash"]);
        {
            let (journal, _) = CrashJournal::open(&path, 2).unwrap();
            assert_eq!(journal.count_crash(key), 1);
            assert_eq!(journal.poisoned(key), None);
            assert_eq!(journal.count_crash(key), 2);
            assert_eq!(journal.poisoned(key), Some(2));
        }
        let (journal, recovery) = CrashJournal::open(&path, 2).unwrap();
        assert_eq!(recovery.open, 0);
        assert_eq!(journal.crashes(key), 2);
        // It ran to the end later: forgotten, on disk too.
        journal.forget_crashes(key);
        assert_eq!(journal.crashes(key), 0);
        drop(journal);
        let (journal, _) = CrashJournal::open(&path, 2).unwrap();
        assert_eq!(journal.crashes(key), 0);
    }

    fn key(n: u8) -> Key {
        Key([n; 16])
    }

    fn text(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    /// What a host that died leaves: the journal of `lines`, unlocked.
    fn died_with(path: &Path, lines: &str) {
        std::fs::write(path, lines).unwrap();
    }

    fn hex(key: Key) -> String {
        let mut out = [0u8; 32];
        key.write_hex(&mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn an_entry_is_on_disk_while_open_and_ended_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (journal, recovery) = CrashJournal::open(&path, 3).unwrap();
        assert_eq!(recovery, Recovery::default());
        let entry = journal.enter(key(1));
        assert_eq!(text(&path), format!("start {}\n", hex(key(1))));
        entry.waiting();
        drop(entry);
        assert_eq!(
            text(&path),
            format!("start {0}\nwait {0}\nend {0}\n", hex(key(1)))
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn entries_open_at_start_count_as_crashes_until_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        for crash in 1..=3 {
            let (journal, recovery) = CrashJournal::open(&path, 3).unwrap();
            assert_eq!(recovery.suspects, usize::from(crash > 1));
            assert_eq!(journal.poisoned(key(7)), None);
            // The item runs and the host dies during the call: the entry stays open.
            journal.enter_and_die(key(7));
        }
        let (journal, recovery) = CrashJournal::open(&path, 3).unwrap();
        assert_eq!((recovery.open, recovery.suspects), (1, 1));
        assert_eq!(journal.poisoned(key(7)), Some(3));
        assert_eq!(journal.poisoned(key(8)), None);
    }

    #[test]
    fn a_call_open_at_the_crash_is_the_only_suspect_else_every_running_activity_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (a, b, c) = (hex(key(1)), hex(key(2)), hex(key(3)));
        died_with(
            &path,
            &format!("start {a}\nwait {a}\nstart {b}\nwait {b}\nstart {c}\n"),
        );
        let (journal, recovery) = CrashJournal::open(&path, 1).unwrap();
        assert_eq!((recovery.open, recovery.suspects), (3, 1));
        assert_eq!(journal.poisoned(key(3)), Some(1));
        assert_eq!(journal.poisoned(key(1)), None);
        drop(journal);
        // No call open: the activities running on plugin runtimes are all suspects.
        died_with(
            &path,
            &format!("start {a}\nwait {a}\nstart {b}\nwait {b}\n"),
        );
        let (journal, recovery) = CrashJournal::open(&path, 1).unwrap();
        assert_eq!((recovery.open, recovery.suspects), (2, 2));
        assert_eq!(journal.poisoned(key(1)), Some(1));
        assert_eq!(journal.poisoned(key(2)), Some(1));
    }

    #[test]
    fn an_item_that_ends_normally_loses_its_crash_count() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        died_with(&path, &format!("crashed {} 2\n", hex(key(4))));
        let (journal, _) = CrashJournal::open(&path, 2).unwrap();
        assert_eq!(journal.poisoned(key(4)), Some(2));
        drop(journal.enter(key(4)));
        assert_eq!(journal.poisoned(key(4)), None);
        drop(journal);
        let (journal, _) = CrashJournal::open(&path, 1).unwrap();
        assert_eq!(journal.poisoned(key(4)), None);
    }

    #[test]
    fn a_torn_last_line_and_lines_not_understood_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (a, b) = (hex(key(1)), hex(key(2)));
        died_with(
            &path,
            &format!(
                "crashed {a} 1\nbogus line\nstart zz\nend {b} 9\nstart {}",
                &b[..20]
            ),
        );
        let (journal, recovery) = CrashJournal::open(&path, 2).unwrap();
        assert_eq!((recovery.open, recovery.counted), (0, 1));
        assert_eq!(journal.poisoned(key(1)), None);
        drop(journal);
        let (journal, _) = CrashJournal::open(&path, 1).unwrap();
        assert_eq!(journal.poisoned(key(1)), Some(1));
    }

    #[test]
    fn the_journal_is_compacted_at_start_and_when_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (a, b) = (hex(key(1)), hex(key(2)));
        died_with(&path, &format!("start {a}\nend {a}\nstart {b}\n"));
        let (journal, _) = CrashJournal::open(&path, 3).unwrap();
        assert_eq!(text(&path), format!("crashed {b} 1\n"));
        let running = journal.enter(key(3));
        for _ in 0..2000 {
            drop(journal.enter(key(9)));
        }
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < COMPACT_AFTER_BYTES + 100, "{size} bytes");
        // What is open and what crashed survive the compaction.
        let (_, open) = replay(text(&path).as_bytes());
        assert_eq!(open.get(&key(3)), Some(&Phase::Calling));
        drop(running);
        journal.close();
        drop(journal);
        assert_eq!(text(&path), format!("crashed {b} 1\n"));
    }

    #[test]
    fn a_clean_close_leaves_nothing_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (journal, _) = CrashJournal::open(&path, 1).unwrap();
        journal.enter_and_die(key(5));
        journal.close();
        drop(journal);
        let (journal, recovery) = CrashJournal::open(&path, 1).unwrap();
        assert_eq!(recovery.open, 0);
        assert_eq!(journal.poisoned(key(5)), None);
    }

    #[test]
    fn a_second_host_on_the_same_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let (_first, _) = CrashJournal::open(&path, 3).unwrap();
        let error = CrashJournal::open(&path, 3).unwrap_err();
        assert!(matches!(error, JournalError::Held { .. }), "{error}");
    }

    #[test]
    fn keys_stay_the_same_for_the_same_work_and_differ_otherwise() {
        let step = |past: usize, new: usize| proto::OrchestratorRequest {
            instance_id: "order-1".into(),
            execution_id: Some("e1".into()),
            past_events: vec![proto::HistoryEvent::default(); past],
            new_events: vec![proto::HistoryEvent::default(); new],
            ..Default::default()
        };
        assert_eq!(
            Key::orchestration(&step(3, 1)),
            Key::orchestration(&step(3, 2))
        );
        assert_ne!(
            Key::orchestration(&step(3, 1)),
            Key::orchestration(&step(4, 1))
        );
        let activity = |task_id| proto::ActivityRequest {
            task_id,
            orchestration_instance: Some(proto::OrchestrationInstance {
                instance_id: "order-1".into(),
                execution_id: Some("e1".into()),
            }),
            ..Default::default()
        };
        assert_eq!(Key::activity(&activity(2)), Key::activity(&activity(2)));
        assert_ne!(Key::activity(&activity(2)), Key::activity(&activity(3)));
        let batch = |request_id: &str| {
            EntityWorkItem::V1(proto::EntityBatchRequest {
                instance_id: "@counter@k".into(),
                operations: vec![proto::OperationRequest {
                    request_id: request_id.into(),
                    ..Default::default()
                }],
                ..Default::default()
            })
        };
        assert_eq!(Key::entity(&batch("r1")), Key::entity(&batch("r1")));
        assert_ne!(Key::entity(&batch("r1")), Key::entity(&batch("r2")));
    }
}
