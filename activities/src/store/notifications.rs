//! Notifications: rows generated from an order, claimed for sending, the providers' answers
//! recorded (one at a time or grouped by `ResultWriter`), settling and expiry, redrive.

use super::entities::{notification, order_count};
use super::{Store, open_condition, open_on};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    QueryTrait, TransactionTrait,
};
use std::ops::Range;
use varsel_workflows::domain::{Channel, NotificationStatus, OrderStatus};

/// One message to one address on one channel: what the store takes when notifications are
/// generated and gives back when they are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// Notification id (UUID).
    pub id: String,
    /// The order.
    pub order_id: String,
    /// Its channel.
    pub channel: Channel,
    /// Which submitted recipient it came from.
    pub recipient_idx: u32,
    /// Organisation number of the recipient, if any.
    pub org_no: Option<String>,
    /// National identity number of the recipient, if any.
    pub nin: Option<String>,
    /// Email address or mobile number; empty for a recipient that could not be reached.
    pub address: String,
    /// Rendered subject, when the template had keywords.
    pub subject: Option<String>,
    /// Rendered body, when the template had keywords.
    pub body: Option<String>,
    /// Where it stands.
    pub status: NotificationStatus,
    /// When `status` last changed.
    pub status_changed: DateTime<Utc>,
    /// The provider's words for the status (SMTP reply, gateway text).
    pub status_reason: Option<String>,
    /// The provider's message reference.
    pub provider_ref: Option<String>,
    /// Send attempts so far.
    pub attempts: u32,
    /// When an unfinished notification is given up (time-to-live).
    pub expiry: DateTime<Utc>,
    /// SMS segments the text takes (SMS only).
    pub segments: Option<u32>,
    /// The last delivery report, as the provider sent it.
    pub delivery_report: Option<String>,
    /// Whether its provider reports delivery, so `Succeeded`/`Accepted` is not yet final.
    pub awaits_report: bool,
}

/// A notification row read back.
impl From<notification::Model> for Notification {
    fn from(m: notification::Model) -> Self {
        Self {
            id: m.id,
            order_id: m.order_id,
            channel: m.channel,
            recipient_idx: u32::try_from(m.recipient_idx).unwrap_or_default(),
            org_no: m.org_no,
            nin: m.nin,
            address: m.address,
            subject: m.subject,
            body: m.body,
            status: m.status,
            status_changed: m.status_changed,
            status_reason: m.status_reason,
            provider_ref: m.provider_ref,
            attempts: u32::try_from(m.attempts).unwrap_or_default(),
            expiry: m.expiry,
            segments: m.segments.map(|s| u32::try_from(s).unwrap_or_default()),
            delivery_report: m.delivery_report,
            awaits_report: m.awaits_report,
        }
    }
}

/// A notification's row: the one place a notification becomes a row.
impl From<Notification> for notification::Model {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            order_id: n.order_id,
            channel: n.channel,
            recipient_idx: n.recipient_idx as i32,
            org_no: n.org_no,
            nin: n.nin,
            address: n.address,
            subject: n.subject,
            body: n.body,
            status: n.status,
            status_changed: n.status_changed,
            status_reason: n.status_reason,
            provider_ref: n.provider_ref,
            attempts: n.attempts as i32,
            expiry: n.expiry,
            segments: n.segments.map(|s| s as i32),
            delivery_report: n.delivery_report,
            awaits_report: n.awaits_report,
        }
    }
}

fn read(rows: Vec<notification::Model>) -> Vec<Notification> {
    rows.into_iter().map(Notification::from).collect()
}

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
            while let Some(group) = super::next_group(&mut rx, RESULTS_A_STATEMENT).await {
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

/// The most answers one statement records (a result writer's group is at most this).
pub(super) const RESULTS_A_STATEMENT: usize = 256;

/// `SUM(n)` of kept counts, as a 64-bit integer on both databases (PostgreSQL's sum of a
/// bigint is a numeric).
fn sum_of_counts() -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Alias, Func};
    Func::cast_as(Func::sum(Expr::col(order_count::Column::N)), Alias::new("BIGINT")).into()
}

