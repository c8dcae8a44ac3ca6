//! The order endpoints under `/notifications/api/v1`.

use super::dto::*;
use super::json_body::JsonBody;
use super::security::{OwnerOrOperator, ServiceOwner};
use super::validate::{self, Rules, ValidOrder};
use crate::error::ApiError;
use crate::state::AppState;
use crate::timeline::record_action;
use chrono::{SecondsFormat, Utc};
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::Json,
};
use std::sync::Arc;
use varsel_activities::contacts;
use varsel_activities::store::{CancelOutcome, Notification};
use varsel_workflows::domain::{Channel, EmailContentType, NotificationChannel, OrderStatus};
use varsel_workflows::order::{Order, OrderType, Recipient, StoredOrder};
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

/// Orders found by sender's reference.
#[derive(ApiResponse)]
pub enum ListResponse {
    /// The matching orders (possibly none).
    #[oai(status = 200)]
    Ok(Json<OrderListDto>),
}

/// An order with its status.
#[derive(ApiResponse)]
pub enum StatusResponse {
    /// The order and its processing status.
    #[oai(status = 200)]
    Ok(Json<OrderWithStatusDto>),
}

/// An order's email notifications.
#[derive(ApiResponse)]
pub enum EmailSummaryResponse {
    /// The email notifications.
    #[oai(status = 200)]
    Ok(Json<EmailSummaryDto>),
}

/// An order's SMS notifications.
#[derive(ApiResponse)]
pub enum SmsSummaryResponse {
    /// The SMS notifications.
    #[oai(status = 200)]
    Ok(Json<SmsSummaryDto>),
}

/// An order's timeline.
#[derive(ApiResponse)]
pub enum HistoryResponse {
    /// The timeline.
    #[oai(status = 200)]
    Ok(Json<OrderHistoryDto>),
}

#[derive(poem_openapi::Tags)]
enum Tag {
    /// Creating and reading notification orders (Altinn v1 order API). Altinn marks these
    /// deprecated in favour of `/future/orders`, and so does this document; varsel serves them in
    /// full.
    Orders,
}

