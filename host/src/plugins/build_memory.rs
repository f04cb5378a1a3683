//! Which build of each plugin version the host has put in service, remembered across
//! restarts.
//!
//! While the host runs, a second build of a plugin name and version already in service
//! is ignored ("give a new build a new version"): orchestrations of that version replay
//! on the code that started them. Without a memory, a restart would load whichever build
//! of the version came first in the folder, and running orchestrations would replay on
//! different code under the same version. The memory is a small text file, one line per
//! version put in service (`name<TAB>version<TAB>build`), beside the backend's state
//! (see `Config::build_memory`): the build remembered for a version keeps it, after a
//! restart as before. To accept another build under a version already used, remove its
//! line.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::versioning;

/// The first field of a line that records a refused build.
const REFUSED: &str = "refused";

/// The remembered builds, and the file they are kept in.
#[derive(Debug, Default)]
pub(crate) struct BuildMemory {
    /// `None`: remembered for this process only (`plugins`, `replay-check`, tests).
    file: Option<PathBuf>,
    /// Whether remembering writes the file (the host does; `plugins` and `validate`,
    /// which only report, do not).
    writable: bool,
    /// (plugin name, version, build) in the order they were put in service.
    builds: Vec<(String, String, String)>,
    /// (build, why) of builds the replay gate refused: not put in service after a
    /// restart either (the first scan at start is not gated).
    refused: Vec<(String, String)>,
}

