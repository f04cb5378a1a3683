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
use std::sync::Arc;
use std::time::{Duration, Instant};

use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use durabletask_proto::{CreateInstanceRequest, GetInstanceRequest, OrchestrationStatus};
use tonic::transport::Channel;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const CLIENTS: usize = 16;

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
    for_all(&channel, n, move |mut client, i| async move {
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
    for_all(&channel, n, move |mut client, i| async move {
        wait_and_check(&mut client, &format!("bench-{i}"), i, k, f).await
    })
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

/// `bench_seq_fan`'s output for input x = `i`, as the plugin's serde_json writes it.
fn expected_output(i: u64, k: u64, f: u64) -> Result<String, BoxError> {
    let seq = i64::try_from(i + k)?;
    let fi = i64::try_from(f)?;
    Ok(format!(
        r#"{{"seq":{seq},"fan_sum":{}}}"#,
        fi * seq + fi * (fi + 1) / 2
    ))
}

fn check_output(id: &str, output: Option<String>, expected: &str) -> Result<(), BoxError> {
    let output = output.unwrap_or_default().replace(' ', "");
    if output != expected {
        return Err(format!("{id}: output {output}, expected {expected}").into());
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

/// Waits for `bench_seq_fan` instance `id` (x = `i`) and checks that it completed with
/// the expected output.
async fn wait_and_check(
    client: &mut TaskHubSidecarServiceClient<Channel>,
    id: &str,
    i: u64,
    k: u64,
    f: u64,
) -> Result<(), BoxError> {
    let done = client
        .wait_for_instance_completion(GetInstanceRequest {
            instance_id: id.to_owned(),
            get_inputs_and_outputs: true,
        })
        .await?
        .into_inner();
    let state = done.orchestration_state.ok_or("no state")?;
    if state.orchestration_status != OrchestrationStatus::Completed as i32 {
        return Err(format!("{id} ended {:?}", state.orchestration_status).into());
    }
    check_output(id, state.output, &expected_output(i, k, f)?)
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

/// Runs `call(client, i)` for every `i` in `0..n`, from [`CLIENTS`] concurrent clients.
async fn for_all<F, Fut>(channel: &Channel, n: u64, call: F) -> Result<(), BoxError>
where
    F: Fn(TaskHubSidecarServiceClient<Channel>, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = TaskHubSidecarServiceClient::new(channel.clone());
        let next = Arc::clone(&next);
        let call = call.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), BoxError>(());
                }
                call(client.clone(), i).await?;
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

async fn connect(endpoint: &str) -> Result<Channel, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Channel::from_shared(endpoint.to_owned())?.connect().await {
            Ok(channel) => return Ok(channel),
            Err(error) if Instant::now() > deadline => return Err(error.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn tempdir() -> Result<PathBuf, BoxError> {
    let dir =
        std::env::temp_dir().join(format!("durabletask-embedded-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The process and its children (the plugins' processes), from /proc.
fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let mut index = 0;
    while index < tree.len() {
        let parent = tree[index];
        index += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            tree.extend(
                children
                    .split_whitespace()
                    .filter_map(|child| child.parse::<u32>().ok()),
            );
        }
    }
    tree
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
