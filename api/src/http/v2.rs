//! The newer order API (Altinn's "v2", under `/notifications/api/v1/future`): order chains (a notification and
//! its reminders) created once per idempotency id, and the shipment view of an order.

use super::json_body::JsonBody;
use super::orders::{order_id, timestamp};
use super::security::{ComposedEmailCreator, ServiceOwner};
use super::v2_dto::*;
use super::validate::Rules;
use super::validate_composed::validate_composed;
use super::validate_v2::{
    ValidChain, ValidChainOrder, ValidInstant, validate_chain, validate_instant,
    validate_instant_email, validate_instant_sms,
};
use crate::error::ApiError;
use crate::state::AppState;
use chrono::Utc;
use poem_openapi::{
    ApiResponse, OpenApi, Tags,
    param::{Path, Query},
    payload::Json,
    types::ToJSON,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tracing::Instrument;
use varsel_activities::contacts;
use varsel_activities::instant::{InstantMessage, InstantOutcome};
use varsel_activities::providers::outbound::OutboundPolicy;
use varsel_activities::store::{Chain, ChainInsert, Notification};
use varsel_workflows::domain::{Channel, NotificationChannel, OrderStatus};
use varsel_workflows::order::{ChainPlacement, NewOrder, Order, OrderType};
use varsel_workflows::plan;

/// The newer order API.
pub struct V2Api {
    /// Shared state.
    pub state: Arc<AppState>,
}

#[derive(Tags)]
enum Tag {
    /// Order chains with idempotency and reminders, and shipments (Altinn's newer order API).
    Future,
}

/// Answer to an order chain.
#[derive(ApiResponse)]
pub enum ChainCreatedResponse {
    /// Created: the notification and its reminders are scheduled.
    #[oai(status = 201)]
    Created(Json<ChainResponseDto>, #[oai(header = "Location")] String),
    /// A repeat of an earlier request with the same idempotency id: its answer, nothing new.
    #[oai(status = 200)]
    Repeated(Json<ChainResponseDto>, #[oai(header = "Location")] String),
}

/// Answer to an instant message.
#[derive(ApiResponse)]
pub enum InstantCreatedResponse {
    /// Sent: the provider took the message (or refused it for good, which its shipment shows).
    #[oai(status = 201)]
    Created(Json<ChainResponseDto>, #[oai(header = "Location")] String),
    /// A repeat of an earlier request with the same idempotency id: its answer; nothing is
    /// sent again.
    #[oai(status = 200)]
    Repeated(Json<ChainResponseDto>, #[oai(header = "Location")] String),
}

/// An order chain as created.
#[derive(ApiResponse)]
pub enum ChainResponse {
    /// The chain.
    #[oai(status = 200)]
    Ok(Json<ChainResponseDto>),
}

/// A page of the status feed.
#[derive(ApiResponse)]
pub enum FeedResponse {
    /// Entries in the order asked for; empty when there are no more.
    #[oai(status = 200)]
    Ok(Json<Vec<FeedEntryDto>>),
}

/// A shipment.
#[derive(ApiResponse)]
pub enum ShipmentResponse {
    /// The order and its messages.
    #[oai(status = 200)]
    Ok(Json<DeliveryManifestDto>),
}

#[OpenApi(prefix_path = "/notifications/api/v1")]
impl V2Api {
    /// Send a notification with reminders, once
    ///
    /// Creates one notification to one recipient (an email address, a mobile number, a person or
    /// an organisation looked up in the contact register) and any reminders, each an order of its
    /// own sent `delayDays` later or at its `requestedSendTime`, with its own condition and
    /// recipient. `idempotencyId` makes the request safe to repeat: a repeat with the same id
    /// answers 200 with the first answer and creates nothing; the same id with a different request
    /// is 409. When a person or organisation has no contact details for its channel the answer is
    /// 422 `NOT-00001` and nothing is stored (a reserved person is not missing). Cancelling the
    /// notification (`PUT /orders/{shipmentId}/cancel`) cancels its reminders too.
    #[oai(
        path = "/future/orders",
        method = "post",
        tag = "Tag::Future",
        operation_id = "createOrderChain"
    )]
    async fn create(
        &self,
        ServiceOwner(principal): ServiceOwner,
        body: JsonBody<OrderChainRequestDto>,
    ) -> Result<ChainCreatedResponse, ApiError> {
        let rules = Rules::new(&self.state.config, &self.state.outbound);
        let day =
            chrono::Duration::seconds(self.state.config.processing.reminder_day_secs.max(1) as i64);
        let hash = request_hash(&body.0);
        let valid = validate_chain(&body.0, &rules, day).map_err(ApiError::validation)?;
        drop(body);
        self.register(&principal.org, valid, hash, "chain").await
    }

    /// Send an email with attachments
    ///
    /// One email to one address at `requestedSendTime` (default now), with files that are
    /// fetched from their URLs when it is sent, not now: each `sasUrl` must stay valid until then
    /// (an `se` expiry at least 15 minutes after the send time). Files come only from public
    /// `https` hosts (or hosts `VARSEL_ATTACHMENT_ALLOWED_HOSTS` lists), at most
    /// `VARSEL_EMAIL_MAX_MESSAGE_BYTES` together with the email; each must be served as its
    /// `mimeType` declares (or as `application/octet-stream`). A file that cannot be fetched (a 4xx
    /// answer, a refused destination, another type) ends the email `Email_Failed_InvalidSasUrl`,
    /// one too large `Email_Failed_PayloadTooLarge`; a file server that cannot answer now is
    /// tried again. Composed emails are sent on a queue of their own, so large mails never hold
    /// up other orders. Needs the scope `altinn:serviceowner/notifications.composedemail.create`
    /// (no PlatformAccessToken). Idempotent as `/future/orders`.
    #[oai(
        path = "/future/orders/composed-email",
        method = "post",
        tag = "Tag::Future",
        operation_id = "createComposedEmail"
    )]
    async fn composed_email(
        &self,
        ComposedEmailCreator(principal): ComposedEmailCreator,
        body: JsonBody<ComposedEmailRequestDto>,
    ) -> Result<ChainCreatedResponse, ApiError> {
        let rules = Rules::new(&self.state.config, &self.state.outbound);
        let files = OutboundPolicy::new(&self.state.config.email.attachment_allowed_hosts);
        let hash = request_hash_of("composed-email", &body.0);
        let valid = validate_composed(&body.0, &rules, &files).map_err(ApiError::validation)?;
        drop(body);
        self.register(&principal.org, valid, hash, "composed").await
    }

    /// Send an SMS now
    ///
    /// Sends one SMS while the request waits, with no lookup, condition or sending window, and
    /// answers once the gateway has taken it. The network may try to deliver it for
    /// `timeToLiveInSeconds` (60 to 172,800); after that it is given up (`SMS_Failed_TTL`).
    /// When the gateway cannot be reached or is overloaded the answer is 503 `NOT-00004` and
    /// nothing is stored, so the same request can simply be repeated. A repeat of a request that
    /// was answered gets that answer (200) and sends nothing; one that is still being sent gets
    /// 409. Read its delivery at `/future/shipment/{shipmentId}`.
    #[oai(
        path = "/future/orders/instant/sms",
        method = "post",
        tag = "Tag::Future",
        operation_id = "sendInstantSms"
    )]
    async fn instant_sms(
        &self,
        ServiceOwner(principal): ServiceOwner,
        body: JsonBody<InstantSmsRequestDto>,
    ) -> Result<InstantCreatedResponse, ApiError> {
        let hash = request_hash_of("instant-sms", &body.0);
        let valid =
            validate_instant_sms(&body.0, &Rules::new(&self.state.config, &self.state.outbound))
                .map_err(ApiError::validation)?;
        self.instant(&principal.org, valid, hash).await
    }

    /// Send an SMS now (deprecated shape)
    ///
    /// Altinn's older request for an instant SMS, still served for the clients that send it:
    /// `recipient.recipientSms` holds what `/future/orders/instant/sms` takes as `recipientSms`.
    /// It is that endpoint in every other way (the same sending, answers, statuses and
    /// messages, the field paths under `Recipient.RecipientSms`), and an idempotency id means the
    /// same request on both. Use `/future/orders/instant/sms`.
    #[oai(
        path = "/future/orders/instant",
        method = "post",
        tag = "Tag::Future",
        operation_id = "sendInstantSmsDeprecated",
        deprecated
    )]
    async fn instant_deprecated(
        &self,
        ServiceOwner(principal): ServiceOwner,
        body: JsonBody<InstantRequestDto>,
    ) -> Result<InstantCreatedResponse, ApiError> {
        let hash = request_hash_of("instant-sms", &body.0.to_sms_request());
        let valid =
            validate_instant(&body.0, &Rules::new(&self.state.config, &self.state.outbound))
                .map_err(ApiError::validation)?;
        self.instant(&principal.org, valid, hash).await
    }

    /// Send an email now
    ///
    /// Sends one email while the request waits, with no lookup or condition, and answers once
    /// the mail relay has taken it. It stays open for a delivery report for 48 hours. When the
    /// relay cannot be reached the answer is 503 `NOT-00004` and nothing is stored; repeats are
    /// answered as for `/future/orders/instant/sms`.
    #[oai(
        path = "/future/orders/instant/email",
        method = "post",
        tag = "Tag::Future",
        operation_id = "sendInstantEmail"
    )]
    async fn instant_email(
        &self,
        ServiceOwner(principal): ServiceOwner,
        body: JsonBody<InstantEmailRequestDto>,
    ) -> Result<InstantCreatedResponse, ApiError> {
        let hash = request_hash_of("instant-email", &body.0);
        let valid =
            validate_instant_email(&body.0, &Rules::new(&self.state.config, &self.state.outbound))
                .map_err(ApiError::validation)?;
        self.instant(&principal.org, valid, hash).await
    }

    /// Get an order chain
    ///
    /// The answer given when the chain was created: its notification's and reminders' shipment
    /// ids. This is where a new chain's `Location` points.
    #[oai(
        path = "/future/orders/:id",
        method = "get",
        tag = "Tag::Future",
        operation_id = "getOrderChain"
    )]
    async fn chain(
        &self,
        ServiceOwner(principal): ServiceOwner,
        id: Path<String>,
    ) -> Result<ChainResponse, ApiError> {
        let Ok(id) = order_id(&id.0) else {
            return Err(ApiError::not_found("The order chain does not exist."));
        };
        let chain =
            self.state.store.get_chain(&id, &principal.org).await.map_err(ApiError::storage)?;
        let chain = chain.ok_or_else(|| ApiError::not_found("The order chain does not exist."))?;
        Ok(ChainResponse::Ok(Json(stored_response(&chain)?)))
    }

    /// Read the status feed
    ///
    /// One entry per order of the caller that reached `Order_Completed` or
    /// `Order_SendConditionNotMet`, numbered in the order they were written. Read on by passing
    /// the last `sequenceNumber` seen as `seq` (exclusive): ascending (the default) returns the
    /// entries after it; descending the ones before it, or the newest when `seq` is 0. Entries
    /// are numbered in commit order, so paging never skips one written concurrently. `pageSize`
    /// is 1 to 500 (default 500). Entries are kept `VARSEL_STATUS_FEED_RETENTION_DAYS` days.
    #[oai(
        path = "/future/shipment/feed",
        method = "get",
        tag = "Tag::Future",
        operation_id = "getStatusFeed"
    )]
    async fn feed(
        &self,
        ServiceOwner(principal): ServiceOwner,
        /// Exclusive cursor: the last sequence number seen (default 0).
        seq: Query<Option<i64>>,
        /// Entries per page, 1 to 500 (default 500).
        #[oai(name = "pageSize")]
        page_size: Query<Option<i64>>,
        /// `Asc` (default) or `Desc`.
        #[oai(name = "orderBy")]
        order_by: Query<Option<String>>,
    ) -> Result<FeedResponse, ApiError> {
        let seq = seq.0.unwrap_or(0);
        if seq < 0 {
            return Err(ApiError::invalid("Seq", "Sequence number cannot be less than 0."));
        }
        let limit = match page_size.0.unwrap_or(500) {
            n @ 1..=500 => n as u64,
            n => {
                return Err(ApiError::invalid(
                    "PageSize",
                    format!("PageSize must be between 1 and 500; it is {n}."),
                ));
            }
        };
        let descending = match order_by.0.as_deref().map(str::trim) {
            None | Some("") => false,
            Some(o) if o.eq_ignore_ascii_case("asc") => false,
            Some(o) if o.eq_ignore_ascii_case("desc") => true,
            Some(_) => return Err(ApiError::invalid("OrderBy", "OrderBy must be Asc or Desc.")),
        };
        let store = &self.state.store;
        let entries = store
            .status_feed(&principal.org, seq, limit, descending)
            .await
            .map_err(ApiError::storage)?;
        let ids: Vec<String> = entries.iter().map(|e| e.order_id.clone()).collect();
        let orders = store.orders_by_ids(&ids).await.map_err(ApiError::storage)?;
        let mut notifications: HashMap<String, Vec<Notification>> = HashMap::new();
        for n in store.notifications_of_orders(&ids).await.map_err(ApiError::storage)? {
            notifications.entry(n.order_id.clone()).or_default().push(n);
        }
        let page = entries
            .into_iter()
            .filter_map(|e| {
                let stored = orders.iter().find(|o| o.order.id == e.order_id)?;
                let o = &stored.order;
                Some(FeedEntryDto {
                    sequence_number: e.seq,
                    shipment_id: o.id.clone(),
                    senders_reference: o.senders_reference.clone(),
                    shipment_type: Some(shipment_type(o)),
                    status: order_status(o),
                    last_update: timestamp(stored.status_changed),
                    recipients: notifications
                        .remove(&o.id)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|n| FeedRecipientDto {
                            destination: n.address,
                            status: n.status.as_str().to_owned(),
                            last_update: timestamp(n.status_changed),
                        })
                        .collect(),
                })
            })
            .collect();
        Ok(FeedResponse::Ok(Json(page)))
    }

    /// Get a shipment
    ///
    /// An order (of either API) and where each of its messages is: destination, status and when it
    /// last changed. Unknown, or another organisation's: 404 `NOT-00003`.
    #[oai(
        path = "/future/shipment/:id",
        method = "get",
        tag = "Tag::Future",
        operation_id = "getShipment"
    )]
    async fn shipment(
        &self,
        ServiceOwner(principal): ServiceOwner,
        id: Path<String>,
    ) -> Result<ShipmentResponse, ApiError> {
        let Ok(id) = order_id(&id.0) else {
            return Err(ApiError::coded(404, "NOT-00003", "Shipment not found", None));
        };
        // The order row alone: its submitted recipients (up to 500,000) are not needed here.
        let found = self.state.store.order(&id).await.map_err(ApiError::storage)?;
        let Some(stored) = found.filter(|o| o.order.creator == principal.org) else {
            return Err(ApiError::coded(404, "NOT-00003", "Shipment not found", None));
        };
        let o = &stored.order;
        let notifications =
            self.state.store.notifications(&o.id).await.map_err(ApiError::storage)?;
        Ok(ShipmentResponse::Ok(Json(DeliveryManifestDto {
            shipment_id: o.id.clone(),
            senders_reference: o.senders_reference.clone(),
            kind: shipment_type(o),
            status: order_status(o),
            last_update: timestamp(stored.status_changed),
            recipients: notifications
                .into_iter()
                .map(|n| ManifestRecipientDto {
                    kind: match n.channel {
                        Channel::Sms => "SMS".into(),
                        Channel::Email => "Email".into(),
                    },
                    destination: n.address,
                    status: n.status.as_str().to_owned(),
                    last_update: timestamp(n.status_changed),
                })
                .collect(),
        })))
    }
}

