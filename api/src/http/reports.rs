//! Delivery reports: Kannel's `dlr-url` callback and an email provider's JSON reports.

use super::dto::{CanonicalNames, CaseInsensitive};
use super::json_body::JsonBody;
use super::security::ReportSender;
use crate::error::ApiError;
use crate::state::AppState;
use poem::Request;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::Query,
    payload::{Json, PlainText},
};
use std::sync::Arc;
use varsel_activities::events::apply_and_notify;
use varsel_activities::providers::sms::ReportSigner;
use varsel_activities::store::{ApplyOutcome, Report, ReportTarget};
use varsel_workflows::domain::{Channel, NotificationStatus};

/// The report endpoints.
pub struct ReportsApi {
    /// Shared state.
    pub state: Arc<AppState>,
    /// Checks Kannel report signatures.
    pub signer: ReportSigner,
}

#[derive(poem_openapi::Tags)]
enum Tag {
    /// Delivery reports from providers (authenticated per provider).
    Reports,
}

/// Status an email provider reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "EmailReportStatus")]
pub enum EmailReportStatus {
    /// Delivered to the recipient's mailbox → `Email_Delivered`.
    Delivered,
    /// Hard bounce → `Email_Failed_Bounced`.
    Bounced,
    /// Rejected as spam → `Email_Failed_FilteredSpam`.
    FilteredSpam,
    /// Quarantined → `Email_Failed_Quarantined`.
    Quarantined,
    /// The address is on a suppression list → `Email_Failed_SuppressedRecipient`.
    Suppressed,
    /// Any other failure → `Email_Failed`.
    Failed,
}

impl CanonicalNames for EmailReportStatus {
    const NAMES: &'static [&'static str] =
        &["Delivered", "Bounced", "FilteredSpam", "Quarantined", "Suppressed", "Failed"];
}

impl EmailReportStatus {
    fn status(self) -> NotificationStatus {
        match self {
            Self::Delivered => NotificationStatus::EmailDelivered,
            Self::Bounced => NotificationStatus::EmailFailedBounced,
            Self::FilteredSpam => NotificationStatus::EmailFailedFilteredSpam,
            Self::Quarantined => NotificationStatus::EmailFailedQuarantined,
            Self::Suppressed => NotificationStatus::EmailFailedSuppressedRecipient,
            Self::Failed => NotificationStatus::EmailFailed,
        }
    }
}

/// One email delivery report.
#[derive(Debug, Clone, Object)]
#[oai(rename = "EmailDeliveryReport", rename_all = "camelCase")]
pub struct EmailReportDto {
    /// The notification id, or
    pub notification_id: Option<String>,
    /// the email's `Message-ID` (`<notification-id@varsel>`), as most providers report it.
    pub message_id: Option<String>,
    /// What happened (any case).
    pub status: CaseInsensitive<EmailReportStatus>,
    /// The provider's words, kept in the status description.
    pub detail: Option<String>,
}

/// What a report did.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ReportOutcome", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ReportOutcomeDto {
    /// `applied`, `unchanged` (a repeat or a late report), `dead` (kept for an operator) or,
    /// from Event Grid, `ignored` (an event type varsel does not apply).
    pub outcome: String,
    /// The dead report's id, when kept.
    pub dead_report_id: Option<String>,
}

pub(crate) fn outcome_dto(o: &ApplyOutcome) -> ReportOutcomeDto {
    match o {
        ApplyOutcome::Applied { .. } => {
            ReportOutcomeDto { outcome: "applied".into(), dead_report_id: None }
        }
        ApplyOutcome::Unchanged { .. } => {
            ReportOutcomeDto { outcome: "unchanged".into(), dead_report_id: None }
        }
        ApplyOutcome::Dead { id, .. } => {
            ReportOutcomeDto { outcome: "dead".into(), dead_report_id: Some(id.clone()) }
        }
    }
}

/// Answer to a report.
#[derive(ApiResponse)]
pub enum ReportResponse {
    /// The report was taken.
    #[oai(status = 200)]
    Ok(Json<ReportOutcomeDto>),
}

/// Answer to Kannel.
#[derive(ApiResponse)]
pub enum KannelResponse {
    /// The report was taken (Kannel does not read the body).
    #[oai(status = 200)]
    Ok(PlainText<String>),
}

