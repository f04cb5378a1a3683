//! The Python interpreter that runs the reference backend: a venv with
//! `tests/requirements.txt` (`durabletask==1.12.0` and OpenTelemetry), created on first
//! use and reused by every later run.
//!
//! `DURABLETASK_REFERENCE_PYTHON=/path/to/python` skips all of this and uses that
//! interpreter (it must have `durabletask==1.12.0` installed).
//!
//! The venv lives at `<target>/reference-venv`, the same one `scripts/` use. Creation is
//! safe against concurrent test processes: each builds its own venv in a temporary
//! directory beside it and renames it into place; the first rename wins, the others
//! discard theirs. A venv is used only once its `ready` marker exists, so a half-built one
//! (a run killed during `pip install`) is never mistaken for a good one.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::paths;
use crate::process::run_with_timeout;

/// The pinned requirements of the venv, relative to the workspace root.
pub const REQUIREMENTS: &str = "tests/requirements.txt";

/// Overrides the interpreter (skips venv creation).
pub const PYTHON_OVERRIDE_ENV: &str = "DURABLETASK_REFERENCE_PYTHON";

/// The venv's directory name inside the target directory.
pub const VENV_DIR_NAME: &str = "reference-venv";

/// Written into the venv after a successful install: a copy of the requirements it was
/// built from, so that a venv made for other ones is rebuilt.
const READY_MARKER: &str = "requirements.ready";

/// Creating a venv and installing wheels takes about 10 s; allow for a slow mirror.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);

/// The interpreter to run `tests/reference_backend.py` with.
pub fn reference_python() -> Result<PathBuf> {
    // Tests of one binary run in parallel: they share one attempt (and its error).
    static PYTHON: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| locate_or_create().map_err(|error| error.to_string()))
        .clone()
        .map_err(Error::new)
}

fn locate_or_create() -> Result<PathBuf> {
    if let Some(python) = std::env::var_os(PYTHON_OVERRIDE_ENV) {
        return Ok(PathBuf::from(python));
    }
    let venv = paths::target_dir()?.join(VENV_DIR_NAME);
    if !is_ready(&venv) {
        create_venv(&venv)?;
    }
    Ok(venv_python(&venv))
}

fn venv_python(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

fn requirements() -> Result<String> {
    let path = paths::workspace_root().join(REQUIREMENTS);
    std::fs::read_to_string(&path)
        .map_err(|error| Error::new(format!("cannot read {}: {error}", path.display())))
}

fn is_ready(venv: &Path) -> bool {
    let built_from = std::fs::read_to_string(venv.join(READY_MARKER)).ok();
    built_from.is_some() && built_from == requirements().ok() && venv_python(venv).exists()
}

fn create_venv(venv: &Path) -> Result<()> {
    let parent = venv.parent().unwrap_or(venv);
    std::fs::create_dir_all(parent)
        .map_err(|error| Error::new(format!("cannot create {}: {error}", parent.display())))?;
    let staging = parent.join(format!(
        "{VENV_DIR_NAME}.tmp-{}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default()
    ));
    let built = build_venv(&staging).and_then(|()| publish(&staging, venv));
    // Whatever happened, the staging directory is no longer needed.
    let _ = std::fs::remove_dir_all(&staging);
    built
}

fn build_venv(staging: &Path) -> Result<()> {
    let python3 = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    run_checked(
        Command::new(&python3).args(["-m", "venv"]).arg(staging),
        "create the reference venv (needs Python 3.11+ with the venv module)",
    )?;
    run_checked(
        Command::new(venv_python(staging))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(paths::workspace_root().join(REQUIREMENTS)),
        "install tests/requirements.txt into the reference venv",
    )?;
    std::fs::write(staging.join(READY_MARKER), requirements()?)
        .map_err(|error| Error::new(format!("cannot mark the venv ready: {error}")))
}

/// Moves the finished venv into place, unless another process got there first.
fn publish(staging: &Path, venv: &Path) -> Result<()> {
    if std::fs::rename(staging, venv).is_ok() || is_ready(venv) {
        return Ok(());
    }
    // Something unusable is in the way (an interrupted old layout): replace it.
    let _ = std::fs::remove_dir_all(venv);
    std::fs::rename(staging, venv).or_else(|error| {
        if is_ready(venv) {
            Ok(())
        } else {
            Err(Error::new(format!(
                "cannot move the reference venv into {}: {error}",
                venv.display()
            )))
        }
    })
}

fn run_checked(command: &mut Command, what: &str) -> Result<()> {
    let output = run_with_timeout(command, INSTALL_TIMEOUT)?;
    if output.status.success() {
        return Ok(());
    }
    Err(Error::new(format!(
        "could not {what} ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}
