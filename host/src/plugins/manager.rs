//! The plugins folder, scanned into the set of generations in service.
//!
//! Each scan compares the folder with the previous scan: a new or changed library is
//! copied and loaded, a removed one takes its generations out of service. The rules:
//! - a library is known by the hash of its contents: the same build seen again (another
//!   name, or put back after removal) is never loaded twice;
//! - a library that fails to load is reported once and changes nothing;
//! - a file replaced in place keeps its earlier library in service beside the new one
//!   (orchestrations that started on the old version still need it) until the file is
//!   removed;
//! - a second library with a plugin name and version already in service is ignored, with
//!   a log line: a new build must carry a new version to be deployed;
//! - a library that someone besides the host's user and root could have written (the file,
//!   the plugins folder or a folder above it: see [`trust`]) is refused, or, with
//!   `[plugins] strict_permissions = false`, loaded with a warning. A library refused for
//!   its folder is read again once the folder is safe.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use std::cmp::Ordering;

use super::build_memory::BuildMemory;
use super::error::LoadError;
use super::generation::Generation;
use super::isolation::{self, IsolationSettings};
use super::loaded_plugin::LoadedPlugin;
use super::loader;
use super::private_dir::PrivateDir;
use super::replay_gate::Admission;
use super::trust::{self, Policy};
use crate::versioning;

/// What a file looked like at the last scan; a change means "read it again". The
/// status-change time (ctime) is part of it: a rewrite in place with the same length
/// within one mtime tick, or a `chmod` after a refusal, still changes it, and it cannot
/// be set back by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    inode: u64,
}

impl Fingerprint {
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = std::fs::metadata(path)?;
        Ok(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            changed: (metadata.ctime(), metadata.ctime_nsec()),
            inode: metadata.ino(),
        })
    }
}

/// The replay gate's question about a new generation, given those in service.
pub(crate) type Gate<'a> = dyn FnMut(&Arc<Generation>, &[Arc<Generation>]) -> Admission + 'a;

/// One library file of the folder.
#[derive(Debug)]
struct FileEntry {
    fingerprint: Fingerprint,
    /// The library the file holds now (`None` if it never loaded).
    current: Option<String>,
    /// Libraries the file held before it was replaced in place, oldest first.
    previous: Vec<String>,
    /// Its last read was refused because the plugins folder was unsafe: read it again
    /// once the folder is safe, though the file itself did not change.
    refused_for_folder: bool,
}

impl FileEntry {
    fn hashes(&self) -> impl Iterator<Item = &String> {
        self.previous.iter().chain(&self.current)
    }
}

/// The folder's libraries and the generations in service.
pub(crate) struct Manager {
    dir: PathBuf,
    private_dir: PrivateDir,
    policy: Policy,
    /// Where each plugin's code runs.
    isolation: IsolationSettings,
    files: BTreeMap<PathBuf, FileEntry>,
    /// Every library loaded by this process, by content hash (libraries are never
    /// unloaded, and one image must not be initialised twice).
    libraries: HashMap<String, Arc<LoadedPlugin>>,
    /// Generations by content hash, as long as anything holds them: a library put back in
    /// service while its old generation still finishes work gets that generation back.
    generations: HashMap<String, Weak<Generation>>,
    /// In service, in the order they were put in service.
    active: Vec<Arc<Generation>>,
    /// Libraries already reported as duplicates, so a rescan does not repeat it.
    reported_duplicates: HashSet<(PathBuf, String)>,
    /// Libraries refused for a name another plugin registers, already reported (they are
    /// judged at every scan, reported once while the conflict lasts).
    reported_conflicts: HashSet<(PathBuf, String)>,
    /// Builds the replay gate refused: never put in service (a new build is a new hash).
    refused_by_gate: HashSet<String>,
    /// Libraries the replay gate could not judge yet, already reported.
    reported_waits: HashSet<(PathBuf, String)>,
    /// The build of each plugin version put in service, remembered across restarts.
    builds: BuildMemory,
    /// Read a changed file only once it looked the same in two scans in a row (see
    /// [`Manager::settle_changes`]).
    settle: bool,
    /// Changed files seen once, waiting to look the same again before they are read.
    unsettled: HashMap<PathBuf, Fingerprint>,
}

