//! Who may change what the host loads: the rule sshd's StrictModes applies to
//! `~/.ssh`, applied to plugin libraries.
//!
//! A plugin runs inside the host with the host's rights (often root), so a library is
//! only loaded if nobody but the host's user and root could have put it there or
//! changed it:
//! - the library file (as opened: the metadata of the descriptor it is copied from) is a
//!   regular file owned by the host's user or root, and not writable by its group or by
//!   others;
//! - the plugins folder is owned by the host's user or root and not writable by its group
//!   or by others, sticky bit or not: in a sticky folder such as `/tmp` anyone may still
//!   add a library of their own (or a link to any library on the system) that the host
//!   would load;
//! - every folder above it, up to `/`, is owned by the host's user or root and not
//!   writable by its group or by others, unless it has the sticky bit: there others may
//!   add entries, but cannot rename or remove ours, so the path to the plugins folder
//!   still leads where its owner meant (this is what lets a plugins folder live under
//!   `/tmp`, as in tests);
//! - a library that is a symbolic link is checked where it leads: the file it resolves to
//!   and the folders above that file follow the same rules.
//!
//! The same rule for folders guards the host's private folder of library copies.
//! Access control lists are not read (sshd does not read them either).

use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use super::error::LoadError;

/// Group- and other-write bits.
const WRITABLE_BY_OTHERS: u32 = 0o022;
const STICKY: u32 = 0o1000;

/// The host's effective user id: the user (besides root) trusted to own what it loads.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// How the host treats a library that fails the rule (`[plugins] strict_permissions`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Refuse it (`true`, the default) or load it with a warning (development).
    strict: bool,
    euid: u32,
}

impl Policy {
    pub(crate) fn new(strict: bool) -> Self {
        Self {
            strict,
            euid: euid(),
        }
    }

    pub(crate) fn euid(&self) -> u32 {
        self.euid
    }

    /// What to do with a library given why it is unsafe (`Err`): refused when strict,
    /// else loaded, with the reason returned for a warning.
    pub(crate) fn judge(&self, verdict: Result<(), String>) -> Result<Option<String>, LoadError> {
        match verdict {
            Ok(()) => Ok(None),
            Err(reason) if self.strict => Err(LoadError::Untrusted(reason)),
            Err(reason) => Ok(Some(reason)),
        }
    }
}

/// Checks a library file from the metadata of the descriptor it is read from (so the
/// file checked is the file copied, even if the name is replaced meanwhile) and, if its
/// name is a symbolic link, the folders above the file it leads to.
pub(crate) fn check_library(path: &Path, opened: &Metadata, euid: u32) -> Result<(), String> {
    let shown = path.display();
    if !opened.file_type().is_file() {
        return Err(format!("{shown} is not a regular file"));
    }
    check_owner(&shown.to_string(), opened, euid)?;
    if let Some(writers) = other_writers(opened) {
        return Err(format!(
            "{shown} is writable by {writers} (mode {:04o}); make it writable only by its owner (chmod go-w)",
            mode(opened)
        ));
    }
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if is_link {
        let target = path
            .canonicalize()
            .map_err(|error| format!("cannot resolve the link {shown}: {error}"))?;
        if let Some(folder) = target.parent() {
            check_ancestors(folder, euid)?;
        }
    }
    Ok(())
}

/// Checks the plugins folder and every folder above it.
pub(crate) fn check_plugins_folder(dir: &Path, euid: u32) -> Result<(), String> {
    let dir = dir.canonicalize().map_err(|error| {
        format!(
            "cannot resolve the plugins folder {}: {error}",
            dir.display()
        )
    })?;
    let metadata = folder_metadata(&dir)?;
    let shown = dir.display().to_string();
    check_owner(&format!("the plugins folder {shown}"), &metadata, euid)?;
    if let Some(writers) = other_writers(&metadata) {
        let sticky = if mode(&metadata) & STICKY != 0 {
            " (the sticky bit does not help: anyone who may write to it may add a library)"
        } else {
            ""
        };
        return Err(format!(
            "the plugins folder {shown} is writable by {writers} (mode {:04o}){sticky}; make it writable only by its owner (chmod go-w {shown})",
            mode(&metadata)
        ));
    }
    match dir.parent() {
        Some(parent) => check_ancestors(parent, euid),
        None => Ok(()),
    }
}

