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

/// The order an operator cancelled.
#[derive(ApiResponse)]
pub enum OperatorCancelResponse {
    /// Cancelled (or already cancelled): the order as it now stands.
    #[oai(status = 200)]
    Ok(Json<OrderSummaryDto>),
}

/// How an order's workflow history replayed against the running build.
#[derive(Debug, Clone, Object)]
#[oai(rename = "ReplayResult", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ReplayDto {
    /// The order.
    pub order_id: String,
    /// `clean` (the running build takes the recorded path), `nondeterministic` (it diverges:
    /// `message` says where) or `unavailable` (the history could not be fetched).
    pub verdict: String,
    /// Events in the replayed histories, all runs together (`clean` only).
    pub events: Option<u64>,
    /// Runs replayed: every run Temporal keeps (a continued order's earlier runs, a redrive's
    /// run) (`clean` only).
    pub runs: Option<u64>,
    /// What diverged, or why the history could not be fetched.
    pub message: Option<String>,
}

/// A replay's result.
#[derive(ApiResponse)]
pub enum ReplayResponse {
    /// The replay ran; its verdict says how.
    #[oai(status = 200)]
    Ok(Json<ReplayDto>),
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
    /// criterion aside: where the whole search stands, counted over its newest `countLimit`
    /// orders.
    pub counts: BTreeMap<String, u64>,
    /// How many of the search's orders `counts` covers, newest first: when the counts add up to
    /// it, more orders match (a search over millions of orders stays as fast as one over a few).
    pub count_limit: u64,
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

/// The criteria of an order search as given (query parameters, or the console's form).
#[derive(Debug, Clone, Default)]
pub(crate) struct SearchParams {
    pub creator: Option<String>,
    pub status: Option<String>,
    pub channel: Option<String>,
    pub created_from: Option<String>,
    pub created_to: Option<String>,
    pub senders_reference: Option<String>,
    pub id: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// An order search from its criteria, each checked, with the message of what is wrong.
pub(crate) fn parse_search(p: SearchParams) -> Result<OrderSearch, ApiError> {
    // Empty text criteria are none; the others must be what they name.
    let given = |q: Option<String>| q.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let mut search = OrderSearch {
        creator: given(p.creator),
        senders_reference: given(p.senders_reference),
        ..OrderSearch::default()
    };
    if let Some(raw) = p.status {
        search.status =
            Some(one_of(&raw, OrderStatus::ALL, OrderStatus::as_str).ok_or_else(|| {
                ApiError::invalid("status", format!("Unknown order status '{raw}'."))
            })?);
    }
    if let Some(raw) = p.channel {
        search.channel = Some(
            one_of(&raw, NotificationChannel::ALL, NotificationChannel::as_str)
                .ok_or_else(|| ApiError::invalid("channel", format!("Unknown channel '{raw}'.")))?,
        );
    }
    if let Some(raw) = p.created_from {
        search.created_from = Some(time(&raw, "createdFrom")?);
    }
    if let Some(raw) = p.created_to {
        search.created_to = Some(time(&raw, "createdTo")?);
    }
    if let Some(raw) = p.id {
        search.id = Some(
            order_id(&raw)
                .map_err(|_| ApiError::invalid("id", "id must be an order id (a GUID)."))?,
        );
    }
    search.limit = match p.limit {
        None => 50,
        Some(n @ 1..=500) => n as u64,
        Some(n) => {
            return Err(ApiError::invalid(
                "limit",
                format!("limit must be from 1 to 500; it is {n}."),
            ));
        }
    };
    if let Some(raw) = p.cursor {
        search.before = Some(parse_cursor(&raw).ok_or_else(|| {
            ApiError::invalid("cursor", "cursor must be a nextCursor this search gave.")
        })?);
    }
    Ok(search)
}

/// A search page's `nextCursor`.
pub(crate) fn next_cursor(page: &varsel_activities::store::OrderPage) -> Option<String> {
    page.next.as_ref().map(|(created, id)| cursor_of(*created, id))
}

#[OpenApi(prefix_path = "/notifications/api/v1")]
impl OperatorApi {
    /// Find orders
    ///
    /// Orders of every creator, newest first, narrowed by any of: `creator`, `status`, `channel`,
    /// the time they were accepted (`createdFrom` inclusive, `createdTo` exclusive),
    /// `sendersReference` and `id`. A page holds `limit` orders (1 to 500, default 50); pass its
    /// `nextCursor` as `cursor` for the next. `counts` says how many orders of each status the
    /// search finds on all its pages, its `status` criterion aside, over its newest `countLimit`.
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
        let search = parse_search(SearchParams {
            creator: creator.0,
            status: status.0,
            channel: channel.0,
            created_from: created_from.0,
            created_to: created_to.0,
            senders_reference: senders_reference.0,
            id: id.0,
            limit: limit.0,
            cursor: cursor.0,
        })?;
        let page = self.state.store.search_orders(&search).await.map_err(ApiError::storage)?;
        let next_cursor = next_cursor(&page);
        Ok(OrderSearchResponse::Ok(Json(OrderSearchDto {
            orders: page.orders.into_iter().map(summary).collect(),
            counts: page.counts.into_iter().map(|(s, n)| (s.as_str().to_owned(), n)).collect(),
            count_limit: varsel_activities::store::COUNT_CAP,
            next_cursor,
        })))
    }