/// What a scan did.
#[derive(Debug, Default)]
pub(crate) struct Change {
    /// Generations put in service.
    pub(crate) added: Vec<Arc<Generation>>,
    /// Generations taken out of service (their files are gone).
    pub(crate) retired: Vec<Arc<Generation>>,
    /// Files that failed to load, and why (each version of a file is reported once).
    pub(crate) refused: Vec<(PathBuf, LoadError)>,
    /// Libraries not put in service because their plugin name and version already are
    /// (or the same build already is, from another file), and why (each is reported
    /// once).
    pub(crate) ignored: Vec<(PathBuf, String)>,
    /// Libraries loaded although they are unsafe (`strict_permissions = false`), and why
    /// (each version of a file is reported once).
    pub(crate) untrusted: Vec<(PathBuf, String)>,
    /// Libraries the replay gate could not judge yet (the backend did not answer), and
    /// why (reported once; judged again at every scan).
    pub(crate) waiting: Vec<(PathBuf, String)>,
    /// Whether a changed file is waiting to settle: scan again shortly.
    pub(crate) settling: bool,
}

impl Change {
    /// Whether the generations in service changed.
    pub(crate) fn changes_service(&self) -> bool {
        !self.added.is_empty() || !self.retired.is_empty()
    }
}

/// Why a read was refused: for the plugins folder (read again once it is safe) or for
/// the file itself.
enum Refusal {
    Folder(LoadError),
    File(LoadError),
}

impl Refusal {
    fn into_error(self) -> LoadError {
        match self {
            Refusal::Folder(error) | Refusal::File(error) => error,
        }
    }
}

impl Manager {
    pub(crate) fn new(
        dir: PathBuf,
        private_dir: PrivateDir,
        policy: Policy,
        isolation: IsolationSettings,
    ) -> Self {
        Self {
            dir,
            private_dir,
            policy,
            isolation,
            files: BTreeMap::new(),
            libraries: HashMap::new(),
            generations: HashMap::new(),
            active: Vec::new(),
            reported_duplicates: HashSet::new(),
            reported_conflicts: HashSet::new(),
            refused_by_gate: HashSet::new(),
            reported_waits: HashSet::new(),
            builds: BuildMemory::default(),
            settle: false,
            unsettled: HashMap::new(),
        }
    }

