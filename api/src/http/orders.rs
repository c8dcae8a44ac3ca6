//! The order endpoints under `/notifications/api/v1`.

use super::dto::*;
use super::validate::{self, Rules, ValidOrder};
use crate::error::ApiError;
use crate::startup::AppState;
use chrono::{SecondsFormat, Utc};
use poem::Request;
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Json};
use std::sync::Arc;
use varsel_activities::contacts;
use varsel_activities::store::entities::{order, order_recipient};
use varsel_activities::store::NewOrder;
use varsel_workflows::domain::{NotificationChannel, OrderStatus};
use varsel_workflows::plan;

/// The order API.
pub struct OrdersApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Answer to a new order.
#[derive(ApiResponse)]
pub enum CreatedResponse {
    /// The order was accepted and its workflow scheduled.
    #[oai(status = 202)]
    Accepted(Json<OrderCreatedDto>, #[oai(header = "Location")] String),
}

/// Answer to an order read.
#[derive(ApiResponse)]
pub enum OrderResponse {
    /// The order as submitted.
    #[oai(status = 200)]
    Ok(Json<OrderDto>),
}

#[derive(poem_openapi::Tags)]
enum Tag {
    /// Creating and reading notification orders (Altinn v1 order API).
    Orders,
}

#[OpenApi(prefix_path = "/notifications/api/v1")]
impl OrdersApi {
    /// Send notifications on a chosen channel
    ///
    /// Creates an order that notifies one or more recipients by email, SMS, a preferred channel
    /// with fallback, or both. Recipients given by organisation or national identity number are
    /// looked up in the contact register; the answer's `recipientLookup` says who is reserved and
    /// who has no contact point. Requires the scope `altinn:serviceowner/notifications.create` or a
    /// `PlatformAccessToken`.
    #[oai(path = "/orders", method = "post", tag = "Tag::Orders", operation_id = "createOrder")]
    async fn create(&self, req: &Request, body: Json<OrderRequestDto>) -> Result<CreatedResponse, ApiError> {
        let principal = self.state.verifier.authorize(req.headers())?;
        let valid = validate::order_request(&body.0, &self.rules()).map_err(ApiError::validation)?;
        self.accept(&principal.org, valid).await
    }

    /// Send email notifications
    ///
    /// Creates an email order for recipients given by email address, organisation number or
    /// national identity number. Mobile numbers in recipients are ignored.
    #[oai(path = "/orders/email", method = "post", tag = "Tag::Orders", operation_id = "createEmailOrder")]
    async fn create_email(&self, req: &Request, body: Json<EmailOrderRequestDto>) -> Result<CreatedResponse, ApiError> {
        let principal = self.state.verifier.authorize(req.headers())?;
        let valid = validate::email_request(&body.0, &self.rules()).map_err(ApiError::validation)?;
        self.accept(&principal.org, valid).await
    }

    /// Send SMS notifications
    ///
    /// Creates an SMS order for recipients given by mobile number, organisation number or
    /// national identity number. Email addresses in recipients are ignored.
    #[oai(path = "/orders/sms", method = "post", tag = "Tag::Orders", operation_id = "createSmsOrder")]
    async fn create_sms(&self, req: &Request, body: Json<SmsOrderRequestDto>) -> Result<CreatedResponse, ApiError> {
        let principal = self.state.verifier.authorize(req.headers())?;
        let valid = validate::sms_request(&body.0, &self.rules()).map_err(ApiError::validation)?;
        self.accept(&principal.org, valid).await
    }

    /// Get an order
    ///
    /// The order as it was submitted. Another organisation's order is answered 404.
    #[oai(path = "/orders/:id", method = "get", tag = "Tag::Orders", operation_id = "getOrder")]
    async fn get(&self, req: &Request, id: Path<String>) -> Result<OrderResponse, ApiError> {
        let principal = self.state.verifier.authorize(req.headers())?;
        let found = self.state.store.get_order(&id.0, &principal.org).await.map_err(ApiError::storage)?;
        let (o, recipients) = found.ok_or_else(|| ApiError::not_found("The order does not exist."))?;
        Ok(OrderResponse::Ok(Json(self.order_dto(o, recipients))))
    }
}

impl OrdersApi {
    fn rules(&self) -> Rules<'_> {
        Rules { now: Utc::now(), condition_allowed_hosts: &self.state.config.condition_allowed_hosts }
    }

