//! The implementations of the webhook workflow's activities: deliver a pair's waiting messages
//! in order, and give up on a pair whose retries ran out.

use crate::store::Store;
use crate::webhooks::{Outgoing, WebhookSender};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use temporalio_common::ActivityError;
use temporalio_macros::activities;
use temporalio_sdk::activities::ActivityContext;
use varsel_workflows::webhook::{DeliverOutcome, GiveUp, WebhookPair, defs};

/// Everything the webhook activities need, built once per worker.
pub struct WebhookActivitiesImpl {
    /// The database.
    pub store: Store,
    /// Posts the messages.
    pub sender: WebhookSender,
    /// Attempts by outcome.
    pub metrics: crate::metrics::Metrics,
}

/// Messages read from the store at a time.
const PAGE: u64 = 50;

/// How long one `deliver` call keeps delivering before it hands over to the next (the
/// workflow's start-to-close timeout is 120 s).
const BUDGET: Duration = Duration::from_secs(60);

fn retryable(e: impl std::fmt::Display) -> ActivityError {
    ActivityError::from(anyhow::anyhow!(e.to_string()))
}

#[activities]
impl WebhookActivitiesImpl {
    /// See [`varsel_workflows::webhook::WebhookActivities::deliver`].
    #[activity(definition = defs::Deliver)]
    pub async fn deliver(
        self: Arc<Self>,
        ctx: ActivityContext,
        pair: WebhookPair,
    ) -> Result<DeliverOutcome, ActivityError> {
        let started = Instant::now();
        let mut delivered = 0u32;
        let outcome = |delivered, remaining| DeliverOutcome { delivered, remaining, stopped: None };
        loop {
            // Read again each page: a rotation, a new URL or a disable takes effect at once.
            let endpoint = match self.store.webhook_endpoint(&pair.endpoint_id).await {
                Ok(Some(e)) => e,
                Ok(None) => {
                    return Ok(DeliverOutcome {
                        delivered,
                        remaining: false,
                        stopped: Some("the endpoint was removed".into()),
                    });
                }
                Err(e) => return Err(retryable(e)),
            };
            if !endpoint.enabled {
                let why = endpoint.disabled_reason.unwrap_or_else(|| "disabled".into());
                return Ok(DeliverOutcome {
                    delivered,
                    remaining: false,
                    stopped: Some(format!("the endpoint is disabled: {why}")),
                });
            }
            let page = self
                .store
                .pending_webhooks(&pair.endpoint_id, &pair.order_id, PAGE)
                .await
                .map_err(retryable)?;
            if page.is_empty() {
                return Ok(outcome(delivered, false));
            }
            for message in page {
                if started.elapsed() > BUDGET {
                    return Ok(outcome(delivered, true));
                }
                if let Err(e) = ctx.record_heartbeat(delivered).await {
                    tracing::debug!(error = %e, "heartbeat could not be recorded");
                }
                let at = Utc::now();
                let attempt = self
                    .sender
                    .post(&Outgoing {
                        url: &endpoint.url,
                        msg_id: &message.id,
                        payload: &message.payload,
                        secrets: endpoint.signing_secrets(at),
                    })
                    .await;
                self.store
                    .record_webhook_attempt(&message, &endpoint.url, &attempt, at)
                    .await
                    .map_err(retryable)?;
                let accepted = attempt.accepted();
                self.metrics
                    .webhook_attempts
                    .with_label_values(&[if accepted { "delivered" } else { "failed" }])
                    .inc();
                if let Some(error) = attempt.error {
                    tracing::info!(
                        endpoint = pair.endpoint_id,
                        order_id = pair.order_id,
                        message = message.id,
                        attempt = message.attempts + 1,
                        error,
                        "webhook delivery failed; it is retried"
                    );
                    // After progress, the next call starts its retries afresh; without, this
                    // one is retried with backoff.
                    if delivered > 0 {
                        return Ok(outcome(delivered, true));
                    }
                    return Err(retryable(format!("{}: {error}", endpoint.url)));
                }
                delivered += 1;
            }
        }
    }

    /// See [`varsel_workflows::webhook::WebhookActivities::give_up`].
    #[activity(definition = defs::GiveUp)]
    pub async fn give_up(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: GiveUp,
    ) -> Result<(), ActivityError> {
        let GiveUp { pair, reason } = input;
        let last = self
            .store
            .pending_webhooks(&pair.endpoint_id, &pair.order_id, 1)
            .await
            .map_err(retryable)?
            .into_iter()
            .next()
            .and_then(|m| m.last_error.map(|e| (m.attempts, e)));
        let reason = match last {
            Some((attempts, error)) => format!(
                "a delivery failed {attempts} times until its retries ran out; the last: {error}"
            ),
            None => format!("a delivery failed until its retries ran out: {reason}"),
        };
        let failed = self
            .store
            .fail_pending_webhooks(&pair.endpoint_id, &pair.order_id)
            .await
            .map_err(retryable)?;
        self.store.disable_webhook_endpoint(&pair.endpoint_id, &reason).await.map_err(retryable)?;
        self.metrics.webhook_attempts.with_label_values(&["gave_up"]).inc();
        tracing::warn!(
            endpoint = pair.endpoint_id,
            order_id = pair.order_id,
            failed,
            reason,
            "webhook endpoint disabled"
        );
        Ok(())
    }
}
