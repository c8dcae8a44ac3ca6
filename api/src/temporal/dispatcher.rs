//! The dispatcher: every stored order gets its workflow, started at once from the request that
//! accepted it, or by the outbox loop when Temporal was unreachable or busy.

use super::{connect, policy};
use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;
use temporalio_client::{
    Client, WorkflowIdReusePolicy, WorkflowStartOptions, errors::WorkflowStartError,
};
use tokio::sync::Mutex;
use varsel_activities::Store;
use varsel_workflows::domain::{Channel, NotificationChannel};
use varsel_workflows::order::{Order, OrderType};
use varsel_workflows::workflow::Resume;
use varsel_workflows::{OrderWorkflow, OrderWorkflowInput};

/// Starts order workflows, now or, when Temporal is unreachable, later.
pub struct Dispatcher {
    pub(super) cfg: Arc<Config>,
    pub(super) store: Store,
    client: Mutex<Option<Client>>,
    /// Starts in flight from accepted requests; beyond this the outbox loop takes over.
    starting: Arc<tokio::sync::Semaphore>,
}

/// Workflow starts in flight at once from accepted requests.
const STARTS_IN_FLIGHT: usize = 64;

impl Dispatcher {
    /// A dispatcher that connects on first use.
    pub fn new(cfg: Arc<Config>, store: Store) -> Self {
        Self {
            cfg,
            store,
            client: Mutex::new(None),
            starting: Arc::new(tokio::sync::Semaphore::new(STARTS_IN_FLIGHT)),
        }
    }

    /// The Temporal client, connecting on first use.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = connect(&self.cfg).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Starts one order's workflow. "Already started" is success: the workflow id is the order
    /// id and duplicates are rejected, so a retry can never run an order twice.
    pub async fn start(&self, order_id: &str, send_time_ms: i64) -> anyhow::Result<()> {
        let client = self.client().await?;
        // Cancelled before its workflow started (the start is asynchronous): nothing to run.
        let order = self.store.order(order_id).await?.map(|o| o.order);
        if let Some(o) = &order
            && o.status == varsel_workflows::domain::OrderStatus::Cancelled
        {
            self.store.mark_workflow_started(order_id).await?;
            return Ok(());
        }
        let mut policy = policy(&self.cfg);
        // `sendingTimePolicy: Anytime` (newer API): no waiting for the SMS window.
        if order.as_ref().and_then(|o| o.chain.as_ref()).is_some_and(|c| c.sms_anytime) {
            policy.sms_window = None;
        }
        // An instant message was sent by its request: its run only settles it (reports and
        // time-to-live), starting where a continued run's sending would.
        let resume = order.as_ref().filter(|o| is_instant(o)).map(|o| Resume::Send {
            channel: if o.channel == NotificationChannel::Sms {
                Channel::Sms
            } else {
                Channel::Email
            },
        });
        let input = OrderWorkflowInput {
            order_id: order_id.to_owned(),
            requested_send_time_ms: send_time_ms,
            policy,
            resume,
            condition_inconclusive: false,
        };
        // Composed emails run on a queue of their own: their downloads never hold up others.
        let task_queue = match &order {
            Some(o) => self.cfg.temporal.task_queue_for(o),
            None => self.cfg.temporal.task_queue.clone(),
        };
        let opts = WorkflowStartOptions::new(task_queue, order_id.to_owned())
            .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
            .build();
        let started = tokio::time::timeout(
            Duration::from_secs(10),
            client.start_workflow(OrderWorkflow::run, input, opts),
        )
        .await;
        match started {
            Ok(Ok(_)) | Ok(Err(WorkflowStartError::AlreadyStarted { .. })) => {}
            Ok(Err(e)) => {
                // Drop the cached connection so the next attempt reconnects.
                *self.client.lock().await = None;
                return Err(e.into());
            }
            Err(_) => {
                *self.client.lock().await = None;
                anyhow::bail!("timed out starting the workflow");
            }
        }
        self.store.mark_workflow_started(order_id).await?;
        Ok(())
    }

    /// Starts the workflow of a just-stored order; on failure the order waits for the loop.
    /// Starts a just-accepted order's workflow in the background: the order is stored, so the
    /// request need not wait for Temporal (the accept latency is the database's). Beyond
    /// `STARTS_IN_FLIGHT` concurrent starts, or when the start fails, the outbox loop starts it.
    pub fn start_soon(self: &Arc<Self>, order_id: String, send_time_ms: i64) {
        let Ok(permit) = self.starting.clone().try_acquire_owned() else {
            tracing::debug!(
                order_id,
                "many starts in flight; the dispatcher loop will start this order's workflow"
            );
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.start(&order_id, send_time_ms).await {
                tracing::warn!(order_id, error = %e, "could not start the order's workflow now; it is stored and will be started when Temporal is reachable");
            }
            drop(permit);
        });
    }

    /// Retries orders whose workflow has not been started, until the process stops.
    pub async fn run(self: Arc<Self>) {
        let interval = Duration::from_millis(self.cfg.processing.dispatch_interval_ms.max(100));
        let mut backlog = false;
        loop {
            // A full page means a backlog: go on at once; otherwise wait for the next round.
            if !backlog {
                tokio::time::sleep(interval).await;
            }
            let pending = match self.store.orders_pending_start(200).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher cannot read pending orders");
                    continue;
                }
            };
            // Skip orders accepted a moment ago: their request is still starting them.
            let cutoff =
                chrono::Utc::now() - chrono::Duration::milliseconds(interval.as_millis() as i64);
            // An instant message's request starts it once the provider answered; only when that
            // request is gone (the process died mid-send) does the loop take over.
            let instant_cutoff = chrono::Utc::now() - self.cfg.instant_grace();
            let due: Vec<_> = pending
                .into_iter()
                .map(|o| o.order)
                .filter(|o| o.created < cutoff)
                .filter(|o| !is_instant(o) || o.created < instant_cutoff)
                .collect();
            backlog = due.len() == 200;
            // A backlog (a burst beyond the in-flight starts, or Temporal back after an outage)
            // is started several at a time; the first failure ends this round.
            use futures::StreamExt;
            let mut starts =
                futures::stream::iter(due.into_iter().map(|o| {
                    let this = self.clone();
                    async move {
                        (this.start(&o.id, o.requested_send_time.timestamp_millis()).await, o.id)
                    }
                }))
                .buffer_unordered(16);
            while let Some((result, order_id)) = starts.next().await {
                match result {
                    Ok(()) => tracing::info!(order_id, "started a deferred order workflow"),
                    Err(e) => {
                        tracing::debug!(order_id, error = %e, "Temporal still unreachable");
                        backlog = false;
                        break;
                    }
                }
            }
        }
    }
}

/// An instant message: sent by its request, its workflow only settles it.
fn is_instant(o: &Order) -> bool {
    o.chain.as_ref().is_some_and(|c| c.order_type == OrderType::Instant)
}