/// `Notification`, `Reminder`, `Instant` or `Composed`; a v1 order is a `Notification`.
pub(super) fn shipment_type(o: &Order) -> String {
    o.chain.as_ref().map_or(OrderType::Notification, |c| c.order_type).as_str().to_owned()
}

/// The unified lifecycle name of an order's status (`Order_Completed`, …).
fn order_status(o: &Order) -> String {
    format!("Order_{}", o.status.as_str())
}

/// SHA-256 of the request as parsed: a repeat is the same request whatever its key order or
/// spacing.
fn request_hash(dto: &OrderChainRequestDto) -> String {
    hex::encode(Sha256::digest(canonical_json(dto).as_bytes()))
}

/// As [`request_hash`], with the endpoint in it: the same idempotency id sent to another
/// endpoint is another request (409).
fn request_hash_of(endpoint: &str, dto: &impl ToJSON) -> String {
    hex::encode(Sha256::digest(format!("{endpoint}:{}", canonical_json(dto)).as_bytes()))
}

fn canonical_json(dto: &impl ToJSON) -> String {
    dto.to_json().map(|v| v.to_string()).unwrap_or_default()
}

/// 503 `NOT-00004`: the provider could not take an instant message.
fn provider_unavailable(detail: String) -> ApiError {
    ApiError::coded(503, "NOT-00004", "A temporary network failure occurred", Some(detail))
}

