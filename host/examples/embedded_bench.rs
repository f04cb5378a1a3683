//! Throughput of the host with its embedded backend: the real release binary, the
//! `bench` sample plugin and the shipped durability settings, on one machine.
//!
//! ```text
//! cargo build --release --workspace
//! cargo run --release -p durabletask-host --example embedded_bench -- [N] [K] [F] [L] [ISOLATION]
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
//! and its plugin's child process together (backend, worker and plugin).

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
            "[backend]\nmode = \"embedded\"\n\n[embedded]\nlisten = \"127.0.0.1:{port}\"\ndatabase = \"state.sqlite\"\n\n[worker]\nmax_concurrent_orchestrations = 200\nmax_concurrent_activities = 200\n\n[plugins]\ndir = \"plugins\"\nwatch = false\nisolation = \"{isolation}\"\n\n[logging]\nlevel = \"warn\"\n"
        ),
    )?;
    let mut host = Command::new(release.join("durabletask-host"))
        .arg("--config")
        .arg(work.join("host.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let result = run(&host, port, n, k, f, latency_runs, &isolation).await;
    let _ = host.kill();
    let _ = host.wait();
    let _ = std::fs::remove_dir_all(&work);
    result
}

async fn run(
    host: &Child,
    port: u16,
    n: u64,
    k: u64,
    f: u64,
    latency_runs: u64,
    isolation: &str,
) -> Result<(), BoxError> {
    let endpoint = format!("http://127.0.0.1:{port}");
    let channel = connect(&endpoint).await?;
    latency(&channel, host, latency_runs, k, f, isolation).await?;
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
        let id = format!("bench-{i}");
        let done = client
            .wait_for_instance_completion(GetInstanceRequest {
                instance_id: id.clone(),
                get_inputs_and_outputs: true,
            })
            .await?
            .into_inner();
        let state = done.orchestration_state.ok_or("no state")?;
        if state.orchestration_status != OrchestrationStatus::Completed as i32 {
            return Err(format!("{id} ended {:?}", state.orchestration_status).into());
        }
        let seq = i64::try_from(i + k)?;
        let fi = i64::try_from(f)?;
        let expected = format!(
            r#"{{"seq":{seq},"fan_sum":{}}}"#,
            fi * seq + fi * (fi + 1) / 2
        );
        let output = state.output.unwrap_or_default().replace(' ', "");
        if output != expected {
            return Err(format!("{id}: output {output}, expected {expected}").into());
        }
        Ok(())
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
        "[{isolation}] bench_seq_fan N={n} K={k} F={f}: scheduled in {:.2} s; wall {:.2} s, {:.0} orchestrations/s, {:.0} work items/s ({work_items} items), host CPU {:.2} s ({:.3} ms per orchestration), peak RSS {:.1} MB (host and plugin processes)",
        scheduled.as_secs_f64(),
        wall.as_secs_f64(),
        n as f64 / wall.as_secs_f64(),
        work_items as f64 / wall.as_secs_f64(),
        cpu,
        cpu * 1000.0 / n as f64,
        peak_rss_mb(host.id())?,
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
        let id = format!("latency-{i}");
        let started = Instant::now();
        client
            .start_instance(CreateInstanceRequest {
                instance_id: id.clone(),
                name: "bench_seq_fan".into(),
                input: Some(format!(r#"{{"x": {i}, "k": {k}, "f": {f}}}"#)),
                ..Default::default()
            })
            .await?;
        let done = client
            .wait_for_instance_completion(GetInstanceRequest {
                instance_id: id.clone(),
                get_inputs_and_outputs: false,
            })
            .await?
            .into_inner();
        took.push(started.elapsed());
        let status = done
            .orchestration_state
            .map(|state| state.orchestration_status);
        if status != Some(OrchestrationStatus::Completed as i32) {
            return Err(format!("{id} ended {status:?}").into());
        }
    }
    let cpu = cpu_seconds(host.id())? - cpu_before;
    took.sort();
    let at = |quantile: f64| {
        let index = ((took.len() as f64 * quantile) as usize).min(took.len() - 1);
        took[index].as_secs_f64() * 1000.0
    };
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

/// The peak resident memory of a process and its children, summed, in MB.
fn peak_rss_mb(pid: u32) -> Result<f64, BoxError> {
    let mut total = 0.0;
    for pid in process_tree(pid) {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let kb = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .ok_or("no VmHWM")?;
        total += kb / 1024.0;
    }
    Ok(total)
}
