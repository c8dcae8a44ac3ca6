//! Workflow histories: fetch one from Temporal as JSON, and replay JSON histories against the
//! current workflow code with the SDK's `WorkflowReplayer` (nondeterminism shows up here before
//! it breaks a running order).

use temporalio_client::{Client, WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
use varsel_workflows::OrderWorkflow;

/// The full history of an order's workflow, as Temporal's JSON history format.
pub async fn fetch_history_json(client: &Client, order_id: &str) -> anyhow::Result<Vec<u8>> {
    let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
    Ok(handle.fetch_history(WorkflowFetchHistoryOptions::default()).to_json().await?)
}

/// Replays histories (JSON) against the current code; one result per history, in order.
pub async fn replay_json(histories: &[(String, Vec<u8>)]) -> anyhow::Result<Vec<(String, Result<(), String>)>> {
    let replayer = WorkflowReplayer::new(WorkflowReplayerOptions::new().register_workflow::<OrderWorkflow>()?.build())?;
    let mut out = Vec::new();
    for (name, bytes) in histories {
        let history = WorkflowHistory::from_json(bytes)?;
        let result = replayer.replay_workflow(history).await.map_err(|e| format!("{e}"));
        out.push((name.clone(), result));
    }
    Ok(out)
}
