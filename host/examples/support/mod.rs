//! What the host's benchmarks (`embedded_bench`, `cluster_bench`) share: the `bench`
//! plugin's expected output, concurrent clients, connecting, ports and the processes'
//! CPU from /proc. Included by each with `#[path = "support/mod.rs"] mod support;`.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use durabletask_proto::task_hub_sidecar_service_client::TaskHubSidecarServiceClient;
use durabletask_proto::{GetInstanceRequest, OrchestrationStatus};
use tonic::transport::Channel;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How many clients start and wait for orchestrations at once.
pub const CLIENTS: usize = 16;

/// `bench_seq_fan`'s output for input x = `i`, as the plugin's serde_json writes it.
pub fn expected_output(i: u64, k: u64, f: u64) -> Result<String, BoxError> {
    let seq = i64::try_from(i + k)?;
    let fi = i64::try_from(f)?;
    Ok(format!(
        r#"{{"seq":{seq},"fan_sum":{}}}"#,
        fi * seq + fi * (fi + 1) / 2
    ))
}

/// Checks an instance's output against [`expected_output`]'s.
pub fn check_output(id: &str, output: Option<String>, expected: &str) -> Result<(), BoxError> {
    let output = output.unwrap_or_default().replace(' ', "");
    if output != expected {
        return Err(format!("{id}: output {output}, expected {expected}").into());
    }
    Ok(())
}

/// Waits for `bench_seq_fan` instance `id` (x = `i`) and checks that it completed with
/// the expected output.
pub async fn wait_and_check(
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

/// Runs `call(client, i)` for every `i` in `0..n`, from [`CLIENTS`] concurrent clients,
/// client `c` on `channels[c % channels.len()]`.
pub async fn for_all<F, Fut>(channels: &[Channel], n: u64, call: F) -> Result<(), BoxError>
where
    F: Fn(TaskHubSidecarServiceClient<Channel>, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = TaskHubSidecarServiceClient::new(channels[c % channels.len()].clone());
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

/// A channel to `endpoint`, retried for up to 30 s while the host starts.
pub async fn connect(endpoint: &str) -> Result<Channel, BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match Channel::from_shared(endpoint.to_owned())?.connect().await {
            Ok(channel) => return Ok(channel),
            Err(error) if Instant::now() > deadline => return Err(error.into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

pub fn free_port() -> Result<u16, BoxError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The process and its children (plugins' processes, PostgreSQL's backends), from /proc.
pub fn process_tree(pid: u32) -> Vec<u32> {
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