impl Store {
    /// How many notifications of an order are in each (channel, status), from the counts the
    /// database keeps as they change: a handful of rows however large the order.
    pub async fn notification_counts(
        &self,
        order_id: &str,
    ) -> Result<Vec<(Channel, NotificationStatus, i64)>, DbErr> {
        order_count::Entity::find()
            .select_only()
            .column(order_count::Column::Channel)
            .column(order_count::Column::Status)
            .column_as(sum_of_counts(), "n")
            .filter(order_count::Column::OrderId.eq(order_id))
            .filter(order_count::Column::N.gt(0))
            .group_by(order_count::Column::Channel)
            .group_by(order_count::Column::Status)
            .into_tuple::<(Channel, NotificationStatus, i64)>()
            .all(&*self.db)
            .await
    }

    /// [`Self::notification_counts`] counted from the notifications themselves, reading every
    /// row of the order: what the kept counts must always equal (the tests and crash tests
    /// compare them).
    pub async fn tally_notifications(
        &self,
        order_id: &str,
    ) -> Result<Vec<(Channel, NotificationStatus, i64)>, DbErr> {
        notification::Entity::find()
            .select_only()
            .column(notification::Column::Channel)
            .column(notification::Column::Status)
            .column_as(notification::Column::Id.count(), "n")
            .filter(notification::Column::OrderId.eq(order_id))
            .group_by(notification::Column::Channel)
            .group_by(notification::Column::Status)
            .into_tuple::<(Channel, NotificationStatus, i64)>()
            .all(&*self.db)
            .await
    }

