//! Operator tools (scope `varsel:operator`): find orders, redrive an order, and list and
//! re-apply the delivery reports that matched nothing.

use super::orders::order_id;
use super::reports::{ReportResponse, outcome_dto};
use super::security::Operator;
use super::v2::shipment_type;
use crate::error::ApiError;
use crate::state::AppState;
use crate::timeline::record_action;
use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json};
use std::collections::BTreeMap;
use std::sync::Arc;
use varsel_activities::events::apply_and_notify;
use varsel_activities::store::{ApplyOutcome, OrderSearch, Report, ReportTarget};
use varsel_workflows::domain::{NotificationChannel, OrderStatus};
use varsel_workflows::order::StoredOrder;

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

/// A notification a redrive would send again.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RedriveNotification", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct RedriveNotificationDto {
    /// The notification's id.
    pub id: String,
    /// `email` or `sms`.
    pub channel: String,
    /// The address or mobile number it goes to.
    pub address: String,
    /// Its status now (`*_Failed_TTL`, `Email_Failed`, `SMS_Failed`).
    pub status: String,
    /// Why it failed, in the provider's words.
    pub reason: Option<String>,
}

/// What a redrive of an order would do.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RedrivePreview", rename_all = "camelCase")]
pub struct RedrivePreviewDto {
    /// The order.
    pub order_id: String,
    /// Its status: only a `Completed` order can be redriven (and only once its workflow has
    /// closed, which the redrive itself checks).
    pub order_status: String,
    /// How many notifications it would send again.
    pub count: u64,
    /// They, in recipient order (the first 1,000).
    pub notifications: Vec<RedriveNotificationDto>,
}

/// A redrive's preview.
#[derive(ApiResponse)]
pub enum RedrivePreviewResponse {
    /// What it would send again.
    #[oai(status = 200)]
    Ok(Json<RedrivePreviewDto>),
}

/// Answer to a redrive.
#[derive(ApiResponse)]
pub enum RedriveResponse {
    /// The redrive run started.
    #[oai(status = 202)]
    Accepted(Json<RedriveDto>),
}

/// An order as a search lists it.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderSummary", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct OrderSummaryDto {
    /// The order's id.
    pub id: String,
    /// The org that created it.
    pub creator: String,
    /// Its sender's reference.
    pub senders_reference: Option<String>,
    /// `Registered`, `Processing`, `Processed`, `Completed`, `SendConditionNotMet` or
    /// `Cancelled`.
    pub status: String,
    /// When its status last changed (UTC).
    pub status_changed: String,
    /// The channel or channel preference.
    pub channel: String,
    /// `Notification`, `Reminder`, `Instant` or `Composed`.
    pub order_type: String,
    /// When it was accepted (UTC).
    pub created: String,
    /// When it is or was to be sent (UTC).
    pub requested_send_time: String,
    /// How many recipients it has.
    pub recipients: u32,
}

/// A page of found orders.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderSearchPage", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct OrderSearchDto {
    /// The orders, newest first.
    pub orders: Vec<OrderSummaryDto>,
    /// How many orders of each status the search finds on all its pages, leaving its `status`
    /// criterion aside: where the whole search stands.
    pub counts: BTreeMap<String, u64>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

/// Found orders.
#[derive(ApiResponse)]
pub enum OrderSearchResponse {
    /// A page of them.
    #[oai(status = 200)]
    Ok(Json<OrderSearchDto>),
}

fn summary(stored: StoredOrder) -> OrderSummaryDto {
    let o = stored.order;
    OrderSummaryDto {
        order_type: shipment_type(&o),
        id: o.id,
        creator: o.creator,
        senders_reference: o.senders_reference,
        status: o.status.as_str().to_owned(),
        status_changed: super::orders::timestamp(stored.status_changed),
        channel: o.channel.as_str().to_owned(),
        created: super::orders::timestamp(o.created),
        requested_send_time: super::orders::timestamp(o.requested_send_time),
        recipients: stored.recipient_count,
    }
}

/// A page's cursor: the `(created, id)` of its last order.
fn cursor_of(created: DateTime<Utc>, id: &str) -> String {
    format!("{}.{id}", created.timestamp_micros())
}

fn parse_cursor(raw: &str) -> Option<(DateTime<Utc>, String)> {
    let (micros, id) = raw.split_once('.')?;
    let created = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((created, order_id(id).ok()?))
}

/// A name of `names`, in any letter case.
fn one_of<T: Copy>(raw: &str, names: &[T], name: impl Fn(T) -> &'static str) -> Option<T> {
    names.iter().copied().find(|n| name(*n).eq_ignore_ascii_case(raw))
}

fn time(raw: &str, key: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc)).map_err(|_| {
        ApiError::invalid(key, format!("{key} must be an RFC 3339 time with an offset."))
    })
}