/// Checks `dir` and every folder above it up to `/`: each owned by `euid` or root, and
/// not writable by others unless sticky.
pub(crate) fn check_ancestors(dir: &Path, euid: u32) -> Result<(), String> {
    let dir = dir
        .canonicalize()
        .map_err(|error| format!("cannot resolve {}: {error}", dir.display()))?;
    for folder in dir.ancestors() {
        let metadata = folder_metadata(folder)?;
        let shown = folder.display().to_string();
        check_owner(&format!("the folder {shown}"), &metadata, euid)?;
        if let Some(writers) = other_writers(&metadata)
            && mode(&metadata) & STICKY == 0
        {
            return Err(format!(
                "the folder {shown} is writable by {writers} (mode {:04o}) and has no sticky bit, so they may replace what lies below it; make it writable only by its owner (chmod go-w {shown})",
                mode(&metadata)
            ));
        }
    }
    Ok(())
}

/// The metadata of a folder, not following a link: `folder` comes from `canonicalize`,
/// so a link here was put in meanwhile.
fn folder_metadata(folder: &Path) -> Result<Metadata, String> {
    let metadata = std::fs::symlink_metadata(folder)
        .map_err(|error| format!("cannot read {}: {error}", folder.display()))?;
    if !metadata.file_type().is_dir() {
        return Err(format!(
            "{} is not a folder (it changed while it was checked)",
            folder.display()
        ));
    }
    Ok(metadata)
}

fn check_owner(what: &str, metadata: &Metadata, euid: u32) -> Result<(), String> {
    let owner = metadata.uid();
    if owner == 0 || owner == euid {
        return Ok(());
    }
    Err(format!(
        "{what} is owned by uid {owner}, not by root or the host's user (uid {euid})"
    ))
}

/// Who besides the owner may write to it, if anyone.
fn other_writers(metadata: &Metadata) -> Option<&'static str> {
    match mode(metadata) & WRITABLE_BY_OTHERS {
        0 => None,
        0o020 => Some("its group"),
        0o002 => Some("others"),
        _ => Some("its group and others"),
    }
}

