//! Azure Event Grid: the email events of Azure Communication Services, as Altinn consumes them
//! (`Microsoft.Communication.EmailDeliveryReportReceived`), delivered to a webhook in the Event
//! Grid schema, and the subscription-validation handshake.

use super::json_body::JsonBody;
use super::reports::{ReportOutcomeDto, apply_email_report, email_target};
use super::security::EventGridSender;
use crate::error::ApiError;
use crate::state::AppState;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use serde_json::Value;
use std::sync::Arc;
use varsel_activities::store::{Report, ReportTarget};
use varsel_workflows::domain::NotificationStatus;

/// The Event Grid endpoint.
pub struct EventGridApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[derive(poem_openapi::Tags)]
enum Tag {
    /// Delivery reports from providers (authenticated per provider).
    Reports,
}

/// The event type of Event Grid's subscription-validation handshake.
const VALIDATION: &str = "Microsoft.EventGrid.SubscriptionValidationEvent";
/// The event type of an ACS email delivery report.
const EMAIL_REPORT: &str = "Microsoft.Communication.EmailDeliveryReportReceived";

/// One event in the Event Grid schema.
#[derive(Debug, Clone, Object)]
#[oai(rename = "EventGridEvent", rename_all = "camelCase")]
pub struct EventGridEventDto {
    /// The event's id (unique per event; Event Grid may deliver it more than once).
    pub id: String,
    /// The source's resource path.
    pub topic: Option<String>,
    /// What the event is about.
    pub subject: String,
    /// `Microsoft.Communication.EmailDeliveryReportReceived` is applied,
    /// `Microsoft.EventGrid.SubscriptionValidationEvent` answered; others are ignored.
    pub event_type: String,
    /// When the event happened.
    pub event_time: String,
    /// The event's own data.
    pub data: Value,
    /// The data's schema version.
    pub data_version: String,
    /// The envelope's schema version.
    pub metadata_version: Option<String>,
}

/// The data of an ACS email delivery report (`AcsEmailDeliveryReportReceivedEventData`).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcsEmailReport {
    /// ACS's id of the send operation.
    message_id: Option<String>,
    /// The `Message-ID` header of the email (varsel's `<notification-id@varsel>`).
    internet_message_id: Option<String>,
    /// `Delivered`, `Bounced`, `Expanded`, `Failed`, `FilteredSpam`, `Quarantined`,
    /// `Suppressed`: anything but `Delivered` is a failure.
    status: String,
    /// ACS's words.
    delivery_status_details: Option<AcsStatusDetails>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct AcsStatusDetails {
    status_message: Option<String>,
}

/// ACS's email status as Altinn maps it (`INT/Wolverine/Utils.cs`); a status ACS adds later is
/// a failure, as ACS documents every status but `Delivered` to be.
pub fn acs_email_status(status: &str) -> NotificationStatus {
    match status.to_ascii_lowercase().as_str() {
        "delivered" => NotificationStatus::EmailDelivered,
        "bounced" => NotificationStatus::EmailFailedBounced,
        "filteredspam" => NotificationStatus::EmailFailedFilteredSpam,
        "quarantined" => NotificationStatus::EmailFailedQuarantined,
        "suppressed" => NotificationStatus::EmailFailedSuppressedRecipient,
        _ => NotificationStatus::EmailFailed,
    }
}

/// The answer to a delivery: the handshake's validation code, or what each event did.
#[derive(Debug, Clone, Object)]
#[oai(rename = "EventGridAnswer", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct EventGridAnswerDto {
    /// To a subscription validation event: its `data.validationCode`, returned.
    pub validation_response: Option<String>,
    /// To events: one per event, in the order sent: `applied`, `unchanged`, `dead`, or
    /// `ignored` (an event type varsel does not apply).
    pub outcomes: Option<Vec<ReportOutcomeDto>>,
}

/// Answer to Event Grid.
#[derive(ApiResponse)]
pub enum EventGridResponse {
    /// The validation code, or the events taken.
    #[oai(status = 200)]
    Ok(Json<EventGridAnswerDto>),
}

