//! Regression (issue 10, item 1): listings of instances and entities with large payloads
//! were one message; past the message limit (or a client's 4 MiB default), `list` of the
//! whole hub failed. Pages are now bounded by bytes as well as by count.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use durabletask_proto::*;

#[tokio::test]
async fn a_listing_of_large_instances_pages_by_bytes_and_loses_none() {
    let db = TestDb::new();
    let backend = db.start().await;
    // A client with gRPC's default 4 MiB receive limit, as Microsoft's SDKs have.
    let mut client = common::client(&backend).await;
    let big = format!("\"{}\"", "x".repeat(1024 * 1024));
    for i in 0..12 {
        start(
            &mut client,
            &format!("big-{i:02}"),
            "orchestrator",
            Some(&big),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client
            .query_instances(QueryInstancesRequest {
                query: Some(InstanceQuery {
                    fetch_inputs_and_outputs: true,
                    continuation_token: token.clone(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        for state in page.orchestration_state {
            assert_eq!(state.input.as_deref(), Some(big.as_str()));
            seen.push(state.instance_id);
        }
        token = page.continuation_token;
        if token.is_none() {
            break;
        }
    }
    let expected: Vec<String> = (0..12).map(|i| format!("big-{i:02}")).collect();
    seen.sort();
    assert_eq!(seen, expected);
    assert!(pages >= 6, "12 MiB of inputs came in {pages} pages");
}