/// Cancels a registered order whose send time is more than the cut-off away (of `creator`,
/// when given; an operator names none), and a chain's reminders with its notification; records
/// who did it (`actor`) in the order's timeline and ends the waiting workflow.
pub(crate) async fn cancel_order(
    state: &AppState,
    id: &str,
    creator: Option<&str>,
    actor: &str,
) -> Result<StoredOrder, ApiError> {
    let cutoff = chrono::Duration::seconds(state.config.processing.cancel_cutoff_secs as i64);
    let outcome = state.store.cancel_order(id, creator, cutoff).await.map_err(ApiError::storage)?;
    let (o, now) = match outcome {
        CancelOutcome::NotFound => {
            return Err(ApiError::not_found("The order does not exist."));
        }
        CancelOutcome::TooLate(o) => {
            return Err(ApiError::conflict(format!(
                "The order is {} and can no longer be cancelled: only registered orders whose send time is more than {} seconds away can be.",
                o.order.status, state.config.processing.cancel_cutoff_secs
            )));
        }
        CancelOutcome::Cancelled(o) => (o, true),
        // A repeat: the same answer, and the workflow's cancel asked for again.
        CancelOutcome::AlreadyCancelled(o) => (o, false),
    };
    let id = &o.order.id;
    if now {
        tracing::info!(order_id = id, actor, "order cancelled");
        record_action(&state.store, id, actor, "cancel", None).await;
    }
    // End the waiting workflow now; if this fails, the workflow still finds the
    // order cancelled when its timer fires and sends nothing.
    state.dispatcher.cancel(id).await;
    // A chain's notification takes its reminders with it.
    if let Some(chain) = &o.order.chain
        && chain.order_type == OrderType::Notification
    {
        let chain = &chain.chain_id;
        for r in state.store.chain_reminders(chain).await.map_err(ApiError::storage)? {
            let reminder = state
                .store
                .cancel_order(&r.order.id, creator, chrono::Duration::zero())
                .await
                .map_err(ApiError::storage)?;
            if let CancelOutcome::Cancelled(r) = &reminder {
                tracing::info!(
                    order_id = r.order.id,
                    chain,
                    "reminder cancelled with its notification"
                );
                let with = format!("with its notification {id}");
                record_action(&state.store, &r.order.id, actor, "cancel", Some(with)).await;
            }
            if let CancelOutcome::Cancelled(r) | CancelOutcome::AlreadyCancelled(r) = reminder {
                state.dispatcher.cancel(&r.order.id).await;
            }
        }
    }
    Ok(o)
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
    #[oai(
        path = "/orders",
        method = "post",
        tag = "Tag::Orders",
        operation_id = "createOrder",
        deprecated
    )]
    async fn create(
        &self,
        ServiceOwner(principal): ServiceOwner,
        body: JsonBody<OrderRequestDto>,
    ) -> Result<CreatedResponse, ApiError> {
        let valid =
            validate::order_request(&body.0, &self.rules()).map_err(ApiError::validation)?;
        // A large order's recipients are held once: the request is dropped once validated.
        drop(body);
        self.accept(&principal.org, valid).await
    }

    /// Send email notifications
    ///
    /// Creates an email order for recipients given by email address, organisation number or
    /// national identity number. Mobile numbers in recipients are ignored.
    #[oai(
        path = "/orders/email",
        method = "post",
        tag = "Tag::Orders",
        operation_id = "createEmailOrder",
        deprecated
    )]
    async fn create_email(
        &self,
        ServiceOwner(principal): ServiceOwner,
        body: JsonBody<EmailOrderRequestDto>,
    ) -> Result<CreatedResponse, ApiError> {
        let valid =
            validate::email_request(&body.0, &self.rules()).map_err(ApiError::validation)?;
        // A large order's recipients are held once: the request is dropped once validated.
        drop(body);
        self.accept(&principal.org, valid).await
    }

    /// Send SMS notifications
    ///
    /// Creates an SMS order for recipients given by mobile number, organisation number or
    /// national identity number. Email addresses in recipients are ignored.
    #[oai(
        path = "/orders/sms",
        method = "post",
        tag = "Tag::Orders",
        operation_id = "createSmsOrder",
        deprecated
    )]
    async fn create_sms(
        &self,
        ServiceOwner(principal): ServiceOwner,
        body: JsonBody<SmsOrderRequestDto>,
    ) -> Result<CreatedResponse, ApiError> {
        let valid = validate::sms_request(&body.0, &self.rules()).map_err(ApiError::validation)?;
        // A large order's recipients are held once: the request is dropped once validated.
        drop(body);
        self.accept(&principal.org, valid).await
    }

    /// Find orders by the sender's reference
    ///
    /// Every order of the calling organisation with this `sendersReference`, oldest first.
    /// The parameter is required; no match is an empty list.
    #[oai(
        path = "/orders",
        method = "get",
        tag = "Tag::Orders",
        operation_id = "getOrdersBySendersReference",
        deprecated
    )]
    async fn list(
        &self,
        ServiceOwner(principal): ServiceOwner,
        /// The sender's reference to match exactly.
        #[oai(name = "sendersReference")]
        senders_reference: Query<Option<String>>,
    ) -> Result<ListResponse, ApiError> {
        let sref = senders_reference.0.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            ApiError::invalid(
                "SendersReference",
                "The sendersReference query parameter is required.",
            )
        })?;
        if sref.contains('\0') {
            return Err(ApiError::invalid(
                "SendersReference",
                "The value must not contain the NUL character (\\u0000).",
            ));
        }
        let found = self
            .state
            .store
            .orders_by_senders_reference(&principal.org, &sref)
            .await
            .map_err(ApiError::storage)?;
        let orders: Vec<OrderDto> =
            found.into_iter().map(|(o, r)| self.order_dto(o.order, r)).collect();
        Ok(ListResponse::Ok(Json(OrderListDto { count: orders.len() as u64, orders })))
    }

    /// Get an order's processing status
    ///
    /// Where the order is (`processingStatus`) and, once notifications exist, how many were
    /// generated and sent successfully per channel. A delivered SMS counts as succeeded.
    #[oai(
        path = "/orders/:id/status",
        method = "get",
        tag = "Tag::Orders",
        operation_id = "getOrderStatus",
        deprecated
    )]
    async fn status(
        &self,
        ServiceOwner(principal): ServiceOwner,
        id: Path<String>,
    ) -> Result<StatusResponse, ApiError> {
        let o = self.find_order(&id.0, &principal.org).await?;
        Ok(StatusResponse::Ok(Json(self.with_status(o).await?)))
    }

    /// Get an order's email notifications
    ///
    /// One entry per email notification with its recipient, status and when it last changed.
    #[oai(
        path = "/orders/:id/notifications/email",
        method = "get",
        tag = "Tag::Orders",
        operation_id = "getEmailNotifications",
        deprecated
    )]
    async fn email_notifications(
        &self,
        ServiceOwner(principal): ServiceOwner,
        id: Path<String>,
    ) -> Result<EmailSummaryResponse, ApiError> {
        let o = self.find_order(&id.0, &principal.org).await?.order;
        let rows = self
            .state
            .store
            .notifications_of(&o.id, Channel::Email)
            .await
            .map_err(ApiError::storage)?;
        let notifications: Vec<EmailNotificationDto> = rows
            .iter()
            .map(|n| {
                let (succeeded, send_status) = send_status(n);
                EmailNotificationDto {
                    id: n.id.clone(),
                    succeeded,
                    recipient: EmailRecipientDto {
                        email_address: Some(n.address.clone()).filter(|a| !a.is_empty()),
                        organization_number: n.org_no.clone(),
                        national_identity_number: n.nin.clone(),
                    },
                    send_status,
                }
            })
            .collect();
        Ok(EmailSummaryResponse::Ok(Json(EmailSummaryDto {
            order_id: o.id,
            senders_reference: o.senders_reference,
            generated: notifications.len() as u64,
            succeeded: notifications.iter().filter(|n| n.succeeded).count() as u64,
            notifications,
        })))
    }

    /// Get an order's SMS notifications
    ///
    /// One entry per SMS notification with its recipient, status and when it last changed.
    #[oai(
        path = "/orders/:id/notifications/sms",
        method = "get",
        tag = "Tag::Orders",
        operation_id = "getSmsNotifications",
        deprecated
    )]
    async fn sms_notifications(
        &self,
        ServiceOwner(principal): ServiceOwner,
        id: Path<String>,
    ) -> Result<SmsSummaryResponse, ApiError> {
        let o = self.find_order(&id.0, &principal.org).await?.order;
        let rows = self
            .state
            .store
            .notifications_of(&o.id, Channel::Sms)
            .await
            .map_err(ApiError::storage)?;
        let notifications: Vec<SmsNotificationDto> = rows
            .iter()
            .map(|n| {
                let (succeeded, send_status) = send_status(n);
                SmsNotificationDto {
                    id: n.id.clone(),
                    segments: n.segments,
                    succeeded,
                    recipient: SmsRecipientDto {
                        mobile_number: Some(n.address.clone()).filter(|a| !a.is_empty()),
                        organization_number: n.org_no.clone(),
                        national_identity_number: n.nin.clone(),
                    },
                    send_status,
                }
            })
            .collect();
        Ok(SmsSummaryResponse::Ok(Json(SmsSummaryDto {
            order_id: o.id,
            senders_reference: o.senders_reference,
            generated: notifications.len() as u64,
            succeeded: notifications.iter().filter(|n| n.succeeded).count() as u64,
            notifications,
        })))
    }

    /// Cancel an order
    ///
    /// Cancels an order that is still waiting for its send time: its workflow ends and nothing
    /// is sent. Cancelling a cancelled order answers 200 again. An order already being
    /// processed, or due within the cancellation cut-off (5 minutes by default), answers 409.
    #[oai(
        path = "/orders/:id/cancel",
        method = "put",
        tag = "Tag::Orders",
        operation_id = "cancelOrder",
        deprecated
    )]
    async fn cancel(
        &self,
        ServiceOwner(principal): ServiceOwner,
        id: Path<String>,
    ) -> Result<StatusResponse, ApiError> {
        let id = order_id(&id.0)?;
        let actor = format!("creator {}", principal.org);
        let o = cancel_order(&self.state, &id, Some(&principal.org), &actor).await?;
        Ok(StatusResponse::Ok(Json(self.with_status(o).await?)))
    }

    /// Get an order's timeline
    ///
    /// What happened to the order, oldest first: its workflow history in words (waiting for the
    /// send time, the condition check, lookups, every activity retry with the failure that caused
    /// it, timers, signals, continued runs) merged with its notifications' statuses. Scoped to the
    /// creator; a token with scope `varsel:operator` sees every organisation's orders.
    #[oai(
        path = "/orders/:id/history",
        method = "get",
        tag = "Tag::Orders",
        operation_id = "getOrderHistory"
    )]
    async fn history(
        &self,
        caller: OwnerOrOperator,
        id: Path<String>,
    ) -> Result<HistoryResponse, ApiError> {
        let id = order_id(&id.0)?;
        let found = match caller {
            OwnerOrOperator::Operator => self.state.store.order(&id).await,
            OwnerOrOperator::Owner(principal) => {
                self.state.store.order_of(&id, &principal.org).await
            }
        };
        let o = found
            .map_err(ApiError::storage)?
            .ok_or_else(|| ApiError::not_found("The order does not exist."))?
            .order;
        let client = self.state.temporal().await?;
        let timeline =
            crate::timeline::order_timeline(&self.state.store, &client, &o.id).await.map_err(
                |e| ApiError::unavailable(format!("The order's history could not be read: {e:#}")),
            )?;
        Ok(HistoryResponse::Ok(Json(OrderHistoryDto {
            temporal_ui: self.state.config.temporal_ui_link(&o.id),
            order_id: o.id,
            workflow_history_expired: timeline.workflow_history_expired,
            entries: timeline
                .entries
                .into_iter()
                .map(|e| HistoryEntryDto {
                    time: timestamp(e.time),
                    source: e.source.to_owned(),
                    text: e.text,
                    notification_id: e.notification_id,
                })
                .collect(),
        })))
    }

    /// Get an order
    ///
    /// The order as it was submitted. Another organisation's order is answered 404.
    #[oai(
        path = "/orders/:id",
        method = "get",
        tag = "Tag::Orders",
        operation_id = "getOrder",
        deprecated
    )]
    async fn get(
        &self,
        ServiceOwner(principal): ServiceOwner,
        id: Path<String>,
    ) -> Result<OrderResponse, ApiError> {
        let (o, recipients) = self.find(&id.0, &principal.org).await?;
        Ok(OrderResponse::Ok(Json(self.order_dto(o, recipients))))
    }
}