    /// The notifications of one channel of an order, in recipient order.
    pub async fn notifications_of(
        &self,
        order_id: &str,
        channel: Channel,
    ) -> Result<Vec<Notification>, DbErr> {
        let rows = notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(notification::Column::Channel.eq(channel))
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Address)
            .all(&*self.db)
            .await?;
        Ok(read(rows))
    }

    /// The notifications of several orders.
    pub async fn notifications_of_orders(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<Notification>, DbErr> {
        let rows = notification::Entity::find()
            .filter(notification::Column::OrderId.is_in(order_ids.iter().cloned()))
            .order_by_asc(notification::Column::RecipientIdx)
            .all(&*self.db)
            .await?;
        Ok(read(rows))
    }

    /// Inserts notifications, skipping any that already exist (same order, recipient, channel
    /// and address), so a retried batch is harmless.
    pub async fn insert_notifications(&self, rows: Vec<Notification>) -> Result<(), DbErr> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        for chunk in rows.chunks(200) {
            let models = chunk
                .iter()
                .cloned()
                .map(|n| notification::ActiveModel::from(notification::Model::from(n)));
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
                .exec_without_returning(&*self.db)
                .await?;
        }
        // Only the rows this call created (a retried batch keeps its first ids) get an event.
        let mut created = Vec::new();
        for chunk in ids.chunks(500) {
            for n in notification::Entity::find()
                .filter(notification::Column::Id.is_in(chunk.iter().cloned()))
                .all(&*self.db)
                .await?
            {
                created.push((n.id, n.order_id, n.status, "created", None));
            }
        }
        Self::log_events(&*self.db, created).await
    }

    /// The notifications of one channel of an order not yet handed to a provider (`New`, or
    /// `Sending` left by an attempt that did not finish), through the (order, channel, status,
    /// recipient) index.
    pub(super) fn unsent(
        order_id: &str,
        channel: Channel,
    ) -> sea_orm::Select<notification::Entity> {
        let pending =
            [NotificationStatus::new_for(channel), NotificationStatus::sending_for(channel)];
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(notification::Column::Channel.eq(channel))
            .filter(notification::Column::Status.is_in(pending))
    }

    /// [`Self::unsent`] of the recipients in `slice` only (all of them when `None`).
    fn unsent_in(
        order_id: &str,
        channel: Channel,
        slice: Option<Range<u32>>,
    ) -> sea_orm::Select<notification::Entity> {
        let unsent = Self::unsent(order_id, channel);
        match slice {
            None => unsent,
            Some(r) => unsent
                .filter(notification::Column::RecipientIdx.gte(r.start as i64))
                .filter(notification::Column::RecipientIdx.lt(r.end as i64)),
        }
    }

    /// Claims up to `limit` unsent notifications of one channel of an order and marks them
    /// `Sending` (counting the attempt). Rows left in `Sending` by a crashed attempt are claimed
    /// again: that is the documented at-least-once window. The rows as claimed.
    pub async fn claim_notifications(
        &self,
        order_id: &str,
        channel: Channel,
        limit: u32,
    ) -> Result<Vec<Notification>, DbErr> {
        self.claim(order_id, channel, None, limit).await
    }

    /// [`Self::claim_notifications`] among the recipients of one slice of the order: slices
    /// are disjoint, so batches of several slices claim at once without meeting.
    pub async fn claim_slice(
        &self,
        order_id: &str,
        channel: Channel,
        recipients: Range<u32>,
        limit: u32,
    ) -> Result<Vec<Notification>, DbErr> {
        self.claim(order_id, channel, Some(recipients), limit).await
    }

    async fn claim(
        &self,
        order_id: &str,
        channel: Channel,
        slice: Option<Range<u32>>,
        limit: u32,
    ) -> Result<Vec<Notification>, DbErr> {
        // One statement picks and marks the rows (a write from its start, so SQLite takes its
        // writer lock at once instead of upgrading a read that another writer overtook), and
        // one transaction holds it and its status log: one commit a batch.
        // No ORDER BY in the pick: the index yields rows in its own order and the LIMIT stops
        // the scan; sorting would read every pending row of a large order once per batch.
        let pick = Self::unsent_in(order_id, channel, slice)
            .select_only()
            .column(notification::Column::Id)
            .limit(limit as u64)
            .into_query();
        let txn = self.db.begin().await?;
        let rows = notification::Entity::update_many()
            .col_expr(
                notification::Column::Status,
                Expr::value(NotificationStatus::sending_for(channel)),
            )
            .col_expr(notification::Column::StatusChanged, Expr::value(Utc::now()))
            .col_expr(
                notification::Column::Attempts,
                Expr::col(notification::Column::Attempts).add(1),
            )
            .filter(notification::Column::Id.in_subquery(pick))
            .exec_with_returning(&txn)
            .await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let events = rows
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::sending_for(channel),
                    "sending",
                    Some(format!("attempt {}", r.attempts)),
                )
            })
            .collect();
        Self::log_events(&txn, events).await?;
        txn.commit().await?;
        Ok(read(rows))
    }

    /// Records providers' answers, each only if its notification is still `Sending`, in one
    /// transaction; the status log gets a line for each row that moved.
    pub async fn record_results(&self, results: &[&ProviderResult]) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        Self::record_results_in(&txn, results).await?;
        txn.commit().await
    }

    /// [`Self::record_results`] in a transaction of the caller's. Up to
    /// [`RESULTS_A_STATEMENT`] answers are one statement, each row's status, reason, report
    /// expectation, time and provider reference chosen by its id; the result writers never
    /// pass more. One statement a transaction also means one touch of the order's counts, so
    /// two writers on PostgreSQL cannot deadlock between a row of one and a count of the other.
    pub(super) async fn record_results_in(
        txn: &sea_orm::DatabaseTransaction,
        results: &[&ProviderResult],
    ) -> Result<(), DbErr> {
        let mut events = Vec::with_capacity(results.len());
        for chunk in results.chunks(RESULTS_A_STATEMENT) {
            let by_id = |value: fn(&ProviderResult) -> sea_orm::Value| {
                let arm = |r: &ProviderResult| {
                    (notification::Column::Id.eq(r.id.as_str()), Expr::val(value(r)))
                };
                let (cond, then) = arm(chunk[0]);
                let case = chunk[1..].iter().fold(Expr::case(cond, then), |case, r| {
                    let (cond, then) = arm(r);
                    case.case(cond, then)
                });
                sea_orm::sea_query::SimpleExpr::Case(Box::new(case))
            };
            let moved = notification::Entity::update_many()
                .col_expr(notification::Column::AwaitsReport, by_id(|r| r.awaits_report.into()))
                .col_expr(notification::Column::Status, by_id(|r| r.status.into()))
                .col_expr(notification::Column::StatusReason, by_id(|r| r.reason.clone().into()))
                .col_expr(notification::Column::StatusChanged, by_id(|r| r.answered_at.into()))
                .col_expr(
                    notification::Column::ProviderRef,
                    by_id(|r| r.provider_ref.clone().into()),
                )
                .filter(notification::Column::Id.is_in(chunk.iter().map(|r| r.id.as_str())))
                .filter(
                    notification::Column::Status
                        .is_in([NotificationStatus::EmailSending, NotificationStatus::SmsSending]),
                )
                .exec_with_returning(txn)
                .await?;
            let moved: std::collections::HashSet<String> =
                moved.into_iter().map(|m| m.id).collect();
            for r in chunk.iter().filter(|r| moved.contains(&r.id)) {
                events.push((
                    (r.id.clone(), r.order_id.clone(), r.status, "provider", r.reason.clone()),
                    r.answered_at,
                ));
            }
        }
        Self::log_events_at(txn, events).await
    }

    /// How many of a batch's claimed notifications (id, the attempt number it claimed them
    /// with) a later claim has taken: Temporal gave up on the batch's attempt (its worker
    /// stalled past the heartbeat timeout, say) and a retry claimed them again. A primary-key
    /// probe of the batch's own rows.
    pub async fn reclaimed(&self, claimed: &[(String, u32)]) -> Result<usize, DbErr> {
        let rows: Vec<(String, i32)> = notification::Entity::find()
            .select_only()
            .column(notification::Column::Id)
            .column(notification::Column::Attempts)
            .filter(notification::Column::Id.is_in(claimed.iter().map(|(id, _)| id.clone())))
            .into_tuple()
            .all(&*self.db)
            .await?;
        let mine: std::collections::HashMap<&str, u32> =
            claimed.iter().map(|(id, attempt)| (id.as_str(), *attempt)).collect();
        Ok(rows
            .iter()
            .filter(|(id, now)| mine.get(id.as_str()).is_some_and(|m| *now as u32 > *m))
            .count())
    }

    /// Whether any notification of one channel of an order is not yet sent (an index probe that
    /// stops at the first row, however large the order).
    pub async fn has_pending(&self, order_id: &str, channel: Channel) -> Result<bool, DbErr> {
        self.pending(order_id, channel, None).await
    }

    /// [`Self::has_pending`] among the recipients of one slice of the order.
    pub async fn has_pending_in(
        &self,
        order_id: &str,
        channel: Channel,
        recipients: Range<u32>,
    ) -> Result<bool, DbErr> {
        self.pending(order_id, channel, Some(recipients)).await
    }

    async fn pending(
        &self,
        order_id: &str,
        channel: Channel,
        slice: Option<Range<u32>>,
    ) -> Result<bool, DbErr> {
        Ok(Self::unsent_in(order_id, channel, slice)
            .select_only()
            .column(notification::Column::Id)
            .limit(1)
            .into_tuple::<String>()
            .one(&*self.db)
            .await?
            .is_some())
    }

    /// All notifications of an order, in recipient order.
    pub async fn notifications(&self, order_id: &str) -> Result<Vec<Notification>, DbErr> {
        let rows = notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Channel)
            .all(&*self.db)
            .await?;
        Ok(read(rows))
    }

    /// How many notifications of an order still wait for sending or a report, from the kept
    /// counts.
    pub async fn count_open(&self, order_id: &str) -> Result<u64, DbErr> {
        let open: Option<i64> = order_count::Entity::find()
            .select_only()
            .column_as(sum_of_counts(), "n")
            .filter(order_count::Column::OrderId.eq(order_id))
            .filter(open_on(order_count::Column::Status, order_count::Column::AwaitsReport))
            .into_tuple::<Option<i64>>()
            .one(&*self.db)
            .await?
            .flatten();
        Ok(open.unwrap_or(0).max(0) as u64)
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
                .one(&*self.db)
                .await?
                .map(|n| n.expiry)
        };
        let status = self.order(order_id).await?.map_or(target, |o| o.order.status);
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
            .all(&*self.db)
            .await?;
        let events = expiring
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::ttl_for(r.channel),
                    "ttl",
                    Some(format!("still {} at its expiry", r.status)),
                )
            })
            .collect();
        Self::log_events(&*self.db, events).await?;
        for channel in [Channel::Email, Channel::Sms] {
            let res = notification::Entity::update_many()
                .col_expr(
                    notification::Column::Status,
                    Expr::value(NotificationStatus::ttl_for(channel)),
                )
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(notification::Column::Channel.eq(channel))
                .filter(open_condition())
                .filter(notification::Column::Expiry.lte(now))
                .exec(&*self.db)
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
        rows: &[Notification],
        now: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        if rows.is_empty() {
            return Ok(0);
        }
        let ttl = NotificationStatus::ttl_for(channel);
        let txn = self.db.begin().await?;
        let moved: std::collections::HashSet<String> = notification::Entity::update_many()
            .col_expr(notification::Column::Status, Expr::value(ttl))
            .col_expr(notification::Column::StatusChanged, Expr::value(now))
            .filter(notification::Column::Id.is_in(rows.iter().map(|r| r.id.as_str())))
            .filter(notification::Column::Status.eq(NotificationStatus::sending_for(channel)))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
        let events: Vec<_> = rows
            .iter()
            .filter(|r| moved.contains(&r.id))
            .map(|r| {
                (
                    r.id.clone(),
                    r.order_id.clone(),
                    ttl,
                    "ttl",
                    Some(format!("still unsent at its expiry ({})", r.expiry.to_rfc3339())),
                )
            })
            .collect();
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
                        NotificationStatus::EmailFailedTtl,
                        NotificationStatus::SmsFailedTtl,
                    ]))
                    .add(notification::Column::AwaitsReport.eq(false)),
            )
            .add(
                notification::Column::Status
                    .is_in([NotificationStatus::EmailFailed, NotificationStatus::SmsFailed]),
            )
    }

    /// How many notifications of an order a redrive would send again.
    pub async fn count_redrivable(&self, order_id: &str) -> Result<u64, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(Self::redrivable())
            .count(&*self.db)
            .await
    }

    /// The notifications a redrive would send again, in recipient order, at most `limit`.
    pub async fn redrivable_notifications(
        &self,
        order_id: &str,
        limit: u64,
    ) -> Result<Vec<Notification>, DbErr> {
        Ok(notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(Self::redrivable())
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Channel)
            .limit(limit)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(Notification::from)
            .collect())
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
            .all(&*self.db)
            .await?;
        let events = resetting
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::new_for(r.channel),
                    "redrive",
                    Some(format!("was {}", r.status)),
                )
            })
            .collect();
        Self::log_events(&*self.db, events).await?;
        for channel in [Channel::Email, Channel::Sms] {
            let res = notification::Entity::update_many()
                .col_expr(
                    notification::Column::Status,
                    Expr::value(NotificationStatus::new_for(channel)),
                )
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .col_expr(
                    notification::Column::StatusReason,
                    Expr::value(Some("Redriven by an operator.".to_owned())),
                )
                .col_expr(notification::Column::Expiry, Expr::value(Self::expiry_from(now, ttl)))
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(notification::Column::Channel.eq(channel))
                .filter(Self::redrivable())
                .exec(&*self.db)
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

/// Where a page of an order's notifications ends: the last row's place in recipient order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationKey {
    /// Its recipient.
    pub recipient_idx: u32,
    /// Its channel.
    pub channel: Channel,
    /// Its address.
    pub address: String,
}

