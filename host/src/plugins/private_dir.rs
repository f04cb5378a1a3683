//! The host-owned folder that holds the private copies of plugin libraries.
//!
//! The copies must outlive loading: the libraries stay mapped, and a panic's backtrace
//! is symbolised from the file on disk (without it, every plugin frame is `<unknown>`).
//! So the folder lives as long as the host and is removed when the host stops; folders
//! left by hosts that were killed are swept at the next start.

use std::path::{Path, PathBuf};

const PREFIX: &str = "durabletask-host-";

/// The folder, removed on drop.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Creates this process's folder under the system's temporary folder, after
    /// sweeping the folders of processes that no longer exist.
    pub(crate) fn create() -> std::io::Result<PrivateDir> {
        let parent = std::env::temp_dir();
        sweep_stale(&parent);
        let path = parent.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(PrivateDir { path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Removes `durabletask-host-<pid>` folders whose process is gone (Linux: no /proc/<pid>).
fn sweep_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(PREFIX))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
