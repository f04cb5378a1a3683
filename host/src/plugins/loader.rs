//! Finds plugin libraries in the plugins folder and loads each from a private copy.
//!
//! `dlopen` hands back the already-loaded image for the same path *and for the same
//! inode*, and overwriting a loaded library in place crashes the process on its next
//! call. So the host never loads from the drop folder: it copies each library into a
//! folder of its own under a name made of the file's stem and a hash of its contents.
//! The file is judged by [`trust`] from the descriptor the copy is made from.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use durabletask_abi::{FieldedLogFn, HostCallbacks, PluginModuleRef};
use sha2::{Digest, Sha256};

use super::callbacks;
use super::calls;
use super::elf;
use super::error::LoadError;
use super::ffi;
use super::loaded_plugin::{LoadedPlugin, Registrations, Runner};
use super::private_dir;
use super::trust::{self, Policy};

/// Library files in `dir`, sorted by name so loading order (and so which plugin wins a
/// name registered twice) does not depend on the file system. Dotfiles and names that
/// are not `*.so` (temporary names while a deployer writes a file) are skipped.
pub(crate) fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if name.starts_with('.') || path.extension().is_none_or(|ext| ext != "so") {
            continue;
        }
        if entry.file_type()?.is_file() || path.is_file() {
            libraries.push(path);
        }
    }
    libraries.sort();
    Ok(libraries)
}

/// A library copied into the host's private folder, not loaded yet.
#[derive(Debug)]
pub(crate) struct PrivateCopy {
    /// The copy.
    pub(crate) path: PathBuf,
    /// The first 16 hex digits of the SHA-256 of its contents: its identity.
    pub(crate) hash: String,
    /// Why the file is unsafe to load, when the policy loads it anyway.
    pub(crate) untrusted: Option<String>,
}

/// Loads a private copy of `source` into the host's process, running every check
/// before any plugin code, then the plugin's `init`.
pub(crate) fn load(source: &Path, copy: &PrivateCopy) -> Result<LoadedPlugin, LoadError> {
    let file_name = source
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plugin_id = callbacks::register_plugin(&file_name);
    let (module, registrations) = open_and_init(
        &copy.path,
        callbacks::host_callbacks(plugin_id),
        callbacks::FIELDED_LOG,
    )?;
    callbacks::name_plugin(plugin_id, &registrations.name, &registrations.version);
    Ok(LoadedPlugin::new(
        registrations,
        source.to_path_buf(),
        copy.hash.clone(),
        Runner::InProcess(module),
    ))
}

/// Opens the library at `path` in this process, runs every check, then its `init` with
/// `host` (the host's callbacks, or a child's): what loading is in either process.
pub(crate) fn open_and_init(
    path: &Path,
    host: HostCallbacks,
    fielded_log: FieldedLogFn,
) -> Result<(PluginModuleRef, Registrations), LoadError> {
    // A library cut short would crash the process inside dlopen (SIGBUS): refuse it first.
    elf::check_complete(path).map_err(LoadError::NotALibrary)?;
    let library = ffi::open_checked(path)?;
    let description = calls::init(&library, host, fielded_log).map_err(LoadError::InitFailed)?;
    Ok((library.module, description.into()))
}

/// Streams `source` into a temporary file in `private_dir` while hashing it, then names
/// the copy after the hash. Streaming keeps memory flat: debug builds of plugins run to
/// tens of megabytes, and reading one whole would set the host's peak memory.
///
/// Whether the file may be loaded ([`trust`]) is judged from the descriptor the copy is
/// read from: renaming another file into its place meanwhile changes nothing.
pub(crate) fn private_copy(
    source: &Path,
    private_dir: &Path,
    policy: &Policy,
) -> Result<PrivateCopy, LoadError> {
    let unreadable = |error: std::io::Error| LoadError::Unreadable(error.to_string());
    // O_NONBLOCK: a FIFO put in the library's place must not hang the scan in open (it
    // is then refused as not a regular file); reads of a regular file ignore the flag.
    let mut input = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(source)
        .map_err(unreadable)?;
    let opened = input.metadata().map_err(unreadable)?;
    let untrusted = policy.judge(trust::check_library(source, &opened, policy.euid()))?;
    let partial = Partial::create(private_dir)?;
    let hash = stream_and_hash(&mut input, &partial)?;
    let stem = source
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("plugin");
    let copy = private_dir.join(format!("{stem}-{hash}.so"));
    partial.rename_to(&copy)?;
    Ok(PrivateCopy {
        path: copy,
        hash,
        untrusted,
    })
}

/// Copies `input` into the partial file, returning the first 16 hex digits of the
/// SHA-256 of what was copied.
fn stream_and_hash(input: &mut std::fs::File, partial: &Partial) -> Result<String, LoadError> {
    let mut output = &partial.file;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = input
            .read(&mut buffer)
            .map_err(|error| LoadError::Unreadable(error.to_string()))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        output
            .write_all(&buffer[..read])
            .map_err(|error| partial.failed(&error))?;
    }
    let digest = hasher.finalize();
    let mut hash = String::with_capacity(16);
    for byte in &digest[..8] {
        let _ = write!(hash, "{byte:02x}");
    }
    Ok(hash)
}

/// A copy being written under a temporary name in the private folder; removed unless it
/// is renamed into place.
struct Partial {
    path: PathBuf,
    file: std::fs::File,
    renamed: bool,
}

impl Partial {
    fn create(private_dir: &Path) -> Result<Self, LoadError> {
        // A fresh name per copy: O_EXCL refuses any name used before.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = private_dir.join(format!(".partial-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
        let file = private_dir::create_file(&path).map_err(|error| copy_failed(&path, &error))?;
        Ok(Self {
            path,
            file,
            renamed: false,
        })
    }

    fn failed(&self, error: &std::io::Error) -> LoadError {
        copy_failed(&self.path, error)
    }

    /// Names the copy `copy`. `rename` replaces a copy of the same build made earlier and
    /// never follows a link at `copy`.
    fn rename_to(mut self, copy: &Path) -> Result<(), LoadError> {
        std::fs::rename(&self.path, copy).map_err(|error| self.failed(&error))?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if !self.renamed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn copy_failed(path: &Path, error: &std::io::Error) -> LoadError {
    LoadError::Unreadable(format!(
        "cannot make a private copy at {}: {error}",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A link planted at the name the copy will take is replaced, not written through.
    #[test]
    fn a_symlink_planted_where_the_copy_goes_is_not_followed() {
        let folder = tempfile::tempdir().unwrap();
        let private = tempfile::tempdir().unwrap();
        let source = folder.path().join("libplanted.so");
        std::fs::write(&source, b"not really a library").unwrap();
        let digest = Sha256::digest(b"not really a library");
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let victim = folder.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        let planted = private.path().join(format!("libplanted-{hash}.so"));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();

        let copy = private_copy(&source, private.path(), &Policy::new(true)).unwrap();
        assert_eq!(copy.path, planted);
        assert_eq!(copy.hash, hash);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let metadata = std::fs::symlink_metadata(&copy.path).unwrap();
        assert!(metadata.file_type().is_file());
        assert_eq!(std::fs::read(&copy.path).unwrap(), b"not really a library");
        // No partial file is left behind.
        let names: Vec<_> = std::fs::read_dir(private.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
