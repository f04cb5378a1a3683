//! The host-owned folder that holds the private copies of plugin libraries.
//!
//! The copies must outlive loading: the libraries stay mapped, and a panic's backtrace
//! is symbolised from the file on disk (without it, every plugin frame is `<unknown>`).
//! So the folder lives as long as the host and is removed when the host stops; folders
//! left by hosts that were killed are swept at the next start.
//!
//! The host loads what this folder holds, so nobody else may be able to put anything in
//! it: its name is unpredictable (`durabletask-host-<pid>-<random>`, made by `mkdir`,
//! which fails on anything already there, link or not), it is 0700, it is checked to be a
//! real folder owned by the host's user before use, and the folders above it follow the
//! rule of [`trust`](super::trust). Files in it are created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW`, mode 0600 (`dlopen` needs no execute bit).

use std::fs::{File, OpenOptions, Permissions};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use tempfile::TempDir;

use super::trust;

const PREFIX: &str = "durabletask-host-";

/// The folder, removed on drop.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    dir: TempDir,
}

impl PrivateDir {
    /// Creates this process's folder under the system's temporary folder, after
    /// sweeping the folders of processes that no longer exist.
    pub(crate) fn create() -> std::io::Result<PrivateDir> {
        let parent = std::env::temp_dir();
        let euid = trust::euid();
        sweep_stale(&parent, euid);
        Self::create_in(&parent, euid)
    }