/// 409 when an idempotency id comes back with a different request than the one it was first
/// used for.
fn same_request(existing: &Chain, hash: &str) -> Result<(), ApiError> {
    if existing.request_hash == hash {
        return Ok(());
    }
    Err(ApiError::conflict(format!(
        "The idempotency id {} was used before with a different request; a new request needs a new id.",
        existing.idempotency_id
    )))
}

fn stored_response(chain: &Chain) -> Result<ChainResponseDto, ApiError> {
    serde_json::from_str(&chain.response)
        .map_err(|e| ApiError::storage(format!("stored chain answer unreadable: {e}")))
}

impl V2Api {
    fn chain_url(&self, id: &str) -> String {
        format!("{}/notifications/api/v1/future/orders/{id}", self.state.base_url)
    }

    /// The answer to a repeated idempotency id: the first answer when the request is the same.
    fn repeat(&self, existing: Chain, hash: &str) -> Result<ChainCreatedResponse, ApiError> {
        same_request(&existing, hash)?;
        Ok(ChainCreatedResponse::Repeated(
            Json(stored_response(&existing)?),
            self.chain_url(&existing.id),
        ))
    }

    /// Builds the instant message and has `activities::instant` reserve, send and record it;
    /// a provider that cannot take it now leaves nothing stored.
    async fn instant(
        &self,
        creator: &str,
        v: ValidInstant,
        hash: String,
    ) -> Result<InstantCreatedResponse, ApiError> {
        let store = &self.state.store;
        if let Some(existing) =
            store.find_chain(creator, &v.idempotency_id).await.map_err(ApiError::storage)?
        {
            return self.instant_repeat(existing, &hash).await;
        }
        let Some(sender) = self.state.sender.clone() else {
            return Err(provider_unavailable("No provider is configured in this process.".into()));
        };
        let now = Utc::now();
        let chain_id = uuid::Uuid::new_v4().to_string();
        let mut order = v.order.clone().into_order(creator, now);
        // Sent by this request: stored as processed, in a chain of its own.
        order.order.status = OrderStatus::Processed;
        order.order.chain = Some(ChainPlacement {
            chain_id: chain_id.clone(),
            order_type: OrderType::Instant,
            sms_anytime: true,
            dialog_id: None,
            transmission_id: None,
        });
        let channel = order.order.channel;
        let response = ChainResponseDto {
            notification_order_id: chain_id.clone(),
            notification: ChainReceiptDto {
                shipment_id: order.order.id.clone(),
                senders_reference: order.order.senders_reference.clone(),
                reminders: None,
            },
        };
        let chain = Chain {
            id: chain_id.clone(),
            creator: creator.to_owned(),
            idempotency_id: v.idempotency_id.clone(),
            request_hash: hash.clone(),
            response: serde_json::to_string(&response).unwrap_or_default(),
            created: now,
        };
        let (order_id, time_to_live) = (order.order.id.clone(), v.time_to_live);
        let message = InstantMessage { chain, order, time_to_live };
        // Its own task: a client that goes away (499) once the send has begun does not cut it
        // short between the provider's answer and its record; a repeat gets the answer.
        // In the request's span: the send's log lines carry its trace id.
        let sent = tokio::spawn(async move { sender.send(message).await }.in_current_span())
            .await
            .map_err(|e| ApiError::storage(format!("instant send task: {e}")))?;
        match sent.map_err(ApiError::storage)? {
            InstantOutcome::Exists(existing) => self.instant_repeat(existing, &hash).await,
            InstantOutcome::Sent(_) => {
                self.state.metrics.orders_accepted.with_label_values(&["instant"]).inc();
                self.state.dispatcher.start_soon(order_id, now.timestamp_millis());
                Ok(InstantCreatedResponse::Created(Json(response), self.chain_url(&chain_id)))
            }
            InstantOutcome::NotTaken(e) => Err(provider_unavailable(format!(
                "The {} provider could not take the message now; nothing was stored, so the same request can be repeated. ({e})",
                if channel == NotificationChannel::Sms { "SMS" } else { "email" }
            ))),
        }
    }

