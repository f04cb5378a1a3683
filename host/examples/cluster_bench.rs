//! Throughput of a cluster of hosts sharing one task hub in PostgreSQL, against one host
//! on SQLite: the real release binary, the `bench` sample plugin, on one machine.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p durabletask-host --example cluster_bench -- [N] [K] [F] [HOSTS...]
//! ```
//!
//! `bench/cluster` builds and runs it for `sqlite 1 2 3`. Each `HOSTS` is a
//! configuration, run one after the other:
//!
//! - `sqlite`: one host on a fresh SQLite file (the baseline: `embedded_bench`'s
//!   throughput phase);
//! - a number: that many `durabletask-host` processes on one fresh PostgreSQL database
//!   (created for the run, dropped after it), each with its own `[embedded] listen`
//!   port, its admin listener on 127.0.0.1:0 and its own copy of the `bench` plugin, in
//!   the default `[plugins] isolation = "process"` (so every host has a plugin child
//!   process). The first host is started and waited for until it runs the engine (it
//!   holds the lease) and its `/readyz` answers 200; then the others, each until it
//!   follows the first and is ready. The engine runs on the first host only; the others
//!   forward every call to it, and the plugin work is spread over all of them.
//!
//! The workload: `N` (default 1000) `bench_seq_fan` orchestrations with input
//! `{"x": i, "k": K, "f": F}` (defaults 5 and 0: 11 work items each, counting every
//! orchestration step and every activity), started from 16 concurrent clients spread
//! round-robin over the hosts' listen addresses, then waited for (each client waits on
//! the host it started through), every output checked. Printed per configuration: the
//! wall time from the first start to the last completion, orchestrations and work items
//! per second; the CPU seconds (user + system, from /proc) of every host process and its
//! plugin child process, and of the PostgreSQL cluster's processes (the postmaster found
//! from the `postmaster.pid` of the data directory serving the URL's port, and all its
//! children, with the CPU of children that ended meanwhile) over the same interval; CPU
//! per orchestration; and from `pg_stat_database` of the bench database, the
//! transactions committed and the rows inserted, updated and deleted, per orchestration
//! and per work item. Those counters are read 12 s after the hosts are ready and 12 s
//! after the last completion (PostgreSQL publishes a backend's counters up to 10 s after
//! it went idle; `BENCH_STATS_SETTLE_S` changes it), so they include the idle hosts'
//! background in those seconds: the leader's renewals of its lease and the followers'
//! looks at it, each a third of `takeover_time` (1.7 s) apart. That background is
//! measured for 8 s more once the run is over, and its share of the window is
//! subtracted from the per-orchestration figures (both are printed). The machine's load
//! (`uptime`) is printed before and after each configuration: wall times and CPU depend
//! on it, and the PostgreSQL cluster's CPU counts whatever else uses that cluster
//! meanwhile. At the end, a table of all configurations.
//!
//! The PostgreSQL cluster: `DURABLETASK_TEST_POSTGRES` (a URL whose role may create
//! databases), else the test cluster of `scripts/lib/postgres.sh` (set up if needed).
//! `BENCH_HOST=<path>` runs another build of the host.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use durabletask_proto::CreateInstanceRequest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, CLIENTS, connect, for_all, free_port, process_tree, wait_and_check};
/// How long a host may take to start serving (and, in a cluster, to lead or follow).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long PostgreSQL is given to publish its statistics: a backend flushes them when it
/// goes idle, but at most once a second; one that had flushed less than a second before
/// flushes 10 s after it went idle (PostgreSQL 15's PGSTAT_IDLE_INTERVAL).
const STATS_SETTLE: Duration = Duration::from_secs(12);
/// How long the idle hosts' background traffic (the leases' renewals and polls) is
/// measured after the run, to subtract its share from the run's counts.
const IDLE_WINDOW: Duration = Duration::from_secs(8);
/// What the host logs once the admin listener listens (followed by its URL).
const ADMIN_LISTENING: &str = "admin listener on ";
/// What a host logs once it runs the task hub's engine.
const LEADING: &str = "this host runs the task hub's engine";
/// What a host logs once it forwards calls to the one that runs the engine.
const FOLLOWING: &str = "following the host that runs the task hub's engine";

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let numbers = args.len().min(3);
    let number = |index: usize, default: u64| -> Result<u64, BoxError> {
        match args.get(index).filter(|_| index < numbers) {
            Some(arg) => arg.parse::<u64>().map_err(|error| {
                format!("argument {arg:?}: {error} (usage: cluster_bench [N] [K] [F] [HOSTS...])")
                    .into()
            }),
            None => Ok(default),
        }
    };
    let workload = Workload {
        n: number(0, 1000)?,
        k: number(1, 5)?,
        f: number(2, 0)?,
    };
    let mut configs = Vec::new();
    for arg in args.iter().skip(3) {
        configs.push(match arg.as_str() {
            "sqlite" => Config::Sqlite,
            hosts => match hosts.parse::<usize>() {
                Ok(hosts) if hosts > 0 => Config::Postgres(hosts),
                _ => {
                    return Err(format!(
                        "configuration {arg:?}: expected `sqlite` or a number of hosts"
                    )
                    .into());
                }
            },
        });
    }
    if configs.is_empty() {
        configs = vec![
            Config::Sqlite,
            Config::Postgres(1),
            Config::Postgres(2),
            Config::Postgres(3),
        ];
    }
    let postgres = if configs.iter().any(|c| matches!(c, Config::Postgres(_))) {
        Some(Postgres::find()?)
    } else {
        None
    };
    let mut results = Vec::new();
    for config in configs {
        let result = run_config(config, workload, postgres.as_ref()).await?;
        results.push(result);
    }
    print_table(workload, &results);
    Ok(())
}