    /// Cancel an order
    ///
    /// Cancels a registered order of any creator whose send time is more than the cancellation
    /// cut-off away (and a notification's reminders with it), as its creator's cancel does;
    /// recorded in the order's timeline with the operator's name. Too late answers 409.
    #[oai(
        path = "/operator/orders/:id/cancel",
        method = "post",
        tag = "Tag::Operator",
        operation_id = "operatorCancelOrder"
    )]
    async fn cancel(
        &self,
        Operator(operator): Operator,
        id: Path<String>,
    ) -> Result<OperatorCancelResponse, ApiError> {
        let id = order_id(&id.0)?;
        let o = super::orders::cancel_order(&self.state, &id, None, &operator).await?;
        Ok(OperatorCancelResponse::Ok(Json(summary(o))))
    }

    /// Replay an order's history
    ///
    /// Fetches the order's workflow history (every run Temporal keeps: a continued order's
    /// earlier runs, a redrive's run) and replays each against the workflow code of this running
    /// build: `clean` when the build would take the recorded path, `nondeterministic` with the
    /// run and where it diverges. Recorded in the order's timeline.
    #[oai(
        path = "/operator/orders/:id/replay",
        method = "post",
        tag = "Tag::Operator",
        operation_id = "replayOrder"
    )]
    async fn replay(
        &self,
        Operator(operator): Operator,
        id: Path<String>,
    ) -> Result<ReplayResponse, ApiError> {
        use crate::replay::ReplayVerdict;
        let id = order_id(&id.0)?;
        let store = &self.state.store;
        store
            .order(&id)
            .await
            .map_err(ApiError::storage)?
            .ok_or_else(|| ApiError::not_found("The order does not exist."))?;
        let client = self.state.temporal().await?;
        let verdict = crate::replay::replay_order(&client, &id)
            .await
            .map_err(|e| ApiError::unavailable(format!("The replay could not run: {e:#}")))?;
        let dto = match verdict {
            ReplayVerdict::Clean { events, runs } => ReplayDto {
                order_id: id.clone(),
                verdict: "clean".into(),
                events: Some(events as u64),
                runs: Some(runs as u64),
                message: None,
            },
            ReplayVerdict::Nondeterministic(m) => ReplayDto {
                order_id: id.clone(),
                verdict: "nondeterministic".into(),
                events: None,
                runs: None,
                message: Some(m),
            },
            ReplayVerdict::Unavailable(m) => ReplayDto {
                order_id: id.clone(),
                verdict: "unavailable".into(),
                events: None,
                runs: None,
                message: Some(m),
            },
        };
        let detail = match (&dto.events, &dto.message) {
            (Some(n), _) => format!(
                "{}: {}",
                dto.verdict,
                ReplayVerdict::size(*n as usize, dto.runs.unwrap_or(1) as usize)
            ),
            (None, Some(m)) => format!("{}: {m}", dto.verdict),
            (None, None) => dto.verdict.clone(),
        };
        record_action(store, &id, &operator, "replay", Some(detail)).await;
        Ok(ReplayResponse::Ok(Json(dto)))
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
        Operator(operator): Operator,
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
                if let ApplyOutcome::Applied { order_id, .. }
                | ApplyOutcome::Unchanged { order_id } = &o
                {
                    let detail = format!("{} {status} for {}", channel.as_str(), dead.reference);
                    let store = &self.state.store;
                    record_action(store, order_id, &operator, "re-apply dead report", Some(detail))
                        .await;
                }
                Ok(ReportResponse::Ok(Json(outcome_dto(&o))))
            }
            None => Err(ApiError::conflict("The report still matches no open notification.")),
        }
    }
}