    /// The answer to a repeated instant message: the first answer once it was sent; 409 while
    /// the first request still waits for its provider, or when the request differs.
    async fn instant_repeat(
        &self,
        existing: Chain,
        hash: &str,
    ) -> Result<InstantCreatedResponse, ApiError> {
        same_request(&existing, hash)?;
        let store = &self.state.store;
        if existing.created > Utc::now() - self.state.config.instant_grace() {
            let sending =
                match store.chain_orders(&existing.id).await.map_err(ApiError::storage)?.first() {
                    None => true,
                    Some(o) => {
                        let notifications =
                            store.notifications(&o.order.id).await.map_err(ApiError::storage)?;
                        notifications.iter().any(|n| n.status.is_pending())
                    }
                };
            if sending {
                return Err(ApiError::conflict(format!(
                    "The request with idempotency id {} is still being sent; repeat it in a moment for its answer.",
                    existing.idempotency_id
                )));
            }
        }
        Ok(InstantCreatedResponse::Repeated(
            Json(stored_response(&existing)?),
            self.chain_url(&existing.id),
        ))
    }

    /// 422 `NOT-00001` when a person, organisation or self-identified user (of the notification
    /// or a reminder) has no
    /// contact details for its channel; a reserved person is not missing.
    async fn check_contacts(&self, v: &ValidChain) -> Result<(), ApiError> {
        let orders: Vec<&ValidChainOrder> =
            std::iter::once(&v.main).chain(v.reminders.iter()).collect();
        let recipients: Vec<_> =
            orders.iter().flat_map(|o| o.order.recipients.iter().cloned()).collect();
        let resolved = contacts::resolve(&self.state.contacts, &recipients, false)
            .await
            .map_err(ApiError::lookup)?;
        let missing: Vec<String> = orders
            .iter()
            .zip(recipients.iter().zip(&resolved))
            .filter(|(_, (_, res))| res.looked_up && !res.contact.reserved)
            .filter(|(o, (_, res))| {
                !plan::plan(o.order.channel, &res.contact, o.order.ignore_reservation)
                    .iter()
                    .any(|p| p.status.is_pending())
            })
            .map(|(_, (r, _))| {
                let id = r.nin.as_ref().or(r.org_no.as_ref()).or(r.external_identity.as_ref());
                id.cloned().unwrap_or_default()
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(ApiError::coded(
                422,
                "NOT-00001",
                "Missing contact information for recipient(s)",
                Some(missing.join(", ")),
            ))
        }
    }

    /// Stores a valid chain once per idempotency id: the first answer for a repeat, 422
    /// `NOT-00001` for a person or organisation without contact details, otherwise its orders
    /// in one transaction and their workflows started. `endpoint` labels the metric.
    async fn register(
        &self,
        creator: &str,
        valid: ValidChain,
        hash: String,
        endpoint: &str,
    ) -> Result<ChainCreatedResponse, ApiError> {
        let store = &self.state.store;
        if let Some(existing) =
            store.find_chain(creator, &valid.idempotency_id).await.map_err(ApiError::storage)?
        {
            return self.repeat(existing, &hash);
        }
        self.check_contacts(&valid).await?;

        let chain_id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now();
        let mut orders = vec![self.chain_order(creator, &chain_id, &valid, &valid.main, now)];
        for r in &valid.reminders {
            orders.push(self.chain_order(creator, &chain_id, &valid, r, now));
        }
        let response = ChainResponseDto {
            notification_order_id: chain_id.clone(),
            notification: ChainReceiptDto {
                shipment_id: orders[0].order.id.clone(),
                senders_reference: valid.main.order.senders_reference.clone(),
                reminders: (!valid.reminders.is_empty()).then(|| {
                    orders[1..]
                        .iter()
                        .map(|o| ShipmentRefDto {
                            shipment_id: o.order.id.clone(),
                            senders_reference: o.order.senders_reference.clone(),
                        })
                        .collect()
                }),
            },
        };
        let chain = Chain {
            id: chain_id.clone(),
            creator: creator.to_owned(),
            idempotency_id: valid.idempotency_id.clone(),
            request_hash: hash.clone(),
            response: serde_json::to_string(&response).unwrap_or_default(),
            created: now,
        };
        let starts: Vec<(String, i64)> = orders
            .iter()
            .map(|o| (o.order.id.clone(), o.order.requested_send_time.timestamp_millis()))
            .collect();
        match store.insert_chain(chain, orders).await.map_err(ApiError::storage)? {
            ChainInsert::Exists(existing) => self.repeat(existing, &hash),
            ChainInsert::Created => {
                tracing::info!(chain_id, creator, orders = starts.len(), "order chain accepted");
                for (id, send_time_ms) in starts {
                    self.state.metrics.orders_accepted.with_label_values(&[endpoint]).inc();
                    self.state.dispatcher.start_soon(id, send_time_ms);
                }
                Ok(ChainCreatedResponse::Created(Json(response), self.chain_url(&chain_id)))
            }
        }
    }

    /// One order of a new chain: the validated order, placed in the chain.
    fn chain_order(
        &self,
        creator: &str,
        chain_id: &str,
        chain: &ValidChain,
        v: &ValidChainOrder,
        now: chrono::DateTime<Utc>,
    ) -> NewOrder {
        let mut order = v.order.clone().into_order(creator, now);
        order.order.chain = Some(ChainPlacement {
            chain_id: chain_id.to_owned(),
            order_type: v.order_type,
            sms_anytime: v.sms_anytime,
            dialog_id: chain.dialog_id.clone(),
            transmission_id: chain.transmission_id.clone(),
        });
        order
    }
}
