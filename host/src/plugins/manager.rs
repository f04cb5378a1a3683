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
//!   a log line: a new build must carry a new version to be deployed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use std::cmp::Ordering;

use super::generation::Generation;
use super::private_dir::PrivateDir;
use super::{LoadError, LoadedPlugin, loader};
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

/// One library file of the folder.
#[derive(Debug)]
struct FileEntry {
    fingerprint: Fingerprint,
    /// The library the file holds now (`None` if it never loaded).
    current: Option<String>,
    /// Libraries the file held before it was replaced in place, oldest first.
    previous: Vec<String>,
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
    /// Whether a changed file is waiting to settle: scan again shortly.
    pub(crate) settling: bool,
}

impl Change {
    /// Whether the generations in service changed.
    pub(crate) fn changes_service(&self) -> bool {
        !self.added.is_empty() || !self.retired.is_empty()
    }
}

impl Manager {
    pub(crate) fn new(dir: PathBuf, private_dir: PrivateDir) -> Self {
        Self {
            dir,
            private_dir,
            files: BTreeMap::new(),
            libraries: HashMap::new(),
            generations: HashMap::new(),
            active: Vec::new(),
            reported_duplicates: HashSet::new(),
            settle: false,
            unsettled: HashMap::new(),
        }
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
        let present = loader::discover(&self.dir)?;
        let present_set: HashSet<&PathBuf> = present.iter().collect();
        self.files.retain(|path, _| present_set.contains(path));
        self.unsettled.retain(|path, _| present_set.contains(path));
        let mut refused = Vec::new();
        for path in &present {
            if let Err(error) = self.refresh(path) {
                refused.push((path.clone(), error));
            }
        }
        let mut change = self.reconcile();
        change.refused = refused;
        change.settling = !self.unsettled.is_empty();
        Ok(change)
    }

    /// Reads `path` again if it changed since the last scan. `Err` is why its new
    /// contents were refused (what it held before stays).
    fn refresh(&mut self, path: &Path) -> Result<(), LoadError> {
        let fingerprint = match Fingerprint::of(path) {
            Ok(fingerprint) => fingerprint,
            // Gone between the listing and now: the next scan sees it removed.
            Err(_) => return Ok(()),
        };
        if self
            .files
            .get(path)
            .is_some_and(|entry| entry.fingerprint == fingerprint)
        {
            self.unsettled.remove(path);
            return Ok(());
        }
        if self.settle && self.unsettled.get(path) != Some(&fingerprint) {
            // Changed since the last look: maybe still being written. Look again.
            self.unsettled.insert(path.to_path_buf(), fingerprint);
            return Ok(());
        }
        self.unsettled.remove(path);
        let loaded = self.read(path);
        let entry = self.files.entry(path.to_path_buf()).or_insert(FileEntry {
            fingerprint: fingerprint.clone(),
            current: None,
            previous: Vec::new(),
        });
        // Recorded even when the load failed: that version of the file is not retried.
        entry.fingerprint = fingerprint;
        let hash = loaded?;
        if entry.current.as_ref() != Some(&hash) {
            if let Some(old) = entry.current.replace(hash.clone()) {
                entry.previous.retain(|h| *h != old);
                entry.previous.push(old);
            }
            entry.previous.retain(|h| *h != hash);
        }
        Ok(())
    }

    /// Copies and loads the library at `path` (unless this build is loaded already) and
    /// returns its content hash.
    fn read(&mut self, path: &Path) -> Result<String, LoadError> {
        let copy = loader::private_copy(path, self.private_dir.path())?;
        if self.libraries.contains_key(&copy.hash) {
            return Ok(copy.hash);
        }
        let plugin = loader::load(path, &copy)?;
        tracing::debug!(
            plugin = %plugin.name,
            plugin_version = %plugin.version,
            file = %path.display(),
            hash = %copy.hash,
            "library loaded"
        );
        self.libraries.insert(copy.hash.clone(), Arc::new(plugin));
        Ok(copy.hash)
    }

    /// Puts in service what the folder holds and takes out what it no longer does.
    fn reconcile(&mut self) -> Change {
        let wanted: Vec<(&PathBuf, &String)> = self
            .files
            .iter()
            .flat_map(|(file, entry)| entry.hashes().map(move |hash| (file, hash)))
            .collect();
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
            let generation = self
                .generations
                .get(hash)
                .and_then(Weak::upgrade)
                .unwrap_or_else(|| Generation::new(Arc::clone(plugin)));
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

    /// Every `PrivateDir` of a process is the same folder (`durabletask-host-<pid>`, with
    /// one `.partial-<pid>` file), so managers must not scan at the same time.
    /// Each test also names its files differently: the copies are named stem + hash, and
    /// `dlopen` of a path already loaded in this process hands back that image.
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
        Manager::new(dir.to_path_buf(), PrivateDir::create().unwrap())
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
        let inventory = super::super::inventory(dir.path()).unwrap();
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
        let inventory = super::super::inventory(dir.path()).unwrap();
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
