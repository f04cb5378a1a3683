//! Finds plugin libraries in the plugins folder and loads each from a private copy.
//!
//! `dlopen` hands back the already-loaded image for the same path *and for the same
//! inode*, and overwriting a loaded library in place crashes the process on its next
//! call. So the host never loads from the drop folder: it copies each library into a
//! folder of its own under a name made of the file's stem and a hash of its contents.

use std::fmt::Write as _;
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};

use abi_stable::std_types::RResult;
use sha2::{Digest, Sha256};

use super::callbacks;
use super::elf;
use super::ffi::{self, PluginLibrary};
use super::{LoadError, LoadedPlugin};

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
}

/// Loads a private copy of `source`, running every check before any plugin code, then
/// the plugin's `init`.
pub(crate) fn load(source: &Path, copy: &PrivateCopy) -> Result<LoadedPlugin, LoadError> {
    // A library cut short would crash the host inside dlopen (SIGBUS): refuse it first.
    elf::check_complete(&copy.path).map_err(LoadError::NotALibrary)?;
    let library = ffi::open_checked(&copy.path)?;
    initialise(source, library, copy.hash.clone())
}

/// Streams `source` into a temporary file in `private_dir` while hashing it, then names
/// the copy after the hash. Streaming keeps memory flat: debug builds of plugins run to
/// tens of megabytes, and reading one whole would set the host's peak memory.
pub(crate) fn private_copy(source: &Path, private_dir: &Path) -> Result<PrivateCopy, LoadError> {
    let unreadable = |error: std::io::Error| LoadError::Unreadable(error.to_string());
    let mut input = std::fs::File::open(source).map_err(unreadable)?;
    let partial = private_dir.join(format!(".partial-{}", std::process::id()));
    let copy_failed = |error: std::io::Error| {
        LoadError::Unreadable(format!(
            "cannot make a private copy in {}: {error}",
            private_dir.display()
        ))
    };
    let mut output = std::fs::File::create(&partial).map_err(copy_failed)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = input.read(&mut buffer).map_err(unreadable)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        output.write_all(&buffer[..read]).map_err(copy_failed)?;
    }
    drop(output);
    let digest = hasher.finalize();
    let mut hash = String::with_capacity(16);
    for byte in &digest[..8] {
        let _ = write!(hash, "{byte:02x}");
    }
    let stem = source
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("plugin");
    let copy = private_dir.join(format!("{stem}-{hash}.so"));
    std::fs::rename(&partial, &copy).map_err(copy_failed)?;
    Ok(PrivateCopy { path: copy, hash })
}

fn initialise(
    source: &Path,
    library: PluginLibrary,
    hash: String,
) -> Result<LoadedPlugin, LoadError> {
    let file_name = source
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let plugin_id = callbacks::register_plugin(&file_name);
    let init = library.module.init();
    let description = match init(callbacks::host_callbacks(plugin_id)) {
        RResult::ROk(description) => description,
        RResult::RErr(message) => return Err(LoadError::InitFailed(message.into_string())),
    };
    callbacks::name_plugin(plugin_id, &description.name, &description.version);
    Ok(LoadedPlugin {
        name: description.name.into_string(),
        version: description.version.into_string(),
        sdk_version: description.sdk_version.into_string(),
        orchestrators: description
            .orchestrators
            .into_iter()
            .map(|name| name.into_string())
            .collect(),
        activities: description
            .activities
            .into_iter()
            .map(|name| name.into_string())
            .collect(),
        entities: description
            .entities
            .into_iter()
            .map(|name| name.into_string())
            .collect(),
        source: source.to_path_buf(),
        content_hash: hash,
        module: library.module,
    })
}
