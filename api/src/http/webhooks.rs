//! Status webhooks for senders: a creator registers endpoints with the events it wants, rotates
//! their signing secrets, lists recent deliveries and redelivers one. Every operation is scoped
//! to the creator of the credential: another creator's endpoint is "not found".

use super::json_body::JsonBody;
use super::security::ServiceOwner;
use crate::error::ApiError;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use std::sync::Arc;
use varsel_activities::store::{
    DeliveryStatus, EndpointChange, NewEndpoint, WebhookEndpoint, WebhookMessage,
};
use varsel_activities::webhooks::{WebhookEvent, new_secret};

/// The webhook endpoints.
pub struct WebhooksApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[derive(poem_openapi::Tags)]
enum Tag {
    /// Status webhooks: varsel posts your orders' events to your endpoints, signed as the
    /// Standard Webhooks specification says.
    Webhooks,
}

/// An event an endpoint can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "WebhookEventType")]
pub enum EventDto {
    /// The order is completed: every notification has a final status.
    #[oai(rename = "order.completed")]
    OrderCompleted,
    /// The send condition said no; nothing was sent.
    #[oai(rename = "order.send_condition_not_met")]
    OrderSendConditionNotMet,
    /// The order was cancelled before processing.
    #[oai(rename = "order.cancelled")]
    OrderCancelled,
    /// A notification reached a final status.
    #[oai(rename = "notification.final")]
    NotificationFinal,
    /// Any status change of a notification.
    #[oai(rename = "notification.status_changed")]
    NotificationStatusChanged,
}

impl From<EventDto> for WebhookEvent {
    fn from(e: EventDto) -> Self {
        match e {
            EventDto::OrderCompleted => Self::OrderCompleted,
            EventDto::OrderSendConditionNotMet => Self::OrderSendConditionNotMet,
            EventDto::OrderCancelled => Self::OrderCancelled,
            EventDto::NotificationFinal => Self::NotificationFinal,
            EventDto::NotificationStatusChanged => Self::NotificationStatusChanged,
        }
    }
}

impl From<WebhookEvent> for EventDto {
    fn from(e: WebhookEvent) -> Self {
        match e {
            WebhookEvent::OrderCompleted => Self::OrderCompleted,
            WebhookEvent::OrderSendConditionNotMet => Self::OrderSendConditionNotMet,
            WebhookEvent::OrderCancelled => Self::OrderCancelled,
            WebhookEvent::NotificationFinal => Self::NotificationFinal,
            WebhookEvent::NotificationStatusChanged => Self::NotificationStatusChanged,
        }
    }
}

/// A new webhook endpoint.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WebhookEndpointInput", rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointInput {
    /// Where events are posted: an absolute `https` (or `http`) URL at a public address.
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: String,
    /// The events to receive.
    #[oai(validator(min_items = 1, max_items = 5))]
    pub events: Vec<EventDto>,
    /// Your own words about the endpoint.
    #[oai(validator(max_length = 500))]
    pub description: Option<String>,
}

/// A change to a webhook endpoint: what is absent stays as it is.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WebhookEndpointChange", rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointChangeInput {
    /// A new URL.
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Option<String>,
    /// New events.
    #[oai(validator(min_items = 1, max_items = 5))]
    pub events: Option<Vec<EventDto>>,
    /// New words; `null` removes them.
    #[oai(validator(max_length = 500))]
    pub description: MaybeUndefined<String>,
    /// `true` enables an endpoint (also one disabled after its deliveries kept failing: its
    /// waiting deliveries resume); `false` disables it.
    pub enabled: Option<bool>,
}

/// A webhook endpoint.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WebhookEndpoint", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct EndpointDto {
    /// Its id.
    pub id: String,
    /// Where events are posted.
    pub url: String,
    /// Your own words.
    pub description: Option<String>,
    /// The events it receives.
    pub events: Vec<EventDto>,
    /// Whether events are delivered. An endpoint whose deliveries failed until their retries
    /// ran out (more than a day) is disabled; events that happen while it is disabled are not
    /// kept.
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// Until when the secret before the last rotation still signs (beside the current one).
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    /// When registered.
    pub created: DateTime<Utc>,
    /// When last changed.
    pub updated: DateTime<Utc>,
}

/// A new webhook endpoint and its signing secret.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WebhookEndpointCreated", rename_all = "camelCase")]
pub struct EndpointCreatedDto {
    /// The endpoint.
    #[oai(flatten)]
    pub endpoint: EndpointDto,
    /// The signing secret (`whsec_` and base64), shown only here and at a rotation: keep it.
    pub secret: String,
}

/// A new signing secret.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WebhookSecret", rename_all = "camelCase")]
pub struct SecretDto {
    /// The new secret (`whsec_` and base64): every delivery is signed with it from now on.
    pub secret: String,
    /// Until when deliveries are also signed with the previous secret.
    pub previous_secret_valid_until: DateTime<Utc>,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "WebhookDeliveryStatus")]
