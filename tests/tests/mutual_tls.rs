//! A worker host reaching its backend through a TLS terminator that asks for client
//! certificates from a private CA (nginx from Debian's package, installed by
//! `scripts/test`, proxying gRPC to a host that serves its embedded backend in
//! plaintext): with `[backend] tls_cert_file` and `tls_key_file` it serves; without
//! them it is refused, stays not ready, and says why at WARN.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Child, Command, Stdio};

use durabletask_e2e::prometheus::which;
use durabletask_e2e::{
    Client, Host, HostConfig, PluginFile, Result, WAIT, assert_hello_cities_completed, free_port,
    http_get, poll_until,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// A private CA and the certificates it signed, as PEM files in `dir`: `ca.pem`,
/// `server.pem`/`server.key` (for localhost) and `client.pem`/`client.key`.
fn issue_certificates(dir: &Path) -> Result<()> {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "durabletask test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    for (name, names, usage) in [
        (
            "server",
            vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        (
            "client",
            vec!["worker".to_owned()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![usage];
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), certificate.pem())?;
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem())?;
    }
    Ok(())
}

/// nginx terminating TLS on `port`, requiring a client certificate of `ca.pem`, and
/// passing gRPC on to `backend_port`: one process (`master_process off`), so that
/// killing it when dropped leaves no worker behind.
struct Terminator(Child);

impl Terminator {
    fn start(dir: &Path, port: u16, backend_port: u16) -> Result<Terminator> {
        let nginx = which("nginx")
            .or_else(|| Some(Path::new("/usr/sbin/nginx").to_path_buf()).filter(|p| p.exists()))
            .expect("nginx is installed (scripts/test installs Debian's package)");
        let d = dir.display();
        // Run by root, nginx would switch its worker to `nobody`, who cannot read the
        // scratch folder.
        let user = if std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self")?) == 0 {
            "user root;"
        } else {
            ""
        };
        let config = format!(
            "{user}\nmaster_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\nevents {{ worker_connections 64; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  server {{\n    listen 127.0.0.1:{port} ssl http2;\n    ssl_certificate {d}/server.pem;\n    ssl_certificate_key {d}/server.key;\n    ssl_client_certificate {d}/ca.pem;\n    ssl_verify_client on;\n    client_max_body_size 0;\n    location / {{\n      grpc_pass grpc://127.0.0.1:{backend_port};\n      grpc_read_timeout 1h;\n      grpc_send_timeout 1h;\n    }}\n  }}\n}}\n"
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, config)?;
        let child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // Ready once it accepts connections.
        poll_until(WAIT, || {
            Ok(std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop))
        })?
        .ok_or_else(|| durabletask_e2e::Error::new("nginx did not listen"))?;
        Ok(Terminator(child))
    }
}

impl Drop for Terminator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A worker host's config: the hello plugin, the backend through the terminator, and
/// `identity` lines (or none).
fn worker_config(dir: &Path, port: u16, identity: bool) -> String {
    let d = dir.display();
    let identity = if identity {
        format!("tls_cert_file = \"{d}/client.pem\"\ntls_key_file = \"{d}/client.key\"\n")
    } else {
        String::new()
    };
    format!(
        "[backend]\nendpoint = \"https://localhost:{port}\"\nca_file = \"{d}/ca.pem\"\n{identity}\n[worker]\nwork_item_filters = true\n\n[plugins]\ndir = \"plugins\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n"
    )
}

#[test]
fn a_worker_with_a_client_certificate_serves_through_the_terminator() -> Result<()> {
    let certificates = tempfile::tempdir()?;
    issue_certificates(certificates.path())?;
    let state = tempfile::tempdir()?;
    let backend_port = free_port()?;
    let mut backend = Host::start(&HostConfig::backend_only(
        backend_port,
        &state.path().join("backend.sqlite"),
    ))?;
    let client = Client::new(backend.embedded_endpoint()?)?;
    let port = free_port()?;
    let _terminator = Terminator::start(certificates.path(), port, backend_port)?;

    let hello = PluginFile::built("hello")?;
    let worker = Host::start_with_config_text(
        &worker_config(certificates.path(), port, true),
        std::slice::from_ref(&hello),
    )?;
    let state = client.start_and_wait("hello_cities", None, WAIT)?;
    assert_hello_cities_completed(&state, &worker);

    // Without a client certificate the terminator refuses it: not ready, and a WARN line
    // with the cause.
    let mut refused =
        Host::start_with_config_text(&worker_config(certificates.path(), port, false), &[hello])?;
    let admin = refused.admin_url()?;
    let warning = refused.wait_for_log("the backend refused the worker", WAIT)?;
    assert!(warning.contains(" WARN "), "{warning}");
    // nginx answers a request without a client certificate with 400; the line says what
    // that usually means.
    assert!(warning.contains("400 Bad Request"), "{warning}");
    assert!(warning.contains("TLS terminator"), "{warning}");
    let readiness = http_get(&format!("{admin}/readyz"), None)?;
    assert_eq!(readiness.status, 503, "{}", readiness.body);
    Ok(())
}
