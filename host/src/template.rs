//! `durabletask-host new plugin NAME`: writes a plugin crate that builds, and whose tests
//! pass, at once: an orchestrator, an activity and an entity, a test of them with the
//! SDK's test kit, and a README with the build-and-deploy steps.
//!
//! The crate is its own workspace (`[workspace]`), so it can be made anywhere, inside
//! another workspace's folder too. It depends on the SDK by path when the SDK's source is
//! where this binary was built from (a checkout of this repository), with the checkout's
//! `Cargo.lock` (the versions tested together), else by version.

use std::path::{Path, PathBuf};

/// Where the SDK's source was when this binary was built.
const BUILT_SDK_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugin-sdk");

/// Why a crate could not be written.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "\"{0}\" is not a plugin name: use lowercase letters, digits, '-' and '_', starting with a letter (it becomes the crate's name)"
    )]
    BadName(String),
    #[error("{} exists and is not an empty folder: choose another --path", .0.display())]
    NotEmpty(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How the crate depends on the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// `path = "..."`: a checkout of durabletask-host.
    Path(PathBuf),
    /// `version = "..."`: a published SDK.
    Version(String),
}

impl SdkSource {
    /// The SDK this binary was built from, if its source is still there; else the
    /// published SDK of this version.
    pub fn this_build() -> SdkSource {
        match Path::new(BUILT_SDK_PATH).canonicalize() {
            Ok(path) if path.join("Cargo.toml").is_file() => SdkSource::Path(path),
            _ => SdkSource::Version(env!("CARGO_PKG_VERSION").to_owned()),
        }
    }

    fn dependency(&self, features: &str) -> String {
        match self {
            SdkSource::Path(path) => format!(
                "durabletask-sdk = {{ path = {}{features} }}",
                toml_string(&path.display().to_string())
            ),
            SdkSource::Version(version) => {
                format!("durabletask-sdk = {{ version = \"{version}\"{features} }}")
            }
        }
    }
}

/// The files of a new plugin crate named `name`, as (path relative to the crate, text).
pub fn plugin_files(name: &str, sdk: &SdkSource) -> Result<Vec<(PathBuf, String)>, TemplateError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(TemplateError::BadName(name.to_owned()));
    }
    let library = name.replace('-', "_");
    let fill = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{library}}", &library)
            .replace("{{sdk}}", &sdk.dependency(""))
            .replace(
                "{{sdk_testing}}",
                &sdk.dependency(", features = [\"testing\"]"),
            )
    };
    let mut files = vec![
        (PathBuf::from("Cargo.toml"), fill(CARGO_TOML)),
        (PathBuf::from("src/lib.rs"), fill(LIB_RS)),
        (PathBuf::from("README.md"), fill(README)),
        (PathBuf::from(".gitignore"), "/target\n".to_owned()),
    ];
    // From a checkout, the versions its own build was tested with: cargo keeps what the
    // new crate uses and drops the rest (and needs no newer crate from the network).
    if let SdkSource::Path(sdk) = sdk
        && let Ok(lock) = std::fs::read_to_string(sdk.join("../Cargo.lock"))
    {
        files.push((PathBuf::from("Cargo.lock"), lock));
    }
    Ok(files)
}

