//! A real Prometheus server (Debian's `prometheus` package, which `scripts/test` installs)
//! scraping targets every second, and its HTTP API's instant queries.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::http::http_get;
use crate::{Error, Result, free_port, poll_until};

/// A running Prometheus; dropping it kills it.
pub struct Prometheus {
    child: Child,
    url: String,
    _scratch: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`host:port`) at `/metrics` every second,
    /// sending the bearer token of `token_file` if given; returns once it is ready.
    pub fn start(targets: &[&str], token_file: Option<PathBuf>) -> Result<Prometheus> {
        let binary = which("prometheus").ok_or_else(|| {
            Error::new(
                "prometheus is not installed: scripts/test installs Debian's package (apt-get install prometheus)",
            )
        })?;
        let scratch = tempfile::tempdir()?;
        let targets: Vec<String> = targets.iter().map(|target| format!("'{target}'")).collect();
        let authorization = token_file
            .map(|file| {
                format!(
                    "    authorization:\n      credentials_file: '{}'\n",
                    file.display()
                )
            })
            .unwrap_or_default();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: durabletask-host\n    static_configs:\n      - targets: [{}]\n{authorization}",
            targets.join(", ")
        );
        let config_path = scratch.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let port = free_port()?;
        let log = std::fs::File::create(scratch.path().join("prometheus.log"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        let prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _scratch: scratch,
        };
        poll_until(Duration::from_secs(60), || {
            Ok(http_get(&format!("{}/-/ready", prometheus.url), None)
                .ok()
                .filter(|answer| answer.status == 200))
        })?
        .ok_or_else(|| Error::new("Prometheus did not get ready within 60 s"))?;
        Ok(prometheus)
    }

    /// The value of the instant query `expr` (one series), if it has one.
    pub fn query(&self, expr: &str) -> Result<Option<f64>> {
        let url = format!("{}/api/v1/query?query={}", self.url, encode(expr));
        let answer = http_get(&url, None)?;
        let json: Value = serde_json::from_str(&answer.body)
            .map_err(|error| Error::new(format!("{url}: {error}: {}", answer.body)))?;
        if json["status"] != "success" {
            return Err(Error::new(format!("{url}: {}", answer.body)));
        }
        Ok(json["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|value| value.parse().ok()))
    }

    /// Whether the scrape of every target succeeded last time (`up == 1`).
    pub fn all_up(&self) -> Result<bool> {
        Ok(self.query("min(up)")? == Some(1.0))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where `program` is on the PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    })
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
