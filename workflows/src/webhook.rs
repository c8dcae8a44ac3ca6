//! The webhook workflow: one durable execution per (endpoint, order), workflow id
//! `varsel.webhook:<endpoint>:<order>`, that delivers the order's events to one of its creator's
//! webhook endpoints, in the order they happened, each until it is accepted.
//!
//! One execution per pair keeps one order's events in order at one endpoint, while a failing
//! endpoint (or a slow one) holds up only its own deliveries: every other pair runs on its own.
//! A delivery that fails is retried by Temporal with growing delays for `retry_for_secs`
//! (Temporal's durable timers: a restart loses nothing); when that ends with nothing accepted,
//! the workflow gives up: its pending deliveries fail and the endpoint is disabled with the
//! reason. The names here are durable: change behaviour only behind `ctx.patched(..)`.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_common::{ActivityCloseTimeouts, ActivityError, RetryPolicy};
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ContinueAsNewOptions, SyncWorkflowContext, WorkflowContext, WorkflowResult,
};

/// The workflow type name, pinned.
pub const WEBHOOK_WORKFLOW_TYPE: &str = "varsel.webhook";

/// The signal that the pair has new deliveries waiting.
pub const WEBHOOK_PENDING_SIGNAL: &str = "varsel.webhook.pending";

/// The workflow id of an (endpoint, order) pair.
pub fn webhook_workflow_id(endpoint_id: &str, order_id: &str) -> String {
    format!("{WEBHOOK_WORKFLOW_TYPE}:{endpoint_id}:{order_id}")
}

/// How hard deliveries are tried, fixed when the pair's workflow starts and recorded in its
/// history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookPolicy {
    /// First retry delay after a failed delivery, milliseconds (doubles each attempt).
    pub retry_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    pub retry_max_ms: u64,
    /// How long a delivery is retried without any being accepted before the endpoint is
    /// disabled, seconds.
    pub retry_for_secs: u64,
    /// How long the workflow waits for more events once everything is delivered before it
    /// ends (a later event starts it again), seconds.
    pub idle_secs: u64,
}

impl Default for WebhookPolicy {
    fn default() -> Self {
        Self {
            retry_initial_ms: 5_000,
            retry_max_ms: 3_600_000,
            // A day and two hours: "at least 24 hours" with room for the last delay.
            retry_for_secs: 26 * 3600,
            idle_secs: 600,
        }
    }
}

/// Input of the webhook workflow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookWorkflowInput {
    /// The endpoint.
    pub endpoint_id: String,
    /// The order whose events it receives.
    pub order_id: String,
    /// Retries and idling.
    pub policy: WebhookPolicy,
}

/// The (endpoint, order) pair an activity works on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WebhookPair {
    /// The endpoint.
    pub endpoint_id: String,
    /// The order.
    pub order_id: String,
}

/// What one `deliver` call did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliverOutcome {
    /// Deliveries the endpoint accepted in this call.
    pub delivered: u32,
    /// Whether deliveries of the pair still wait (the call stopped at its budget, or at a
    /// failure after some were accepted).
    pub remaining: bool,
    /// Why nothing more is delivered to this endpoint (removed, or disabled); `None` otherwise.
    pub stopped: Option<String>,
}

/// Input of `give_up`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GiveUp {
    /// The pair.
    pub pair: WebhookPair,
    /// Why: the last failure.
    pub reason: String,
}

/// Marker type carrying the webhook workflow's activity definitions.
pub struct WebhookActivities;

#[activity_definitions]
impl WebhookActivities {
    /// Delivers the pair's waiting events in order, each signed, until none is left, the call's
    /// budget is spent, or one fails. A failure before any was accepted is an error (retried
    /// with backoff); after, the call returns and the next one starts afresh.
    #[activity(name = "varsel.webhook.deliver")]
    pub fn deliver(pair: WebhookPair) -> Result<DeliverOutcome, ActivityError> {
        unimplemented!()
    }

    /// The retries ran out: the pair's waiting deliveries fail, and the endpoint is disabled
    /// with the reason.
    #[activity(name = "varsel.webhook.give_up")]
    pub fn give_up(input: GiveUp) -> Result<(), ActivityError> {
        unimplemented!()
    }
}

