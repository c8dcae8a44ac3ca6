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
    /// The current code takes the recorded path in every run Temporal keeps.
    Clean {
        /// Events in the replayed histories, all runs together.
        events: usize,
        /// Runs replayed (a continued or redriven order has several).
        runs: usize,
    },
    /// The current code diverges from a run's history; the message names the run and says
    /// where.
    Nondeterministic(String),
    /// The history could not be fetched (unknown order, Temporal unreachable, past retention).
    Unavailable(String),
}

impl ReplayVerdict {
    /// A clean replay's size in words: `37 events in 1 run`.
    pub fn size(events: usize, runs: usize) -> String {
        format!("{events} events in {runs} {}", if runs == 1 { "run" } else { "runs" })
    }
}

/// Fetches every run of an order's workflow that Temporal keeps (a continued order's earlier
/// runs, a redrive's run) and replays each against the current workflow code. The replayer's
/// future is not `Send`: it runs on a thread and runtime of its own, so that a request handler
/// may await this.
pub async fn replay_order(client: &Client, order_id: &str) -> anyhow::Result<ReplayVerdict> {
    let runs = match crate::history::fetch_runs_json(client, order_id).await {
        Ok((runs, _)) if runs.is_empty() => {
            return Ok(ReplayVerdict::Unavailable(
                "Temporal has no history of this order's workflow: it never started, or its \
                 retention period has passed"
                    .into(),
            ));
        }
        Ok((runs, _)) => runs,
        Err(e) => return Ok(ReplayVerdict::Unavailable(format!("{e:#}"))),
    };
    let events: usize = runs
        .iter()
        .filter_map(|(_, bytes)| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .filter_map(|v| v["events"].as_array().map(Vec::len))
        .sum();
    let count = runs.len();
    let results = tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        rt.block_on(replay_json(&runs))
    })
    .await??;
    for (i, (run, result)) in results.into_iter().enumerate() {
        if let Err(e) = result {
            return Ok(ReplayVerdict::Nondeterministic(format!(
                "run {} of {count} ({run}): {e}",
                i + 1
            )));
        }
    }
    Ok(ReplayVerdict::Clean { events, runs: count })
}

/// Fetches each order's workflow history (every run kept) from Temporal and replays it against
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
