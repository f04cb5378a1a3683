//! The embedded backend (`backend.mode = "embedded"`): the host serves its own Durable
//! Task backend, with its state in a SQLite file, on `[embedded] listen`. The host's
//! worker, the project's client and any other Durable Task SDK connect to it there.

use durabletask_backend::{BackendOptions, EmbeddedBackend, TlsFiles};

use crate::config::{BackendSettings, EmbeddedSettings, Endpoint};

/// Opens the database (creating its folder if needed), recovers the state it holds and
/// starts serving. The error names what failed.
pub async fn start(settings: &EmbeddedSettings) -> Result<EmbeddedBackend, String> {
    if let Some(folder) = settings.database.parent()
        && !folder.as_os_str().is_empty()
    {
        std::fs::create_dir_all(folder).map_err(|error| {
            format!(
                "cannot create the folder of the embedded backend's database {}: {error}",
                settings.database.display()
            )
        })?;
    }
    let backend = EmbeddedBackend::start(BackendOptions {
        max_payload_bytes: settings.max_payload_bytes,
        history_streaming_bytes: settings.history_streaming_bytes,
        max_history_events: settings.max_history_events,
        token_file: settings.token_file.clone(),
        tls: match (&settings.tls_cert_file, &settings.tls_key_file) {
            (Some(certificate), Some(key)) => Some(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
            }),
            _ => None,
        },
        ..BackendOptions::new(settings.database.clone(), settings.listen)
    })
    .await
    .map_err(|error| {
        format!(
            "cannot start the embedded backend (database {}, listen {}): {error}",
            settings.database.display(),
            settings.listen
        )
    })?;
    tracing::info!(
        database = %settings.database.display(),
        tls = settings.serves_tls(),
        "embedded backend listening on {}",
        backend.local_addr()
    );
    Ok(backend)
}

/// The backend settings the worker uses to reach the embedded backend: its actual
/// address (the configured port may be 0), over https when it serves TLS, the configured
/// task hub, the first token of `[embedded] token_file` if it is set, and its certificate
/// as the root to trust (the config puts these in `backend.token_file`, `ca_file` and
/// `tls_server_name`).
pub fn worker_settings(
    backend: &EmbeddedBackend,
    embedded: &EmbeddedSettings,
    configured: &BackendSettings,
) -> BackendSettings {
    let mut settings = configured.clone();
    settings.endpoint = Endpoint::to_listener(backend.local_addr(), embedded.serves_tls());
    settings.token_env = None;
    settings
}