impl OrdersApi {
    fn order_url(&self, id: &str) -> String {
        format!("{}/notifications/api/v1/orders/{id}", self.state.base_url)
    }

    /// An order of `creator` with its recipients (all of them: only for the order itself).
    async fn find(&self, id: &str, creator: &str) -> Result<(Order, Vec<Recipient>), ApiError> {
        let id = &order_id(id)?;
        let found = self.state.store.get_order(id, creator).await.map_err(ApiError::storage)?;
        found
            .map(|(o, recipients)| (o.order, recipients))
            .ok_or_else(|| ApiError::not_found("The order does not exist."))
    }

    /// An order of `creator`, without its recipients.
    async fn find_order(&self, id: &str, creator: &str) -> Result<StoredOrder, ApiError> {
        let id = &order_id(id)?;
        let found = self.state.store.order_of(id, creator).await.map_err(ApiError::storage)?;
        found.ok_or_else(|| ApiError::not_found("The order does not exist."))
    }

    async fn with_status(&self, stored: StoredOrder) -> Result<OrderWithStatusDto, ApiError> {
        let o = &stored.order;
        let counts =
            self.state.store.notification_counts(&o.id).await.map_err(ApiError::storage)?;
        let summary = |channel: Channel| -> Option<ChannelSummaryDto> {
            let rows: Vec<_> = counts.iter().filter(|(c, _, _)| *c == channel).collect();
            if rows.is_empty() {
                return None;
            }
            let generated = rows.iter().map(|(_, _, n)| *n as u64).sum();
            let succeeded =
                rows.iter().filter(|(_, s, _)| s.is_success()).map(|(_, _, n)| *n as u64).sum();
            Some(ChannelSummaryDto {
                links: SelfLinkDto {
                    self_link: format!(
                        "{}/notifications/{}",
                        self.order_url(&o.id),
                        channel.as_str()
                    ),
                },
                generated,
                succeeded,
            })
        };
        let (email, sms) = (summary(Channel::Email), summary(Channel::Sms));
        let status = o.status;
        // Altinn v1 reports Processed as Completed; clients match on that name.
        let v1_name = if status == OrderStatus::Processed {
            OrderStatus::Completed.as_str()
        } else {
            status.as_str()
        };
        Ok(OrderWithStatusDto {
            info: order_info(o),
            processing_status: ProcessingStatusDto {
                status: v1_name.to_owned(),
                description: status.description().to_owned(),
                last_update: timestamp(stored.status_changed),
            },
            notifications_status_summary: (email.is_some() || sms.is_some())
                .then_some(NotificationsSummaryDto { email, sms }),
        })
    }

