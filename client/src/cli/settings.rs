//! Where the client connects and as whom: the flags, else the host's configuration file,
//! else the built-in defaults.
//!
//! The configuration file is the host's; this crate does not read it. The host hands
//! over what the client needs of it as [`ConfigDefaults`], through the loader given to
//! [`super::run`].

use std::path::{Path, PathBuf};

use super::ClientArgs;
use crate::connection::{TlsTrust, TokenSource};
use crate::{ClientError, ClientOptions, Endpoint};

/// The task hub when neither a flag nor a config file names one.
const DEFAULT_TASKHUB: &str = "default";
/// The config file read when `--config` is not given, if it exists (as the host does).
const DEFAULT_CONFIG: &str = "host.toml";

/// What the host's configuration file says about the backend the client should use.
#[derive(Debug, Clone, Default)]
pub struct ConfigDefaults {
    /// The backend's address: the embedded backend's listener as its clients reach it,
    /// or `[backend] endpoint`.
    pub endpoint: Endpoint,
    /// `[backend] taskhub`.
    pub taskhub: String,
    /// Where the bearer token comes from, if the backend wants one.
    pub token: Option<TokenSource>,
    /// How an https endpoint's certificate is checked.
    pub tls: TlsTrust,
    /// `[versioning] default_version`: the version `start` gives orchestrations started
    /// without `--version`.
    pub default_version: Option<String>,
}

/// The connection flags, checked: each wins over the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionFlags {
    /// `--config`: the host's configuration file (else `host.toml` here, if it exists).
    pub config: Option<PathBuf>,
    /// `--endpoint`.
    pub endpoint: Option<Endpoint>,
    /// `--taskhub`.
    pub taskhub: Option<String>,
    /// `--token-env` or `--token-file`.
    pub token: Option<TokenSource>,
}

impl ConnectionFlags {
    /// The flags of `args`; a bad `--endpoint` is a usage error naming it.
    pub fn from_args(args: &ClientArgs) -> Result<Self, ClientError> {
        let endpoint = args
            .endpoint
            .as_deref()
            .map(Endpoint::parse)
            .transpose()
            .map_err(|reason| ClientError::Usage(format!("invalid --endpoint: {reason}")))?;
        let token = match (&args.token_env, &args.token_file) {
            (Some(name), _) => Some(TokenSource::Env(name.clone())),
            (None, Some(file)) => Some(TokenSource::File(file.clone())),
            (None, None) => None,
        };
        Ok(Self {
            config: args.config.clone(),
            endpoint,
            taskhub: args.taskhub.clone(),
            token,
        })
    }
}