impl From<&Notification> for NotificationKey {
    fn from(n: &Notification) -> Self {
        Self { recipient_idx: n.recipient_idx, channel: n.channel, address: n.address.clone() }
    }
}

/// Why notifications of an order failed: one status and provider reason, how many, and when the
/// first and last of them failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureReason {
    /// The failed status.
    pub status: NotificationStatus,
    /// The provider's words, when it gave any.
    pub reason: Option<String>,
    /// Notifications that ended so.
    pub count: i64,
    /// When the first of them reached it.
    pub first: DateTime<Utc>,
    /// When the last of them reached it.
    pub last: DateTime<Utc>,
}

impl Store {
    /// A page of an order's notifications in recipient order, after `after`, with any of
    /// `statuses` (all when empty); read along the identity index, however large the order.
    pub async fn notification_page(
        &self,
        order_id: &str,
        statuses: &[NotificationStatus],
        after: Option<&NotificationKey>,
        limit: u64,
    ) -> Result<Vec<Notification>, DbErr> {
        let mut q = notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Channel)
            .order_by_asc(notification::Column::Address)
            .limit(limit);
        if !statuses.is_empty() {
            q = q.filter(notification::Column::Status.is_in(statuses.iter().copied()));
        }
        if let Some(k) = after {
            q = q.filter(
                Expr::tuple([
                    Expr::col(notification::Column::RecipientIdx).into(),
                    Expr::col(notification::Column::Channel).into(),
                    Expr::col(notification::Column::Address).into(),
                ])
                .gt(Expr::tuple([
                    Expr::value(k.recipient_idx as i32),
                    Expr::value(k.channel),
                    Expr::value(k.address.clone()),
                ])),
            );
        }
        Ok(read(q.all(&*self.db).await?))
    }

    /// The reasons an order's notifications failed, the most frequent first (at most `limit`).
    pub async fn failure_reasons(
        &self,
        order_id: &str,
        limit: u64,
    ) -> Result<Vec<FailureReason>, DbErr> {
        let failed = NotificationStatus::ALL.iter().copied().filter(|s| s.is_failure());
        let rows = notification::Entity::find()
            .select_only()
            .column(notification::Column::Status)
            .column(notification::Column::StatusReason)
            .column_as(notification::Column::Id.count(), "n")
            .column_as(notification::Column::StatusChanged.min(), "first")
            .column_as(notification::Column::StatusChanged.max(), "last")
            .filter(notification::Column::OrderId.eq(order_id))
            // Every channel named, so the (order, channel, status) index seeks each failed
            // status instead of reading the order's every row.
            .filter(notification::Column::Channel.is_in(Channel::ALL.iter().copied()))
            .filter(notification::Column::Status.is_in(failed))
            .group_by(notification::Column::Status)
            .group_by(notification::Column::StatusReason)
            .order_by_desc(Expr::cust("n"))
            .limit(limit)
            .into_tuple::<(NotificationStatus, Option<String>, i64, DateTime<Utc>, DateTime<Utc>)>()
            .all(&*self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(status, reason, count, first, last)| FailureReason {
                status,
                reason,
                count,
                first,
                last,
            })
            .collect())
    }
}