/// N orchestrations of `bench_seq_fan` with K sequential and F parallel activities.
#[derive(Clone, Copy)]
struct Workload {
    n: u64,
    k: u64,
    f: u64,
}

impl Workload {
    /// Work items per orchestration: its first step, one step per sequential activity
    /// result (and at least one for the fan-out's results), and one work item per
    /// activity. With F = 0 that is exact: 2K + 1 (as `embedded_bench` counts them).
    fn work_items(&self) -> u64 {
        let steps = if self.f == 0 { self.k + 1 } else { self.k + 2 };
        self.n * (steps + self.k + self.f)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Config {
    Sqlite,
    Postgres(usize),
}

impl Config {
    fn label(&self) -> String {
        match self {
            Config::Sqlite => "sqlite".to_owned(),
            Config::Postgres(1) => "pg x1".to_owned(),
            Config::Postgres(hosts) => format!("pg x{hosts}"),
        }
    }
}

/// What one configuration measured.
struct Measured {
    label: String,
    wall: f64,
    /// CPU seconds of the hosts and their plugin processes.
    hosts_cpu: f64,
    /// CPU seconds of the PostgreSQL cluster (None with SQLite).
    postgres_cpu: Option<f64>,
    /// Deltas of `pg_stat_database` (None with SQLite).
    stats: Option<RunStats>,
}

/// The PostgreSQL cluster the hosts share: its URL and its postmaster's pid (for CPU).
struct Postgres {
    url: String,
    postmaster: Option<u32>,
}

impl Postgres {
    fn find() -> Result<Postgres, BoxError> {
        let url = match std::env::var("DURABLETASK_TEST_POSTGRES") {
            Ok(url) => url,
            Err(_) => {
                let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
                let output = Command::new("bash")
                    .current_dir(&repo)
                    .args([
                        "-c",
                        "set -euo pipefail; source scripts/lib/common.sh; source scripts/lib/postgres.sh; ensure_postgres",
                    ])
                    .stderr(Stdio::inherit())
                    .output()
                    .map_err(|error| format!("cannot run scripts/lib/postgres.sh: {error}"))?;
                if !output.status.success() {
                    return Err(
                        "cannot set up the test PostgreSQL (scripts/lib/postgres.sh)".into(),
                    );
                }
                String::from_utf8_lossy(&output.stdout).trim().to_owned()
            }
        };
        let port = url
            .rsplit_once('@')
            .map_or(url.as_str(), |(_, rest)| rest)
            .split('/')
            .next()
            .and_then(|authority| authority.rsplit_once(':'))
            .and_then(|(_, port)| port.parse::<u16>().ok())
            .unwrap_or(5432);
        let postmaster = postmaster_pid(port);
        if postmaster.is_none() {
            eprintln!(
                "cluster_bench: no postmaster.pid under /var/lib/postgresql for port {port}: PostgreSQL's CPU is not measured"
            );
        }
        Ok(Postgres { url, postmaster })
    }

    /// The URL of database `name` of the same cluster.
    fn database_url(&self, name: &str) -> Result<String, BoxError> {
        let (base, _) = self
            .url
            .rsplit_once('/')
            .ok_or_else(|| format!("the PostgreSQL URL {} names no database", self.url))?;
        Ok(format!("{base}/{name}"))
    }

    fn cpu_seconds(&self) -> Option<f64> {
        self.postmaster.map(|pid| tree_cpu_seconds(pid).total)
    }
}

/// The pid of the postmaster serving `port`: the first line of the `postmaster.pid` (in
/// a data directory under /var/lib/postgresql, Debian's layout) whose fourth line is
/// the port.
fn postmaster_pid(port: u16) -> Option<u32> {
    let versions = std::fs::read_dir("/var/lib/postgresql").ok()?;
    for version in versions.flatten() {
        let Ok(clusters) = std::fs::read_dir(version.path()) else {
            continue;
        };
        for cluster in clusters.flatten() {
            let Ok(text) = std::fs::read_to_string(cluster.path().join("postmaster.pid")) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            if lines.get(3).map(|line| line.trim()) == Some(&port.to_string()) {
                let pid = lines.first()?.trim().parse::<u32>().ok()?;
                if Path::new(&format!("/proc/{pid}")).exists() {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Runs `sql` with psql and returns its unaligned output.
fn psql(url: &str, sql: &str) -> Result<String, BoxError> {
    let output = Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .map_err(|error| format!("cannot run psql: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Counters of `pg_stat_database` for one database (counts; f64 so that the background
/// can be scaled to the run's window).
#[derive(Clone, Copy, Default)]
struct PgStats {
    commits: f64,
    rollbacks: f64,
    inserted: f64,
    updated: f64,
    deleted: f64,
}

impl PgStats {
    fn read(url: &str) -> Result<PgStats, BoxError> {
        let row = psql(
            url,
            "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted \
             FROM pg_stat_database WHERE datname = current_database()",
        )?;
        let values = row
            .split('|')
            .map(|value| value.trim().parse::<f64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("pg_stat_database row {row:?}: {error}"))?;
        let [commits, rollbacks, inserted, updated, deleted] = values[..] else {
            return Err(format!("pg_stat_database row {row:?}").into());
        };
        Ok(PgStats {
            commits,
            rollbacks,
            inserted,
            updated,
            deleted,
        })
    }

    fn map2(self, other: PgStats, f: impl Fn(f64, f64) -> f64) -> PgStats {
        PgStats {
            commits: f(self.commits, other.commits),
            rollbacks: f(self.rollbacks, other.rollbacks),
            inserted: f(self.inserted, other.inserted),
            updated: f(self.updated, other.updated),
            deleted: f(self.deleted, other.deleted),
        }
    }

    fn minus(self, other: PgStats) -> PgStats {
        self.map2(other, |a, b| a - b)
    }

    fn times(self, factor: f64) -> PgStats {
        self.map2(self, |a, _| a * factor)
    }
}

/// What `pg_stat_database` counted between the reads before and after the run, and the
/// part of it that is background (the leases), estimated from an idle window after.
#[derive(Clone, Copy)]
struct RunStats {
    raw: PgStats,
    background: PgStats,
    /// Seconds between the reads.
    window: f64,
}

impl RunStats {
    /// The run's own counts: `raw` less `background`.
    fn net(&self) -> PgStats {
        self.raw.minus(self.background)
    }
}

/// One running host: its process, folder and addresses.
struct Host {
    child: Child,
    dir: PathBuf,
    endpoint: String,
}

impl Host {
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("host.log")).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the host logged `role` and its `/readyz` answers 200.
    async fn wait_ready(&mut self, role: Option<&str>) -> Result<(), BoxError> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "the host in {} exited ({status}) before it was ready:\n{}",
                    self.dir.display(),
                    self.log_tail()
                )
                .into());
            }
            let log = self.log();
            let admin = log.lines().find_map(|line| {
                let url: String = line
                    .split(ADMIN_LISTENING)
                    .nth(1)?
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ".:/[]".contains(*c))
                    .collect();
                Some(url)
            });
            let in_role = role.is_none_or(|role| log.contains(role));
            if let Some(admin) = admin
                && in_role
                && http_status(&admin, "/readyz").await == Some(200)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the host in {} was not ready ({}) within {START_TIMEOUT:?}:\n{}",
                    self.dir.display(),
                    role.unwrap_or("/readyz"),
                    self.log_tail()
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asks it to stop (SIGTERM: the leader gives its lease up), and kills it if it has
    /// not within 15 s.
    async fn stop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id())
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        eprintln!(
            "cluster_bench: the host in {} did not stop within 15 s; killing it",
            self.dir.display()
        );
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The status code of `GET path` on `url` (`http://127.0.0.1:PORT`), or None.
async fn http_status(url: &str, path: &str) -> Option<u16> {
    let address = url.strip_prefix("http://")?.trim_end_matches('/');
    let request = async {
        let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let response = String::from_utf8_lossy(&response);
        response.split_whitespace().nth(1)?.parse::<u16>().ok()
    };
    tokio::time::timeout(Duration::from_secs(2), request)
        .await
        .ok()
        .flatten()
}

/// Starts a host in `dir` with its state in `database`.
fn start_host(dir: &Path, database: &str) -> Result<Host, BoxError> {
    let release = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release");
    std::fs::create_dir_all(dir.join("plugins"))?;
    std::fs::copy(release.join("libbench.so"), dir.join("plugins/libbench.so")).map_err(
        |error| {
            format!(
                "cannot copy {}: {error} (build with `cargo build --release --workspace`)",
                release.join("libbench.so").display()
            )
        },
    )?;
    let port = free_port()?;
    std::fs::write(
        dir.join("host.toml"),
        format!(
            "[backend]\nmode = \"embedded\"\n\n[embedded]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"{database}\"\n\n[worker]\nmax_concurrent_orchestrations = 200\nmax_concurrent_activities = 200\n\n[plugins]\ndir = \"plugins\"\nwatch = false\n\n[logging]\nlevel = \"info\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )?;
    let host_binary = std::env::var_os("BENCH_HOST")
        .map(PathBuf::from)
        .unwrap_or_else(|| release.join("durabletask-host"));
    let log = File::create(dir.join("host.log"))?;
    let child = Command::new(&host_binary)
        .arg("--config")
        .arg(dir.join("host.toml"))
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", host_binary.display()))?;
    Ok(Host {
        child,
        dir: dir.to_owned(),
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

async fn run_config(
    config: Config,
    workload: Workload,
    postgres: Option<&Postgres>,
) -> Result<Measured, BoxError> {
    let label = config.label();
    println!("[{label}] load before: {}", uptime());
    let work = std::env::temp_dir().join(format!(
        "durabletask-cluster-bench-{}-{}",
        std::process::id(),
        label.replace(' ', "")
    ));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let database = match config {
        Config::Sqlite => None,
        Config::Postgres(_) => {
            let postgres = postgres.ok_or("no PostgreSQL")?;
            let name = format!(
                "dt_cluster_bench_{}_{}",
                std::process::id(),
                label.replace(' ', "")
            );
            psql(&postgres.url, &format!("CREATE DATABASE {name}"))?;
            Some((postgres, name))
        }
    };
    let mut hosts = Vec::new();
    let result = match &database {
        None => start_and_measure(config, workload, &work, None, &mut hosts).await,
        Some((postgres, name)) => match postgres.database_url(name) {
            Ok(url) => {
                start_and_measure(config, workload, &work, Some((postgres, &url)), &mut hosts).await
            }
            Err(error) => Err(error),
        },
    };
    // Followers first: stopping the leader first would make one of them take over.
    for host in hosts.iter_mut().rev() {
        host.stop().await;
    }
    if result.is_err() {
        for (index, host) in hosts.iter().enumerate() {
            eprintln!(
                "[{label}] host {} log tail:\n{}",
                index + 1,
                host.log_tail()
            );
        }
    }
    drop(hosts);
    if let Some((postgres, name)) = &database
        && let Err(error) = psql(
            &postgres.url,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
    {
        eprintln!("[{label}] cannot drop the database {name}: {error}");
    }
    let _ = std::fs::remove_dir_all(&work);
    println!("[{label}] load after: {}", uptime());
    result
}

/// Starts the hosts of `config` in `work` (the first, then each other once the one
/// before is ready; with PostgreSQL the first becomes the leader, the others follow
/// it), into `hosts`, then measures the workload on them.
async fn start_and_measure(
    config: Config,
    workload: Workload,
    work: &Path,
    postgres: Option<(&Postgres, &str)>,
    hosts: &mut Vec<Host>,
) -> Result<Measured, BoxError> {
    let count = match config {
        Config::Sqlite => 1,
        Config::Postgres(count) => count,
    };
    let database = postgres.map_or("state.sqlite", |(_, url)| url);
    for index in 0..count {
        hosts.push(start_host(
            &work.join(format!("host{}", index + 1)),
            database,
        )?);
        let role = match (postgres, index) {
            (None, _) => None,
            (Some(_), 0) => Some(LEADING),
            (Some(_), _) => Some(FOLLOWING),
        };
        if let Some(host) = hosts.last_mut() {
            host.wait_ready(role).await?;
        }
    }
    measure(&config.label(), workload, hosts, postgres).await
}

async fn measure(
    label: &str,
    workload: Workload,
    hosts: &[Host],
    postgres: Option<(&Postgres, &str)>,
) -> Result<Measured, BoxError> {
    let Workload { n, k, f } = workload;
    let mut channels = Vec::new();
    for host in hosts {
        channels.push(connect(&host.endpoint).await?);
    }
    let stats_before = match postgres {
        Some((_, url)) => {
            tokio::time::sleep(stats_settle()).await;
            Some((PgStats::read(url)?, Instant::now()))
        }
        None => None,
    };
    let postgres_cpu_before = postgres.and_then(|(postgres, _)| postgres.cpu_seconds());
    let hosts_cpu_before: Vec<TreeCpu> = hosts
        .iter()
        .map(|host| tree_cpu_seconds(host.child.id()))
        .collect();
    let started = Instant::now();
    // Start them all (16 clients at a time, spread over the hosts), then wait for them
    // all: the backend holds the whole queue, as it would under real load.
    for_all(&channels, n, move |mut client, i| async move {
        client
            .start_instance(CreateInstanceRequest {
                instance_id: format!("bench-{i}"),
                name: "bench_seq_fan".into(),
                input: Some(format!(r#"{{"x": {i}, "k": {k}, "f": {f}}}"#)),
                ..Default::default()
            })
            .await?;
        Ok(())
    })
    .await?;
    let scheduled = started.elapsed();
    for_all(&channels, n, move |mut client, i| async move {
        wait_and_check(&mut client, &format!("bench-{i}"), i, k, f).await
    })
    .await?;
    let wall = started.elapsed().as_secs_f64();
    let hosts_cpu: Vec<TreeCpu> = hosts
        .iter()
        .zip(&hosts_cpu_before)
        .map(|(host, before)| tree_cpu_seconds(host.child.id()).minus(before))
        .collect();
    let postgres_cpu = match (postgres, postgres_cpu_before) {
        (Some((postgres, _)), Some(before)) => postgres.cpu_seconds().map(|after| after - before),
        _ => None,
    };
    let stats = match (postgres, stats_before) {
        (Some((_, url)), Some((before, before_at))) => {
            tokio::time::sleep(stats_settle()).await;
            let after = PgStats::read(url)?;
            let after_at = Instant::now();
            // The background: what the idle hosts (their leases) commit meanwhile.
            tokio::time::sleep(IDLE_WINDOW).await;
            let idle = PgStats::read(url)?.minus(after);
            let window = after_at.duration_since(before_at).as_secs_f64();
            Some(RunStats {
                raw: after.minus(before),
                background: idle.times(window / after_at.elapsed().as_secs_f64()),
                window,
            })
        }
        _ => None,
    };
    let work_items = workload.work_items();
    let total_hosts_cpu: f64 = hosts_cpu.iter().map(|cpu| cpu.total).sum();
    let per_orchestration_ms = |seconds: f64| seconds * 1000.0 / n as f64;
    println!(
        "[{label}] bench_seq_fan N={n} K={k} F={f}, {CLIENTS} clients over {} host(s): scheduled in {:.2} s; wall {wall:.2} s, {:.0} orchestrations/s, {:.0} work items/s ({work_items} items), all outputs checked",
        hosts.len(),
        scheduled.as_secs_f64(),
        n as f64 / wall,
        work_items as f64 / wall,
    );
    let per_host: Vec<String> = hosts_cpu
        .iter()
        .enumerate()
        .map(|(index, cpu)| {
            let role = match (postgres, index) {
                (None, _) => "",
                (Some(_), 0) => " (leader)",
                (Some(_), _) => " (follower)",
            };
            format!(
                "host {}{role} {:.2} s (plugin process {:.2} s)",
                index + 1,
                cpu.total,
                cpu.total - cpu.own
            )
        })
        .collect();
    match postgres_cpu {
        Some(postgres_cpu) => println!(
            "[{label}] CPU: hosts+plugins {total_hosts_cpu:.2} s ({:.3} ms/orchestration), PostgreSQL {postgres_cpu:.2} s ({:.3} ms/orchestration), total {:.2} s ({:.3} ms/orchestration); {}",
            per_orchestration_ms(total_hosts_cpu),
            per_orchestration_ms(postgres_cpu),
            total_hosts_cpu + postgres_cpu,
            per_orchestration_ms(total_hosts_cpu + postgres_cpu),
            per_host.join(", "),
        ),
        None => println!(
            "[{label}] CPU: hosts+plugins {total_hosts_cpu:.2} s ({:.3} ms/orchestration){}; {}",
            per_orchestration_ms(total_hosts_cpu),
            if postgres.is_some() {
                ", PostgreSQL not measured"
            } else {
                ""
            },
            per_host.join(", "),
        ),
    }
    if let Some(stats) = stats {
        let net = stats.net();
        let (raw, background) = (stats.raw, stats.background);
        println!(
            "[{label}] PostgreSQL (pg_stat_database over {:.1} s): {:.0} transactions committed, {:.0} rolled back, {:.0} rows inserted, {:.0} updated, {:.0} deleted; of which the idle hosts' background (leases; its rate measured for {} s after) about {:.0} commits, {:.0} inserted, {:.0} updated, {:.0} deleted",
            stats.window,
            raw.commits,
            raw.rollbacks,
            raw.inserted,
            raw.updated,
            raw.deleted,
            IDLE_WINDOW.as_secs(),
            background.commits,
            background.inserted,
            background.updated,
            background.deleted,
        );
        let (n, items) = (n as f64, work_items as f64);
        println!(
            "[{label}] PostgreSQL per orchestration, less the background: {:.2} transactions ({:.3} per work item), rows {:.2} inserted, {:.2} updated, {:.2} deleted (per work item: {:.2}, {:.2}, {:.2})",
            net.commits / n,
            net.commits / items,
            net.inserted / n,
            net.updated / n,
            net.deleted / n,
            net.inserted / items,
            net.updated / items,
            net.deleted / items,
        );
    }
    Ok(Measured {
        label: label.to_owned(),
        wall,
        hosts_cpu: total_hosts_cpu,
        postgres_cpu,
        stats,
    })
}

fn print_table(workload: Workload, results: &[Measured]) {
    let Workload { n, k, f } = workload;
    let items = workload.work_items() as f64;
    let n_f = n as f64;
    println!();
    println!(
        "bench_seq_fan N={n} K={k} F={f} ({} work items), {CLIENTS} clients; CPU in ms per orchestration; PostgreSQL transactions and rows per orchestration, less the background",
        workload.work_items()
    );
    println!(
        "{:<8} {:>7} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8}",
        "config",
        "wall s",
        "orch/s",
        "items/s",
        "cpu host",
        "cpu pg",
        "cpu all",
        "xact/orch",
        "ins/orch",
        "upd/orch",
        "del/orch"
    );
    let or_dash = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "-".to_owned(), |value| format!("{value:.decimals$}"))
    };
    for result in results {
        let host_ms = result.hosts_cpu * 1000.0 / n_f;
        let pg_ms = result.postgres_cpu.map(|cpu| cpu * 1000.0 / n_f);
        let net = result.stats.as_ref().map(RunStats::net);
        let per = |select: fn(&PgStats) -> f64| net.as_ref().map(|s| select(s) / n_f);
        println!(
            "{:<8} {:>7.2} {:>8.0} {:>8.0} {:>8.3} {:>8} {:>8.3} {:>9} {:>8} {:>8} {:>8}",
            result.label,
            result.wall,
            n_f / result.wall,
            items / result.wall,
            host_ms,
            or_dash(pg_ms, 3),
            host_ms + pg_ms.unwrap_or(0.0),
            or_dash(per(|s| s.commits), 2),
            or_dash(per(|s| s.inserted), 2),
            or_dash(per(|s| s.updated), 2),
            or_dash(per(|s| s.deleted), 2),
        );
    }
}

/// [`STATS_SETTLE`], or `BENCH_STATS_SETTLE_S` seconds.
fn stats_settle() -> Duration {
    std::env::var("BENCH_STATS_SETTLE_S")
        .ok()
        .and_then(|seconds| seconds.parse::<f64>().ok())
        .map_or(STATS_SETTLE, Duration::from_secs_f64)
}

/// `uptime`'s line (the load averages), or why not.
fn uptime() -> String {
    match Command::new("uptime").output() {
        Ok(output) => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        Err(error) => format!("(uptime: {error})"),
    }
}

/// CPU seconds of a process tree: `own`, the root's; `total`, every process's, each with
/// the CPU of its children that ended and were waited for (a PostgreSQL backend whose
/// connection closed, counted in the postmaster's).
#[derive(Clone, Copy, Default)]
struct TreeCpu {
    own: f64,
    total: f64,
}

impl TreeCpu {
    fn minus(self, before: &TreeCpu) -> TreeCpu {
        TreeCpu {
            own: self.own - before.own,
            total: self.total - before.total,
        }
    }
}

fn tree_cpu_seconds(pid: u32) -> TreeCpu {
    let mut cpu = TreeCpu::default();
    for member in process_tree(pid) {
        let Some(seconds) = process_cpu_seconds(member) else {
            continue;
        };
        cpu.total += seconds;
        if member == pid {
            cpu.own = seconds;
        }
    }
    cpu
}

/// utime + stime + cutime + cstime of a process, in seconds (100 ticks a second).
fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let mut ticks = 0.0;
    for field in &fields[11..15] {
        ticks += field.parse::<f64>().ok()?;
    }
    Some(ticks / 100.0)
}
