//! Notifications: rows generated from an order, claimed for sending, the providers' answers
//! recorded (one at a time or grouped by `ResultWriter`), settling and expiry, redrive.

use super::entities::notification;
use super::{Store, open_condition};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    TransactionTrait,
};
use varsel_workflows::domain::{Channel, NotificationStatus, OrderStatus};

/// What settling an order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The order's status now.
    pub status: OrderStatus,
    /// The earliest expiry of its open notifications.
    pub next_expiry: Option<DateTime<Utc>>,
}

/// A provider's answer for one notification.
#[derive(Debug, Clone)]
pub struct ProviderResult {
    /// The notification.
    pub id: String,
    /// Its order.
    pub order_id: String,
    /// The status the answer means.
    pub status: NotificationStatus,
    /// The provider's words, or a policy note.
    pub reason: Option<String>,
    /// The provider's reference (for matching delivery reports).
    pub provider_ref: Option<String>,
    /// Whether a delivery report is still to come.
    pub awaits_report: bool,
    /// When the provider answered (the row and its status-log line carry this time, not the
    /// time the answer was committed with others).
    pub answered_at: DateTime<Utc>,
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Group commit of provider answers: concurrent senders hand their answers to one writer, which
/// records everything waiting in one transaction and then tells each sender. A send still counts
/// as done only once its answer is committed (the duplicate window after a crash stays one
/// in-flight send per sender), but the database sees one commit per group instead of one per
/// message, and SQLite's single writer is not fought over.
#[derive(Clone)]
pub struct ResultWriter {
    tx: tokio::sync::mpsc::UnboundedSender<(ProviderResult, Ack)>,
}

impl ResultWriter {
    /// Starts the writer; it ends when every clone is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(ProviderResult, Ack)>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < 256
                    && let Ok(more) = rx.try_recv()
                {
                    group.push(more);
                }
                let rows: Vec<&ProviderResult> = group.iter().map(|(r, _)| r).collect();
                let outcome = store.record_results(&rows).await.map_err(|e| e.to_string());
                for (_, ack) in group {
                    let _ = ack.send(outcome.clone());
                }
            }
        });
        Self { tx }
    }

    /// Records one answer; returns once it is committed.
    pub async fn record(&self, result: ProviderResult) -> Result<(), String> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.tx.send((result, ack)).map_err(|_| "the result writer stopped".to_owned())?;
        done.await.map_err(|_| "the result writer stopped".to_owned())?
    }
}

impl Store {
    /// How many notifications of an order are in each (channel, status), without loading them.
    pub async fn notification_counts(
        &self,
        order_id: &str,
    ) -> Result<Vec<(String, String, i64)>, DbErr> {
        notification::Entity::find()
            .select_only()
            .column(notification::Column::Channel)
            .column(notification::Column::Status)
            .column_as(notification::Column::Id.count(), "n")
            .filter(notification::Column::OrderId.eq(order_id))
            .group_by(notification::Column::Channel)
            .group_by(notification::Column::Status)
            .into_tuple::<(String, String, i64)>()
            .all(&self.db)
            .await
    }