fn mode(metadata: &Metadata) -> u32 {
    metadata.permissions().mode() & 0o7777
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::fs::Permissions;

    use super::*;

    /// An unprivileged user (`nobody`) to own files "of another user".
    const NOBODY: u32 = 65534;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
    }

    /// A plugins folder (0755) holding `libx.so` (0644), in a fresh temporary folder.
    fn folder() -> (tempfile::TempDir, std::path::PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let plugins = root.path().join("plugins");
        std::fs::create_dir(&plugins).unwrap();
        chmod(&plugins, 0o755);
        let library = plugins.join("libx.so");
        std::fs::write(&library, b"x").unwrap();
        chmod(&library, 0o644);
        (root, plugins)
    }

    fn check_file(path: &Path) -> Result<(), String> {
        let opened = std::fs::File::open(path).unwrap().metadata().unwrap();
        check_library(path, &opened, euid())
    }

    #[test]
    fn a_library_writable_only_by_its_owner_in_a_safe_folder_passes() {
        let (_root, plugins) = folder();
        check_plugins_folder(&plugins, euid()).unwrap();
        check_file(&plugins.join("libx.so")).unwrap();
    }

    #[test]
    fn a_group_or_world_writable_library_is_refused() {
        let (_root, plugins) = folder();
        let library = plugins.join("libx.so");
        for (mode, writers) in [
            (0o664, "its group"),
            (0o646, "others"),
            (0o666, "its group and others"),
        ] {
            chmod(&library, mode);
            let reason = check_file(&library).unwrap_err();
            assert!(reason.contains(&library.display().to_string()), "{reason}");
            assert!(
                reason.contains(&format!("writable by {writers} (mode {mode:04o})")),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_library_owned_by_another_user_is_refused() {
        let (_root, plugins) = folder();
        let library = plugins.join("libx.so");
        std::os::unix::fs::chown(&library, Some(NOBODY), None).unwrap();
        let reason = check_file(&library).unwrap_err();
        assert!(reason.contains("owned by uid 65534"), "{reason}");
    }

    #[test]
    fn what_is_checked_is_the_file_opened_not_what_the_name_holds_later() {
        let (_root, plugins) = folder();
        let library = plugins.join("libx.so");
        let opened = std::fs::File::open(&library).unwrap();
        // Replaced after it was opened by a safe file of the same name.
        std::os::unix::fs::chown(&library, Some(NOBODY), None).unwrap();
        std::fs::rename(&library, plugins.join("old.so")).unwrap();
        std::fs::write(&library, b"y").unwrap();
        let reason = check_library(&library, &opened.metadata().unwrap(), euid()).unwrap_err();
        assert!(reason.contains("owned by uid 65534"), "{reason}");
    }

    #[test]
    fn a_world_writable_plugins_folder_is_refused_sticky_or_not() {
        let (_root, plugins) = folder();
        for mode in [0o777, 0o1777, 0o775] {
            chmod(&plugins, mode);
            let reason = check_plugins_folder(&plugins, euid()).unwrap_err();
            assert!(
                reason.contains(&format!(
                    "the plugins folder {} is writable",
                    plugins.canonicalize().unwrap().display()
                )),
                "{reason}"
            );
            assert!(reason.contains(&format!("mode {mode:04o}")), "{reason}");
        }
    }

    #[test]
    fn a_plugins_folder_owned_by_another_user_is_refused() {
        let (_root, plugins) = folder();
        std::os::unix::fs::chown(&plugins, Some(NOBODY), None).unwrap();
        let reason = check_plugins_folder(&plugins, euid()).unwrap_err();
        assert!(reason.contains("owned by uid 65534"), "{reason}");
    }

    #[test]
    fn a_folder_above_is_refused_when_writable_by_others_without_the_sticky_bit() {
        let (root, plugins) = folder();
        chmod(root.path(), 0o777);
        let reason = check_plugins_folder(&plugins, euid()).unwrap_err();
        assert!(reason.contains("has no sticky bit"), "{reason}");
        // With the sticky bit (as /tmp has) others cannot move the plugins folder away.
        chmod(root.path(), 0o1777);
        check_plugins_folder(&plugins, euid()).unwrap();
    }

    #[test]
    fn a_linked_library_is_checked_where_it_leads() {
        let (root, plugins) = folder();
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("real.so"), b"x").unwrap();
        chmod(&elsewhere.join("real.so"), 0o644);
        let link = plugins.join("liblinked.so");
        std::os::unix::fs::symlink(elsewhere.join("real.so"), &link).unwrap();
        chmod(&elsewhere, 0o755);
        check_file(&link).unwrap();
        chmod(&elsewhere, 0o777);
        let reason = check_file(&link).unwrap_err();
        assert!(reason.contains("elsewhere"), "{reason}");
    }

    #[test]
    fn the_policy_refuses_when_strict_and_warns_otherwise() {
        let unsafe_file = || Err("x is writable by others".to_owned());
        assert!(matches!(
            Policy::new(true).judge(unsafe_file()),
            Err(LoadError::Untrusted(_))
        ));
        assert_eq!(
            Policy::new(false).judge(unsafe_file()).unwrap().as_deref(),
            Some("x is writable by others")
        );
        assert_eq!(Policy::new(true).judge(Ok(())).unwrap(), None);
    }
}
