//! Status webhooks: creators' endpoints, the messages their orders' events become (written in
//! the same transaction as the change they tell of, where the change has one), the outbox the
//! dispatcher wakes each (endpoint, order) workflow from, and every delivery attempt.

use super::Store;
use super::entities::{
    notification, order, order_count, webhook_attempt, webhook_endpoint, webhook_message,
};
use super::events::EventAt;
use crate::webhooks::WebhookEvent;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, TransactionTrait,
};
use serde_json::json;
use std::collections::{BTreeMap, HashMap, HashSet};
use varsel_workflows::domain::{NotificationStatus, OrderStatus};

/// Where a message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet accepted; retried.
    Pending,
    /// The endpoint accepted it (2xx).
    Delivered,
    /// Retries ran out (the endpoint was disabled), or the endpoint was removed.
    Failed,
}

impl DeliveryStatus {
    /// As stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Delivered => "Delivered",
            Self::Failed => "Failed",
        }
    }

    /// From its stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed].into_iter().find(|d| d.as_str() == s)
    }
}

/// A webhook endpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: String,
    /// The creator it belongs to.
    pub creator: String,
    /// Where events go.
    pub url: String,
    /// The creator's words.
    pub description: Option<String>,
    /// The events it receives.
    pub events: Vec<WebhookEvent>,
    /// The signing secret.
    pub secret: String,
    /// The secret before the last rotation, with the time it stops signing.
    pub previous_secret: Option<(String, DateTime<Utc>)>,
    /// Whether events are delivered.
    pub enabled: bool,
    /// Why it is disabled.
    pub disabled_reason: Option<String>,
    /// When registered.
    pub created: DateTime<Utc>,
    /// When last changed.
    pub updated: DateTime<Utc>,
}

impl WebhookEndpoint {
    /// The secrets a message is signed with now: the current one, and the previous one while
    /// its rotation overlap lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some((previous, until)) = &self.previous_secret
            && *until > now
        {
            secrets.push(previous.as_str());
        }
        secrets
    }
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(m: webhook_endpoint::Model) -> Self {
        Self {
            id: m.id,
            creator: m.creator,
            url: m.url,
            description: m.description,
            events: WebhookEvent::parse_list(&m.events),
            secret: m.secret,
            previous_secret: m.previous_secret.zip(m.previous_secret_until),
            enabled: m.enabled,
            disabled_reason: m.disabled_reason,
            created: m.created,
            updated: m.updated,
        }
    }
}

/// A new endpoint.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    /// The creator.
    pub creator: String,
    /// Where events go.
    pub url: String,
    /// The creator's words.
    pub description: Option<String>,
    /// The events it receives.
    pub events: Vec<WebhookEvent>,
    /// Its signing secret.
    pub secret: String,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct EndpointChange {
    /// A new URL.
    pub url: Option<String>,
    /// New words (`Some(None)` removes them).
    pub description: Option<Option<String>>,
    /// New events.
    pub events: Option<Vec<WebhookEvent>>,
    /// Enabled or disabled by the creator.
    pub enabled: Option<bool>,
}

/// A webhook message as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    /// Its place in the order of events.
    pub seq: i64,
    /// `webhook-id`.
    pub id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The order.
    pub order_id: String,
    /// The event type's name.
    pub event_type: String,
    /// The body.
    pub payload: String,
    /// When the event happened.
    pub created: DateTime<Utc>,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// When the last attempt was made.
    pub last_attempt: Option<DateTime<Utc>>,
    /// The HTTP status of the last attempt.
    pub last_status_code: Option<u16>,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    /// When accepted.
    pub delivered: Option<DateTime<Utc>>,
}

impl From<webhook_message::Model> for WebhookMessage {
    fn from(m: webhook_message::Model) -> Self {
        Self {
            seq: m.seq,
            id: m.id,
            endpoint_id: m.endpoint_id,
            order_id: m.order_id,
            event_type: m.event_type,
            payload: m.payload,
            created: m.created,
            status: DeliveryStatus::parse(&m.status).unwrap_or(DeliveryStatus::Pending),
            attempts: m.attempts.max(0) as u32,
            last_attempt: m.last_attempt,
            last_status_code: m.last_status_code.and_then(|c| u16::try_from(c).ok()),
            last_error: m.last_error,
            delivered: m.delivered,
        }
    }
}

