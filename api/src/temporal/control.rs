//! What the API asks of an order's running workflow: a redrive run, a cancel, the signal that
//! its reports are final.

use std::sync::Arc;
use std::time::Duration;
use temporalio_client::{
    WorkflowCancelOptions, WorkflowIdReusePolicy, WorkflowSignalOptions, WorkflowStartOptions,
    errors::WorkflowStartError,
};
use varsel_workflows::{OrderWorkflow, OrderWorkflowInput};

use super::{Dispatcher, policy};

impl Dispatcher {
    /// Starts a redrive run of a finished order: its notifications that failed without reaching
    /// a provider are sent again; nothing sent or delivered is. Refused while the order's
    /// workflow runs, when the order is not completed, or when nothing qualifies.
    pub async fn redrive(&self, order_id: &str) -> Result<u64, RedriveRefusal> {
        let order = self
            .store
            .order(order_id)
            .await
            .map_err(|e| RedriveRefusal::Unavailable(e.to_string()))?
            .ok_or(RedriveRefusal::NotFound)?
            .order;
        let client = self.client().await.map_err(|e| RedriveRefusal::Unavailable(e.to_string()))?;
        let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
        let is_running = || async {
            handle
                .describe(Default::default())
                .await
                .map(|d| d.status() == temporalio_client::WorkflowExecutionStatus::Running)
                .unwrap_or(false)
        };
        let mut running = is_running().await;
        if running && order.status == varsel_workflows::domain::OrderStatus::Completed {
            // The order is completed and its workflow is returning: give it a moment to close.
            let _ =
                tokio::time::timeout(Duration::from_secs(5), handle.get_result(Default::default()))
                    .await;
            running = is_running().await;
        }
        if running || order.status != varsel_workflows::domain::OrderStatus::Completed {
            return Err(RedriveRefusal::Conflict(format!(
                "The order is {} and its workflow is {}: only completed orders can be redriven.",
                order.status,
                if running { "still running" } else { "closed" }
            )));
        }
        let n = self
            .store
            .count_redrivable(order_id)
            .await
            .map_err(|e| RedriveRefusal::Unavailable(e.to_string()))?;
        if n == 0 {
            return Err(RedriveRefusal::Conflict("No notification of the order failed before reaching a provider; nothing to redrive.".into()));
        }
        let input = OrderWorkflowInput {
            order_id: order_id.to_owned(),
            requested_send_time_ms: order.requested_send_time.timestamp_millis(),
            policy: policy(&self.cfg),
            resume: Some(varsel_workflows::workflow::Resume::Redrive),
            condition_inconclusive: false,
        };
        // The same workflow id, as a new run: the order's timeline shows it after the first.
        let opts = WorkflowStartOptions::new(
            self.cfg.temporal.task_queue_for(&order),
            order_id.to_owned(),
        )
        .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
        .build();
        match client.start_workflow(OrderWorkflow::run, input, opts).await {
            Ok(_) => {
                tracing::info!(order_id, notifications = n, "redrive started");
                Ok(n)
            }
            Err(WorkflowStartError::AlreadyStarted { .. }) => {
                Err(RedriveRefusal::Conflict("A run of the order started meanwhile.".into()))
            }
            Err(e) => Err(RedriveRefusal::Unavailable(e.to_string())),
        }
    }

    /// Asks an order's workflow to stop (best effort: a workflow that misses this finds its
    /// order cancelled in the store and sends nothing).
    pub async fn cancel(&self, order_id: &str) {
        let result = async {
            let client = self.client().await?;
            let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
            tokio::time::timeout(
                Duration::from_secs(10),
                handle.cancel(
                    WorkflowCancelOptions::builder()
                        .reason("order cancelled by its creator")
                        .build(),
                ),
            )
            .await??;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(order_id, error = %e, "could not cancel the order's workflow now; it will stop at its send time");
        }
    }

    /// Tells an order's workflow that every notification may be final (best effort: the
    /// time-to-live timer settles the order if this is lost).
    pub async fn signal_reports_final(&self, order_id: &str) {
        let result = async {
            let client = self.client().await?;
            let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
            tokio::time::timeout(
                Duration::from_secs(10),
                handle.signal(OrderWorkflow::reports_final, (), WorkflowSignalOptions::default()),
            )
            .await??;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(order_id, error = %e, "could not signal the order's workflow; it settles at the next time-to-live");
        }
    }
}

/// Why a redrive did not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedriveRefusal {
    /// No such order.
    #[error("no such order")]
    NotFound,
    /// The order is running, not completed, or has nothing to redrive.
    #[error("{0}")]
    Conflict(String),
    /// The database or Temporal is unreachable.
    #[error("{0}")]
    Unavailable(String),
}

/// Order events delivered as workflow signals.
pub struct SignalEvents(pub Arc<Dispatcher>);

#[async_trait::async_trait]
impl varsel_activities::events::OrderEvents for SignalEvents {
    async fn reports_final(&self, order_id: &str) {
        self.0.signal_reports_final(order_id).await;
    }
}
