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

use super::generation::Generation;
use super::private_dir::PrivateDir;
use super::{LoadError, LoadedPlugin, loader};

/// What a file looked like at the last scan; a change means "read it again".
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Fingerprint {
    fn of(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::MetadataExt as _;
        let metadata = std::fs::metadata(path)?;
        Ok(Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
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
    reported_duplicates: HashSet<String>,
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
    /// Libraries not put in service because their plugin name and version already are,
    /// and why (each is reported once).
    pub(crate) ignored: Vec<(PathBuf, String)>,
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
        }
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
        let mut refused = Vec::new();
        for path in &present {
            if let Err(error) = self.refresh(path) {
                refused.push((path.clone(), error));
            }
        }
        let mut change = self.reconcile();
        change.refused = refused;
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
            return Ok(());
        }
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
        let wanted: Vec<&String> = self.files.values().flat_map(FileEntry::hashes).collect();
        let wanted_set: HashSet<&String> = wanted.iter().copied().collect();

        let mut change = Change::default();
        let mut active = Vec::with_capacity(self.active.len());
        for generation in self.active.drain(..) {
            if wanted_set.contains(&generation.plugin().content_hash) {
                active.push(generation);
            } else {
                change.retired.push(generation);
            }
        }
        for hash in wanted {
            if active.iter().any(|g| &g.plugin().content_hash == hash) {
                continue;
            }
            let Some(plugin) = self.libraries.get(hash) else {
                continue;
            };
            if let Some(twin) = active
                .iter()
                .find(|g| g.plugin().name == plugin.name && g.plugin().version == plugin.version)
            {
                if self.reported_duplicates.insert(hash.clone()) {
                    let reason = format!(
                        "{} {} is already in service from {} (build {}); give a new build a new version to deploy it",
                        plugin.name,
                        plugin.version,
                        twin.plugin().source.display(),
                        twin.plugin().content_hash,
                    );
                    change.ignored.push((plugin.source.clone(), reason));
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
