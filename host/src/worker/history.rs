//! Large histories: a backend may send an orchestration work item without its past
//! events and with `requiresHistoryStreaming` set (the Durable Task Scheduler does so
//! for large histories, and so does the embedded backend). The worker then reads the
//! history with `StreamInstanceHistory`, chunk by chunk, before the step runs: the
//! plugin always gets a complete `OrchestratorRequest`.

use std::time::Duration;

use durabletask_proto::{OrchestratorRequest, StreamInstanceHistoryRequest};

use super::completion::CurrentClient;

/// A history that takes longer than this to read is given up (the item is abandoned
/// and redelivered).
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Fills in the past events of `request` when the backend asked for them to be streamed.
/// An error says why they could not be read; the work item should then be abandoned.
pub async fn complete_request(
    client: &CurrentClient,
    request: &mut OrchestratorRequest,
) -> Result<(), String> {
    if !request.requires_history_streaming {
        return Ok(());
    }
    let Some(client) = client.borrow().clone() else {
        return Err("not connected to the backend".to_owned());
    };
    let fetch = client.instance_history(StreamInstanceHistoryRequest {
        instance_id: request.instance_id.clone(),
        execution_id: request.execution_id.clone(),
        for_work_item_processing: true,
    });
    let events = match tokio::time::timeout(FETCH_TIMEOUT, fetch).await {
        Ok(Ok(events)) => events,
        Ok(Err(status)) => {
            return Err(format!(
                "StreamInstanceHistory failed: {:?}: {}",
                status.code(),
                status.message()
            ));
        }
        Err(_) => return Err(format!("StreamInstanceHistory took over {FETCH_TIMEOUT:?}")),
    };
    tracing::debug!(
        instance_id = %request.instance_id,
        events = events.len(),
        "read a streamed history"
    );
    request.past_events = events;
    request.requires_history_streaming = false;
    Ok(())
}