/// Maps a Kannel report (`%d` type and `%A` SMSC answer) to a status.
///
/// | type | meaning | status |
/// |---|---|---|
/// | 1 | delivered to the phone | `SMS_Delivered` |
/// | 2 | not delivered to the phone | by the answer's SMPP state: `EXPIRED` → `SMS_Failed_Expired`, `DELETED` → `SMS_Failed_Deleted`, `REJECTD` → `SMS_Failed_Rejected`, `BARRED` → `SMS_Failed_BarredReceiver`, `UNDELIV` → `SMS_Failed_Undelivered`, any other state → `SMS_Failed` (as Altinn maps a state it does not know) |
/// | 4 | queued on the SMSC | `SMS_Accepted` |
/// | 8 | accepted by the SMSC | `SMS_Accepted` |
/// | 16 | rejected by the SMSC | `SMS_Failed_Rejected`; `NACK/no SMSC` (Kannel itself found no route) → `SMS_Failed_Undelivered` |
///
/// Kannel answers an unroutable number twice: sendsms says 403 "Not routable" and bearerbox
/// also sends a type-16 report `NACK/no SMSC`, which may arrive before the 403 is recorded.
/// Both mean the same, so both give `SMS_Failed_Undelivered`, whichever lands first.
pub fn kannel_status(kind: u32, answer: &str) -> Option<NotificationStatus> {
    let upper = answer.to_ascii_uppercase();
    Some(match kind {
        1 => NotificationStatus::SmsDelivered,
        2 if upper.contains("EXPIRED") => NotificationStatus::SmsFailedExpired,
        2 if upper.contains("DELETED") => NotificationStatus::SmsFailedDeleted,
        2 if upper.contains("REJECTD") || upper.contains("REJECTED") => {
            NotificationStatus::SmsFailedRejected
        }
        2 if upper.contains("BARRED") => NotificationStatus::SmsFailedBarredReceiver,
        2 if upper.contains("UNDELIV") => NotificationStatus::SmsFailedUndelivered,
        2 => NotificationStatus::SmsFailed,
        4 | 8 => NotificationStatus::SmsAccepted,
        16 if upper.contains("NO SMSC") => NotificationStatus::SmsFailedUndelivered,
        16 => NotificationStatus::SmsFailedRejected,
        _ => return None,
    })
}

#[OpenApi(prefix_path = "/notifications/api/v1")]
impl ReportsApi {
    /// Kannel delivery report
    ///
    /// Kannel's `dlr-url` callback. varsel writes the notification id, the URL's expiry and their
    /// signature into the URL when it sends (`nid`, `exp`, `sig` = hex HMAC-SHA256 with the report
    /// secret over this path, `nid`, `exp` and the names of Kannel's fields), and Kannel fills
    /// `type` (`%d`), `answer` (`%A`) and `fid` (`%F`). A wrong, missing or expired signature is 401.
    #[oai(
        path = "/reports/sms/kannel",
        method = "get",
        tag = "Tag::Reports",
        operation_id = "kannelReport"
    )]
    #[allow(clippy::too_many_arguments)] // one argument per documented query parameter
    async fn kannel(
        &self,
        req: &Request,
        /// Notification id.
        nid: Query<String>,
        /// When the URL expires (Unix seconds).
        exp: Query<i64>,
        /// Signature of the URL.
        sig: Query<String>,
        /// Kannel report type (1, 2, 4, 8, 16).
        #[oai(name = "type", validator(minimum(value = "0"), maximum(value = "4294967295")))]
        kind: Query<u32>,
        /// SMSC answer text.
        answer: Query<Option<String>>,
        /// The SMSC's message id.
        fid: Query<Option<String>>,
    ) -> Result<KannelResponse, ApiError> {
        if !self.signer.verify(&nid.0, exp.0, &sig.0, chrono::Utc::now().timestamp()) {
            return Err(ApiError::unauthorized(
                "The report signature is not valid for this notification, or the report URL has expired.",
            ));
        }
        // The SMSC's words are kept as they came, less what no database stores.
        let answer = clean(&answer.0.unwrap_or_default());
        let status = kannel_status(kind.0, &answer).ok_or_else(|| {
            ApiError::invalid("type", format!("Unknown Kannel report type {}.", kind.0))
        })?;
        let report = Report {
            target: ReportTarget::Notification(nid.0.clone()),
            status,
            reason: Some(answer.clone())
                .filter(|a| !a.is_empty() && !status.is_success())
                .map(|a| format!("Kannel: {a}")),
            provider_ref: fid.0.map(|f| clean(&f)).filter(|f| !f.is_empty()),
            raw: clean(req.uri().query().unwrap_or_default()),
        };
        apply_and_notify(
            &self.state.store,
            &self.state.events,
            &self.state.metrics,
            &report,
            Channel::Sms,
            false,
        )
        .await
        .map_err(ApiError::storage)?;
        Ok(KannelResponse::Ok(PlainText("ok".into())))
    }

    /// Email delivery report
    ///
    /// An email provider reports what became of an email: `Delivered`, `Bounced`, `FilteredSpam`,
    /// `Quarantined`, `Suppressed` or `Failed`, naming it by notification id or Message-ID.
    /// Authenticated with HTTP Basic (`VARSEL_REPORT_USERNAME` and the report secret). A report
    /// that matches nothing is kept as a dead report; a repeat changes nothing.
    #[oai(
        path = "/reports/email",
        method = "post",
        tag = "Tag::Reports",
        operation_id = "emailReport"
    )]
    async fn email(
        &self,
        _sender: ReportSender,
        body: JsonBody<EmailReportDto>,
    ) -> Result<ReportResponse, ApiError> {
        let target = match (&body.notification_id, &body.message_id) {
            (Some(id), _) => ReportTarget::Notification(id.trim().to_owned()),
            (None, Some(mid)) => email_target(mid),
            (None, None) => {
                return Err(ApiError::invalid(
                    "NotificationId",
                    "Either notificationId or messageId must be given.",
                ));
            }
        };
        let status = body.status.0.status();
        let report = Report {
            target,
            status,
            reason: body.detail.clone().filter(|d| !d.is_empty()),
            provider_ref: None,
            raw: serde_json::json!({
                "notificationId": body.notification_id, "messageId": body.message_id,
                "status": status.as_str(), "detail": body.detail
            })
            .to_string(),
        };
        Ok(ReportResponse::Ok(Json(apply_email_report(&self.state, &report).await?)))
    }
}