/// Writes a new plugin crate named `name` into `dir` (which must not exist, or be
/// empty); answers the files written.
pub fn write_plugin(
    name: &str,
    dir: &Path,
    sdk: &SdkSource,
) -> Result<Vec<PathBuf>, TemplateError> {
    // A relative SDK path is written into the new crate, where Cargo reads it relative to
    // the crate: make it absolute from here first.
    let sdk = match sdk {
        SdkSource::Path(path) if path.is_relative() => SdkSource::Path(
            std::path::absolute(path).map_err(|source| TemplateError::Write {
                path: path.clone(),
                source,
            })?,
        ),
        other => other.clone(),
    };
    let files = plugin_files(name, &sdk)?;
    let non_empty = dir.exists()
        && (!dir.is_dir()
            || std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()));
    if non_empty {
        return Err(TemplateError::NotEmpty(dir.to_path_buf()));
    }
    let mut written = Vec::with_capacity(files.len());
    for (relative, text) in files {
        let path = dir.join(relative);
        let write = |path: &Path| -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(path, text.as_bytes())
        };
        write(&path).map_err(|source| TemplateError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

# A plugin is a cdylib the host loads; the rlib lets this crate's own tests link it.
[lib]
name = "{{library}}"
crate-type = ["cdylib", "rlib"]

[dependencies]
{{sdk}}
serde = { version = "1", features = ["derive"] }
tracing = "0.1"

[dev-dependencies]
# The test kit: runs the plugin in the test's process, no backend needed.
{{sdk_testing}}
serde_json = "1"

# Keep panic = "unwind" (the default): the host refuses plugins built with "abort".

# A crate of its own, wherever it is made.
[workspace]
"#;

const LIB_RS: &str = r#"//! # {{name}}: a durabletask-host plugin
//!
//! An orchestrator ([`greet_all`]), the activity it calls ([`greet`]) and an entity
//! ([`greetings`]) that counts the greetings. Build it with `cargo build --release` and
//! copy `target/release/lib{{library}}.so` into the host's plugins folder (see README.md).

use durabletask_sdk::{ActivityContext, EntityContext, EntityInstanceId, Error, OrchestrationContext};

/// The entity that counts every greeting.
pub const GREETINGS: &str = "greetings";

/// Activity: greets one person. Activities do the work (call services, write files);
/// they may run more than once if a worker dies, so keep them idempotent.
pub async fn greet(_ctx: ActivityContext, name: String) -> Result<String, Error> {
    tracing::info!(%name, "greeting");
    Ok(format!("Hello, {name}!"))
}

/// Entity: a counter of greetings. `add` adds its input, `get` reads it.
pub fn greetings(ctx: &mut EntityContext, amount: Option<u64>) -> Result<u64, Error> {
    let count: u64 = ctx.get_state()?.unwrap_or(0);
    match ctx.operation() {
        "add" => {
            let count = count.saturating_add(amount.unwrap_or(1));
            ctx.set_state(count)?;
            Ok(count)
        }
        "get" => Ok(count),
        other => Err(Error::new(
            "UnknownOperation",
            format!("greetings has no operation '{other}'"),
        )),
    }
}

/// Orchestrator: greets everyone it is given, in order, counts each greeting in the
/// `greetings` entity, and returns the greetings. It is replayed from its history, so it
/// must be deterministic: no clocks, randomness or I/O here (ask the context instead).
pub async fn greet_all(ctx: OrchestrationContext, names: Vec<String>) -> Result<Vec<String>, Error> {
    let counter = EntityInstanceId::new(GREETINGS, "total")?;
    let mut greetings = Vec::with_capacity(names.len());
    for name in names {
        greetings.push(ctx.call_activity::<_, String>("greet", name).await?);
        ctx.signal_entity(&counter, "add", 1)?;
    }
    Ok(greetings)
}

durabletask_sdk::export_plugin! {
    name: "{{name}}",
    version: env!("CARGO_PKG_VERSION"),
    orchestrators: [greet_all],
    activities: [greet],
    entities: [greetings],
}

#[cfg(test)]
mod tests {
    use durabletask_sdk::proto::OrchestrationStatus;
    use durabletask_sdk::testing::TestRuntime;
    use durabletask_sdk::{EntityInstanceId, Error};
    use serde_json::json;

    use super::GREETINGS;

    #[test]
    fn greet_all_greets_everyone_and_counts_them() -> Result<(), Box<dyn std::error::Error>> {
        let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
        let id = runtime.start("greet_all", json!(["Ada", "Linus"]))?;
        assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Completed));
        let greetings: Vec<String> = runtime.output(&id)?;
        assert_eq!(greetings, ["Hello, Ada!", "Hello, Linus!"]);
        let total = EntityInstanceId::new(GREETINGS, "total")?;
        assert_eq!(runtime.entity_state::<u64>(&total)?, Some(2));
        Ok(())
    }

    #[test]
    fn a_failing_activity_fails_the_orchestration() -> Result<(), Box<dyn std::error::Error>> {
        let mut runtime = TestRuntime::new(durabletask_sdk::plugin_registry!());
        runtime.mock_activity("greet", |_name: String| -> Result<String, Error> {
            Err(Error::new("Unreachable", "the greeting service is down"))
        });
        let id = runtime.start("greet_all", json!(["Ada"]))?;
        assert_eq!(runtime.status(&id), Some(OrchestrationStatus::Failed));
        Ok(())
    }
}
"#;