    fn create_in(parent: &Path, euid: u32) -> std::io::Result<PrivateDir> {
        // Whoever may rename entries of a folder above could swap ours for theirs.
        trust::check_ancestors(parent, euid).map_err(std::io::Error::other)?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{PREFIX}{}-", std::process::id()))
            .permissions(Permissions::from_mode(0o700))
            .tempdir_in(parent)?;
        verify(dir.path(), euid)?;
        Ok(PrivateDir { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Checks that `path` is a real folder (not a link), owned by `euid`, that nobody else
/// may enter or write to. Errors name the path and what is wrong.
fn verify(path: &Path, euid: u32) -> std::io::Result<()> {
    let metadata = std::fs::symlink_metadata(path)?;
    let problem = if metadata.file_type().is_symlink() {
        Some("is a symbolic link, not a folder".to_owned())
    } else if !metadata.file_type().is_dir() {
        Some("is not a folder".to_owned())
    } else if metadata.uid() != euid {
        Some(format!(
            "is owned by uid {}, not by the host's user (uid {euid})",
            metadata.uid()
        ))
    } else if metadata.mode() & 0o077 != 0 {
        Some(format!(
            "is open to its group or others (mode {:04o}, expected 0700)",
            metadata.mode() & 0o7777
        ))
    } else {
        None
    };
    match problem {
        Some(problem) => Err(std::io::Error::other(format!(
            "the private folder {} {problem}",
            path.display()
        ))),
        None => Ok(()),
    }
}

/// Creates a new file for writing in the private folder: never an existing file, never
/// through a link planted at the name, readable by the host's user only.
pub(crate) fn create_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Removes the `durabletask-host-<pid>-<random>` folders of processes that are gone
/// (Linux: no /proc/<pid>), if they are ours: real folders (a link is never followed)
/// owned by `euid`.
fn sweep_stale(parent: &Path, euid: u32) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(owner_pid) else {
            continue;
        };
        if pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        // `symlink_metadata`: a link named like our folders is someone else's, left alone.
        let ours = std::fs::symlink_metadata(entry.path())
            .is_ok_and(|metadata| metadata.file_type().is_dir() && metadata.uid() == euid);
        if ours {
            // remove_dir_all does not follow links inside the folder either.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The pid in a private folder's name `durabletask-host-<pid>-<random>`. Other names
/// under the prefix (the e2e harness's `durabletask-host-<random>` scratch folders, the
/// `durabletask-host-<pid>` of older hosts, which a random name may look like) are not
/// ours to sweep.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, random) = name.strip_prefix(PREFIX)?.split_once('-')?;
    if random.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::Write as _;

    use super::*;

    const NOBODY: u32 = 65534;
    /// Above Linux's largest pid (2^22): no process has it.
    const DEAD_PID: u32 = 4_000_000_000;

    #[test]
    fn the_folder_is_0700_ours_and_unpredictably_named() {
        let parent = tempfile::tempdir().unwrap();
        let euid = trust::euid();
        let first = PrivateDir::create_in(parent.path(), euid).unwrap();
        let second = PrivateDir::create_in(parent.path(), euid).unwrap();
        for dir in [&first, &second] {
            let metadata = std::fs::symlink_metadata(dir.path()).unwrap();
            assert!(metadata.is_dir());
            assert_eq!(metadata.mode() & 0o7777, 0o700, "{}", dir.path().display());
            assert_eq!(metadata.uid(), euid);
            let name = dir.path().file_name().unwrap().to_str().unwrap();
            assert_eq!(owner_pid(name), Some(std::process::id()), "{name}");
        }
        assert_ne!(first.path(), second.path());
        let path = first.path().to_path_buf();
        drop(first);
        assert!(!path.exists(), "the folder outlived the host");
    }

    #[test]
    fn a_folder_or_link_planted_in_its_place_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        let euid = trust::euid();
        let planted = parent.path().join("planted");
        std::fs::create_dir(&planted).unwrap();
        std::fs::set_permissions(&planted, Permissions::from_mode(0o700)).unwrap();
        verify(&planted, euid).unwrap();

        // Someone else's folder, even 0700.
        std::os::unix::fs::chown(&planted, Some(NOBODY), None).unwrap();
        let error = verify(&planted, euid).unwrap_err().to_string();
        assert!(error.contains(&planted.display().to_string()), "{error}");
        assert!(error.contains("owned by uid 65534"), "{error}");

        // A folder of ours others may enter.
        std::os::unix::fs::chown(&planted, Some(euid), None).unwrap();
        std::fs::set_permissions(&planted, Permissions::from_mode(0o755)).unwrap();
        let error = verify(&planted, euid).unwrap_err().to_string();
        assert!(error.contains("mode 0755"), "{error}");

        // A link to a good folder.
        let link = parent.path().join("link");
        std::fs::set_permissions(&planted, Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&planted, &link).unwrap();
        let error = verify(&link, euid).unwrap_err().to_string();
        assert!(error.contains("symbolic link"), "{error}");
    }

    #[test]
    fn a_temporary_folder_others_may_rename_entries_of_is_refused() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(parent.path(), Permissions::from_mode(0o777)).unwrap();
        let error = PrivateDir::create_in(parent.path(), trust::euid())
            .unwrap_err()
            .to_string();
        assert!(error.contains("has no sticky bit"), "{error}");
    }

    #[test]
    fn a_link_planted_where_a_file_goes_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, b"untouched").unwrap();
        let partial = dir.path().join(".partial-0");
        std::os::unix::fs::symlink(&target, &partial).unwrap();
        assert!(create_file(&partial).is_err());
        // A dangling link too: without O_EXCL, O_CREAT would create the file it names.
        let dangling = dir.path().join(".partial-1");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(create_file(&dangling).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
    }

    #[test]
    fn files_are_created_new_and_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy");
        create_file(&path).unwrap().write_all(b"x").unwrap();
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.mode() & 0o7777, 0o600);
        assert!(create_file(&path).is_err(), "an existing file was reused");
    }

    #[test]
    fn only_our_own_folders_of_dead_hosts_are_swept() {
        let parent = tempfile::tempdir().unwrap();
        let euid = trust::euid();
        let dead_ours = parent.path().join(format!("{PREFIX}{DEAD_PID}-a1b2c3"));
        let dead_theirs = parent.path().join(format!("{PREFIX}{DEAD_PID}-d4e5f6"));
        let alive = parent
            .path()
            .join(format!("{PREFIX}{}-g7h8i9", std::process::id()));
        let harness_scratch = parent.path().join(format!("{PREFIX}123456"));
        for dir in [&dead_ours, &dead_theirs, &alive, &harness_scratch] {
            std::fs::create_dir(dir).unwrap();
        }
        std::os::unix::fs::chown(&dead_theirs, Some(NOBODY), None).unwrap();
        // A link named like a dead host's folder, leading to a folder with a file.
        let victim = parent.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("keep"), b"x").unwrap();
        let link = parent.path().join(format!("{PREFIX}{DEAD_PID}-j1k2l3"));
        std::os::unix::fs::symlink(&victim, &link).unwrap();

        sweep_stale(parent.path(), euid);

        assert!(!dead_ours.exists(), "our dead host's folder was kept");
        for kept in [&dead_theirs, &alive, &harness_scratch] {
            assert!(kept.exists(), "{} was swept", kept.display());
        }
        assert!(
            std::fs::symlink_metadata(&link).is_ok(),
            "the link was swept"
        );
        assert!(victim.join("keep").exists(), "the sweep followed a link");
    }

    #[test]
    fn folder_names_parse_to_their_pid() {
        assert_eq!(owner_pid("durabletask-host-42-Xy9"), Some(42));
        assert_eq!(owner_pid("durabletask-host-42"), None);
        assert_eq!(owner_pid("durabletask-host-42-"), None);
        assert_eq!(owner_pid("durabletask-host-abc-Xy9"), None);
        assert_eq!(owner_pid("other-42-Xy9"), None);
    }
}