/// The activity marker types, for implementers.
pub mod defs {
    pub use super::webhook_activities::*;
}

/// What the webhook workflow ended with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum WebhookWorkflowOutput {
    /// Everything was delivered and no new event came for `idle_secs`.
    Idle,
    /// The endpoint was removed or disabled.
    Stopped(String),
    /// Retries ran out; the endpoint is disabled.
    GaveUp(String),
}

/// The webhook workflow.
#[workflow]
#[derive(Default)]
pub struct WebhookWorkflow {
    /// Signals received: each says new events wait.
    pending_signals: u32,
}

/// Rounds one run makes before it continues as new, so a long-lived pair's history stays short.
const ROUNDS_PER_RUN: u32 = 200;

#[workflow_methods]
impl WebhookWorkflow {
    /// Delivers the pair's events as they come, until it has been idle for `idle_secs`.
    #[run(name = "varsel.webhook")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: WebhookWorkflowInput,
    ) -> WorkflowResult<WebhookWorkflowOutput> {
        let pair = WebhookPair {
            endpoint_id: input.endpoint_id.clone(),
            order_id: input.order_id.clone(),
        };
        let policy = &input.policy;
        let retry = RetryPolicy::builder()
            .initial_interval(Duration::from_millis(policy.retry_initial_ms.max(1)))
            .backoff_coefficient(2.0)
            .maximum_interval(Duration::from_millis(
                policy.retry_max_ms.max(policy.retry_initial_ms).max(1),
            ))
            .build();
        let deliver =
            ActivityOptions::with_close_timeouts(ActivityCloseTimeouts::ScheduleAndStartToClose {
                schedule_to_close: Duration::from_secs(policy.retry_for_secs.max(1)),
                start_to_close: Duration::from_secs(120),
            })
            .heartbeat_timeout(Duration::from_secs(30))
            .retry_policy(retry)
            .build();
        let store_opts = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_millis(500))
                    .maximum_interval(Duration::from_secs(60))
                    .build(),
            )
            .build();
        let mut rounds = 0u32;
        loop {
            // Read before delivering: a signal that arrives meanwhile must wake the wait below.
            let seen = ctx.state(|s| s.pending_signals);
            match ctx
                .execute_activity(WebhookActivities::deliver, pair.clone(), deliver.clone())
                .await
            {
                Ok(DeliverOutcome { stopped: Some(why), .. }) => {
                    return Ok(WebhookWorkflowOutput::Stopped(why));
                }
                Ok(DeliverOutcome { remaining: true, .. }) => {}
                Ok(_) => {
                    let idle = Duration::from_secs(policy.idle_secs.max(1));
                    let woken = temporalio_sdk::workflows::select! {
                        _ = ctx.timer(idle) => false,
                        _ = ctx.wait_condition(move |s| s.pending_signals > seen) => true,
                    };
                    if !woken && ctx.state(|s| s.pending_signals) == seen {
                        return Ok(WebhookWorkflowOutput::Idle);
                    }
                }
                Err(e) => {
                    let reason = failure_words(&e);
                    let give_up = GiveUp { pair: pair.clone(), reason: reason.clone() };
                    ctx.execute_activity(WebhookActivities::give_up, give_up, store_opts.clone())
                        .await?;
                    return Ok(WebhookWorkflowOutput::GaveUp(reason));
                }
            }
            rounds += 1;
            if rounds >= ROUNDS_PER_RUN || ctx.continue_as_new_suggested() {
                match ctx.continue_as_new(input.clone(), ContinueAsNewOptions::default())? {}
            }
        }
    }

    /// New events of the pair wait.
    #[signal(name = "varsel.webhook.pending")]
    pub fn pending(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _input: ()) {
        self.pending_signals += 1;
    }
}

/// The last failure of a delivery activity, in words (its innermost message).
fn failure_words(e: &temporalio_sdk::ActivityExecutionError) -> String {
    use std::error::Error;
    let mut words = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        words = s.to_string();
        source = s.source();
    }
    words
}