#[OpenApi(prefix_path = "/notifications/api/v1")]
impl OperatorApi {
    /// Find orders
    ///
    /// Orders of every creator, newest first, narrowed by any of: `creator`, `status`, `channel`,
    /// the time they were accepted (`createdFrom` inclusive, `createdTo` exclusive),
    /// `sendersReference` and `id`. A page holds `limit` orders (1 to 500, default 50); pass its
    /// `nextCursor` as `cursor` for the next. `counts` says how many orders of each status the
    /// search finds on all its pages, its `status` criterion aside.
    #[oai(
        path = "/operator/orders",
        method = "get",
        tag = "Tag::Operator",
        operation_id = "findOrders"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn find_orders(
        &self,
        _operator: Operator,
        creator: Query<Option<String>>,
        status: Query<Option<String>>,
        channel: Query<Option<String>>,
        #[oai(name = "createdFrom")] created_from: Query<Option<String>>,
        #[oai(name = "createdTo")] created_to: Query<Option<String>>,
        #[oai(name = "sendersReference")] senders_reference: Query<Option<String>>,
        id: Query<Option<String>>,
        limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<OrderSearchResponse, ApiError> {
        // Empty text criteria are none; the others must be what they name.
        let given = |q: Option<String>| q.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let mut search = OrderSearch {
            creator: given(creator.0),
            senders_reference: given(senders_reference.0),
            ..OrderSearch::default()
        };
        if let Some(raw) = status.0 {
            search.status =
                Some(one_of(&raw, OrderStatus::ALL, OrderStatus::as_str).ok_or_else(|| {
                    ApiError::invalid("status", format!("Unknown order status '{raw}'."))
                })?);
        }
        if let Some(raw) = channel.0 {
            search.channel = Some(
                one_of(&raw, NotificationChannel::ALL, NotificationChannel::as_str).ok_or_else(
                    || ApiError::invalid("channel", format!("Unknown channel '{raw}'.")),
                )?,
            );
        }
        if let Some(raw) = created_from.0 {
            search.created_from = Some(time(&raw, "createdFrom")?);
        }
        if let Some(raw) = created_to.0 {
            search.created_to = Some(time(&raw, "createdTo")?);
        }
        if let Some(raw) = id.0 {
            search.id = Some(
                order_id(&raw)
                    .map_err(|_| ApiError::invalid("id", "id must be an order id (a GUID)."))?,
            );
        }
        search.limit = match limit.0 {
            None => 50,
            Some(n @ 1..=500) => n as u64,
            Some(n) => {
                return Err(ApiError::invalid(
                    "limit",
                    format!("limit must be from 1 to 500; it is {n}."),
                ));
            }
        };
        if let Some(raw) = cursor.0 {
            search.before = Some(parse_cursor(&raw).ok_or_else(|| {
                ApiError::invalid("cursor", "cursor must be a nextCursor this search gave.")
            })?);
        }
        let page = self.state.store.search_orders(&search).await.map_err(ApiError::storage)?;
        Ok(OrderSearchResponse::Ok(Json(OrderSearchDto {
            orders: page.orders.into_iter().map(summary).collect(),
            counts: page.counts.into_iter().map(|(s, n)| (s.as_str().to_owned(), n)).collect(),
            next_cursor: page.next.map(|(created, id)| cursor_of(created, &id)),
        })))
    }

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
        Operator(operator): Operator,
        id: Path<String>,
    ) -> Result<RedriveResponse, ApiError> {
        let id = order_id(&id.0)?;
        match self.state.dispatcher.redrive(&id).await {
            Ok(n) => {
                let detail = format!("{n} notifications to send again");
                record_action(&self.state.store, &id, &operator, "redrive", Some(detail)).await;
                Ok(RedriveResponse::Accepted(Json(RedriveDto { order_id: id, notifications: n })))
            }
            Err(crate::temporal::RedriveRefusal::NotFound) => {
                Err(ApiError::not_found("The order does not exist."))
            }
            Err(crate::temporal::RedriveRefusal::Conflict(m)) => Err(ApiError::conflict(m)),
            Err(crate::temporal::RedriveRefusal::Unavailable(m)) => Err(ApiError::unavailable(m)),
        }
    }

    /// Preview a redrive
    ///
    /// The notifications a redrive of the order would send again, exactly as `POST` on this path
    /// would choose them, without doing it: for an operator to confirm before redriving.
    #[oai(
        path = "/operator/orders/:id/redrive",
        method = "get",
        tag = "Tag::Operator",
        operation_id = "previewRedrive"
    )]
    async fn redrive_preview(
        &self,
        _operator: Operator,
        id: Path<String>,
    ) -> Result<RedrivePreviewResponse, ApiError> {
        let id = order_id(&id.0)?;
        let store = &self.state.store;
        let order = store
            .order(&id)
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| ApiError::not_found("The order does not exist."))?
            .order;
        let count = store.count_redrivable(&id).await.map_err(ApiError::storage)?;
        let notifications = store
            .redrivable_notifications(&id, 1000)
            .await
            .map_err(ApiError::storage)?
            .into_iter()
            .map(|n| RedriveNotificationDto {
                id: n.id,
                channel: n.channel.as_str().to_owned(),
                address: n.address,
                status: n.status.as_str().to_owned(),
                reason: n.status_reason,
            })
            .collect();
        Ok(RedrivePreviewResponse::Ok(Json(RedrivePreviewDto {
            order_id: id,
            order_status: order.status.as_str().to_owned(),
            count,
            notifications,
        })))
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
