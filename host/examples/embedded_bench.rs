//! Throughput of the host with its embedded backend: the real release binary, the
//! `bench` sample plugin and the shipped durability settings, on one machine.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p durabletask-host --example embedded_bench -- [N] [K] [F] [L] [ISOLATION] [PACED_S]
//! ```
//!
//! Starts `durabletask-host` in embedded mode on a fresh database, with its plugin in
//! `[plugins] isolation = ISOLATION` (`process`, the default, or `in-process`). First the
//! latency: `L` (default 200) `bench_seq_fan` orchestrations one at a time, each started
//! and waited for, with the p50 and p99 of start-to-completion. Then the throughput:
//! `N` orchestrations (`K` activities in sequence, then `F` in parallel; default 2000,
//! 5, 0: 11 work items each, counting every orchestration step and every activity) from
//! 16 concurrent clients, as fast as the backend accepts them, then waits for all of
//! them and checks every output. It prints the wall time from the first start to the
//! last completion, work items per second, and the CPU time and peak memory of the host
//! and its plugin's child process together (backend, worker and plugin). Then, for
//! `PACED_S` seconds (default 5; 0 skips it), orchestrations are started at half the
//! throughput just measured, each waited for, with the p50 and p99 of their
//! start-to-completion time: latency under a steady load. Between the phases, the
//! round-trip time of a client's RPC (`GetInstance`, 500 times) is printed.
//!
//! `BENCH_HOST=<path>` runs another build of the host (an A/B comparison on one machine).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use durabletask_proto::{CreateInstanceRequest, GetInstanceRequest};
use tonic::transport::Channel;

#[path = "support/mod.rs"]
mod support;