    fn rules(&self) -> Rules<'_> {
        Rules::new(&self.state.config, &self.state.outbound)
    }

    /// Looks up recipients, stores the order atomically, and starts its workflow (or leaves it
    /// to the dispatcher when Temporal is unreachable: the order is accepted and starts later).
    async fn accept(&self, creator: &str, mut v: ValidOrder) -> Result<CreatedResponse, ApiError> {
        let resolved = contacts::resolve(&self.state.contacts, &v.recipients, false)
            .await
            .map_err(ApiError::lookup)?;
        let lookup = lookup_result(v.channel, v.ignore_reservation, &v.recipients, &resolved);

        let duplicates = std::mem::take(&mut v.duplicates);
        let order = v.into_order(creator, Utc::now());
        let o = &order.order;
        let (id, send_time_ms) = (o.id.clone(), o.requested_send_time.timestamp_millis());
        let (channel, kind) = (o.channel, o.kind);
        self.state.store.insert_order(order).await.map_err(ApiError::storage)?;
        tracing::info!(order_id = id, creator, channel = channel.as_str(), "order accepted");
        self.state.metrics.orders_accepted.with_label_values(&[kind.as_str()]).inc();

        self.state.dispatcher.start_soon(id.clone(), send_time_ms);

        let location = format!("{}/notifications/api/v1/orders/{id}", self.state.base_url);
        let duplicates =
            (!duplicates.is_empty()).then(|| duplicates.iter().map(|i| *i as u64).collect());
        Ok(CreatedResponse::Accepted(
            Json(OrderCreatedDto {
                order_id: id,
                recipient_lookup: lookup,
                duplicate_recipients: duplicates,
            }),
            location,
        ))
    }

    fn order_dto(&self, o: Order, recipients: Vec<Recipient>) -> OrderDto {
        let base = self.order_url(&o.id);
        let email_template = o.email.as_ref().map(|e| EmailTemplateDto {
            from_address: e.from.clone(),
            subject: Some(e.subject.clone()),
            body: Some(e.body.clone()),
            content_type: Some(CaseInsensitive(match e.content_type {
                EmailContentType::Html => EmailContentTypeDto::Html,
                EmailContentType::Plain => EmailContentTypeDto::Plain,
            })),
        });
        let sms_template = o.sms.as_ref().map(|s| SmsTemplateDto {
            sender_number: s.sender.clone(),
            body: Some(s.body.clone()),
        });
        OrderDto {
            info: order_info(&o),
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

/// An order id from a path: a GUID, as Altinn routes only those (`{id:guid}`); anything else
/// names no order (404), and never reaches the database.
pub(crate) fn order_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::not_found("The order does not exist."))
}