    /// The notifications of one channel of an order, in recipient order.
    pub async fn notifications_of(
        &self,
        order_id: &str,
        channel: Channel,
    ) -> Result<Vec<notification::Model>, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(notification::Column::Channel.eq(channel.as_str()))
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Address)
            .all(&self.db)
            .await
    }

    /// The notifications of several orders.
    pub async fn notifications_of_orders(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<notification::Model>, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.is_in(order_ids.iter().cloned()))
            .order_by_asc(notification::Column::RecipientIdx)
            .all(&self.db)
            .await
    }

    /// Inserts notifications, skipping any that already exist (same order, recipient, channel
    /// and address), so a retried batch is harmless.
    pub async fn insert_notifications(&self, rows: Vec<notification::Model>) -> Result<(), DbErr> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        for chunk in rows.chunks(200) {
            let models = chunk.iter().cloned().map(notification::ActiveModel::from);
            notification::Entity::insert_many(models)
                .on_conflict(
                    OnConflict::columns([
                        notification::Column::OrderId,
                        notification::Column::RecipientIdx,
                        notification::Column::Channel,
                        notification::Column::Address,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await?;
        }
        // Only the rows this call created (a retried batch keeps its first ids) get an event.
        let mut created = Vec::new();
        for chunk in ids.chunks(500) {
            for n in notification::Entity::find()
                .filter(notification::Column::Id.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                created.push((n.id, n.order_id, n.status, "created", None));
            }
        }
        Self::log_events(&self.db, created).await
    }

    /// The notifications of one channel of an order not yet handed to a provider (`New`, or
    /// `Sending` left by an attempt that did not finish), through the (order, channel, status)
    /// index.
    pub(super) fn unsent(
        order_id: &str,
        channel: Channel,
    ) -> sea_orm::Select<notification::Entity> {
        let pending =
            [NotificationStatus::new_for(channel), NotificationStatus::sending_for(channel)];
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(notification::Column::Channel.eq(channel.as_str()))
            .filter(notification::Column::Status.is_in(pending.iter().map(|s| s.as_str())))
    }

    /// Claims up to `limit` unsent notifications of one channel of an order and marks them
    /// `Sending` (counting the attempt). Rows left in `Sending` by a crashed attempt are claimed
    /// again: that is the documented at-least-once window.
    pub async fn claim_notifications(
        &self,
        order_id: &str,
        channel: Channel,
        limit: u32,
    ) -> Result<Vec<notification::Model>, DbErr> {
        // One transaction: one commit for the whole batch's claim and its status log.
        let txn = self.db.begin().await?;
        let rows = Self::unsent(order_id, channel)
            // No ORDER BY: the (order, channel, status) index yields rows in its own order and the
            // LIMIT stops the scan; sorting would read every pending row of a large order once
            // per batch.
            .limit(limit as u64)
            .all(&txn)
            .await?;
        if rows.is_empty() {
            return Ok(rows);
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        notification::Entity::update_many()
            .col_expr(
                notification::Column::Status,
                Expr::value(NotificationStatus::sending_for(channel).as_str()),
            )
            .col_expr(notification::Column::StatusChanged, Expr::value(Utc::now()))
            .col_expr(
                notification::Column::Attempts,
                Expr::col(notification::Column::Attempts).add(1),
            )
            .filter(notification::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        let events = rows
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::sending_for(channel).as_str().to_owned(),
                    "sending",
                    Some(format!("attempt {}", r.attempts + 1)),
                )
            })
            .collect();
        Self::log_events(&txn, events).await?;
        txn.commit().await?;
        Ok(rows)
    }

    /// Records providers' answers, each only if its notification is still `Sending`, in one
    /// transaction; the status log gets a line for each row that moved.
    pub async fn record_results(&self, results: &[&ProviderResult]) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        let mut events = Vec::with_capacity(results.len());
        for r in results {
            let moved = notification::Entity::update_many()
                .col_expr(notification::Column::AwaitsReport, Expr::value(r.awaits_report))
                .col_expr(notification::Column::Status, Expr::value(r.status.as_str()))
                .col_expr(notification::Column::StatusChanged, Expr::value(r.answered_at))
                .col_expr(notification::Column::StatusReason, Expr::value(r.reason.clone()))
                .col_expr(notification::Column::ProviderRef, Expr::value(r.provider_ref.clone()))
                .filter(notification::Column::Id.eq(r.id.as_str()))
                .filter(
                    notification::Column::Status
                        .eq(NotificationStatus::sending_for(r.status.channel()).as_str()),
                )
                .exec(&txn)
                .await?
                .rows_affected;
            if moved > 0 {
                events.push((
                    (
                        r.id.clone(),
                        r.order_id.clone(),
                        r.status.as_str().to_owned(),
                        "provider",
                        r.reason.clone(),
                    ),
                    r.answered_at,
                ));
            }
        }
        Self::log_events_at(&txn, events).await?;
        txn.commit().await
    }

    /// Whether any notification of one channel of an order is not yet sent (an index probe that
    /// stops at the first row, however large the order).
    pub async fn has_pending(&self, order_id: &str, channel: Channel) -> Result<bool, DbErr> {
        Ok(Self::unsent(order_id, channel)
            .select_only()
            .column(notification::Column::Id)
            .limit(1)
            .into_tuple::<String>()
            .one(&self.db)
            .await?
            .is_some())
    }

    /// All notifications of an order, in recipient order.
    pub async fn notifications(&self, order_id: &str) -> Result<Vec<notification::Model>, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Channel)
            .all(&self.db)
            .await
    }

    /// How many notifications of an order still wait for sending or a report.
    pub async fn count_open(&self, order_id: &str) -> Result<u64, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(open_condition())
            .count(&self.db)
            .await
    }

    /// `Completed` when no notification is open (else `Processed`), and when the next open one
    /// expires.
    pub async fn settle_order(&self, order_id: &str) -> Result<Settled, DbErr> {
        let open = self.count_open(order_id).await?;
        let target = if open == 0 { OrderStatus::Completed } else { OrderStatus::Processed };
        self.transition_order(order_id, &[OrderStatus::Processing, OrderStatus::Processed], target)
            .await?;
        let next_expiry = if open == 0 {
            None
        } else {
            notification::Entity::find()
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(open_condition())
                .order_by_asc(notification::Column::Expiry)
                .one(&self.db)
                .await?
                .map(|n| n.expiry)
        };
        let status = self
            .order(order_id)
            .await?
            .and_then(|o| OrderStatus::parse(&o.status))
            .unwrap_or(target);
        Ok(Settled { status, next_expiry })
    }

    /// Gives up every open notification of an order whose expiry has passed: it becomes
    /// `*_Failed_TTL`, whether it was never sent or never reported. Returns how many.
    pub async fn expire_notifications(
        &self,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let mut n = 0;
        let expiring = notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(open_condition())
            .filter(notification::Column::Expiry.lte(now))
            .all(&self.db)
            .await?;
        let events = expiring
            .iter()
            .filter_map(|r| {
                let ch = Channel::parse(&r.channel)?;
                Some((
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::ttl_for(ch).as_str().to_owned(),
                    "ttl",
                    Some(format!("still {} at its expiry", r.status)),
                ))
            })
            .collect();
        Self::log_events(&self.db, events).await?;
        for channel in [Channel::Email, Channel::Sms] {
            let res = notification::Entity::update_many()
                .col_expr(
                    notification::Column::Status,
                    Expr::value(NotificationStatus::ttl_for(channel).as_str()),
                )
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(notification::Column::Channel.eq(channel.as_str()))
                .filter(open_condition())
                .filter(notification::Column::Expiry.lte(now))
                .exec(&self.db)
                .await?;
            n += res.rows_affected;
        }
        Ok(n)
    }

    /// Gives up claimed (`Sending`) notifications of one channel whose time-to-live has passed,
    /// by id, in one transaction: only rows that really move (another attempt may have recorded
    /// a result meanwhile) get a status-log entry. Returns how many moved.
    pub async fn expire_claimed(
        &self,
        channel: Channel,
        rows: &[notification::Model],
        now: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        if rows.is_empty() {
            return Ok(0);
        }
        let ttl = NotificationStatus::ttl_for(channel);
        let txn = self.db.begin().await?;
        let mut events = Vec::new();
        for r in rows {
            let moved = notification::Entity::update_many()
                .col_expr(notification::Column::Status, Expr::value(ttl.as_str()))
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .filter(notification::Column::Id.eq(r.id.as_str()))
                .filter(
                    notification::Column::Status
                        .eq(NotificationStatus::sending_for(channel).as_str()),
                )
                .exec(&txn)
                .await?
                .rows_affected;
            if moved > 0 {
                events.push((
                    r.id.clone(),
                    r.order_id.clone(),
                    ttl.as_str().to_owned(),
                    "ttl",
                    Some(format!("still unsent at its expiry ({})", r.expiry.to_rfc3339())),
                ));
            }
        }
        let n = events.len() as u64;
        Self::log_events(&txn, events).await?;
        txn.commit().await?;
        Ok(n)
    }

    /// Notifications a redrive would send again: failed without ever being accepted by a
    /// provider (`*_Failed_TTL` while unsent) or refused outright (`Email_Failed`, `SMS_Failed`).
    /// Nothing sent, accepted or delivered qualifies.
    pub(super) fn redrivable() -> sea_orm::Condition {
        use sea_orm::Condition;
        Condition::any()
            .add(
                Condition::all()
                    .add(notification::Column::Status.is_in([
                        NotificationStatus::EmailFailedTtl.as_str(),
                        NotificationStatus::SmsFailedTtl.as_str(),
                    ]))
                    .add(notification::Column::AwaitsReport.eq(false)),
            )
            .add(notification::Column::Status.is_in([
                NotificationStatus::EmailFailed.as_str(),
                NotificationStatus::SmsFailed.as_str(),
            ]))
    }

    /// How many notifications of an order a redrive would send again.
    pub async fn count_redrivable(&self, order_id: &str) -> Result<u64, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(Self::redrivable())
            .count(&self.db)
            .await
    }

    /// Resets the redrivable notifications to `New` with a fresh expiry and reopens the order.
    pub async fn redrive_reset(
        &self,
        order_id: &str,
        ttl: std::time::Duration,
    ) -> Result<u64, DbErr> {
        let now = Utc::now();
        let mut n = 0;
        let resetting = notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(Self::redrivable())
            .all(&self.db)
            .await?;
        let events = resetting
            .iter()
            .filter_map(|r| {
                let ch = Channel::parse(&r.channel)?;
                Some((
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::new_for(ch).as_str().to_owned(),
                    "redrive",
                    Some(format!("was {}", r.status)),
                ))
            })
            .collect();
        Self::log_events(&self.db, events).await?;
        for channel in [Channel::Email, Channel::Sms] {
            let res = notification::Entity::update_many()
                .col_expr(
                    notification::Column::Status,
                    Expr::value(NotificationStatus::new_for(channel).as_str()),
                )
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .col_expr(
                    notification::Column::StatusReason,
                    Expr::value(Some("Redriven by an operator.".to_owned())),
                )
                .col_expr(notification::Column::Expiry, Expr::value(Self::expiry_from(now, ttl)))
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(notification::Column::Channel.eq(channel.as_str()))
                .filter(Self::redrivable())
                .exec(&self.db)
                .await?;
            n += res.rows_affected;
        }
        self.transition_order(
            order_id,
            &[OrderStatus::Completed, OrderStatus::Processed],
            OrderStatus::Processing,
        )
        .await?;
        Ok(n)
    }
}