    /// A manager of the plugins folder `dir` with a new private folder for its copies,
    /// after its first scan (everything in the folder read at once), as the host and
    /// `durabletask-host plugins` start.
    pub(crate) fn first_scan(
        dir: &Path,
        strict_permissions: bool,
        isolation: IsolationSettings,
        builds: BuildMemory,
    ) -> Result<(Self, Change), super::PluginError> {
        let private_dir =
            PrivateDir::create().map_err(|source| super::PluginError::PrivateDir {
                dir: std::env::temp_dir(),
                source,
            })?;
        let mut manager = Self::new(
            dir.to_path_buf(),
            private_dir,
            Policy::new(strict_permissions),
            isolation,
        );
        manager.builds = builds;
        let change = manager
            .scan()
            .map_err(|source| super::PluginError::UnreadableDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        Ok((manager, change))
    }

    /// From now on, read a new or changed file only once it looks the same in two scans
    /// in a row, so a deployer's copy still in progress is not read half-way. (The first
    /// scan at start-up reads everything at once; a library cut short is refused by its
    /// ELF check either way and read again when it changes.)
    pub(crate) fn settle_changes(&mut self) {
        self.settle = true;
    }

    /// The plugins folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The generations in service, in the order they were put in service.
    pub(crate) fn active(&self) -> &[Arc<Generation>] {
        &self.active
    }

    /// Reads the folder and brings the generations in service up to date with it.
    pub(crate) fn scan(&mut self) -> std::io::Result<Change> {
        self.scan_gated(&mut |_, _| Admission::Admit)
    }

    /// [`scan`](Self::scan), asking `admit` (given each new generation and those in
    /// service) before a new generation goes in service: one refused is not put in
    /// service again (its build is remembered), one not admitted yet is asked about
    /// again at the next scan.
    pub(crate) fn scan_gated(&mut self, admit: &mut Gate<'_>) -> std::io::Result<Change> {
        let present = loader::discover(&self.dir)?;
        let present_set: HashSet<&PathBuf> = present.iter().collect();
        self.files.retain(|path, _| present_set.contains(path));
        self.unsettled.retain(|path, _| present_set.contains(path));
        // Once per scan: the folder's safety is the same for every file in it.
        let folder = trust::check_plugins_folder(&self.dir, self.policy.euid());
        let mut refused = Vec::new();
        let mut untrusted = Vec::new();
        for path in &present {
            match self.refresh(path, &folder) {
                Ok(Some(reason)) => untrusted.push((path.clone(), reason)),
                Ok(None) => {}
                Err(error) => refused.push((path.clone(), error)),
            }
        }
        let mut change = self.reconcile(admit);
        // After the files refused as they were read come those refused for a name
        // another plugin registers (`reconcile`).
        refused.append(&mut change.refused);
        change.refused = refused;
        change.untrusted = untrusted;
        change.settling = !self.unsettled.is_empty();
        Ok(change)
    }

    /// Reads `path` again if it changed since the last scan (or was refused for its
    /// folder, now safe). `folder` is the verdict on the plugins folder. `Err` is why its
    /// new contents were refused (what it held before stays); `Ok(Some(reason))`, why
    /// they were loaded although unsafe.
    fn refresh(
        &mut self,
        path: &Path,
        folder: &Result<(), String>,
    ) -> Result<Option<String>, LoadError> {
        let fingerprint = match Fingerprint::of(path) {
            Ok(fingerprint) => fingerprint,
            // Gone between the listing and now: the next scan sees it removed.
            Err(_) => return Ok(None),
        };
        if self.files.get(path).is_some_and(|entry| {
            entry.fingerprint == fingerprint && !(entry.refused_for_folder && folder.is_ok())
        }) {
            self.unsettled.remove(path);
            return Ok(None);
        }
        if self.settle && self.unsettled.get(path) != Some(&fingerprint) {
            // Changed since the last look: maybe still being written. Look again.
            self.unsettled.insert(path.to_path_buf(), fingerprint);
            return Ok(None);
        }
        self.unsettled.remove(path);
        let loaded = self.read(path, folder);
        let entry = self.files.entry(path.to_path_buf()).or_insert(FileEntry {
            fingerprint: fingerprint.clone(),
            current: None,
            previous: Vec::new(),
            refused_for_folder: false,
        });
        // Recorded even when the load failed: that version of the file is not retried.
        entry.fingerprint = fingerprint;
        entry.refused_for_folder = matches!(loaded, Err(Refusal::Folder(_)));
        let (hash, untrusted) = loaded.map_err(Refusal::into_error)?;
        if entry.current.as_ref() != Some(&hash) {
            if let Some(old) = entry.current.replace(hash.clone()) {
                entry.previous.retain(|h| *h != old);
                entry.previous.push(old);
            }
            entry.previous.retain(|h| *h != hash);
        }
        Ok(untrusted)
    }

    /// Copies and loads the library at `path` (unless this build is loaded already) and
    /// returns its content hash, and why it is unsafe if it was loaded anyway.
    fn read(
        &mut self,
        path: &Path,
        folder: &Result<(), String>,
    ) -> Result<(String, Option<String>), Refusal> {
        let unsafe_folder = self.policy.judge(folder.clone()).map_err(Refusal::Folder)?;
        let copy = loader::private_copy(path, self.private_dir.path(), &self.policy)
            .map_err(Refusal::File)?;
        let untrusted = match (unsafe_folder, copy.untrusted.clone()) {
            (Some(folder), Some(file)) => Some(format!("{folder}; {file}")),
            (folder, file) => folder.or(file),
        };
        if self.libraries.contains_key(&copy.hash) {
            return Ok((copy.hash, untrusted));
        }
        let plugin = isolation::load(path, &copy, &self.isolation).map_err(Refusal::File)?;
        tracing::debug!(
            plugin = %plugin.name,
            plugin_version = %plugin.version,
            file = %path.display(),
            hash = %copy.hash,
            "library loaded"
        );
        self.libraries.insert(copy.hash.clone(), Arc::new(plugin));
        Ok((copy.hash, untrusted))
    }

    /// Puts in service what the folder holds and takes out what it no longer does.
    fn reconcile(&mut self, admit: &mut Gate<'_>) -> Change {
        let mut wanted: Vec<(&PathBuf, &String)> = self
            .files
            .iter()
            .flat_map(|(file, entry)| entry.hashes().map(move |hash| (file, hash)))
            .collect();
        // Builds remembered as serving their version go first (then by file): after a
        // restart they keep their names, and a newcomer that registers one of them is the
        // one refused, whatever the order of the files.
        let remembered = |hash: &String| {
            self.libraries.get(hash).is_some_and(|plugin| {
                self.builds.build_of(&plugin.name, &plugin.version) == Some(hash.as_str())
            })
        };
        wanted.sort_by(|(file_a, hash_a), (file_b, hash_b)| {
            remembered(hash_b)
                .cmp(&remembered(hash_a))
                .then_with(|| file_a.cmp(file_b))
        });
        let wanted_set: HashSet<&String> = wanted.iter().map(|(_, hash)| *hash).collect();

        let mut change = Change::default();
        let mut active = Vec::with_capacity(self.active.len());
        for generation in self.active.drain(..) {
            if wanted_set.contains(&generation.plugin().content_hash) {
                active.push(generation);
            } else {
                change.retired.push(generation);
            }
        }
        for (file, hash) in wanted {
            if let Some(twin) = active.iter().find(|g| &g.plugin().content_hash == hash) {
                if twin.plugin().source != *file
                    && self
                        .reported_duplicates
                        .insert((file.clone(), hash.clone()))
                {
                    let reason = format!(
                        "it is the same build ({hash}) as {}, already in service",
                        twin.plugin().source.display()
                    );
                    change.ignored.push((file.clone(), reason));
                }
                continue;
            }
            let Some(plugin) = self.libraries.get(hash) else {
                continue;
            };
            if let Some(twin) = active.iter().find(|g| {
                g.plugin().name == plugin.name
                    && versioning::compare(Some(&g.plugin().version), Some(&plugin.version))
                        == Ordering::Equal
            }) {
                // Not in service: its process (loading it started one) has nothing to do.
                if plugin.isolated() {
                    plugin.shutdown();
                }
                if self
                    .reported_duplicates
                    .insert((file.clone(), hash.clone()))
                {
                    let reason = format!(
                        "{} {} is already in service from {} (build {}, version {}); give a new build a new version to deploy it",
                        plugin.name,
                        plugin.version,
                        twin.plugin().source.display(),
                        twin.plugin().content_hash,
                        twin.plugin().version,
                    );
                    change.ignored.push((file.clone(), reason));
                }
                continue;
            }
            if let Some(conflict) = name_conflict(plugin, &active) {
                // Not in service: its process has nothing to do. It is judged again at
                // every scan, and goes in service once the other plugin is gone.
                if plugin.isolated() {
                    plugin.shutdown();
                }
                if self.reported_conflicts.insert((file.clone(), hash.clone())) {
                    change
                        .refused
                        .push((file.clone(), LoadError::NameConflict(conflict)));
                }
                continue;
            }
            self.reported_conflicts
                .remove(&(file.clone(), hash.clone()));
            if let Some(why) = self.builds.refusal_of(hash) {
                // Refused by the replay gate, in this process or before a restart.
                if self.refused_by_gate.insert(hash.clone()) {
                    change.refused.push((
                        file.clone(),
                        LoadError::ReplayRefused(format!(
                            "refused before{}: {why}",
                            self.builds
                                .file()
                                .map(|file| format!(
                                    " (remove its line from {} to check it again)",
                                    file.display()
                                ))
                                .unwrap_or_default()
                        )),
                    ));
                }
                if plugin.isolated() {
                    plugin.shutdown();
                }
                continue;
            }
            if let Some(remembered) = self
                .builds
                .build_of(&plugin.name, &plugin.version)
                .filter(|remembered| *remembered != hash.as_str())
            {
                // Not in service: its process has nothing to do.
                if plugin.isolated() {
                    plugin.shutdown();
                }
                if self
                    .reported_duplicates
                    .insert((file.clone(), hash.clone()))
                {
                    let kept_in = self
                        .builds
                        .file()
                        .map(|file| {
                            format!(
                                " (kept in {}; remove its line to accept this build)",
                                file.display()
                            )
                        })
                        .unwrap_or_default();
                    let reason = format!(
                        "build {remembered} of {} {} was put in service before, and keeps that version after restarts too{kept_in}; give a new build a new version to deploy it",
                        plugin.name, plugin.version,
                    );
                    if wanted_set.contains(&remembered.to_owned()) {
                        // The remembered build is in the folder and serves the version.
                        change.ignored.push((file.clone(), reason));
                    } else {
                        // Nothing serves the version: an error the operator must see.
                        change.refused.push((
                            file.clone(),
                            LoadError::VersionTaken(format!(
                                "{reason}; that build is not in the plugins folder, so {} {} is not served",
                                plugin.name, plugin.version
                            )),
                        ));
                    }
                }
                continue;
            }
            let generation = self
                .generations
                .get(hash)
                .and_then(Weak::upgrade)
                .unwrap_or_else(|| Generation::new(Arc::clone(plugin)));
            match admit(&generation, &active) {
                Admission::Admit => {
                    self.reported_waits.remove(&(file.clone(), hash.clone()));
                    if let Err(error) = self.builds.remember(&plugin.name, &plugin.version, hash) {
                        // It serves anyway; only the memory across restarts is lost.
                        tracing::warn!(
                            plugin = %generation.label(),
                            file = ?self.builds.file(),
                            "cannot remember which build serves this version across restarts: {error}"
                        );
                    }
                }
                Admission::Refuse(reason) => {
                    // Dropping the generation shuts its runtime (or process) down.
                    self.refused_by_gate.insert(hash.clone());
                    if let Err(error) = self.builds.refuse(hash, &reason) {
                        tracing::warn!(
                            file = ?self.builds.file(),
                            "cannot remember the refusal across restarts: {error}"
                        );
                    }
                    change
                        .refused
                        .push((file.clone(), LoadError::ReplayRefused(reason)));
                    continue;
                }
                Admission::NotYet(reason) => {
                    if self.reported_waits.insert((file.clone(), hash.clone())) {
                        change.waiting.push((file.clone(), reason));
                    }
                    continue;
                }
            }
            self.generations
                .insert(hash.clone(), Arc::downgrade(&generation));
            change.added.push(Arc::clone(&generation));
            active.push(generation);
        }
        self.active = active;
        self.generations.retain(|_, weak| weak.strong_count() > 0);
        change
    }
}

/// The first name `plugin` registers that a generation of another plugin in `active`
/// registers too, described; `None` when it shares none. Versions of one plugin register
/// the same names by design, so only other plugins count.
fn name_conflict(plugin: &LoadedPlugin, active: &[Arc<Generation>]) -> Option<String> {
    let lowercase = |names: &[String]| -> Vec<String> {
        names.iter().map(|name| name.to_lowercase()).collect()
    };
    for other in active.iter().map(|generation| generation.plugin()) {
        if other.name == plugin.name {
            continue;
        }
        let shared = |kind: &str, mine: &[String], theirs: &[String]| {
            mine.iter().find(|name| theirs.contains(name)).map(|name| {
                format!(
                    "it registers {kind} '{name}', which plugin '{}' {} (from {}) registers too",
                    other.name,
                    other.version,
                    other.source.display()
                )
            })
        };
        let conflict = shared("orchestrator", &plugin.orchestrators, &other.orchestrators)
            .or_else(|| shared("activity", &plugin.activities, &other.activities))
            .or_else(|| {
                shared(
                    "entity",
                    &lowercase(&plugin.entities),
                    &lowercase(&other.entities),
                )
            });
        if conflict.is_some() {
            return conflict;
        }
    }
    None
}

/// Scans of real plugin folders: files cut short, rewritten in place, duplicated. They
/// use the sample plugins of this workspace's debug build (`cargo build --workspace`
/// first, as scripts/test does).
#[cfg(test)]
mod folder_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write as _;
    use std::path::PathBuf;
    use std::sync::Mutex;