/// One delivery attempt, for the order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    /// The message.
    pub message_id: String,
    /// The endpoint.
    pub endpoint_id: String,
    /// The event type's name.
    pub event_type: String,
    /// Where it was posted.
    pub url: String,
    /// 1 for the first.
    pub attempt: u32,
    /// When.
    pub at: DateTime<Utc>,
    /// The HTTP status answered.
    pub status_code: Option<u16>,
    /// What went wrong; `None` when accepted.
    pub error: Option<String>,
    /// How long it took, milliseconds.
    pub duration_ms: u64,
}

impl From<webhook_attempt::Model> for WebhookAttempt {
    fn from(m: webhook_attempt::Model) -> Self {
        Self {
            message_id: m.message_id,
            endpoint_id: m.endpoint_id,
            event_type: m.event_type,
            url: m.url,
            attempt: m.attempt.max(0) as u32,
            at: m.at,
            status_code: m.status_code.and_then(|c| u16::try_from(c).ok()),
            error: m.error,
            duration_ms: m.duration_ms.max(0) as u64,
        }
    }
}

/// The (endpoint, order) pairs with messages the dispatcher has not yet told their workflow
/// about, each with the sequence numbers it read.
pub type Undispatched = Vec<((String, String), Vec<i64>)>;

/// Whether a notification event tells of a change: a report that changed nothing is logged
/// for the timeline (`no change: …`) but is no status change.
fn is_change(source: &str, detail: Option<&str>) -> bool {
    !(source == "report" && detail.is_some_and(|d| d.starts_with("no change")))
}

