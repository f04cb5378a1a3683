//! What the connection code of `durabletask-client` takes from this configuration: the
//! token's source and the TLS trust of `[backend]` (for the worker and the client), and
//! the client's defaults (`durabletask-host client` reads the host's file).
//!
//! The client crate does not know this file; these conversions keep it that way.

use std::path::Path;

use durabletask_client::cli::ConfigDefaults;
use durabletask_client::connection::{TlsTrust, TokenSource};

use super::{BackendMode, BackendSettings, Config};

impl BackendSettings {
    /// `token_env`, `token_file` or `token_command`, whichever is set (the file refuses
    /// more than one). Read on every (re)connect, so that a rotated token is picked up.
    pub fn token_source(&self) -> Option<TokenSource> {
        if let Some(name) = &self.token_env {
            return Some(TokenSource::Env(name.clone()));
        }
        if let Some(path) = &self.token_file {
            return Some(TokenSource::File(path.clone()));
        }
        self.token_command.clone().map(TokenSource::Command)
    }

    /// `ca_file`, `tls_server_name` and the client certificate (in embedded mode the
    /// config derives them from `[embedded]`).
    pub fn tls_trust(&self) -> TlsTrust {
        TlsTrust {
            ca_file: self.ca_file.clone(),
            server_name: self.tls_server_name.clone(),
            identity: self.tls_cert_file.clone().zip(self.tls_key_file.clone()),
        }
    }
}

impl Config {
    /// What `durabletask-host client` uses of this file: the backend's address (the
    /// embedded one's listener, or the remote endpoint), task hub, token, TLS trust and
    /// `[versioning] default_version`.
    pub fn client_defaults(&self) -> ConfigDefaults {
        let endpoint = match self.backend.mode() {
            BackendMode::Embedded => self.embedded.client_endpoint(),
            BackendMode::Remote => self.backend.endpoint.clone(),
        };
        ConfigDefaults {
            endpoint,
            taskhub: self.backend.taskhub.clone(),
            token: self.backend.token_source(),
            tls: self.backend.tls_trust(),
            default_version: self
                .versioning
                .as_ref()
                .and_then(|versioning| versioning.default_version.clone()),
        }
    }
}

/// The client's defaults from the file at `path`; the error names the file.
pub fn load_client_defaults(path: &Path) -> Result<ConfigDefaults, String> {
    Config::load(path)
        .map(|config| config.client_defaults())
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn defaults_of(text: &str) -> (tempfile::TempDir, ConfigDefaults) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("host.toml");
        std::fs::write(&path, text).unwrap();
        let defaults = load_client_defaults(&path).unwrap();
        (dir, defaults)
    }

    #[test]
    fn a_config_file_gives_endpoint_taskhub_and_default_version() {
        let (_dir, defaults) = defaults_of(
            "[backend]\nendpoint = \"http://backend.example:4100\"\ntaskhub = \"orders\"\n\n[versioning]\ndefault_version = \"1.2.3\"\n",
        );
        assert_eq!(defaults.endpoint.to_string(), "http://backend.example:4100");
        assert_eq!(defaults.taskhub, "orders");
        assert_eq!(defaults.default_version.as_deref(), Some("1.2.3"));
        assert_eq!(defaults.token, None);
    }

    #[test]
    fn with_an_embedded_backend_the_client_connects_to_its_listen_address() {
        let (_dir, defaults) =
            defaults_of("[embedded]\nlisten = \"0.0.0.0:4100\"\ninsecure = true\n");
        assert_eq!(defaults.endpoint.to_string(), "http://127.0.0.1:4100");
        assert_eq!(defaults.taskhub, "default");
        assert_eq!(defaults.default_version, None);
    }

    #[test]
    fn with_an_embedded_backend_serving_tls_the_client_uses_https_and_trusts_its_certificate() {
        let (dir, defaults) = defaults_of(
            "[embedded]\nlisten = \"127.0.0.1:4100\"\ntls_cert_file = \"tls/cert.pem\"\ntls_key_file = \"tls/key.pem\"\n",
        );
        assert_eq!(defaults.endpoint.to_string(), "https://127.0.0.1:4100");
        assert_eq!(
            defaults.tls,
            TlsTrust {
                ca_file: Some(dir.path().join("tls/cert.pem")),
                server_name: Some("localhost".to_owned()),
                identity: None,
            }
        );
    }

    #[test]
    fn the_token_source_is_the_one_set() {
        let (dir, defaults) =
            defaults_of("[backend]\nendpoint = \"http://b:1\"\ntoken_file = \"token\"\n");
        assert_eq!(
            defaults.token,
            Some(TokenSource::File(dir.path().join("token")))
        );
        let settings = BackendSettings {
            token_command: Some(vec!["helper".to_owned()]),
            ..BackendSettings::default()
        };
        assert_eq!(
            settings.token_source(),
            Some(TokenSource::Command(vec!["helper".to_owned()]))
        );
        assert_eq!(BackendSettings::default().token_source(), None);
    }

    #[test]
    fn a_file_that_cannot_be_read_is_named() {
        let error = load_client_defaults(Path::new("/nonexistent/host.toml")).unwrap_err();
        assert!(error.contains("/nonexistent/host.toml"), "{error}");
    }
}