    use super::*;

    /// One scan at a time: scans load plugins into this one test process. (Each manager
    /// has a private folder of its own, so copies never collide; tests still name their
    /// files apart, so that a failure names its own test's file.)
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

    fn sample(name: &str) -> PathBuf {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/debug")
            .join(format!("lib{name}.so"));
        assert!(
            path.exists(),
            "{} is missing: cargo build -p orders-v1-plugin -p orders-v2-plugin",
            path.display()
        );
        path
    }

    fn manager(dir: &Path) -> Manager {
        manager_with(dir, true)
    }

    fn manager_with(dir: &Path, strict_permissions: bool) -> Manager {
        Manager::new(
            dir.to_path_buf(),
            PrivateDir::create().unwrap(),
            Policy::new(strict_permissions),
            IsolationSettings::in_process(),
        )
    }

    fn chmod(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// Scans until nothing waits to settle (a changed file is read on its second look).
    fn scan_settled(manager: &mut Manager) -> Change {
        let mut change = manager.scan().unwrap();
        while change.settling {
            change = manager.scan().unwrap();
        }
        change
    }

    /// A plugins folder (0755) in a fresh temporary folder, which is returned with it.
    fn plugins_folder() -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        chmod(&plugins, 0o755);
        (root, plugins)
    }

