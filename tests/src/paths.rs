//! Where the workspace keeps what the tests run: the host binary, plugin libraries, the
//! reference venv.
//!
//! Paths are derived from the running test executable (`<target>/<profile>/deps/<test>`),
//! so they follow `CARGO_TARGET_DIR` and `--release` without configuration.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The command that builds everything the tests load.
pub const BUILD_HINT: &str = "run `cargo build --workspace` first (scripts/test does)";

/// The command that builds the panic=abort plugin.
pub const PANIC_ABORT_BUILD_HINT: &str =
    "run `cargo build -p faulty-plugin --profile panic-abort` first (scripts/test does)";

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let tests_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    tests_crate.parent().unwrap_or(tests_crate).to_path_buf()
}

/// The profile directory the tests were built into, e.g. `<workspace>/target/debug`.
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|error| Error::new(format!("cannot find the test executable: {error}")))?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| Error::new(format!("{} has no parent directory", exe.display())))?;
    if dir.file_name().is_some_and(|name| name == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    Ok(dir.to_path_buf())
}

/// The cargo target directory, e.g. `<workspace>/target`.
pub fn target_dir() -> Result<PathBuf> {
    let profile = profile_dir()?;
    Ok(profile.parent().unwrap_or(&profile).to_path_buf())
}

/// The `durabletask-host` binary of this build.
pub fn host_binary() -> Result<PathBuf> {
    existing(profile_dir()?.join("durabletask-host"), BUILD_HINT)
}

/// A plugin library of this build: `lib<name>.so`.
pub fn plugin_library(name: &str) -> Result<PathBuf> {
    existing(profile_dir()?.join(library_file_name(name)), BUILD_HINT)
}

/// A plugin library built with the `panic-abort` profile.
pub fn panic_abort_plugin_library(name: &str) -> Result<PathBuf> {
    existing(
        target_dir()?
            .join("panic-abort")
            .join(library_file_name(name)),
        PANIC_ABORT_BUILD_HINT,
    )
}

/// A shared library that is certainly not a durabletask plugin: the C math library.
pub fn system_shared_library() -> Result<PathBuf> {
    const CANDIDATES: [&str; 4] = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ];
    if let Some(found) = CANDIDATES.iter().map(Path::new).find(|path| path.exists()) {
        return Ok(found.to_path_buf());
    }
    // Elsewhere, ask the dynamic linker's cache: lines like
    // "	libm.so.6 (libc6,x86-64) => /lib/x86_64-linux-gnu/libm.so.6".
    let listing = std::process::Command::new("ldconfig")
        .arg("-p")
        .output()
        .map_err(|error| Error::new(format!("cannot run `ldconfig -p`: {error}")))?;
    String::from_utf8_lossy(&listing.stdout)
        .lines()
        .filter(|line| line.trim_start().starts_with("libm.so"))
        .filter_map(|line| line.split("=> ").nth(1))
        .map(|path| PathBuf::from(path.trim()))
        .find(|path| path.exists())
        .ok_or_else(|| Error::new("found no libm.so on this machine to use as a non-plugin"))
}

fn library_file_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn existing(path: PathBuf, hint: &str) -> Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(Error::new(format!(
            "{} does not exist: {hint}",
            path.display()
        )))
    }
}
