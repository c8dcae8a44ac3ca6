//! Workflow histories: fetch one from Temporal as JSON, and replay JSON histories against the
//! current workflow code with the SDK's `WorkflowReplayer` (nondeterminism shows up here before
//! it breaks a running order).

use temporalio_client::{Client, WorkflowFetchHistoryOptions, WorkflowHistory};
use temporalio_sdk::workflow_replayer::{WorkflowReplayer, WorkflowReplayerOptions};
use varsel_workflows::{OrderWorkflow, WebhookWorkflow};

/// The full history of an order's workflow (or of any workflow by its id: a webhook pair's), as
/// Temporal's JSON history format.
pub async fn fetch_history_json(client: &Client, order_id: &str) -> anyhow::Result<Vec<u8>> {
    let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
    Ok(handle.fetch_history(WorkflowFetchHistoryOptions::default()).to_json().await?)
}

/// Replays histories (JSON) of order and webhook workflows against the current code; one result
/// per history, in order.
pub async fn replay_json(
    histories: &[(String, Vec<u8>)],
) -> anyhow::Result<Vec<(String, Result<(), String>)>> {
    let replayer = WorkflowReplayer::new(
        WorkflowReplayerOptions::new()
            .register_workflow::<OrderWorkflow>()?
            .register_workflow::<WebhookWorkflow>()?
            .build(),
    )?;
    let mut out = Vec::new();
    for (name, bytes) in histories {
        let history = WorkflowHistory::from_json(bytes)?;
        let result = replayer.replay_workflow(history).await.map_err(|e| format!("{e}"));
        out.push((name.clone(), result));
    }
    Ok(out)
}

/// How one order's history replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// The current code takes the recorded path.
    Clean {
        /// Events in the replayed history.
        events: usize,
    },
    /// The current code diverges from the history; the message says where.
    Nondeterministic(String),
    /// The history could not be fetched (unknown order, Temporal unreachable).
    Unavailable(String),
}

/// Fetches an order's workflow history (its latest run) from Temporal and replays it against the
/// current workflow code. The replayer's future is not `Send`: it runs on a thread and runtime of
/// its own, so that a request handler may await this.
pub async fn replay_order(client: &Client, order_id: &str) -> anyhow::Result<ReplayVerdict> {
    let bytes = match fetch_history_json(client, order_id).await {
        Ok(b) => b,
        Err(e) => return Ok(ReplayVerdict::Unavailable(format!("{e:#}"))),
    };
    let events = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["events"].as_array().map(|a| a.len()))
        .unwrap_or(0);
    let id = order_id.to_owned();
    let result = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(replay_json(&[(id, bytes)]))
    })
    .await??;
    Ok(match result.into_iter().next().map(|(_, r)| r) {
        Some(Ok(())) => ReplayVerdict::Clean { events },
        Some(Err(e)) => ReplayVerdict::Nondeterministic(e),
        None => ReplayVerdict::Unavailable("no replay result".into()),
    })
}

/// Fetches each order's workflow history (its latest run) from Temporal and replays it against
/// the current workflow code.
pub async fn replay_orders(
    client: &Client,
    order_ids: &[String],
) -> anyhow::Result<Vec<(String, ReplayVerdict)>> {
    let mut out = Vec::new();
    for id in order_ids {
        out.push((id.clone(), replay_order(client, id).await?));
    }
    Ok(out)
}

/// Order ids whose workflows match a Temporal visibility query, newest first.
pub async fn find_orders(
    client: &Client,
    failed_only: bool,
    since: Option<chrono::DateTime<chrono::Utc>>,
    limit: usize,
) -> anyhow::Result<Vec<String>> {
    use futures::StreamExt;
    let mut query = format!("WorkflowType = '{}'", varsel_workflows::workflow::ORDER_WORKFLOW_TYPE);
    if failed_only {
        query.push_str(" AND ExecutionStatus IN ('Failed', 'TimedOut', 'Terminated')");
    }
    if let Some(t) = since {
        query.push_str(&format!(
            " AND StartTime >= '{}'",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    let mut stream = client.list_workflows(
        query,
        temporalio_client::WorkflowListOptions::builder().limit(limit).build(),
    );
    let mut ids = Vec::new();
    while let Some(item) = stream.next().await {
        let id = item?.id().to_owned();
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// One run's history, as Temporal's JSON history format.
pub async fn fetch_run_history_json(
    client: &Client,
    order_id: &str,
    run_id: &str,
) -> anyhow::Result<Vec<u8>> {
    let info = temporalio_client::WorkflowExecutionInfo::builder()
        .namespace(client.options().namespace.clone())
        .workflow_id(order_id)
        .run_id(run_id)
        .build();
    let handle: temporalio_client::WorkflowHandle<Client, OrderWorkflow> =
        temporalio_client::WorkflowHandle::new(client.clone(), info);
    Ok(handle.fetch_history(WorkflowFetchHistoryOptions::default()).to_json().await?)
}
