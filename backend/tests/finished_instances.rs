//! Regression (issue 10, item 7): every finished instance kept its whole record and
//! payloads in memory (about 1.8 KB for a small one, and its payloads on top: 226 MB of
//! payloads held 491 MB), so a hub of finished work grew the backend without bound, and
//! each listing page filtered and sorted the whole hub. Now memory keeps a summary of a
//! finished instance, its record is read from SQLite when a client asks for it, and
//! listings page from an index.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use durabletask_proto::work_item::Request as WorkRequest;
use durabletask_proto::*;

/// Each instance's input and output (JSON strings of this many bytes).
const PAYLOAD_BYTES: usize = 4096;
const LANES: usize = 8;

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn payload(tag: char) -> String {
    format!("\"{}\"", tag.to_string().repeat(PAYLOAD_BYTES - 2))
}

/// Completes every orchestration it is given, at once, with a 4 KiB output.
fn spawn_completing_worker(mut client: Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut items = client
            .get_work_items(unlimited())
            .await
            .unwrap()
            .into_inner();
        let output = payload('o');
        while let Ok(Some(item)) = items.message().await {
            let Some(WorkRequest::OrchestratorRequest(request)) = item.request else {
                continue;
            };
            let mut client = client.clone();
            let output = output.clone();
            tokio::spawn(async move {
                let actions = vec![finish(1, OrchestrationStatus::Completed, Some(&output))];
                complete(
                    &mut client,
                    &request.instance_id,
                    &item.completion_token,
                    actions,
                )
                .await;
            });
        }
    })
}

/// Starts `count` instances named `<prefix>-<n>` and waits until each has finished.
async fn run_instances(client: &Client, prefix: &str, count: usize) {
    let mut lanes = Vec::new();
    for lane in 0..LANES {
        let mut client = client.clone();
        let prefix = prefix.to_owned();
        lanes.push(tokio::spawn(async move {
            let input = payload('i');
            let ids: Vec<String> = (lane..count)
                .step_by(LANES)
                .map(|n| format!("{prefix}-{n:05}"))
                .collect();
            for id in &ids {
                start(&mut client, id, "o", Some(&input)).await;
            }
            for id in &ids {
                let state = wait_completion(&mut client, id).await;
                assert_eq!(
                    state.orchestration_status,
                    OrchestrationStatus::Completed as i32
                );
            }
        }));
    }
    for lane in lanes {
        lane.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_instances_leave_memory_and_stay_listable_with_their_payloads() {
    let db = TestDb::new();
    let backend = db.start().await;
    let client = common::client(&backend).await;
    let worker = spawn_completing_worker(client.clone());

    // A first round fills SQLite's page cache (16 MB) and warms allocator arenas and
    // connection buffers, so that what grows afterwards is what the engine keeps.
    run_instances(&client, "warm", 1_500).await;
    let before = resident_kib();
    run_instances(&client, "measured", 3_000).await;
    let grown = resident_kib().saturating_sub(before);
    eprintln!("RSS grew by {grown} KiB over 3,000 finished instances");
    // Kept in memory, these 3,000 instances held about 30 MB (8 KiB of payloads and
    // ~1.8 KB of record each); as summaries, a few hundred bytes each.
    assert!(
        grown < 12 * 1024,
        "RSS grew by {grown} KiB over 3,000 finished instances with 8 KiB of payloads each"
    );

    // Everything is still there, payloads included: a full listing, page by page.
    let mut client = client.clone();
    let mut listed = 0;
    let mut continuation_token = None;
    let mut previous: Option<(i64, i32, String)> = None;
    loop {
        let page = client
            .query_instances(QueryInstancesRequest {
                query: Some(InstanceQuery {
                    fetch_inputs_and_outputs: true,
                    max_instance_count: 1_000,
                    continuation_token: continuation_token.take(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        for state in &page.orchestration_state {
            assert_eq!(state.input.as_deref(), Some(payload('i').as_str()));
            assert_eq!(state.output.as_deref(), Some(payload('o').as_str()));
            let created = state.created_timestamp.unwrap();
            let key = (created.seconds, created.nanos, state.instance_id.clone());
            assert!(
                previous.as_ref().is_none_or(|previous| *previous < key),
                "listed in creation order"
            );
            previous = Some(key);
        }
        listed += page.orchestration_state.len();
        match page.continuation_token {
            Some(token) => continuation_token = Some(token),
            None => break,
        }
    }
    assert_eq!(listed, 4_500);

    // Completed ones by completion time, in pages of 500.
    let mut ids = 0;
    let mut last_instance_key = None;
    loop {
        let page = client
            .list_instance_ids(ListInstanceIdsRequest {
                runtime_status: vec![OrchestrationStatus::Completed as i32],
                page_size: 500,
                last_instance_key: last_instance_key.take(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids += page.instance_ids.len();
        match page.last_instance_key {
            Some(key) => last_instance_key = Some(key),
            None => break,
        }
    }
    assert_eq!(ids, 4_500);

    // A finished instance read alone, and its history, come from the store.
    let state = wait_completion(&mut client, "measured-02999").await;
    assert_eq!(state.output.as_deref(), Some(payload('o').as_str()));
    let events = history(&mut client, "measured-02999").await;
    assert_eq!(
        kinds(&events),
        [
            "orchestratorStarted",
            "executionStarted",
            "orchestratorCompleted",
            "executionCompleted"
        ]
    );
    worker.abort();
}