/// Where to connect, and the version `start` gives orchestrations started without
/// `--version`: from the flags, else the config file (`--config`, or `host.toml` here
/// if it exists; `load_defaults` reads it), else the defaults. The token is read here.
pub(super) fn connection_settings(
    flags: ConnectionFlags,
    load_defaults: impl FnOnce(&Path) -> Result<ConfigDefaults, String>,
) -> Result<(ClientOptions, Option<String>), ClientError> {
    let config = match &flags.config {
        Some(path) => Some(load_defaults(path).map_err(ClientError::Usage)?),
        None if Path::new(DEFAULT_CONFIG).is_file() => {
            Some(load_defaults(Path::new(DEFAULT_CONFIG)).map_err(ClientError::Usage)?)
        }
        None => None,
    };
    let token = flags
        .token
        .or_else(|| config.as_ref().and_then(|config| config.token.clone()))
        .map(|source| source.read())
        .transpose()
        .map_err(|error| ClientError::Usage(error.to_string()))?;
    let endpoint = flags
        .endpoint
        .or_else(|| config.as_ref().map(|config| config.endpoint.clone()))
        .unwrap_or_default();
    let taskhub = flags
        .taskhub
        .or_else(|| config.as_ref().map(|config| config.taskhub.clone()))
        .unwrap_or_else(|| DEFAULT_TASKHUB.to_owned());
    let (tls, default_version) = config
        .map(|config| (config.tls, config.default_version))
        .unwrap_or_default();
    Ok((
        ClientOptions {
            endpoint,
            taskhub,
            token,
            tls,
        },
        default_version,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::cli::args::parse_args;

    fn args(flags: &[&str]) -> ConnectionFlags {
        let words: Vec<&str> = flags.iter().copied().chain(["status", "x"]).collect();
        ConnectionFlags::from_args(&parse_args(&words)).unwrap()
    }

    fn defaults() -> ConfigDefaults {
        ConfigDefaults {
            endpoint: Endpoint::parse("https://backend.example:4100").unwrap(),
            taskhub: "orders".to_owned(),
            token: None,
            tls: TlsTrust {
                ca_file: Some(PathBuf::from("/etc/dt/ca.pem")),
                server_name: None,
                identity: None,
            },
            default_version: Some("1.2.3".to_owned()),
        }
    }

    #[test]
    fn a_config_file_gives_endpoint_taskhub_tls_and_default_version_and_flags_win() {
        let load = |path: &Path| {
            assert_eq!(path, Path::new("/etc/dt/host.toml"));
            Ok(defaults())
        };
        let (options, default_version) =
            connection_settings(args(&["--config", "/etc/dt/host.toml"]), load).unwrap();
        assert_eq!(options.endpoint.to_string(), "https://backend.example:4100");
        assert_eq!(options.taskhub, "orders");
        assert_eq!(options.tls, defaults().tls);
        assert_eq!(default_version.as_deref(), Some("1.2.3"));

        let flags = [
            "--config",
            "/etc/dt/host.toml",
            "--endpoint",
            "http://other:1",
            "--taskhub",
            "hub2",
        ];
        let (options, _) = connection_settings(args(&flags), |_| Ok(defaults())).unwrap();
        assert_eq!(
            (
                options.endpoint.to_string().as_str(),
                options.taskhub.as_str()
            ),
            ("http://other:1", "hub2")
        );
    }

    #[test]
    fn without_a_config_file_the_defaults_apply_and_a_bad_file_is_a_usage_error() {
        let unread = |_: &Path| -> Result<ConfigDefaults, String> { panic!("no file to read") };
        let (options, default_version) = connection_settings(args(&[]), unread).unwrap();
        assert_eq!(options.endpoint.to_string(), "http://localhost:4001");
        assert_eq!(options.taskhub, DEFAULT_TASKHUB);
        assert_eq!(options.tls, TlsTrust::default());
        assert_eq!(default_version, None);
        let refused = |path: &Path| Err(format!("{}: cannot read", path.display()));
        let error = connection_settings(args(&["--config", "/nonexistent/host.toml"]), refused)
            .unwrap_err();
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
        assert_eq!(error.to_string(), "/nonexistent/host.toml: cannot read");
    }

    #[test]
    fn a_token_flag_wins_over_the_config_files_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "from-flag\n").unwrap();
        let with_token = || {
            Ok(ConfigDefaults {
                token: Some(TokenSource::Env(
                    "DURABLETASK_NO_SUCH_TOKEN_VARIABLE".to_owned(),
                )),
                ..defaults()
            })
        };
        let flags = ["--config", "host.toml", "--token-file"];
        let flags: Vec<&str> = flags.into_iter().chain(file.to_str()).collect();
        let (options, _) = connection_settings(args(&flags), |_| with_token()).unwrap();
        assert!(options.token.is_some());
        let error =
            connection_settings(args(&["--config", "host.toml"]), |_| with_token()).unwrap_err();
        assert!(matches!(error, ClientError::Usage(_)), "{error}");
        assert!(
            error
                .to_string()
                .contains("DURABLETASK_NO_SUCH_TOKEN_VARIABLE"),
            "{error}"
        );
    }

    #[test]
    fn the_connection_flags_are_checked_once() {
        let flags = args(&["--endpoint", "GRPCS://b:1", "--token-env", "TOKEN"]);
        assert_eq!(flags.endpoint.unwrap().uri(), "https://b:1");
        assert_eq!(flags.token, Some(TokenSource::Env("TOKEN".to_owned())));
        let flags = args(&["--token-file", "t", "--taskhub", "hub"]);
        assert_eq!(flags.token, Some(TokenSource::File(PathBuf::from("t"))));
        assert_eq!(flags.taskhub.as_deref(), Some("hub"));
        for (endpoint, reason) in [("nohost", "no scheme"), ("ftp://x", "unsupported scheme")] {
            let parsed = parse_args(&["--endpoint", endpoint, "status", "x"]);
            let error = ConnectionFlags::from_args(&parsed).unwrap_err();
            assert!(matches!(error, ClientError::Usage(_)), "{error}");
            let message = error.to_string();
            assert!(message.starts_with("invalid --endpoint: "), "{message}");
            assert!(message.contains(reason), "{message}");
        }
    }
}
