//! How the side-effect layer tells an order's workflow that something happened, without
//! depending on the Temporal client (the `api` crate implements this with a signal).

use crate::metrics::Metrics;
use crate::store::{ApplyOutcome, Report, Store};
use std::sync::Arc;
use varsel_workflows::domain::Channel;

/// Receives order events.
#[async_trait::async_trait]
pub trait OrderEvents: Send + Sync {
    /// Every notification of `order_id` may now be final: the workflow should settle the order.
    async fn reports_final(&self, order_id: &str);
}

/// Applies a delivery report and, when it was the order's last open notification, tells the
/// workflow. The one path every report takes: provider webhooks, the simulator, re-applied
/// dead reports.
pub async fn apply_and_notify(
    store: &Store,
    events: &Arc<dyn OrderEvents>,
    metrics: &Metrics,
    report: &Report,
    channel: Channel,
    reapply: bool,
) -> Result<ApplyOutcome, sea_orm::DbErr> {
    let outcome = if reapply {
        store.reapply_report(report, channel).await?
    } else {
        store.apply_report(report, channel).await?
    };
    let label = match &outcome {
        ApplyOutcome::Applied { lag, .. } => {
            if let Some(lag) = lag {
                metrics
                    .report_lag_seconds
                    .with_label_values(&[channel.as_str()])
                    .observe(lag.as_secs_f64());
            }
            "applied"
        }
        ApplyOutcome::Unchanged { .. } => "unchanged",
        ApplyOutcome::Dead { .. } => "dead",
    };
    metrics.reports.with_label_values(&[channel.as_str(), label]).inc();
    match &outcome {
        ApplyOutcome::Applied { order_id, open_left: 0, .. } => {
            tracing::info!(
                order_id,
                status = report.status.as_str(),
                "delivery report applied; no notification of the order is open any more"
            );
            events.reports_final(order_id).await;
        }
        ApplyOutcome::Applied { order_id, .. } => {
            tracing::info!(order_id, status = report.status.as_str(), "delivery report applied");
        }
        ApplyOutcome::Unchanged { order_id } => {
            tracing::debug!(
                order_id,
                status = report.status.as_str(),
                "delivery report changed nothing (repeat or late)"
            );
        }
        ApplyOutcome::Dead { id, reason } => {
            tracing::warn!(
                dead_report = id,
                reason,
                "delivery report matches no open notification; kept as a dead report"
            );
        }
    }
    Ok(outcome)
}