const README: &str = r#"# {{name}}

A [durabletask-host](https://example.invalid/durabletask-host) plugin: `greet_all` (an
orchestrator) greets everyone it is given with the `greet` activity and counts the
greetings in the `greetings` entity.

## Test

```sh
cargo test
```

The tests run the plugin in their own process with the SDK's test kit
(`durabletask_sdk::testing`): no backend, no host. Add one for every orchestration you
write; a change that would break orchestrations already running fails them.

## Build and deploy

```sh
cargo build --release
# Into the host's plugins folder ([plugins] dir), under a temporary name, then renamed,
# so the host never reads a half-written file:
cp target/release/lib{{library}}.so /path/to/plugins/.{{library}}.tmp
mv /path/to/plugins/.{{library}}.tmp /path/to/plugins/lib{{library}}.so
```

The host refuses a library that users other than its own and root could write: keep the
file and the plugins folder writable by their owner only (`chmod go-w`; cargo's output
follows your umask). It puts the library in service within a second (it logs `loaded
plugin {{name}} 0.1.0: in service`); `durabletask-host plugins --config host.toml` lists
what it would load, and why it would refuse one. Then:

```sh
durabletask-host client --config host.toml start greet_all --input '["Ada", "Linus"]' --wait
```

A new build needs a new version (`version` in Cargo.toml): the host keeps running
orchestrations on the code they started on. Before you deploy a change to an orchestrator,
replay the histories of running orchestrations against it:

```sh
durabletask-host client --config host.toml history <instance id> > running.json
durabletask-host replay-check --plugin target/release/lib{{library}}.so running.json
```
"#;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn names_become_the_crate_and_library_names() {
        let files = plugin_files("order-flow", &SdkSource::Version("0.1.0".into())).unwrap();
        let text = |name: &str| {
            files
                .iter()
                .find(|(path, _)| path == Path::new(name))
                .map(|(_, text)| text.clone())
                .unwrap()
        };
        let cargo = text("Cargo.toml");
        assert!(cargo.contains("name = \"order-flow\""), "{cargo}");
        assert!(cargo.contains("name = \"order_flow\""), "{cargo}");
        assert!(
            cargo.contains("durabletask-sdk = { version = \"0.1.0\" }"),
            "{cargo}"
        );
        assert!(cargo.contains("features = [\"testing\"]"), "{cargo}");
        assert!(text("src/lib.rs").contains("name: \"order-flow\""));
        assert!(text("README.md").contains("liborder_flow.so"));
        assert!(!files.iter().any(|(_, text)| text.contains("{{")));
    }

    #[test]
    fn a_path_dependency_is_quoted_as_toml() {
        let sdk = SdkSource::Path(PathBuf::from("/src/a \"b\"/plugin-sdk"));
        assert_eq!(
            sdk.dependency(""),
            r#"durabletask-sdk = { path = "/src/a \"b\"/plugin-sdk" }"#
        );
    }

    #[test]
    fn bad_names_and_non_empty_folders_are_refused() {
        for name in ["", "Demo", "1demo", "de mo", "dé"] {
            assert!(matches!(
                plugin_files(name, &SdkSource::this_build()),
                Err(TemplateError::BadName(_))
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep"), "").unwrap();
        assert!(matches!(
            write_plugin("demo", dir.path(), &SdkSource::this_build()),
            Err(TemplateError::NotEmpty(_))
        ));
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            write_plugin("demo", &file, &SdkSource::this_build()),
            Err(TemplateError::NotEmpty(_))
        ));
        let fresh = dir.path().join("demo");
        let written = write_plugin("demo", &fresh, &SdkSource::this_build()).unwrap();
        // This test runs from a checkout: its Cargo.lock comes along.
        assert_eq!(written.len(), 5);
        assert!(fresh.join("Cargo.lock").is_file());
        assert!(fresh.join("src/lib.rs").is_file());
    }
}