    /// Issue 14: of two plugins that register one name, the one that served it before a
    /// restart keeps it after, whatever the order of the files; without a memory, the
    /// later file is refused. (Gate refusals are remembered too.)
    #[test]
    fn the_build_remembered_for_a_version_keeps_its_names_and_refusals_last() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (root, plugins) = plugins_folder();
        // `aa_payments.so` sorts first and registers `charge_payment`, as `orders` does.
        std::fs::copy(sample("payments"), plugins.join("aa_payments.so")).unwrap();
        std::fs::copy(sample("orders_v1"), plugins.join("zz_orders.so")).unwrap();
        chmod(&plugins.join("aa_payments.so"), 0o644);
        chmod(&plugins.join("zz_orders.so"), 0o644);
        let refused_names = |change: &Change| -> Vec<String> {
            change
                .refused
                .iter()
                .map(|(file, _)| file.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };

        let change = manager(&plugins).scan().unwrap();
        assert_eq!(refused_names(&change), ["zz_orders.so"]);

        let memory_file = root.path().join("host.builds");
        let mut memory = BuildMemory::open(&memory_file, true).unwrap();
        let orders = change_hash(&plugins.join("zz_orders.so"));
        memory.remember("orders", "1.0.0", &orders).unwrap();
        memory.refuse("0123456789abcdef", "o-1 would fail").unwrap();
        let mut remembering = manager(&plugins);
        remembering.builds = BuildMemory::open(&memory_file, false).unwrap();
        let change = remembering.scan().unwrap();
        assert_eq!(refused_names(&change), ["aa_payments.so"]);
        assert!(
            change.added.iter().any(|g| g.plugin().name == "orders"),
            "{change:?}"
        );

        // A remembered build of orders 1.0.0 that is no longer in the folder: the build
        // there does not take the version, and that is an error (nothing serves it).
        std::fs::remove_file(plugins.join("aa_payments.so")).unwrap();
        let other_memory = root.path().join("other.builds");
        let mut memory = BuildMemory::open(&other_memory, true).unwrap();
        memory
            .remember("orders", "1.0.0", "ffffffffffffffff")
            .unwrap();
        let mut forgetful = manager(&plugins);
        forgetful.builds = BuildMemory::open(&other_memory, false).unwrap();
        let change = forgetful.scan().unwrap();
        assert!(
            change.refused.iter().any(|(file, error)| {
                file.ends_with("zz_orders.so")
                    && matches!(error, LoadError::VersionTaken(why) if why.contains("is not served"))
            }),
            "{change:?}"
        );
    }

