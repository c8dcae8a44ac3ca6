//! The order workflow: one durable execution per order, workflow id = order id.
//!
//! Determinism: this code reads time only through `ctx.workflow_time()`, does no I/O, and takes
//! every tunable from its input (which is recorded in history), so a replay takes the same path.
//! The workflow type name `varsel.order` and the activity names are a contract with every running
//! order: change behaviour only behind `ctx.patched(..)`.

use crate::activities::{ConditionOutcome, FinishOrder, GenerateBatch, OrderActivities, SendBatch};
use crate::domain::{Channel, OrderStatus};
use serde::{Deserialize, Serialize};
use std::time::{Duration, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ContinueAsNewOptions, SyncWorkflowContext, WorkflowContext, WorkflowResult,
};

/// The workflow type name, pinned.
pub const ORDER_WORKFLOW_TYPE: &str = "varsel.order";

/// How long a generate or send batch may go without a heartbeat before Temporal gives its
/// attempt up and retries it (the activities heartbeat every 2 s).
pub const BATCH_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// Tunables of one order's run, fixed when the order is accepted and recorded in its history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkflowPolicy {
    /// Recipients per generate activity.
    pub generate_batch: u32,
    /// Notifications per send activity.
    pub send_batch: u32,
    /// Attempts at the condition endpoint before the order is sent anyway.
    pub condition_attempts: u32,
    /// First retry delay for the condition endpoint, in milliseconds (doubles each attempt).
    pub condition_retry_ms: u64,
    /// Upper bound of the retry delay of store and provider activities, in milliseconds.
    pub max_retry_interval_ms: u64,
    /// Batches one run may execute before it continues as new, so a history stays far below
    /// Temporal's 51,200-event limit however many recipients an order has.
    #[serde(default = "default_max_batches_per_run")]
    pub max_batches_per_run: u32,
    /// The daily window SMS are sent in; `None` sends at any time. Orders recorded before this
    /// field existed decode as `None` and replay unchanged.
    #[serde(default)]
    pub sms_window: Option<crate::sms::SendingWindow>,
}

fn default_max_batches_per_run() -> u32 {
    500
}

impl Default for WorkflowPolicy {
    fn default() -> Self {
        Self {
            generate_batch: 500,
            send_batch: 200,
            condition_attempts: 3,
            condition_retry_ms: 60_000,
            max_retry_interval_ms: 60_000,
            max_batches_per_run: default_max_batches_per_run(),
            sms_window: None,
        }
    }
}

/// Input of the order workflow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderWorkflowInput {
    /// The order id (also the workflow id).
    pub order_id: String,
    /// The requested send time, Unix milliseconds (UTC).
    pub requested_send_time_ms: i64,
    /// Tunables.
    pub policy: WorkflowPolicy,
    /// Where a continued run picks up; `None` for the first run.
    #[serde(default)]
    pub resume: Option<Resume>,
    /// Carried across continued runs: the condition endpoint could not be read.
    #[serde(default)]
    pub condition_inconclusive: bool,
}

/// The point a continued run of an order resumes at.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum Resume {
    /// Generating notifications, at this recipient index.
    Generate {
        /// First recipient index still to do.
        from_index: u32,
    },
    /// Sending, on this channel (and the ones after it).
    Send {
        /// The channel still being sent.
        channel: Channel,
    },
    /// An operator's redrive of a finished order: reset the notifications that failed without
    /// reaching a provider, send them, and settle again.
    Redrive,
}

/// What the order workflow ended with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderWorkflowOutput {
    /// The order's status when the workflow finished.
    pub status: OrderStatus,
    /// Whether the condition endpoint could not be read and the order was sent anyway.
    pub condition_inconclusive: bool,
}

/// The order workflow.
#[workflow]
#[derive(Default)]
pub struct OrderWorkflow {
    /// How many times the report endpoints said every notification looked final.
    final_signals: u32,
}

/// The patch that added delivery tracking: histories recorded before it complete right after
/// sending; with it, the workflow waits for delivery reports and the time-to-live.
pub const PATCH_DELIVERY_TRACKING: &str = "varsel.delivery-tracking";