pub enum DeliveryStatusDto {
    /// Not yet accepted; retried.
    Pending,
    /// The endpoint accepted it (2xx).
    Delivered,
    /// Its retries ran out and the endpoint was disabled.
    Failed,
}

impl From<DeliveryStatus> for DeliveryStatusDto {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Failed => Self::Failed,
        }
    }
}

impl From<DeliveryStatusDto> for DeliveryStatus {
    fn from(s: DeliveryStatusDto) -> Self {
        match s {
            DeliveryStatusDto::Pending => Self::Pending,
            DeliveryStatusDto::Delivered => Self::Delivered,
            DeliveryStatusDto::Failed => Self::Failed,
        }
    }
}

/// One event for one endpoint, and how its delivery went.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WebhookDelivery", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeliveryDto {
    /// The message id: the `webhook-id` header, the same on every attempt and redelivery.
    pub id: String,
    /// The order it is about.
    pub order_id: String,
    /// The event.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatusDto,
    /// Attempts made.
    pub attempts: u32,
    /// When the event happened.
    pub created: DateTime<Utc>,
    /// When the last attempt was made.
    pub last_attempt: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt.
    pub last_status_code: Option<u16>,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    /// When the endpoint accepted it.
    pub delivered: Option<DateTime<Utc>>,
    /// The body as posted.
    pub payload: serde_json::Value,
}

/// A page of deliveries, newest first.
#[derive(Debug, Clone, Object)]
#[oai(rename = "WebhookDeliveries", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DeliveriesDto {
    /// The deliveries.
    pub deliveries: Vec<DeliveryDto>,
    /// The `before` of the next (older) page, when there may be one.
    pub next_before: Option<i64>,
}

/// A created endpoint.
#[derive(ApiResponse)]
pub enum CreatedResponse {
    /// Registered; the secret is shown only now.
    #[oai(status = 201)]
    Created(Json<EndpointCreatedDto>),
}

/// An endpoint.
#[derive(ApiResponse)]
pub enum EndpointResponse {
    /// The endpoint.
    #[oai(status = 200)]
    Ok(Json<EndpointDto>),
}

/// Endpoints.
#[derive(ApiResponse)]
pub enum EndpointsResponse {
    /// Every endpoint of the creator, oldest first.
    #[oai(status = 200)]
    Ok(Json<Vec<EndpointDto>>),
}

/// A removal.
#[derive(ApiResponse)]
pub enum DeletedResponse {
    /// Removed; its deliveries not yet made are dropped.
    #[oai(status = 204)]
    Deleted,
}

/// A rotation.
#[derive(ApiResponse)]
pub enum SecretResponse {
    /// The new secret.
    #[oai(status = 200)]
    Ok(Json<SecretDto>),
}

/// Deliveries.
#[derive(ApiResponse)]
pub enum DeliveriesResponse {
    /// A page of the endpoint's deliveries, newest first.
    #[oai(status = 200)]
    Ok(Json<DeliveriesDto>),
}

/// A redelivery.
#[derive(ApiResponse)]
pub enum RedeliverResponse {
    /// Queued: it is delivered again (with the same id) after the order's other waiting
    /// events before it.
    #[oai(status = 202)]
    Accepted(Json<DeliveryDto>),
}

fn endpoint_dto(e: WebhookEndpoint) -> EndpointDto {
    EndpointDto {
        id: e.id,
        url: e.url,
        description: e.description,
        events: e.events.into_iter().map(EventDto::from).collect(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason,
        previous_secret_valid_until: e.previous_secret.map(|(_, until)| until),
        created: e.created,
        updated: e.updated,
    }
}

fn delivery_dto(m: WebhookMessage) -> DeliveryDto {
    DeliveryDto {
        payload: serde_json::from_str(&m.payload).unwrap_or(serde_json::Value::Null),
        id: m.id,
        order_id: m.order_id,
        event_type: m.event_type,
        status: m.status.into(),
        attempts: m.attempts,
        created: m.created,
        last_attempt: m.last_attempt,
        last_status_code: m.last_status_code,
        last_error: m.last_error,
        delivered: m.delivered,
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("No webhook endpoint {id} for this organisation."))
}

/// The events asked for, each once, in the documented order.
fn events(asked: Vec<EventDto>) -> Vec<WebhookEvent> {
    let mut events: Vec<WebhookEvent> = asked.into_iter().map(WebhookEvent::from).collect();
    events.sort();
    events.dedup();
    events
}

impl WebhooksApi {
    /// A URL an endpoint may have: absolute http(s), at a destination the outbound policy
    /// allows (as resolved now; each delivery checks again).
    async fn check_url(&self, url: &str) -> Result<String, ApiError> {
        let sender = &self.state.webhook_sender;
        let parsed = match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => u,
            _ => {
                return Err(ApiError::invalid(
                    "url",
                    "The url must be an absolute http or https URL.",
                ));
            }
        };
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(ApiError::invalid(
                "url",
                "The url must not hold credentials; check the webhook-signature header instead.",
            ));
        }
        let refused = |r: varsel_activities::providers::outbound::Refused| {
            ApiError::invalid("url", format!("The url's destination is not allowed: {r}."))
        };
        sender.check_url(parsed.as_str()).map_err(refused)?;
        sender.check_resolves(&parsed).await.map_err(refused)?;
        Ok(parsed.to_string())
    }

    async fn owned(&self, id: &str, creator: &str) -> Result<WebhookEndpoint, ApiError> {
        self.state
            .store
            .webhook_endpoint_of(id, creator)
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| not_found(id))
    }
}