#[OpenApi(prefix_path = "/notifications/api/v1")]
impl EventGridApi {
    /// Azure Event Grid email events
    ///
    /// The webhook of an Event Grid subscription to an Azure Communication Services resource's
    /// `Microsoft.Communication.EmailDeliveryReportReceived` events, in the Event Grid schema.
    /// The subscription's endpoint is this URL with `?key=` and `VARSEL_EVENTGRID_KEY`. Its
    /// validation handshake (`Microsoft.EventGrid.SubscriptionValidationEvent`) is answered
    /// with the validation code. Each report names its email by `internetMessageId`
    /// (`<notification-id@varsel>`) or ACS's `messageId`, and maps as Altinn maps it:
    /// `Delivered` → `Email_Delivered`, `Bounced` → `Email_Failed_Bounced`, `FilteredSpam` →
    /// `Email_Failed_FilteredSpam`, `Quarantined` → `Email_Failed_Quarantined`, `Suppressed` →
    /// `Email_Failed_SuppressedRecipient`, anything else (`Expanded`, `Failed`) →
    /// `Email_Failed`. Every event is checked before any is applied; other event types are
    /// ignored; a report that matches nothing is kept as a dead report.
    #[oai(
        path = "/reports/email/eventgrid",
        method = "post",
        tag = "Tag::Reports",
        operation_id = "eventGridEmailEvents"
    )]
    async fn events(
        &self,
        _sender: EventGridSender,
        body: JsonBody<Vec<EventGridEventDto>>,
    ) -> Result<EventGridResponse, ApiError> {
        if let Some(validation) = body.iter().find(|e| e.event_type == VALIDATION) {
            let code = validation.data.get("validationCode").and_then(Value::as_str);
            let code = code.filter(|c| !c.is_empty()).ok_or_else(|| {
                ApiError::invalid(
                    "data.validationCode",
                    "A subscription validation event carries its validation code.",
                )
            })?;
            return Ok(EventGridResponse::Ok(Json(EventGridAnswerDto {
                validation_response: Some(code.to_owned()),
                outcomes: None,
            })));
        }
        // Every event read before any is applied: a delivery with a bad event changes nothing.
        let mut reports = Vec::with_capacity(body.len());
        for (i, event) in body.iter().enumerate() {
            if event.event_type != EMAIL_REPORT {
                reports.push(None);
                continue;
            }
            let data: AcsEmailReport = serde_json::from_value(event.data.clone())
                .map_err(|e| ApiError::invalid(&format!("[{i}].data"), e.to_string()))?;
            let target = match (&data.internet_message_id, &data.message_id) {
                (Some(mid), _) if !mid.trim().is_empty() => email_target(mid),
                (_, Some(op)) if !op.trim().is_empty() => {
                    ReportTarget::ProviderRef(op.trim().to_owned())
                }
                _ => {
                    return Err(ApiError::invalid(
                        &format!("[{i}].data"),
                        "An email report names its email by internetMessageId or messageId.",
                    ));
                }
            };
            let status = acs_email_status(&data.status);
            let words = data.delivery_status_details.and_then(|d| d.status_message);
            let reason = match (status, words.filter(|w| !w.is_empty())) {
                (NotificationStatus::EmailFailed, w) => Some(format!(
                    "ACS: {}{}",
                    data.status,
                    w.map(|w| format!(": {w}")).unwrap_or_default()
                )),
                (_, w) => w,
            };
            reports.push(Some(Report {
                target,
                status,
                reason,
                provider_ref: None,
                raw: serde_json::json!({
                    "id": event.id, "eventType": event.event_type, "subject": event.subject,
                    "eventTime": event.event_time, "data": event.data
                })
                .to_string(),
            }));
        }
        let mut outcomes = Vec::with_capacity(reports.len());
        for report in reports {
            let Some(report) = report else {
                outcomes.push(ReportOutcomeDto { outcome: "ignored".into(), dead_report_id: None });
                continue;
            };
            outcomes.push(apply_email_report(&self.state, &report).await?);
        }
        Ok(EventGridResponse::Ok(Json(EventGridAnswerDto {
            validation_response: None,
            outcomes: Some(outcomes),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acs_statuses_map_as_altinn_maps_them() {
        for (acs, ours) in [
            ("Delivered", NotificationStatus::EmailDelivered),
            ("Bounced", NotificationStatus::EmailFailedBounced),
            ("Expanded", NotificationStatus::EmailFailed),
            ("Failed", NotificationStatus::EmailFailed),
            ("FilteredSpam", NotificationStatus::EmailFailedFilteredSpam),
            ("Quarantined", NotificationStatus::EmailFailedQuarantined),
            ("Suppressed", NotificationStatus::EmailFailedSuppressedRecipient),
            ("SomethingNew", NotificationStatus::EmailFailed),
        ] {
            assert_eq!(acs_email_status(acs), ours, "{acs}");
        }
    }
}
