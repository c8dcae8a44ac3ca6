//! Operator tools (scope `varsel:operator`): redrive an order, and list and re-apply the
//! delivery reports that matched nothing.

use super::orders::order_id;
use super::reports::{ReportResponse, outcome_dto};
use super::security::Operator;
use crate::error::ApiError;
use crate::state::AppState;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json};
use std::sync::Arc;
use varsel_activities::events::apply_and_notify;
use varsel_activities::store::{ApplyOutcome, Report, ReportTarget};

/// The operator endpoints.
pub struct OperatorApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[derive(poem_openapi::Tags)]
enum Tag {
    /// Operator tools (scope `varsel:operator`).
    Operator,
}

/// A report that matched no open notification.
#[derive(Debug, Clone, Object)]
#[oai(rename = "DeadReport", rename_all = "camelCase")]
pub struct DeadReportDto {
    /// Its id.
    pub id: String,
    /// `email` or `sms`.
    pub channel: String,
    /// The notification id or provider reference it named.
    pub reference: String,
    /// The status it reports.
    pub status: String,
    /// `UNKNOWN_REFERENCE` or `NOTIFICATION_EXPIRED`.
    pub reason: String,
    /// The report as received.
    pub payload: String,
    /// When it arrived (UTC).
    pub received_at: String,
}

/// The dead reports.
#[derive(ApiResponse)]
pub enum DeadReportsResponse {
    /// Reports not yet re-applied, oldest first.
    #[oai(status = 200)]
    Ok(Json<Vec<DeadReportDto>>),
}

/// A started redrive.
#[derive(Debug, Clone, Object)]
#[oai(rename = "Redrive", rename_all = "camelCase")]
pub struct RedriveDto {
    /// The order.
    pub order_id: String,
    /// Notifications that will be sent again.
    pub notifications: u64,
}

/// Answer to a redrive.
#[derive(ApiResponse)]
pub enum RedriveResponse {
    /// The redrive run started.
    #[oai(status = 202)]
    Accepted(Json<RedriveDto>),
}

#[OpenApi(prefix_path = "/notifications/api/v1")]
impl OperatorApi {
    /// Redrive an order
    ///
    /// Sends again the notifications of a completed order that failed before reaching a provider
    /// (for example during a relay outage: `*_Failed_TTL` never accepted, `Email_Failed`,
    /// `SMS_Failed`), as a new run of the order's workflow. Nothing already sent, accepted or
    /// delivered is sent again. A running or not yet completed order, or one with nothing to
    /// redrive, answers 409.
    #[oai(
        path = "/operator/orders/:id/redrive",
        method = "post",
        tag = "Tag::Operator",
        operation_id = "redriveOrder"
    )]
    async fn redrive(
        &self,
        _operator: Operator,
        id: Path<String>,
    ) -> Result<RedriveResponse, ApiError> {
        let id = order_id(&id.0)?;
        match self.state.dispatcher.redrive(&id).await {
            Ok(n) => {
                Ok(RedriveResponse::Accepted(Json(RedriveDto { order_id: id, notifications: n })))
            }
            Err(crate::temporal::RedriveRefusal::NotFound) => {
                Err(ApiError::not_found("The order does not exist."))
            }
            Err(crate::temporal::RedriveRefusal::Conflict(m)) => Err(ApiError::conflict(m)),
            Err(crate::temporal::RedriveRefusal::Unavailable(m)) => Err(ApiError::unavailable(m)),
        }
    }

    /// List dead reports
    ///
    /// Delivery reports that matched no notification, or arrived after their notification's
    /// time-to-live, oldest first (at most 500). None is dropped silently.
    #[oai(
        path = "/operator/dead-reports",
        method = "get",
        tag = "Tag::Operator",
        operation_id = "listDeadReports"
    )]
    async fn dead_reports(&self, _operator: Operator) -> Result<DeadReportsResponse, ApiError> {
        let rows = self.state.store.dead_reports(500).await.map_err(ApiError::storage)?;
        Ok(DeadReportsResponse::Ok(Json(
            rows.into_iter()
                .map(|r| DeadReportDto {
                    id: r.id,
                    channel: r.channel.as_str().to_owned(),
                    reference: r.reference,
                    status: r.status.as_str().to_owned(),
                    reason: r.reason,
                    payload: r.payload,
                    received_at: r.received_at.to_rfc3339(),
                })
                .collect(),
        )))
    }

    /// Re-apply a dead report
    ///
    /// Applies a dead report again (for example after its notification was found under another
    /// reference). Applied or unchanged: it leaves the dead list. Still matching nothing: 409.
    #[oai(
        path = "/operator/dead-reports/:id/reapply",
        method = "post",
        tag = "Tag::Operator",
        operation_id = "reapplyDeadReport"
    )]
    async fn reapply(
        &self,
        _operator: Operator,
        id: Path<String>,
    ) -> Result<ReportResponse, ApiError> {
        let Ok(id) = uuid::Uuid::parse_str(id.0.trim()) else {
            return Err(ApiError::not_found("No such dead report."));
        };
        let dead = self
            .state
            .store
            .dead_report_by_id(&id.hyphenated().to_string())
            .await
            .map_err(ApiError::storage)?
            .filter(|d| d.applied_at.is_none())
            .ok_or_else(|| ApiError::not_found("No such dead report."))?;
        let (channel, status) = (dead.channel, dead.status);
        let mut outcome = None;
        // The reference may be a notification id or a provider reference; try both.
        for target in [
            ReportTarget::Notification(dead.reference.clone()),
            ReportTarget::ProviderRef(dead.reference.clone()),
        ] {
            let report = Report {
                target,
                status,
                reason: None,
                provider_ref: None,
                raw: dead.payload.clone(),
            };
            let o = apply_and_notify(
                &self.state.store,
                &self.state.events,
                &self.state.metrics,
                &report,
                channel,
                true,
            )
            .await
            .map_err(ApiError::storage)?;
            if !matches!(o, ApplyOutcome::Dead { .. }) {
                outcome = Some(o);
                break;
            }
        }
        match outcome {
            Some(o) => {
                self.state
                    .store
                    .mark_dead_report_applied(&dead.id)
                    .await
                    .map_err(ApiError::storage)?;
                Ok(ReportResponse::Ok(Json(outcome_dto(&o))))
            }
            None => Err(ApiError::conflict("The report still matches no open notification.")),
        }
    }
}
