//! One writer per database: the backend holds an exclusive lock on `<database>.lock` for
//! as long as it runs, and a second backend (another host on the same file) is refused
//! with the lock holder's pid, before it reads or writes anything.
//!
//! The lock is `flock(2)` (through `File::try_lock`): the kernel drops it when the
//! holder exits, however it exits, so a killed host never leaves a stale lock behind.
//! The pid in the file is only for the message.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Files the backend creates are private to its user: the database holds every
/// orchestration's inputs and outputs and the key that signs completion tokens.
pub const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{database} is in use by another backend (pid {holder}, lock {lock}); stop it, or give this host its own database"
    )]
    Held {
        database: PathBuf,
        lock: PathBuf,
        holder: String,
    },
    #[error("cannot lock {lock}: {source}")]
    Io {
        lock: PathBuf,
        source: std::io::Error,
    },
}

/// Held while the backend runs; dropping it releases the database.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

/// Opens `path` for reading and writing, creating it with [`FILE_MODE`], never through a
/// symbolic link (a link planted at the path could make the backend write elsewhere).
pub fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

impl DatabaseLock {
    /// Takes the lock of `database` (a path that exists; it is resolved, so every path
    /// to the same file shares one lock), or says who holds it.
    pub fn acquire(database: &Path) -> Result<DatabaseLock, LockError> {
        let resolved = database
            .canonicalize()
            .unwrap_or_else(|_| database.to_path_buf());
        let mut lock = resolved.clone().into_os_string();
        lock.push(".lock");
        let lock = PathBuf::from(lock);
        let io = |source| LockError::Io {
            lock: lock.clone(),
            source,
        };
        let mut file = open_private(&lock).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    database: resolved,
                    lock,
                    holder: if holder.is_empty() {
                        "unknown".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io(error)),
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(DatabaseLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_holders_pid_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("db.sqlite");
        File::create(&database).unwrap();
        let first = DatabaseLock::acquire(&database).unwrap();
        let error = DatabaseLock::acquire(&database).unwrap_err().to_string();
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        assert!(error.contains("db.sqlite"), "{error}");
        // Another path to the same file shares the lock.
        let other_path = dir.path().join(".").join("db.sqlite");
        assert!(DatabaseLock::acquire(&other_path).is_err());
        drop(first);
        DatabaseLock::acquire(&database).unwrap();
    }

    #[test]
    fn the_lock_file_is_private_and_never_followed_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("db.sqlite");
        File::create(&database).unwrap();
        let _lock = DatabaseLock::acquire(&database).unwrap();
        let mode = std::fs::metadata(dir.path().join("db.sqlite.lock"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, FILE_MODE);

        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        let planted = dir.path().join("other.sqlite");
        File::create(&planted).unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("other.sqlite.lock")).unwrap();
        assert!(DatabaseLock::acquire(&planted).is_err());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    }
}