/// Deliveries listed per page at most.
const MAX_PAGE: u32 = 200;

#[OpenApi(prefix_path = "/notifications/api/v1/webhooks")]
impl WebhooksApi {
    /// Register a webhook endpoint
    ///
    /// varsel posts the events you choose about your orders to `url`, as JSON
    /// `{"type", "timestamp", "data"}`, signed as the Standard Webhooks specification says:
    /// headers `webhook-id` (the same on every attempt: drop a repeat), `webhook-timestamp`
    /// (Unix seconds) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
    /// `{webhook-id}.{webhook-timestamp}.{body}` under the secret's base64-decoded bytes after
    /// `whsec_`; during a rotation, one signature per secret, space-separated). Any 2xx answer
    /// accepts a delivery; anything else is retried with growing delays for more than a day,
    /// then the endpoint is disabled with the reason. One order's events reach an endpoint in
    /// the order they happened. Private, loopback and link-local destinations are refused.
    #[oai(
        path = "/",
        method = "post",
        tag = "Tag::Webhooks",
        operation_id = "createWebhookEndpoint"
    )]
    async fn create(
        &self,
        owner: ServiceOwner,
        body: JsonBody<EndpointInput>,
    ) -> Result<CreatedResponse, ApiError> {
        let creator = owner.0.org;
        let input = body.0;
        let url = self.check_url(input.url.trim()).await?;
        let max = self.state.config.webhooks.max_endpoints;
        let have =
            self.state.store.count_webhook_endpoints(&creator).await.map_err(ApiError::storage)?;
        if have >= max {
            return Err(ApiError::conflict(format!(
                "An organisation may register at most {max} webhook endpoints; remove one first."
            )));
        }
        let secret = new_secret();
        let endpoint = self
            .state
            .store
            .create_webhook_endpoint(NewEndpoint {
                creator,
                url,
                description: input.description,
                events: events(input.events),
                secret: secret.clone(),
            })
            .await
            .map_err(ApiError::storage)?;
        tracing::info!(
            endpoint = endpoint.id,
            creator = endpoint.creator,
            "webhook endpoint registered"
        );
        Ok(CreatedResponse::Created(Json(EndpointCreatedDto {
            endpoint: endpoint_dto(endpoint),
            secret,
        })))
    }

    /// List your webhook endpoints
    #[oai(path = "/", method = "get", tag = "Tag::Webhooks", operation_id = "listWebhookEndpoints")]
    async fn list(&self, owner: ServiceOwner) -> Result<EndpointsResponse, ApiError> {
        let endpoints =
            self.state.store.webhook_endpoints_of(&owner.0.org).await.map_err(ApiError::storage)?;
        Ok(EndpointsResponse::Ok(Json(endpoints.into_iter().map(endpoint_dto).collect())))
    }

    /// Get a webhook endpoint
    #[oai(
        path = "/:id",
        method = "get",
        tag = "Tag::Webhooks",
        operation_id = "getWebhookEndpoint"
    )]
    async fn get(
        &self,
        owner: ServiceOwner,
        id: Path<String>,
    ) -> Result<EndpointResponse, ApiError> {
        Ok(EndpointResponse::Ok(Json(endpoint_dto(self.owned(&id.0, &owner.0.org).await?))))
    }

    /// Change a webhook endpoint
    ///
    /// Its URL, events or description; `enabled: true` enables it again after it was disabled
    /// (its waiting deliveries resume), `false` disables it.
    #[oai(
        path = "/:id",
        method = "patch",
        tag = "Tag::Webhooks",
        operation_id = "updateWebhookEndpoint"
    )]
    async fn update(
        &self,
        owner: ServiceOwner,
        id: Path<String>,
        body: JsonBody<EndpointChangeInput>,
    ) -> Result<EndpointResponse, ApiError> {
        let input = body.0;
        let url = match &input.url {
            Some(u) => Some(self.check_url(u.trim()).await?),
            None => None,
        };
        let description = match input.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d)),
        };
        let change = EndpointChange {
            url,
            description,
            events: input.events.map(events),
            enabled: input.enabled,
        };
        let updated = self
            .state
            .store
            .update_webhook_endpoint(&id.0, &owner.0.org, change)
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| not_found(&id.0))?;
        Ok(EndpointResponse::Ok(Json(endpoint_dto(updated))))
    }

    /// Remove a webhook endpoint
    #[oai(
        path = "/:id",
        method = "delete",
        tag = "Tag::Webhooks",
        operation_id = "deleteWebhookEndpoint"
    )]
    async fn delete(
        &self,
        owner: ServiceOwner,
        id: Path<String>,
    ) -> Result<DeletedResponse, ApiError> {
        let removed = self
            .state
            .store
            .delete_webhook_endpoint(&id.0, &owner.0.org)
            .await
            .map_err(ApiError::storage)?;
        if !removed {
            return Err(not_found(&id.0));
        }
        Ok(DeletedResponse::Deleted)
    }

    /// Rotate a webhook endpoint's secret
    ///
    /// A new secret signs every delivery from now on; the previous one keeps signing beside it
    /// for `VARSEL_WEBHOOK_SECRET_OVERLAP_SECS` (a day by default), so a receiver can switch
    /// without losing a delivery.
    #[oai(
        path = "/:id/secret",
        method = "post",
        tag = "Tag::Webhooks",
        operation_id = "rotateWebhookSecret"
    )]
    async fn rotate(
        &self,
        owner: ServiceOwner,
        id: Path<String>,
    ) -> Result<SecretResponse, ApiError> {
        let secret = new_secret();
        let overlap = self.state.config.webhooks.secret_overlap_secs.min(365 * 24 * 3600) as i64;
        let until = Utc::now() + chrono::Duration::seconds(overlap);
        self.state
            .store
            .rotate_webhook_secret(&id.0, &owner.0.org, secret.clone(), until)
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| not_found(&id.0))?;
        Ok(SecretResponse::Ok(Json(SecretDto { secret, previous_secret_valid_until: until })))
    }

    /// List a webhook endpoint's deliveries
    ///
    /// Newest first, with how each went. `before` pages back (the `nextBefore` of the previous
    /// page); `status` keeps one kind.
    #[oai(
        path = "/:id/deliveries",
        method = "get",
        tag = "Tag::Webhooks",
        operation_id = "listWebhookDeliveries"
    )]
    async fn deliveries(
        &self,
        owner: ServiceOwner,
        id: Path<String>,
        /// Only deliveries in this status.
        status: Query<Option<DeliveryStatusDto>>,
        /// Deliveries before this position (`nextBefore`).
        #[oai(validator(minimum(value = "0")))]
        before: Query<Option<i64>>,
        /// How many at most (1 to 200; 50 when absent).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
    ) -> Result<DeliveriesResponse, ApiError> {
        let endpoint = self.owned(&id.0, &owner.0.org).await?;
        let limit = limit.0.unwrap_or(50).clamp(1, MAX_PAGE);
        let page = self
            .state
            .store
            .webhook_messages_of(&endpoint.id, status.0.map(Into::into), before.0, u64::from(limit))
            .await
            .map_err(ApiError::storage)?;
        let next_before =
            (page.len() == limit as usize).then(|| page.last().map(|m| m.seq)).flatten();
        Ok(DeliveriesResponse::Ok(Json(DeliveriesDto {
            deliveries: page.into_iter().map(delivery_dto).collect(),
            next_before,
        })))
    }

    /// Redeliver a webhook delivery
    ///
    /// Delivers it again, with the same `webhook-id`, whatever became of it: a delivery that
    /// failed when the endpoint was disabled, or one your receiver lost. A disabled endpoint
    /// must be enabled first.
    #[oai(
        path = "/:id/deliveries/:delivery_id/redeliver",
        method = "post",
        tag = "Tag::Webhooks",
        operation_id = "redeliverWebhook"
    )]
    async fn redeliver(
        &self,
        owner: ServiceOwner,
        id: Path<String>,
        delivery_id: Path<String>,
    ) -> Result<RedeliverResponse, ApiError> {
        let endpoint = self.owned(&id.0, &owner.0.org).await?;
        if !endpoint.enabled {
            return Err(ApiError::conflict(
                "The endpoint is disabled: enable it first (PATCH with enabled: true).",
            ));
        }
        let message = self
            .state
            .store
            .redeliver_webhook(&endpoint.id, &delivery_id.0)
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "No delivery {} of webhook endpoint {}.",
                    delivery_id.0, endpoint.id
                ))
            })?;
        Ok(RedeliverResponse::Accepted(Json(delivery_dto(message))))
    }
}
