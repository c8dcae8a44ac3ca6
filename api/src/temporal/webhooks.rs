//! The webhook outbox: messages are written with the change they tell of; this loop wakes the
//! workflow of each (endpoint, order) pair with new messages (signal-with-start: a pair whose
//! workflow ended gets a new run), then marks them told. A message written meanwhile is left
//! for the next round, so none is missed; a pair told twice delivers once (its workflow reads
//! what waits, in order).

use super::Dispatcher;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use temporalio_client::{WorkflowIdReusePolicy, WorkflowStartOptions};
use varsel_workflows::webhook::{WebhookWorkflow, WebhookWorkflowInput, webhook_workflow_id};

/// Messages read per round.
const ROUND: u64 = 500;

impl Dispatcher {
    /// Wakes the workflows of pairs with new webhook messages, until the process stops.
    pub async fn run_webhooks(self: Arc<Self>) {
        let interval =
            Duration::from_millis(self.cfg.processing.dispatch_interval_ms.clamp(100, 1_000));
        let mut backlog = false;
        loop {
            if !backlog {
                tokio::time::sleep(interval).await;
            }
            backlog = false;
            let pairs = match self.store.undispatched_webhooks(ROUND).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook dispatcher cannot read its outbox");
                    continue;
                }
            };
            if pairs.is_empty() {
                continue;
            }
            let read: usize = pairs.iter().map(|(_, seqs)| seqs.len()).sum();
            let client = match self.client().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "Temporal unreachable; webhooks wait");
                    continue;
                }
            };
            let policy = self.cfg.webhooks.policy();
            let task_queue = self.cfg.temporal.task_queue.clone();
            let mut told =
                futures::stream::iter(pairs.into_iter().map(|((endpoint, order), seqs)| {
                    let (client, policy, task_queue) =
                        (client.clone(), policy.clone(), task_queue.clone());
                    async move {
                        let id = webhook_workflow_id(&endpoint, &order);
                        let input =
                            WebhookWorkflowInput { endpoint_id: endpoint, order_id: order, policy };
                        let opts = WorkflowStartOptions::new(task_queue, id.clone())
                            .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
                            .build();
                        let sent = tokio::time::timeout(
                            Duration::from_secs(10),
                            client.signal_with_start_workflow(
                                WebhookWorkflow::run,
                                input,
                                WebhookWorkflow::pending,
                                (),
                                opts,
                            ),
                        )
                        .await;
                        (id, sent, seqs)
                    }
                }))
                .buffer_unordered(16);
            let mut all_told = true;
            while let Some((id, sent, seqs)) = told.next().await {
                match sent {
                    Ok(Ok(_)) => {
                        if let Err(e) = self.store.mark_webhooks_dispatched(&seqs).await {
                            tracing::warn!(error = %e, "could not mark webhook messages told; they are told again");
                        }
                    }
                    Ok(Err(e)) => {
                        all_told = false;
                        tracing::warn!(workflow_id = id, error = %e, "could not wake a webhook workflow; retried next round");
                    }
                    Err(_) => {
                        all_told = false;
                        tracing::warn!(
                            workflow_id = id,
                            "waking a webhook workflow timed out; retried next round"
                        );
                    }
                }
            }
            backlog = all_told && read as u64 == ROUND;
        }
    }
}