impl BuildMemory {
    /// A memory kept in `file` (read now; a missing file is an empty memory), written
    /// when a new version goes in service if `writable`.
    pub(crate) fn open(file: &Path, writable: bool) -> std::io::Result<BuildMemory> {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(error) => return Err(error),
        };
        let mut builds = Vec::new();
        let mut refused = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
            match fields.as_slice() {
                [REFUSED, build, why] if !build.is_empty() => {
                    refused.push(((*build).to_owned(), (*why).to_owned()));
                }
                [name, version, build]
                    if !name.is_empty() && !name.starts_with('#') && !build.is_empty() =>
                {
                    builds.push((
                        (*name).to_owned(),
                        (*version).to_owned(),
                        (*build).to_owned(),
                    ));
                }
                _ => {}
            }
        }
        Ok(BuildMemory {
            file: Some(file.to_path_buf()),
            writable,
            builds,
            refused,
        })
    }

    /// Why the replay gate refused `build`, if it did.
    pub(crate) fn refusal_of(&self, build: &str) -> Option<&str> {
        self.refused
            .iter()
            .find(|(refused, _)| refused == build)
            .map(|(_, why)| why.as_str())
    }

    /// Remembers that the replay gate refused `build`, and why.
    pub(crate) fn refuse(&mut self, build: &str, why: &str) -> std::io::Result<()> {
        if self.refusal_of(build).is_some() {
            return Ok(());
        }
        // One line per entry: no tab or line break may come from a message.
        let why: String = why
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.refused.push((build.to_owned(), why));
        self.save()
    }

    /// Where it is kept, if anywhere.
    pub(crate) fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The build remembered for plugin `name` at `version` (versions compared as
    /// versions: `1.0` is `1.0.0`).
    pub(crate) fn build_of(&self, name: &str, version: &str) -> Option<&str> {
        self.builds
            .iter()
            .find(|(known, known_version, _)| {
                known == name
                    && versioning::compare(Some(known_version), Some(version))
                        == std::cmp::Ordering::Equal
            })
            .map(|(_, _, build)| build.as_str())
    }

    /// Remembers `build` for `name` at `version`, unless a build is remembered for it
    /// already. The file is rewritten whole (a temporary file renamed over it, 0600), so
    /// a crash leaves the old memory or the new, never half of one.
    pub(crate) fn remember(
        &mut self,
        name: &str,
        version: &str,
        build: &str,
    ) -> std::io::Result<()> {
        if self.build_of(name, version).is_some() {
            return Ok(());
        }
        // Names and versions come from plugin code: one with a tab or a line break would
        // write lines of its own into the file.
        if [name, version, build]
            .iter()
            .any(|field| field.chars().any(char::is_control))
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the plugin name or version {name:?} {version:?} has control characters"),
            ));
        }
        self.builds
            .push((name.to_owned(), version.to_owned(), build.to_owned()));
        self.save()
    }

    /// Writes the file, if it is kept in one and may be written.
    fn save(&self) -> std::io::Result<()> {
        let (Some(file), true) = (&self.file, self.writable) else {
            return Ok(());
        };
        let mut text = String::from(
            "# The build of each plugin version durabletask-host has put in service: after a\n# restart the same build serves it. Remove a line to accept another build under that\n# version. name<TAB>version<TAB>build, or refused<TAB>build<TAB>why for a build the\n# replay check refused (remove the line to let it be checked again).\n",
        );
        for (name, version, build) in &self.builds {
            text.push_str(&format!("{name}\t{version}\t{build}\n"));
        }
        for (build, why) in &self.refused {
            text.push_str(&format!("{REFUSED}\t{build}\t{why}\n"));
        }
        let mut partial = file.clone().into_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                // Never through a link planted at the name.
                .custom_flags(libc::O_NOFOLLOW)
                .open(&partial)?;
            out.write_all(text.as_bytes())?;
            out.sync_all()?;
        }
        std::fs::rename(&partial, file)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn builds_are_remembered_across_opens_and_the_first_one_keeps_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.builds");
        let mut memory = BuildMemory::open(&file, true).unwrap();
        assert_eq!(memory.build_of("orders", "1.0.0"), None);
        memory.remember("orders", "1.0.0", "aaaa").unwrap();
        memory.remember("orders", "1.0", "bbbb").unwrap();
        memory.remember("orders", "2.0.0", "cccc").unwrap();

        let reopened = BuildMemory::open(&file, true).unwrap();
        assert_eq!(reopened.build_of("orders", "1.0.0"), Some("aaaa"));
        assert_eq!(reopened.build_of("orders", "1.0"), Some("aaaa"));
        assert_eq!(reopened.build_of("orders", "2.0.0"), Some("cccc"));
        assert_eq!(reopened.build_of("payments", "1.0.0"), None);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refusals_are_remembered_on_one_line_each() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.builds");
        let mut memory = BuildMemory::open(&file, true).unwrap();
        memory.remember("orders", "1.0.0", "aaaa").unwrap();
        memory
            .refuse("bbbb", "o-1 would fail:\tnon-deterministic\nsecond line")
            .unwrap();
        let reopened = BuildMemory::open(&file, true).unwrap();
        assert_eq!(
            reopened.refusal_of("bbbb"),
            Some("o-1 would fail: non-deterministic second line")
        );
        assert_eq!(reopened.refusal_of("aaaa"), None);
        assert_eq!(reopened.build_of("orders", "1.0.0"), Some("aaaa"));
    }

    #[test]
    fn a_link_planted_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.builds");
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "untouched").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("host.builds.partial")).unwrap();
        let mut memory = BuildMemory::open(&file, true).unwrap();
        assert!(memory.remember("orders", "1.0.0", "aaaa").is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "untouched");
    }

    #[test]
    fn a_name_with_control_characters_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.builds");
        let mut memory = BuildMemory::open(&file, true).unwrap();
        assert!(
            memory
                .remember("orders\npayments", "1.0.0", "aaaa")
                .is_err()
        );
        assert!(!file.exists());
    }

    #[test]
    fn a_memory_that_only_reports_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.builds");
        let mut memory = BuildMemory::open(&file, false).unwrap();
        memory.remember("orders", "1.0.0", "aaaa").unwrap();
        assert_eq!(memory.build_of("orders", "1.0.0"), Some("aaaa"));
        assert!(!file.exists());
    }

    #[test]
    fn a_removed_line_forgets_its_version_and_odd_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.builds");
        std::fs::write(&file, "# comment\norders\t1.0.0\taaaa\nnot a line\n\n").unwrap();
        let memory = BuildMemory::open(&file, true).unwrap();
        assert_eq!(memory.build_of("orders", "1.0.0"), Some("aaaa"));
        assert_eq!(memory.builds.len(), 1);
    }
}
