//! Bearer tokens: where one comes from, read afresh at each (re)connect.
//!
//! A token is read when a connection is made, not when the settings are, so a rotated
//! file or a credential helper's fresh token is picked up on the next reconnect.

use std::fmt;
use std::path::PathBuf;

use super::ConnectionError;

/// Where a bearer token comes from: `[backend] token_env`, `token_file` or
/// `token_command`, or the client's `--token-env` and `--token-file`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// An environment variable holding the token.
    Env(String),
    /// A file holding it (its first line that is not blank or a `#` comment).
    File(PathBuf),
    /// A program and its arguments (no shell) printing it.
    Command(Vec<String>),
}

impl TokenSource {
    /// Reads the token now (a command is run, within [`TOKEN_COMMAND_TIMEOUT`]).
    pub fn read(&self) -> Result<BearerToken, ConnectionError> {
        match self {
            TokenSource::Env(name) => BearerToken::from_env(name),
            TokenSource::File(path) => BearerToken::from_file(path),
            TokenSource::Command(command) => BearerToken::from_command(command),
        }
    }
}

/// How long `[backend] token_command` may take.
pub const TOKEN_COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A bearer token. Its `Debug` never shows the value, so it cannot leak into logs.
#[derive(Clone)]
pub struct BearerToken(String);

impl BearerToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Runs `command` (a program and its arguments, no shell) and takes the first
    /// non-blank line it prints: a token minted by a credential helper, fresh on every
    /// (re)connect. It must finish within [`TOKEN_COMMAND_TIMEOUT`]; it blocks the caller
    /// meanwhile (the worker calls this off its event loop).
    pub fn from_command(command: &[String]) -> Result<Self, ConnectionError> {
        let failed = |reason: String| ConnectionError::TokenCommand {
            command: command.to_vec(),
            reason,
        };
        let Some((program, args)) = command.split_first() else {
            return Err(failed("is empty".to_owned()));
        };
        let mut child = std::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|error| failed(format!("cannot be run: {error}")))?;
        let deadline = std::time::Instant::now() + TOKEN_COMMAND_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(failed(format!(
                        "did not finish within {TOKEN_COMMAND_TIMEOUT:?}; it was killed"
                    )));
                }
                Err(error) => return Err(failed(format!("cannot be waited for: {error}"))),
            }
        };
        let output = child
            .wait_with_output()
            .map_err(|error| failed(format!("output cannot be read: {error}")))?;
        if !status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(failed(format!(
                "failed ({status}): {}",
                stderr.trim().lines().last().unwrap_or_default()
            )));
        }
        let stdout = String::from_utf8_lossy(&output.stdout);
        let first = stdout
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or_default()
            .to_owned();
        Self::non_empty(first, || format!("the output of token_command {command:?}"))
    }

    /// Reads the token of the file at `path`: its first line that is not blank or a `#`
    /// comment (a file may list several, which the embedded backend accepts each of, for
    /// rotation).
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConnectionError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConnectionError::TokenFileUnreadable {
                path: path.to_path_buf(),
                reason: error.to_string(),
            }
        })?;
        let first = text
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .unwrap_or_default()
            .to_owned();
        Self::non_empty(first, || path.display().to_string())
    }

    /// Reads a token from the environment variable `name`.
    pub fn from_env(name: &str) -> Result<Self, ConnectionError> {
        let value = std::env::var(name).map_err(|_| ConnectionError::TokenEnvMissing {
            name: name.to_owned(),
        })?;
        Self::non_empty(value, || format!("environment variable {name}"))
    }

    /// The token itself, for the `authorization` header only.
    pub(super) fn secret(&self) -> &str {
        &self.0
    }

    fn non_empty(
        text: String,
        source_name: impl FnOnce() -> String,
    ) -> Result<Self, ConnectionError> {
        let token = text.trim();
        if token.is_empty() {
            return Err(ConnectionError::TokenEmpty {
                source_name: source_name(),
            });
        }
        Ok(Self(token.to_owned()))
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_token_file_gives_its_first_token_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(
            &path,
            "# rotated 2026-12-02

  new  
old
",
        )
        .unwrap();
        let token = TokenSource::File(path).read().unwrap();
        assert_eq!(token.0, "new");
    }

    #[test]
    fn a_token_command_prints_the_token_or_is_named_with_its_failure() {
        let sh = |script: &str| vec!["/bin/sh".to_owned(), "-c".to_owned(), script.to_owned()];
        let token =
            BearerToken::from_command(&sh("printf '\\n  minted-token  \\nother\\n'")).unwrap();
        assert_eq!(token.0, "minted-token");
        let error = BearerToken::from_command(&sh("echo denied >&2; exit 3"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("token_command"), "{error}");
        assert!(error.contains("denied"), "{error}");
        assert!(error.contains("exit status: 3"), "{error}");
        let error = BearerToken::from_command(&sh("true"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("is empty"), "{error}");
        let missing = vec!["/no/such/helper".to_owned()];
        let error = BearerToken::from_command(&missing).unwrap_err().to_string();
        assert!(error.contains("cannot be run"), "{error}");
    }

    #[test]
    fn token_debug_is_redacted() {
        assert!(!format!("{:?}", BearerToken::new("s3cret")).contains("s3cret"));
    }
}
