//! Bearer-token authentication of every call: `authorization: Bearer <token>` must carry
//! one of the tokens in the configured file, else the call is `UNAUTHENTICATED` before it
//! reaches the service.
//!
//! The file holds one token per line (blank lines and lines starting with `#` are
//! skipped), so a token can be rotated without downtime: add the new one, move the
//! clients over, remove the old one. It is checked for changes at most once a second
//! and re-read when it changed; a file that becomes unreadable or empty keeps the tokens
//! read before (with a warning), so a botched edit does not lock every worker out.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tonic::{Request, Status};

/// How often the file is checked for changes.
const RECHECK: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the token file {path} holds no token (one per line; # starts a comment)")]
    Empty { path: PathBuf },
    #[error(
        "line {line} of the token file {path} is not a valid token: only printable ASCII without spaces"
    )]
    Invalid { path: PathBuf, line: usize },
}

/// What identifies a version of the file: changed when it is rewritten or replaced.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    length: u64,
    modified: Option<SystemTime>,
    changed: i64,
}

struct State {
    tokens: Vec<String>,
    stamp: Option<Stamp>,
    checked: Instant,
}

/// The accepted tokens, kept up to date with their file.
pub struct TokenFile {
    path: PathBuf,
    state: Mutex<State>,
}

impl TokenFile {
    /// Reads `path`; it must hold at least one token.
    pub fn open(path: &Path) -> Result<Arc<TokenFile>, TokenFileError> {
        let (tokens, stamp) = read(path)?;
        Ok(Arc::new(TokenFile {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                tokens,
                stamp,
                checked: Instant::now(),
            }),
        }))
    }

    /// The file's first token: what this host presents to the other hosts of its
    /// cluster (they share the token file).
    pub fn first(&self) -> Option<String> {
        self.state.lock().ok()?.tokens.first().cloned()
    }

    /// Whether `presented` is one of the tokens (compared in constant time; the file is
    /// re-read when it changed).
    pub fn accepts(&self, presented: &str) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        if state.checked.elapsed() >= RECHECK {
            state.checked = Instant::now();
            let current = std::fs::metadata(&self.path).ok().map(|m| stamp_of(&m));
            if current != state.stamp {
                match read(&self.path) {
                    Ok((tokens, stamp)) => {
                        tracing::info!(path = %self.path.display(), tokens = tokens.len(), "token file changed; tokens re-read");
                        state.tokens = tokens;
                        state.stamp = stamp;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "keeping the tokens read before");
                        state.stamp = current;
                    }
                }
            }
        }
        state
            .tokens
            .iter()
            .any(|token| constant_time_eq(token.as_bytes(), presented.as_bytes()))
    }
}

fn stamp_of(metadata: &std::fs::Metadata) -> Stamp {
    Stamp {
        inode: metadata.ino(),
        length: metadata.len(),
        modified: metadata.modified().ok(),
        changed: metadata.ctime_nsec() + metadata.ctime() * 1_000_000_000,
    }
}

fn read(path: &Path) -> Result<(Vec<String>, Option<Stamp>), TokenFileError> {
    let unreadable = |source| TokenFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let stamp = std::fs::metadata(path).map_err(unreadable)?;
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.chars().all(|c| c.is_ascii_graphic()) {
            return Err(TokenFileError::Invalid {
                path: path.to_path_buf(),
                line: index + 1,
            });
        }
        tokens.push(line.to_owned());
    }
    if tokens.is_empty() {
        return Err(TokenFileError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok((tokens, Some(stamp_of(&stamp))))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The interceptor: with no token file, every call passes.
#[derive(Clone)]
pub struct Authenticator(pub Option<Arc<TokenFile>>);

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(tokens) = &self.0 else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        match presented {
            Some(token) if tokens.accepts(token.trim()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the bearer token is not accepted")),
            None => Err(Status::unauthenticated(
                "this backend requires authorization: Bearer <token>",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn tokens_are_one_per_line_without_comments_or_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# rotation in progress\n\n old-one \nnew-one\n").unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert!(file.accepts("old-one"));
        assert!(file.accepts("new-one"));
        assert!(!file.accepts("# rotation in progress"));
        assert!(!file.accepts(""));
        assert!(!file.accepts("new-on"));
    }

    #[test]
    fn an_empty_or_invalid_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# nothing\n\n").unwrap();
        let error = TokenFile::open(&path).err().unwrap().to_string();
        assert!(error.contains("holds no token"), "{error}");
        std::fs::write(&path, "ok\nnot ok\n").unwrap();
        let error = TokenFile::open(&path).err().unwrap().to_string();
        assert!(error.contains("line 2"), "{error}");
        let error = TokenFile::open(&dir.path().join("missing"))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("cannot read"), "{error}");
    }
}