    /// Looks up recipients, stores the order atomically, and starts its workflow (or leaves it
    /// to the dispatcher when Temporal is unreachable: the order is accepted and starts later).
    async fn accept(&self, creator: &str, v: ValidOrder) -> Result<CreatedResponse, ApiError> {
        let resolved = contacts::resolve(&self.state.store, &v.recipients).await.map_err(ApiError::storage)?;
        let lookup = lookup_result(v.channel, v.ignore_reservation, &v.recipients, &resolved);

        let id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now();
        let row = order::Model {
            id: id.clone(),
            creator: creator.to_owned(),
            senders_reference: v.senders_reference.clone(),
            requested_send_time: v.requested_send_time,
            created: now,
            notification_channel: v.channel.as_str().to_owned(),
            ignore_reservation: v.ignore_reservation,
            resource_id: v.resource_id.clone(),
            resource_action: v.resource_action.clone(),
            condition_endpoint: v.condition_endpoint.clone(),
            email_from: v.email.as_ref().and_then(|e| e.from.clone()),
            email_subject: v.email.as_ref().map(|e| e.subject.clone()),
            email_body: v.email.as_ref().map(|e| e.body.clone()),
            email_content_type: v.email.as_ref().map(|e| e.content_type.as_str().to_owned()),
            sms_sender: v.sms.as_ref().and_then(|s| s.sender.clone()),
            sms_body: v.sms.as_ref().map(|s| s.body.clone()),
            order_kind: v.kind.as_str().to_owned(),
            status: OrderStatus::Registered.as_str().to_owned(),
            status_changed: now,
            recipient_count: v.recipients.len() as i32,
            workflow_started: false,
        };
        let send_time_ms = v.requested_send_time.timestamp_millis();
        self.state
            .store
            .insert_order(NewOrder { order: row, recipients: v.recipients })
            .await
            .map_err(ApiError::storage)?;
        tracing::info!(order_id = id, creator, channel = v.channel.as_str(), "order accepted");

        self.state.dispatcher.start_now(&id, send_time_ms).await;

        let location = format!("{}/notifications/api/v1/orders/{id}", self.state.base_url);
        Ok(CreatedResponse::Accepted(Json(OrderCreatedDto { order_id: id, recipient_lookup: lookup }), location))
    }

    fn order_dto(&self, o: order::Model, recipients: Vec<order_recipient::Model>) -> OrderDto {
        let base = format!("{}/notifications/api/v1/orders/{}", self.state.base_url, o.id);
        let channel = match NotificationChannel::parse(&o.notification_channel).unwrap_or(NotificationChannel::Email) {
            NotificationChannel::Email => NotificationChannelDto::Email,
            NotificationChannel::Sms => NotificationChannelDto::Sms,
            NotificationChannel::EmailPreferred => NotificationChannelDto::EmailPreferred,
            NotificationChannel::SmsPreferred => NotificationChannelDto::SmsPreferred,
            NotificationChannel::EmailAndSms => NotificationChannelDto::EmailAndSms,
        };
        let email_template = o.email_body.as_ref().map(|body| EmailTemplateDto {
            from_address: o.email_from.clone(),
            subject: o.email_subject.clone(),
            body: Some(body.clone()),
            content_type: o.email_content_type.as_deref().map(|c| {
                CaseInsensitive(if c == "Html" { EmailContentTypeDto::Html } else { EmailContentTypeDto::Plain })
            }),
        });
        let sms_template = o.sms_body.as_ref().map(|body| SmsTemplateDto {
            sender_number: o.sms_sender.clone(),
            body: Some(body.clone()),
        });
        OrderDto {
            id: o.id.clone(),
            senders_reference: o.senders_reference,
            requested_send_time: o.requested_send_time.to_rfc3339_opts(SecondsFormat::Millis, true),
            creator: o.creator,
            created: o.created.to_rfc3339_opts(SecondsFormat::Millis, true),
            notification_channel: channel,
            ignore_reservation: Some(o.ignore_reservation),
            resource_id: o.resource_id,
            resource_action: o.resource_action,
            condition_endpoint: o.condition_endpoint,
            recipients: recipients
                .into_iter()
                .map(|r| RecipientDto {
                    email_address: r.email,
                    mobile_number: r.mobile,
                    organization_number: r.org_no,
                    national_identity_number: r.nin,
                    is_reserved: None,
                })
                .collect(),
            email_template,
            sms_template,
            links: OrderLinksDto { self_link: base.clone(), status: format!("{base}/status") },
        }
    }
}

/// The registration-time lookup answer (Altinn `GetRecipientLookupResult`): `None` when no
/// recipient was given by identifier.
fn lookup_result(
    channel: NotificationChannel,
    ignore_reservation: bool,
    recipients: &[varsel_activities::store::NewRecipient],
    resolved: &[contacts::Resolved],
) -> Option<RecipientLookupDto> {
    let mut looked_up = 0;
    let mut reachable = 0;
    let mut is_reserved = Vec::new();
    let mut missing_contact = Vec::new();
    for (r, res) in recipients.iter().zip(resolved) {
        if !res.looked_up {
            continue;
        }
        looked_up += 1;
        let id = r.nin.clone().or_else(|| r.org_no.clone()).unwrap_or_default();
        let planned = plan::plan(channel, &res.contact, ignore_reservation);
        if planned.iter().any(|p| p.status.is_pending()) {
            reachable += 1;
        }
        if res.contact.reserved {
            is_reserved.push(id);
        } else if !planned.iter().any(|p| p.status.is_pending()) {
            missing_contact.push(id);
        }
    }
    if looked_up == 0 {
        return None;
    }
    let status = if reachable == looked_up {
        RecipientLookupStatusDto::Success
    } else if reachable == 0 {
        RecipientLookupStatusDto::Failed
    } else {
        RecipientLookupStatusDto::PartialSuccess
    };
    Some(RecipientLookupDto { status, is_reserved, missing_contact })
}