/// Applies one email delivery report, whichever provider sent it.
pub(crate) async fn apply_email_report(
    state: &AppState,
    report: &Report,
) -> Result<ReportOutcomeDto, ApiError> {
    let outcome = apply_and_notify(
        &state.store,
        &state.events,
        &state.metrics,
        report,
        Channel::Email,
        false,
    )
    .await
    .map_err(ApiError::storage)?;
    Ok(outcome_dto(&outcome))
}

/// The email a report names by its `Message-ID`: varsel's own (`<notification-id@varsel>`)
/// names the notification; any other is the reference a provider answered with.
pub(crate) fn email_target(message_id: &str) -> ReportTarget {
    let mid = message_id.trim().trim_start_matches('<').trim_end_matches('>');
    match mid.strip_suffix("@varsel") {
        Some(id) => ReportTarget::Notification(id.to_owned()),
        None => ReportTarget::ProviderRef(format!("<{mid}>")),
    }
}

/// Text from a provider as it can be stored: without NUL characters.
fn clean(s: &str) -> String {
    s.replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::kannel_status;
    use varsel_workflows::domain::NotificationStatus;

    #[test]
    fn kannel_report_types_map_to_statuses() {
        assert_eq!(kannel_status(1, ""), Some(NotificationStatus::SmsDelivered));
        assert_eq!(
            kannel_status(2, "id:1 stat:EXPIRED"),
            Some(NotificationStatus::SmsFailedExpired)
        );
        assert_eq!(
            kannel_status(2, "id:1 stat:UNDELIV"),
            Some(NotificationStatus::SmsFailedUndelivered)
        );
        // A state varsel does not know is a failure, not a claim that it was undeliverable.
        assert_eq!(kannel_status(2, "id:1 stat:UNKNOWN"), Some(NotificationStatus::SmsFailed));
        assert_eq!(kannel_status(2, ""), Some(NotificationStatus::SmsFailed));
        assert_eq!(kannel_status(8, "ACK/"), Some(NotificationStatus::SmsAccepted));
        assert_eq!(
            kannel_status(16, "NACK/0x00000045/Submit failed"),
            Some(NotificationStatus::SmsFailedRejected)
        );
        // Kannel's own "no route" report means what its 403 "Not routable" means.
        assert_eq!(
            kannel_status(16, "NACK/no SMSC"),
            Some(NotificationStatus::SmsFailedUndelivered)
        );
        assert_eq!(kannel_status(32, ""), None);
    }
}