#[workflow_methods]
impl OrderWorkflow {
    /// Runs one order from its send time to its final status.
    #[run(name = "varsel.order")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: OrderWorkflowInput,
    ) -> WorkflowResult<OrderWorkflowOutput> {
        let policy = &input.policy;
        let store_retry = RetryPolicy::builder()
            .initial_interval(Duration::from_millis(500))
            .maximum_interval(Duration::from_millis(policy.max_retry_interval_ms.max(1000)))
            .build();
        let store_opts = || {
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
                .retry_policy(store_retry.clone())
                .build()
        };
        // Batches heartbeat while they run: one whose worker died is retried elsewhere after
        // the heartbeat timeout, not after the whole start-to-close timeout.
        let batch_opts = || {
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
                .heartbeat_timeout(BATCH_HEARTBEAT_TIMEOUT)
                .retry_policy(store_retry.clone())
                .build()
        };

        let mut condition_inconclusive = input.condition_inconclusive;
        // The channels this order can use, when `start_processing` said so (first runs).
        let mut usable_channels: Option<Vec<Channel>> = None;
        if input.resume == Some(Resume::Redrive) {
            ctx.execute_activity(
                OrderActivities::redrive_reset,
                input.order_id.clone(),
                store_opts(),
            )
            .await?;
        }
        if input.resume.is_none() {
            // 1. Durable wait for the requested send time.
            let now_ms = ctx
                .workflow_time()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(input.requested_send_time_ms);
            let wait_ms = input.requested_send_time_ms - now_ms;
            if wait_ms > 0 {
                // A cancelled order ends here; the store is checked again below in case the
                // cancellation request never reached the workflow.
                let cancelled = temporalio_sdk::workflows::select! {
                    _ = ctx.timer(Duration::from_millis(wait_ms as u64)) => false,
                    _ = ctx.cancelled() => true,
                };
                if cancelled {
                    return Ok(OrderWorkflowOutput {
                        status: OrderStatus::Cancelled,
                        condition_inconclusive: false,
                    });
                }
            }

            // 2. Claim the order.
            let start = ctx
                .execute_activity(
                    OrderActivities::start_processing,
                    input.order_id.clone(),
                    store_opts(),
                )
                .await?;
            if !start.proceed {
                return Ok(OrderWorkflowOutput {
                    status: start.status,
                    condition_inconclusive: false,
                });
            }
            usable_channels = start.channels.clone();

            // 3. Send condition: retried; when it stays unreadable the order is sent anyway, as in
            //    Altinn (a notification the sender asked for is not silently dropped).
            if start.has_condition {
                let condition_opts =
                    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                        .retry_policy(
                            RetryPolicy::builder()
                                .initial_interval(Duration::from_millis(
                                    policy.condition_retry_ms.max(1),
                                ))
                                .maximum_attempts(policy.condition_attempts.max(1))
                                .build(),
                        )
                        .build();
                match ctx
                    .execute_activity(
                        OrderActivities::check_send_condition,
                        input.order_id.clone(),
                        condition_opts,
                    )
                    .await
                {
                    Ok(ConditionOutcome::Met) => {}
                    Ok(ConditionOutcome::NotMet) => {
                        let status = ctx
                            .execute_activity(
                                OrderActivities::finish_order,
                                FinishOrder {
                                    order_id: input.order_id.clone(),
                                    terminal: Some(OrderStatus::SendConditionNotMet),
                                },
                                store_opts(),
                            )
                            .await?;
                        return Ok(OrderWorkflowOutput { status, condition_inconclusive: false });
                    }
                    Err(_) => condition_inconclusive = true,
                }
            }
        }

        // A long order continues as new every `max_batches_per_run` batches (or when Temporal
        // suggests it), carrying where it was.
        let mut batches = 0u32;
        let continue_at = |ctx: &mut WorkflowContext<Self>,
                           batches: u32,
                           resume: Resume|
         -> Option<WorkflowResult<OrderWorkflowOutput>> {
            if batches < policy.max_batches_per_run.max(1) && !ctx.continue_as_new_suggested() {
                return None;
            }
            let next = OrderWorkflowInput {
                resume: Some(resume),
                condition_inconclusive,
                ..input.clone()
            };
            Some(match ctx.continue_as_new(next, ContinueAsNewOptions::default()) {
                Err(termination) => Err(termination),
                Ok(never) => match never {},
            })
        };

        // 4. Contact lookup and notification rows, a batch of recipients at a time.
        let generate_from = match input.resume {
            None => Some(0),
            Some(Resume::Generate { from_index }) => Some(from_index),
            Some(Resume::Send { .. } | Resume::Redrive) => None,
        };
        if let Some(mut from_index) = generate_from {
            loop {
                let outcome = ctx
                    .execute_activity(
                        OrderActivities::generate_notifications,
                        GenerateBatch {
                            order_id: input.order_id.clone(),
                            from_index,
                            limit: policy.generate_batch.max(1),
                        },
                        batch_opts(),
                    )
                    .await?;
                batches += 1;
                match outcome.next_index {
                    Some(next) => {
                        from_index = next;
                        if let Some(r) = continue_at(ctx, batches, Resume::Generate { from_index })
                        {
                            return r;
                        }
                    }
                    None => break,
                }
            }
        }

        // 5. Send, channel by channel, a batch at a time.
        let channels: &[Channel] = match input.resume {
            Some(Resume::Send { channel: Channel::Sms }) => &[Channel::Sms],
            _ => &[Channel::Email, Channel::Sms],
        };
        for &channel in channels {
            if usable_channels.as_ref().is_some_and(|c| !c.contains(&channel)) {
                continue;
            }
            if channel == Channel::Sms
                && let Some(window) = &policy.sms_window
            {
                // Durable wait for the SMS sending window (a timer, so it survives restarts).
                let now_ms = ctx
                    .workflow_time()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                let wait = window.wait_ms(now_ms);
                if wait > 0 {
                    ctx.timer(Duration::from_millis(wait as u64)).await;
                }
            }
            loop {
                let outcome = ctx
                    .execute_activity(
                        OrderActivities::send_batch,
                        SendBatch {
                            order_id: input.order_id.clone(),
                            channel,
                            limit: policy.send_batch.max(1),
                        },
                        batch_opts(),
                    )
                    .await?;
                batches += 1;
                if outcome.remaining == 0 {
                    break;
                }
                if let Some(r) = continue_at(ctx, batches, Resume::Send { channel }) {
                    return r;
                }
            }
        }

        if !ctx.patched(PATCH_DELIVERY_TRACKING) {
            // 6. Final status (before delivery tracking).
            let status = ctx
                .execute_activity(
                    OrderActivities::finish_order,
                    FinishOrder { order_id: input.order_id.clone(), terminal: None },
                    store_opts(),
                )
                .await?;
            return Ok(OrderWorkflowOutput { status, condition_inconclusive });
        }

        // 6. Delivery tracking: the order completes when every notification is final. Wait for
        //    the report endpoints' signal or the next time-to-live, whichever comes first; no
        //    polling.
        loop {
            // Read before settling: a signal that arrives while the settle activity runs must
            // wake the wait below, not be counted as already seen.
            let seen = ctx.state(|s| s.final_signals);
            let settled = ctx
                .execute_activity(
                    OrderActivities::settle_order,
                    input.order_id.clone(),
                    store_opts(),
                )
                .await?;
            if settled.status != OrderStatus::Processed {
                return Ok(OrderWorkflowOutput { status: settled.status, condition_inconclusive });
            }
            let now_ms = ctx
                .workflow_time()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let wait_ms = settled.next_expiry_ms.map(|e| (e - now_ms).max(1)).unwrap_or(1) as u64;
            let expired = temporalio_sdk::workflows::select! {
                _ = ctx.timer(Duration::from_millis(wait_ms)) => true,
                _ = ctx.wait_condition(move |s| s.final_signals > seen) => false,
            };
            if expired {
                ctx.execute_activity(
                    OrderActivities::expire_notifications,
                    input.order_id.clone(),
                    store_opts(),
                )
                .await?;
            }
        }
    }

    /// The report endpoints' word that every notification of the order may now be final.
    #[signal(name = "varsel.order.reports_final")]
    pub fn reports_final(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _input: ()) {
        self.final_signals += 1;
    }
}