pub(crate) fn timestamp(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn order_info(o: &Order) -> OrderInfoDto {
    let channel = match o.channel {
        NotificationChannel::Email => NotificationChannelDto::Email,
        NotificationChannel::Sms => NotificationChannelDto::Sms,
        NotificationChannel::EmailPreferred => NotificationChannelDto::EmailPreferred,
        NotificationChannel::SmsPreferred => NotificationChannelDto::SmsPreferred,
        NotificationChannel::EmailAndSms => NotificationChannelDto::EmailAndSms,
    };
    OrderInfoDto {
        id: o.id.clone(),
        senders_reference: o.senders_reference.clone(),
        requested_send_time: timestamp(o.requested_send_time),
        creator: o.creator.clone(),
        created: timestamp(o.created),
        notification_channel: channel,
        ignore_reservation: Some(o.ignore_reservation),
        resource_id: o.resource_id.clone(),
        resource_action: o.resource_action.clone(),
        condition_endpoint: o.condition_endpoint.clone(),
    }
}

fn send_status(n: &Notification) -> (bool, SendStatusDto) {
    let status = n.status;
    let description = match n.status_reason.as_deref() {
        Some(reason) => format!("{} {reason}", status.description()),
        None => status.description().to_owned(),
    };
    (
        status.is_success(),
        SendStatusDto {
            status: status.v1_name().to_owned(),
            description,
            last_update: timestamp(n.status_changed),
        },
    )
}

/// The registration-time lookup answer (Altinn `GetRecipientLookupResult`): `None` when no
/// recipient was given by identifier.
fn lookup_result(
    channel: NotificationChannel,
    ignore_reservation: bool,
    recipients: &[varsel_workflows::order::Recipient],
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
