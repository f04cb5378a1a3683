//! Regression: a work-item stream whose receiver is gone before the engine has processed
//! its `CloseStream` used to make `Hub::pump` spin forever (lease_to -> send fails ->
//! release -> wake -> the same dead stream pops the same item again ...). A failed send
//! now closes the stream at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use durabletask_proto::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_the_only_worker_under_load_keeps_the_engine_answering() {
    for round in 0..5 {
        let db = TestDb::new();
        let backend = db.start().await;
        let mut worker_client = common::client(&backend).await;
        // The only worker: its stream is the one that dies.
        let worker = Worker::open(&mut worker_client, unlimited()).await;

        // Many calls queued in the engine at once (more than MAX_BATCH = 1024), so the
        // CloseStream of the dropped stream lands behind a full batch.
        let mut tasks = Vec::new();
        for c in 0..20 {
            let client = common::client(&backend).await;
            for i in 0..250 {
                let mut client = client.clone();
                tasks.push(tokio::spawn(async move {
                    client
                        .start_instance(CreateInstanceRequest {
                            instance_id: format!("r{round}-c{c}-{i}"),
                            name: "o".into(),
                            ..Default::default()
                        })
                        .await
                        .map(|_| ())
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(worker);
        drop(worker_client);

        let all = async {
            for task in tasks {
                task.await.unwrap().unwrap();
            }
        };
        if tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .is_err()
        {
            // The engine thread is spinning: dropping the backend would join it forever.
            std::mem::forget(backend);
            panic!("round {round}: the engine stopped answering after the only worker went away");
        }
        // Still alive: a fresh call is answered.
        let mut probe = common::client(&backend).await;
        let alive = tokio::time::timeout(Duration::from_secs(10), async {
            probe
                .get_instance(GetInstanceRequest {
                    instance_id: format!("r{round}-c0-0"),
                    get_inputs_and_outputs: false,
                })
                .await
                .unwrap()
        })
        .await;
        if alive.is_err() {
            std::mem::forget(backend);
            panic!("round {round}: the engine stopped answering after the only worker went away");
        }
        backend.shutdown().await;
    }
}