use support::{BoxError, connect, for_all, free_port, process_tree, wait_and_check};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let n = args.next().transpose()?.unwrap_or(2000);
    let k = args.next().transpose()?.unwrap_or(5);
    let f = args.next().transpose()?.unwrap_or(0);
    let latency_runs = args.next().transpose()?.unwrap_or(200);
    let isolation = std::env::args()
        .nth(5)
        .unwrap_or_else(|| "process".to_owned());
    let paced_seconds = std::env::args()
        .nth(6)
        .map(|a| a.parse::<u64>())
        .transpose()?
        .unwrap_or(5);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let release = repo.join("target/release");
    let work = tempdir()?;
    std::fs::create_dir_all(work.join("plugins"))?;
    std::fs::copy(
        release.join("libbench.so"),
        work.join("plugins/libbench.so"),
    )?;
    let port = free_port()?;
    std::fs::write(
        work.join("host.toml"),
        format!(
            "[backend]\nmode = \"embedded\"\n\n[embedded]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"state.sqlite\"\n\n[worker]\nmax_concurrent_orchestrations = 200\nmax_concurrent_activities = 200\n\n[plugins]\ndir = \"plugins\"\nwatch = false\nisolation = \"{isolation}\"\n\n[logging]\nlevel = \"warn\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )?;
    // BENCH_HOST: another build of the host, for an A/B comparison on one machine.
    let host_binary = std::env::var_os("BENCH_HOST")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| release.join("durabletask-host"));
    let mut host = Command::new(host_binary)
        .arg("--config")
        .arg(work.join("host.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let workload = Workload { n, k, f };
    let result = run(
        &host,
        port,
        workload,
        latency_runs,
        paced_seconds,
        &isolation,
    )
    .await;
    let _ = host.kill();
    let _ = host.wait();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// N orchestrations of `bench_seq_fan` with K sequential and F parallel activities.
#[derive(Clone, Copy)]
struct Workload {
    n: u64,
    k: u64,
    f: u64,
}

async fn run(
    host: &Child,
    port: u16,
    workload: Workload,
    latency_runs: u64,
    paced_seconds: u64,
    isolation: &str,
) -> Result<(), BoxError> {
    let Workload { n, k, f } = workload;
    let endpoint = format!("http://127.0.0.1:{port}");
    let channel = connect(&endpoint).await?;
    latency(&channel, host, latency_runs, k, f, isolation).await?;
    rpc_round_trip(&channel, isolation).await?;
    let cpu_before = cpu_seconds(host.id())?;
    let started = Instant::now();
    // Start them all (16 clients at a time), then wait for them all: the backend holds
    // the whole queue, as it would under real load.
    for_all(
        std::slice::from_ref(&channel),
        n,
        move |mut client, i| async move {
            client
                .start_instance(CreateInstanceRequest {
                    instance_id: format!("bench-{i}"),
                    name: "bench_seq_fan".into(),
                    input: Some(format!(r#"{{"x": {i}, "k": {k}, "f": {f}}}"#)),
                    ..Default::default()
                })
                .await?;
            Ok(())
        },
    )
    .await?;
    let scheduled = started.elapsed();
    for_all(
        std::slice::from_ref(&channel),
        n,
        move |mut client, i| async move {
            wait_and_check(&mut client, &format!("bench-{i}"), i, k, f).await
        },
    )
    .await?;
    let wall = started.elapsed();
    let cpu = cpu_seconds(host.id())? - cpu_before;
    // Work items per orchestration: its first step, one step per sequential activity
    // result (and at least one for the fan-out's results), and one work item per
    // activity. With F = 0 that is exact: 2K + 1.
    let steps = if f == 0 { k + 1 } else { k + 2 };
    let work_items = n * (steps + k + f);
    println!(
        "[{isolation}] bench_seq_fan N={n} K={k} F={f}: scheduled in {:.2} s; wall {:.2} s, {:.0} orchestrations/s, {:.0} work items/s ({work_items} items), host CPU {:.2} s ({:.3} ms per orchestration), peak RSS {:.1} MB, RSS once all completed {:.1} MB (host and plugin processes)",
        scheduled.as_secs_f64(),
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        work_items as f64 / wall.as_secs_f64(),
        cpu,
        cpu * 1000.0 / n as f64,
        rss_mb(host.id(), "VmHWM:")?,
        rss_mb(host.id(), "VmRSS:")?,
    );
    if paced_seconds > 0 {
        let rate = n as f64 / wall.as_secs_f64() / 2.0;
        paced(&channel, workload, rate, paced_seconds, isolation).await?;
    }
    Ok(())
}

/// Starts `bench_seq_fan` with x = `i` as instance `id`, waits for it and checks its
/// output; returns its start-to-completion time.
async fn run_one(
    client: &mut TaskHubSidecarServiceClient<Channel>,
    id: String,
    i: u64,
    k: u64,
    f: u64,
) -> Result<Duration, BoxError> {
    let started = Instant::now();
    client
        .start_instance(CreateInstanceRequest {
            instance_id: id.clone(),
            name: "bench_seq_fan".into(),
            input: Some(format!(r#"{{"x": {i}, "k": {k}, "f": {f}}}"#)),
            ..Default::default()
        })
        .await?;
    wait_and_check(client, &id, i, k, f).await?;
    Ok(started.elapsed())
}

/// The p-quantile of sorted durations, in milliseconds.
fn quantile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    let index = ((sorted.len() as f64 * quantile) as usize).min(sorted.len() - 1);
    sorted[index].as_secs_f64() * 1000.0
}

/// A client's round trip to the backend: `GetInstance` of an unknown instance, 500
/// times one after another (the first 50 not counted).
async fn rpc_round_trip(channel: &Channel, isolation: &str) -> Result<(), BoxError> {
    let mut client = TaskHubSidecarServiceClient::new(channel.clone());
    let mut took = Vec::new();
    for i in 0..550 {
        let started = Instant::now();
        client
            .get_instance(GetInstanceRequest {
                instance_id: "no-such-instance".into(),
                get_inputs_and_outputs: false,
            })
            .await?;
        if i >= 50 {
            took.push(started.elapsed());
        }
    }
    took.sort();
    println!(
        "[{isolation}] client RPC round trip (GetInstance, 500 calls): p50 {:.3} ms, p99 {:.3} ms",
        quantile_ms(&took, 0.5),
        quantile_ms(&took, 0.99),
    );
    Ok(())
}

/// Starts orchestrations at a steady `rate` per second for `seconds`, each waited for
/// by a task of its own, and prints the quantiles of their start-to-completion time.
async fn paced(
    channel: &Channel,
    workload: Workload,
    rate: f64,
    seconds: u64,
    isolation: &str,
) -> Result<(), BoxError> {
    let Workload { k, f, .. } = workload;
    let count = (rate * seconds as f64).max(1.0) as u64;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::new();
    for i in 0..count {
        ticks.tick().await;
        let mut client = TaskHubSidecarServiceClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            run_one(&mut client, format!("paced-{i}"), i, k, f).await
        }));
    }
    let mut took = Vec::new();
    for task in tasks {
        took.push(task.await??);
    }
    took.sort();
    println!(
        "[{isolation}] latency under load, {count} bench_seq_fan K={k} F={f} started at {rate:.0}/s (half the throughput): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        quantile_ms(&took, 0.5),
        quantile_ms(&took, 0.99),
        quantile_ms(&took, 1.0),
    );
    Ok(())
}

/// Runs `runs` orchestrations one at a time and prints the p50 and p99 of their
/// start-to-completion time, and the CPU they cost.
async fn latency(
    channel: &Channel,
    host: &Child,
    runs: u64,
    k: u64,
    f: u64,
    isolation: &str,
) -> Result<(), BoxError> {
    if runs == 0 {
        return Ok(());
    }
    let mut client = TaskHubSidecarServiceClient::new(channel.clone());
    let mut took = Vec::new();
    let cpu_before = cpu_seconds(host.id())?;
    for i in 0..runs {
        took.push(run_one(&mut client, format!("latency-{i}"), i, k, f).await?);
    }
    let cpu = cpu_seconds(host.id())? - cpu_before;
    took.sort();
    let at = |quantile: f64| quantile_ms(&took, quantile);
    println!(
        "[{isolation}] latency, {runs} bench_seq_fan K={k} F={f} one at a time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; CPU {:.3} ms per orchestration",
        at(0.5),
        at(0.99),
        at(1.0),
        cpu * 1000.0 / runs as f64
    );
    Ok(())
}

fn tempdir() -> Result<PathBuf, BoxError> {
    let dir =
        std::env::temp_dir().join(format!("durabletask-embedded-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// User + system CPU seconds of a process and its children, from /proc.
fn cpu_seconds(pid: u32) -> Result<f64, BoxError> {
    let mut total = 0.0;
    for pid in process_tree(pid) {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .ok_or("bad stat")?
            .1
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
        total += ticks / 100.0;
    }
    Ok(total)
}

/// A memory figure of /proc/<pid>/status (`VmHWM:`, the peak resident memory, or
/// `VmRSS:`, the resident memory now) of a process and its children, summed, in MB.
fn rss_mb(pid: u32, field: &str) -> Result<f64, BoxError> {
    let mut total = 0.0;
    for pid in process_tree(pid) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let kb = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .ok_or("no such field in /proc/<pid>/status")?;
        total += kb / 1024.0;
    }
    Ok(total)
}