    /// The content hash the manager knows a library by.
    fn change_hash(path: &Path) -> String {
        let private = PrivateDir::create().unwrap();
        loader::private_copy(path, private.path(), &Policy::new(true))
            .unwrap()
            .hash
    }

    /// Issue 10: a library anyone could write to was loaded into the host.
    #[test]
    fn a_world_writable_library_is_refused_once_until_it_is_fixed() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (_root, plugins) = plugins_folder();
        let file = plugins.join("libtrust-file.so");
        std::fs::copy(sample("orders_v1"), &file).unwrap();
        chmod(&file, 0o666);
        let mut manager = manager(&plugins);
        manager.settle_changes();
        let first = scan_settled(&mut manager);
        assert!(first.added.is_empty(), "{first:?}");
        let [(refused, error)] = &first.refused[..] else {
            panic!("expected one refusal: {first:?}");
        };
        assert_eq!(refused, &file);
        assert!(matches!(error, LoadError::Untrusted(_)), "{error}");
        assert!(error.to_string().contains("mode 0666"), "{error}");
        let again = scan_settled(&mut manager);
        assert!(again.refused.is_empty(), "reported twice: {again:?}");

        chmod(&file, 0o644);
        let fixed = scan_settled(&mut manager);
        assert_eq!(fixed.added.len(), 1, "{fixed:?}");
    }

    /// A library in a folder anyone may write to is refused, and loaded once the folder
    /// is fixed, although the file itself did not change.
    #[test]
    fn a_library_in_a_world_writable_folder_is_refused_until_the_folder_is_fixed() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (_root, plugins) = plugins_folder();
        let file = plugins.join("libtrust-folder.so");
        std::fs::copy(sample("orders_v1"), &file).unwrap();
        chmod(&plugins, 0o777);
        let mut manager = manager(&plugins);
        manager.settle_changes();
        let first = scan_settled(&mut manager);
        let [(refused, error)] = &first.refused[..] else {
            panic!("expected one refusal: {first:?}");
        };
        assert_eq!(refused, &file);
        assert!(error.to_string().contains("the plugins folder"), "{error}");
        let again = scan_settled(&mut manager);
        assert!(again.refused.is_empty(), "reported twice: {again:?}");

        chmod(&plugins, 0o755);
        let fixed = scan_settled(&mut manager);
        assert_eq!(fixed.added.len(), 1, "{fixed:?}");
    }

    #[test]
    fn a_library_of_another_user_is_refused() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (_root, plugins) = plugins_folder();
        let file = plugins.join("libtrust-owner.so");
        std::fs::copy(sample("orders_v1"), &file).unwrap();
        std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
        let change = manager(&plugins).scan().unwrap();
        assert!(change.added.is_empty(), "{change:?}");
        let [(_, error)] = &change.refused[..] else {
            panic!("expected one refusal: {change:?}");
        };
        assert!(error.to_string().contains("owned by uid 65534"), "{error}");
    }

    #[test]
    fn without_strict_permissions_an_unsafe_library_loads_with_its_reasons() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let (_root, plugins) = plugins_folder();
        let file = plugins.join("libtrust-lax.so");
        std::fs::copy(sample("orders_v1"), &file).unwrap();
        chmod(&file, 0o666);
        chmod(&plugins, 0o777);
        let change = manager_with(&plugins, false).scan().unwrap();
        assert_eq!(change.added.len(), 1, "{change:?}");
        let [(untrusted, reason)] = &change.untrusted[..] else {
            panic!("expected one warning: {change:?}");
        };
        assert_eq!(untrusted, &file);
        assert!(reason.contains("the plugins folder"), "{reason}");
        assert!(reason.contains("mode 0666"), "{reason}");
    }

    /// The fingerprint is (length, mtime, inode). A library rewritten in place with the
    /// same length within the file system's mtime granularity (1 s on ext3/HFS+/many
    /// network file systems, a jiffy on ext4) is never read again: the new build is
    /// silently missed until the file changes once more. Simulated here by putting the
    /// mtime back.
    #[test]
    fn an_in_place_rewrite_with_the_same_length_and_mtime_is_still_noticed() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("liborders.so");
        std::fs::copy(sample("orders_v1"), &file).unwrap();
        let mut manager = manager(dir.path());
        let first = manager.scan().unwrap();
        assert_eq!(first.added.len(), 1, "{first:?}");
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        let len = std::fs::metadata(&file).unwrap().len();

        // Rewritten in place (same inode), same length, different contents.
        let mut out = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        out.write_all(&vec![0u8; usize::try_from(len).unwrap()])
            .unwrap();
        out.set_modified(modified).unwrap();
        drop(out);

        let second = manager.scan().unwrap();
        assert!(
            !second.refused.is_empty() || second.changes_service(),
            "the new contents of {} were never read: {second:?}",
            file.display()
        );
    }

    /// "A second copy of a version already loaded is ignored" (issue 5), but "already
    /// loaded" is decided by string equality while routing compares versions (`1.0.0` ==
    /// `v1.00`): a rebuild that spells its version differently is put in service beside
    /// the first, and being the later of two equal versions it takes over every
    /// orchestration of that version, those in flight on the first build included.
    #[test]
    fn a_second_build_of_an_equal_version_spelled_differently_is_ignored() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let library = std::fs::read(sample("orders_v1")).unwrap();
        // The same plugin with its version string "1.0.0" patched to "v1.00".
        let needle = b"1.0.0reserve_stock";
        let at = library
            .windows(needle.len())
            .position(|window| window == needle)
            .expect("the version string of orders_v1");
        let mut patched = library.clone();
        patched[at..at + 5].copy_from_slice(b"v1.00");
        std::fs::write(dir.path().join("version-a.so"), &library).unwrap();
        std::fs::write(dir.path().join("version-b.so"), &patched).unwrap();
        let inventory =
            super::super::inventory(dir.path(), true, IsolationSettings::in_process(), None)
                .unwrap();
        let versions: Vec<&str> = inventory
            .generations
            .iter()
            .map(|g| g.plugin().version.as_str())
            .collect();
        assert_eq!(
            versions,
            ["1.0.0"],
            "two generations of orders at equal versions:\n{}",
            inventory.to_text()
        );
    }

    /// The same build under a second name is dropped without a word: `durabletask-host
    /// plugins` lists neither it as loaded nor as ignored, and the host logs nothing.
    #[test]
    fn the_same_build_under_a_second_name_is_reported() {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(sample("orders_v1"), dir.path().join("dup-a.so")).unwrap();
        std::fs::copy(sample("orders_v1"), dir.path().join("dup-b.so")).unwrap();
        let inventory =
            super::super::inventory(dir.path(), true, IsolationSettings::in_process(), None)
                .unwrap();
        let mentioned = |name: &str| {
            inventory
                .generations
                .iter()
                .any(|g| g.plugin().source.ends_with(name))
                || inventory
                    .ignored
                    .iter()
                    .any(|(file, _)| file.ends_with(name))
                || inventory
                    .refused
                    .iter()
                    .any(|(file, _)| file.ends_with(name))
        };
        assert!(mentioned("dup-a.so"));
        assert!(
            mentioned("dup-b.so"),
            "dup-b.so is neither loaded, ignored nor refused:\n{}",
            inventory.to_text()
        );
    }
}