fn message_row(
    endpoint_id: &str,
    order_id: &str,
    event: WebhookEvent,
    at: DateTime<Utc>,
    data: serde_json::Value,
) -> webhook_message::ActiveModel {
    let payload = json!({
        "type": event.as_str(),
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    webhook_message::ActiveModel {
        id: Set(format!("msg_{}", uuid::Uuid::now_v7().simple())),
        endpoint_id: Set(endpoint_id.to_owned()),
        order_id: Set(order_id.to_owned()),
        event_type: Set(event.as_str().to_owned()),
        payload: Set(payload.to_string()),
        created: Set(at),
        status: Set(DeliveryStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        last_attempt: Set(None),
        last_status_code: Set(None),
        last_error: Set(None),
        delivered: Set(None),
        dispatched: Set(false),
        ..Default::default()
    }
}

async fn insert_messages<C: ConnectionTrait>(
    db: &C,
    rows: Vec<webhook_message::ActiveModel>,
) -> Result<(), DbErr> {
    for chunk in rows.chunks(200) {
        webhook_message::Entity::insert_many(chunk.to_vec()).exec_without_returning(db).await?;
    }
    Ok(())
}

/// Enabled endpoints of the orders' creators that receive any of `events`: one query, through
/// the creator index (a store without endpoints answers from an empty index).
async fn subscribed<C: ConnectionTrait>(
    db: &C,
    events: &[WebhookEvent],
    order_ids: impl IntoIterator<Item = String>,
) -> Result<Vec<WebhookEndpoint>, DbErr> {
    use sea_orm::QueryTrait;
    let creators = order::Entity::find()
        .select_only()
        .column(order::Column::Creator)
        .filter(order::Column::Id.is_in(order_ids))
        .into_query();
    let rows = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::Creator.in_subquery(creators))
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(WebhookEndpoint::from)
        .filter(|e| e.events.iter().any(|ev| events.contains(ev)))
        .collect())
}

impl Store {
    /// The webhook messages of notification status changes, for every enabled endpoint of the
    /// orders' creators that asked for them: on the connection (or transaction) that logged
    /// the changes.
    pub(super) async fn enqueue_notification_webhooks<C: ConnectionTrait>(
        db: &C,
        rows: &[EventAt<'_>],
    ) -> Result<(), DbErr> {
        if rows.is_empty() {
            return Ok(());
        }
        let order_ids: HashSet<&str> = rows.iter().map(|((_, oid, ..), _)| oid.as_str()).collect();
        let wanted = [WebhookEvent::NotificationFinal, WebhookEvent::NotificationStatusChanged];
        let endpoints =
            subscribed(db, &wanted, order_ids.iter().map(|id| (*id).to_owned())).await?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let orders: HashMap<String, (String, Option<String>)> = order::Entity::find()
            .select_only()
            .columns([order::Column::Id, order::Column::Creator, order::Column::SendersReference])
            .filter(order::Column::Id.is_in(order_ids))
            .into_tuple::<(String, String, Option<String>)>()
            .all(db)
            .await?
            .into_iter()
            .map(|(id, creator, reference)| (id, (creator, reference)))
            .collect();
        let mut by_creator: HashMap<&str, Vec<&WebhookEndpoint>> = HashMap::new();
        for e in &endpoints {
            by_creator.entry(e.creator.as_str()).or_default().push(e);
        }
        // A notification sent to a provider that reports delivery is not final at `Succeeded`
        // / `Accepted`: it waits for the report.
        let sent_ids: Vec<&str> = rows
            .iter()
            .filter(|((_, oid, status, ..), _)| {
                status.rank() == 2
                    && orders.get(oid).is_some_and(|(c, _)| by_creator.contains_key(c.as_str()))
            })
            .map(|((nid, ..), _)| nid.as_str())
            .collect();
        let awaiting: HashSet<String> = if sent_ids.is_empty() {
            HashSet::new()
        } else {
            notification::Entity::find()
                .select_only()
                .column(notification::Column::Id)
                .filter(notification::Column::Id.is_in(sent_ids))
                .filter(notification::Column::AwaitsReport.eq(true))
                .into_tuple::<String>()
                .all(db)
                .await?
                .into_iter()
                .collect()
        };
        let mut messages = Vec::new();
        for ((nid, oid, status, source, detail), at) in rows {
            let Some((creator, reference)) = orders.get(oid) else { continue };
            let Some(eps) = by_creator.get(creator.as_str()) else { continue };
            if !is_change(source, detail.as_deref()) {
                continue;
            }
            let final_now = is_final(*status, awaiting.contains(nid.as_str()));
            let data = json!({
                "orderId": oid,
                "sendersReference": reference,
                "notificationId": nid,
                "channel": status.channel().as_str(),
                "status": status.as_str(),
                "statusDescription": status.description(),
                "source": source,
                "detail": detail,
                "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            });
            for ep in eps {
                if ep.events.contains(&WebhookEvent::NotificationStatusChanged) {
                    let event = WebhookEvent::NotificationStatusChanged;
                    messages.push(message_row(&ep.id, oid, event, *at, data.clone()));
                }
                if final_now && ep.events.contains(&WebhookEvent::NotificationFinal) {
                    let event = WebhookEvent::NotificationFinal;
                    messages.push(message_row(&ep.id, oid, event, *at, data.clone()));
                }
            }
        }
        insert_messages(db, messages).await
    }

    /// The webhook messages of an order reaching `status` (completed, condition not met,
    /// cancelled), in the transaction that moved it.
    pub(super) async fn enqueue_order_webhook<C: ConnectionTrait>(
        db: &C,
        order_id: &str,
        status: OrderStatus,
    ) -> Result<(), DbErr> {
        let event = match status {
            OrderStatus::Completed => WebhookEvent::OrderCompleted,
            OrderStatus::SendConditionNotMet => WebhookEvent::OrderSendConditionNotMet,
            OrderStatus::Cancelled => WebhookEvent::OrderCancelled,
            _ => return Ok(()),
        };
        let endpoints = subscribed(db, &[event], [order_id.to_owned()]).await?;
        if endpoints.is_empty() {
            return Ok(());
        }
        let Some(o) = order::Entity::find_by_id(order_id.to_owned()).one(db).await? else {
            return Ok(());
        };
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        for c in order_count::Entity::find()
            .filter(order_count::Column::OrderId.eq(order_id))
            .all(db)
            .await?
        {
            if c.n > 0 {
                *counts.entry(c.status.as_str().to_owned()).or_default() += c.n;
            }
        }
        let at = Utc::now();
        let data = json!({
            "orderId": order_id,
            "sendersReference": o.senders_reference,
            "status": status.as_str(),
            "statusDescription": status.description(),
            "notifications": counts,
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
        let rows = endpoints
            .iter()
            .map(|e| message_row(&e.id, order_id, event, at, data.clone()))
            .collect();
        insert_messages(db, rows).await
    }

    /// Enabled endpoints of these orders' creators: what every logged change asks first.
    pub async fn webhook_subscribers(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<WebhookEndpoint>, DbErr> {
        subscribed(&*self.db, &WebhookEvent::ALL, order_ids.iter().cloned()).await
    }

    /// Registers an endpoint.
    pub async fn create_webhook_endpoint(
        &self,
        new: NewEndpoint,
    ) -> Result<WebhookEndpoint, DbErr> {
        let now = Utc::now();
        let model = webhook_endpoint::Model {
            id: format!("ep_{}", uuid::Uuid::now_v7().simple()),
            creator: new.creator,
            url: new.url,
            description: new.description,
            events: WebhookEvent::join(&new.events),
            secret: new.secret,
            previous_secret: None,
            previous_secret_until: None,
            enabled: true,
            disabled_reason: None,
            created: now,
            updated: now,
        };
        let active: webhook_endpoint::ActiveModel = model.clone().into();
        webhook_endpoint::Entity::insert(active).exec_without_returning(&*self.db).await?;
        Ok(model.into())
    }

    /// How many endpoints a creator has.
    pub async fn count_webhook_endpoints(&self, creator: &str) -> Result<u64, DbErr> {
        use sea_orm::PaginatorTrait;
        webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Creator.eq(creator))
            .count(&*self.db)
            .await
    }

    /// A creator's endpoints, oldest first.
    pub async fn webhook_endpoints_of(&self, creator: &str) -> Result<Vec<WebhookEndpoint>, DbErr> {
        Ok(webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::Creator.eq(creator))
            .order_by_asc(webhook_endpoint::Column::Created)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(WebhookEndpoint::from)
            .collect())
    }

    /// One endpoint of a creator; `None` when missing or another creator's.
    pub async fn webhook_endpoint_of(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Option<WebhookEndpoint>, DbErr> {
        Ok(webhook_endpoint::Entity::find_by_id(id.to_owned())
            .filter(webhook_endpoint::Column::Creator.eq(creator))
            .one(&*self.db)
            .await?
            .map(WebhookEndpoint::from))
    }

    /// One endpoint, whoever's (the delivery activity).
    pub async fn webhook_endpoint(&self, id: &str) -> Result<Option<WebhookEndpoint>, DbErr> {
        Ok(webhook_endpoint::Entity::find_by_id(id.to_owned())
            .one(&*self.db)
            .await?
            .map(WebhookEndpoint::from))
    }

    /// Changes an endpoint of a creator. Enabling it again clears the reason it was disabled
    /// and hands its waiting messages to the dispatcher once more.
    pub async fn update_webhook_endpoint(
        &self,
        id: &str,
        creator: &str,
        change: EndpointChange,
    ) -> Result<Option<WebhookEndpoint>, DbErr> {
        let txn = self.db.begin().await?;
        let Some(current) = webhook_endpoint::Entity::find_by_id(id.to_owned())
            .filter(webhook_endpoint::Column::Creator.eq(creator))
            .one(&txn)
            .await?
        else {
            return Ok(None);
        };
        let was_enabled = current.enabled;
        let mut row: webhook_endpoint::ActiveModel = current.into();
        if let Some(url) = change.url {
            row.url = Set(url);
        }
        if let Some(description) = change.description {
            row.description = Set(description);
        }
        if let Some(events) = change.events {
            row.events = Set(WebhookEvent::join(&events));
        }
        if let Some(enabled) = change.enabled {
            row.enabled = Set(enabled);
            // Disabling an endpoint that is already disabled keeps its reason.
            if enabled {
                row.disabled_reason = Set(None);
            } else if was_enabled {
                row.disabled_reason = Set(Some("disabled by its owner".into()));
            }
        }
        row.updated = Set(Utc::now());
        let updated = webhook_endpoint::Entity::update(row).exec(&txn).await?;
        if change.enabled == Some(true) && !was_enabled {
            webhook_message::Entity::update_many()
                .col_expr(webhook_message::Column::Dispatched, Expr::value(false))
                .filter(webhook_message::Column::EndpointId.eq(id))
                .filter(webhook_message::Column::Status.eq(DeliveryStatus::Pending.as_str()))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(Some(updated.into()))
    }

    /// A new signing secret; the previous one keeps signing until `previous_until`.
    pub async fn rotate_webhook_secret(
        &self,
        id: &str,
        creator: &str,
        secret: String,
        previous_until: DateTime<Utc>,
    ) -> Result<Option<WebhookEndpoint>, DbErr> {
        let Some(current) = webhook_endpoint::Entity::find_by_id(id.to_owned())
            .filter(webhook_endpoint::Column::Creator.eq(creator))
            .one(&*self.db)
            .await?
        else {
            return Ok(None);
        };
        let previous = current.secret.clone();
        let mut row: webhook_endpoint::ActiveModel = current.into();
        row.secret = Set(secret);
        row.previous_secret = Set(Some(previous));
        row.previous_secret_until = Set(Some(previous_until));
        row.updated = Set(Utc::now());
        Ok(Some(webhook_endpoint::Entity::update(row).exec(&*self.db).await?.into()))
    }

    /// Removes an endpoint of a creator; its messages not yet delivered fail. The attempts stay
    /// in the orders' timelines.
    pub async fn delete_webhook_endpoint(&self, id: &str, creator: &str) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let res = webhook_endpoint::Entity::delete_many()
            .filter(webhook_endpoint::Column::Id.eq(id))
            .filter(webhook_endpoint::Column::Creator.eq(creator))
            .exec(&txn)
            .await?;
        if res.rows_affected > 0 {
            webhook_message::Entity::delete_many()
                .filter(webhook_message::Column::EndpointId.eq(id))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(res.rows_affected > 0)
    }

    /// Disables an endpoint with a reason (its deliveries kept failing).
    pub async fn disable_webhook_endpoint(&self, id: &str, reason: &str) -> Result<(), DbErr> {
        webhook_endpoint::Entity::update_many()
            .col_expr(webhook_endpoint::Column::Enabled, Expr::value(false))
            .col_expr(webhook_endpoint::Column::DisabledReason, Expr::value(reason.to_owned()))
            .col_expr(webhook_endpoint::Column::Updated, Expr::value(Utc::now()))
            .filter(webhook_endpoint::Column::Id.eq(id))
            .exec(&*self.db)
            .await?;
        Ok(())
    }

    /// Pairs whose new messages the dispatcher has not yet told their workflow about, with
    /// what it read; `limit` messages at most, oldest first.
    pub async fn undispatched_webhooks(&self, limit: u64) -> Result<Undispatched, DbErr> {
        let rows: Vec<(i64, String, String)> = webhook_message::Entity::find()
            .select_only()
            .columns([
                webhook_message::Column::Seq,
                webhook_message::Column::EndpointId,
                webhook_message::Column::OrderId,
            ])
            .filter(webhook_message::Column::Dispatched.eq(false))
            .order_by_asc(webhook_message::Column::Seq)
            .limit(limit)
            .into_tuple()
            .all(&*self.db)
            .await?;
        let mut pairs: Vec<((String, String), Vec<i64>)> = Vec::new();
        let mut index: HashMap<(String, String), usize> = HashMap::new();
        for (seq, endpoint, order) in rows {
            let key = (endpoint, order);
            match index.get(&key) {
                Some(&i) => pairs[i].1.push(seq),
                None => {
                    index.insert(key.clone(), pairs.len());
                    pairs.push((key, vec![seq]));
                }
            }
        }
        Ok(pairs)
    }

    /// Records that the messages' workflow has been told.
    pub async fn mark_webhooks_dispatched(&self, seqs: &[i64]) -> Result<(), DbErr> {
        for chunk in seqs.chunks(500) {
            webhook_message::Entity::update_many()
                .col_expr(webhook_message::Column::Dispatched, Expr::value(true))
                .filter(webhook_message::Column::Seq.is_in(chunk.iter().copied()))
                .exec(&*self.db)
                .await?;
        }
        Ok(())
    }

    /// A pair's waiting messages, in the order of their events.
    pub async fn pending_webhooks(
        &self,
        endpoint_id: &str,
        order_id: &str,
        limit: u64,
    ) -> Result<Vec<WebhookMessage>, DbErr> {
        Ok(webhook_message::Entity::find()
            .filter(webhook_message::Column::EndpointId.eq(endpoint_id))
            .filter(webhook_message::Column::OrderId.eq(order_id))
            .filter(webhook_message::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .order_by_asc(webhook_message::Column::Seq)
            .limit(limit)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(WebhookMessage::from)
            .collect())
    }

    /// Records an attempt at a message, and the message's new standing, in one transaction.
    pub async fn record_webhook_attempt(
        &self,
        message: &WebhookMessage,
        url: &str,
        attempt: &crate::webhooks::Attempt,
        at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        let number = message.attempts as i32 + 1;
        webhook_attempt::Entity::insert(webhook_attempt::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            message_id: Set(message.id.clone()),
            endpoint_id: Set(message.endpoint_id.clone()),
            order_id: Set(message.order_id.clone()),
            event_type: Set(message.event_type.clone()),
            url: Set(url.to_owned()),
            attempt: Set(number),
            at: Set(at),
            status_code: Set(attempt.status_code.map(i32::from)),
            error: Set(attempt.error.clone()),
            duration_ms: Set(attempt.duration.as_millis().min(i64::MAX as u128) as i64),
        })
        .exec_without_returning(&txn)
        .await?;
        let mut update = webhook_message::Entity::update_many()
            .col_expr(webhook_message::Column::Attempts, Expr::value(number))
            .col_expr(webhook_message::Column::LastAttempt, Expr::value(at))
            .col_expr(
                webhook_message::Column::LastStatusCode,
                Expr::value(attempt.status_code.map(i32::from)),
            )
            .col_expr(webhook_message::Column::LastError, Expr::value(attempt.error.clone()));
        if attempt.accepted() {
            update = update
                .col_expr(
                    webhook_message::Column::Status,
                    Expr::value(DeliveryStatus::Delivered.as_str()),
                )
                .col_expr(webhook_message::Column::Delivered, Expr::value(at));
        }
        update.filter(webhook_message::Column::Seq.eq(message.seq)).exec(&txn).await?;
        txn.commit().await
    }

    /// The retries of a pair ran out: its waiting messages fail.
    pub async fn fail_pending_webhooks(
        &self,
        endpoint_id: &str,
        order_id: &str,
    ) -> Result<u64, DbErr> {
        let res = webhook_message::Entity::update_many()
            .col_expr(webhook_message::Column::Status, Expr::value(DeliveryStatus::Failed.as_str()))
            .filter(webhook_message::Column::EndpointId.eq(endpoint_id))
            .filter(webhook_message::Column::OrderId.eq(order_id))
            .filter(webhook_message::Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .exec(&*self.db)
            .await?;
        Ok(res.rows_affected)
    }

    /// An endpoint's messages, newest first: `limit` at most, before `before_seq` when given,
    /// of one status when given.
    pub async fn webhook_messages_of(
        &self,
        endpoint_id: &str,
        status: Option<DeliveryStatus>,
        before_seq: Option<i64>,
        limit: u64,
    ) -> Result<Vec<WebhookMessage>, DbErr> {
        let mut q = webhook_message::Entity::find()
            .filter(webhook_message::Column::EndpointId.eq(endpoint_id));
        if let Some(s) = status {
            q = q.filter(webhook_message::Column::Status.eq(s.as_str()));
        }
        if let Some(b) = before_seq {
            q = q.filter(webhook_message::Column::Seq.lt(b));
        }
        Ok(q.order_by_desc(webhook_message::Column::Seq)
            .limit(limit)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(WebhookMessage::from)
            .collect())
    }

    /// Hands a message of an endpoint to delivery again (its id stays: a receiver that got it
    /// before can tell). `None` when the endpoint has no such message.
    pub async fn redeliver_webhook(
        &self,
        endpoint_id: &str,
        message_id: &str,
    ) -> Result<Option<WebhookMessage>, DbErr> {
        let res = webhook_message::Entity::update_many()
            .col_expr(
                webhook_message::Column::Status,
                Expr::value(DeliveryStatus::Pending.as_str()),
            )
            .col_expr(webhook_message::Column::Dispatched, Expr::value(false))
            .filter(webhook_message::Column::EndpointId.eq(endpoint_id))
            .filter(webhook_message::Column::Id.eq(message_id))
            .exec(&*self.db)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        Ok(webhook_message::Entity::find()
            .filter(webhook_message::Column::Id.eq(message_id))
            .one(&*self.db)
            .await?
            .map(WebhookMessage::from))
    }

    /// An order's delivery attempts, oldest first (its timeline), the first `limit` when given.
    pub async fn webhook_attempts_of_order(
        &self,
        order_id: &str,
        limit: Option<u64>,
    ) -> Result<Vec<WebhookAttempt>, DbErr> {
        Ok(webhook_attempt::Entity::find()
            .filter(webhook_attempt::Column::OrderId.eq(order_id))
            .order_by_asc(webhook_attempt::Column::At)
            .limit(limit)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(WebhookAttempt::from)
            .collect())
    }
}

/// Whether a notification status counts as final for `notification.final`, given whether the
/// notification still awaits a delivery report.
fn is_final(status: NotificationStatus, awaits_report: bool) -> bool {
    status.rank() == 3 || (status.rank() == 2 && !awaits_report)
}
