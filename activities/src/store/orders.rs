//! Orders and their recipients: storing a new order, reading it back, cancelling it, moving its
//! status, and the dispatcher's outbox of workflows still to start.

use super::Store;
use super::entities::{dead_report, notification, order, order_recipient, status_feed};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, TransactionTrait,
};
use std::collections::HashMap;
use varsel_workflows::domain::{Channel, NotificationChannel, NotificationStatus, OrderStatus};
use varsel_workflows::order::{
    ChainPlacement, EmailTemplate, NewOrder, Order, OrderType, Recipient, SmsTemplate, StoredOrder,
};

/// The order row of a new order: the one place a domain order becomes a row.
pub(super) fn order_row(new: &NewOrder) -> order::Model {
    let o = &new.order;
    let chain = o.chain.as_ref();
    order::Model {
        id: o.id.clone(),
        creator: o.creator.clone(),
        senders_reference: o.senders_reference.clone(),
        requested_send_time: o.requested_send_time,
        created: o.created,
        notification_channel: o.channel,
        ignore_reservation: o.ignore_reservation,
        resource_id: o.resource_id.clone(),
        resource_action: o.resource_action.clone(),
        condition_endpoint: o.condition_endpoint.clone(),
        email_from: o.email.as_ref().and_then(|e| e.from.clone()),
        email_subject: o.email.as_ref().map(|e| e.subject.clone()),
        email_body: o.email.as_ref().map(|e| e.body.clone()),
        email_content_type: o.email.as_ref().map(|e| e.content_type),
        email_attachments: o
            .email
            .as_ref()
            .filter(|e| !e.attachments.is_empty())
            .and_then(|e| serde_json::to_string(&e.attachments).ok()),
        sms_sender: o.sms.as_ref().and_then(|s| s.sender.clone()),
        sms_body: o.sms.as_ref().map(|s| s.body.clone()),
        order_kind: o.kind,
        status: o.status,
        status_changed: o.created,
        recipient_count: new.recipients.len() as i32,
        workflow_started: false,
        chain_id: chain.map(|c| c.chain_id.clone()),
        order_type: chain.map(|c| c.order_type),
        sms_anytime: chain.is_some_and(|c| c.sms_anytime),
        dialog_id: chain.and_then(|c| c.dialog_id.clone()),
        transmission_id: chain.and_then(|c| c.transmission_id.clone()),
    }
}

/// An order row read back: the one place a row becomes the domain's order.
impl From<order::Model> for StoredOrder {
    fn from(m: order::Model) -> Self {
        let email = m.email_body.map(|body| EmailTemplate {
            from: m.email_from,
            subject: m.email_subject.unwrap_or_default(),
            body,
            content_type: m.email_content_type.unwrap_or_default(),
            attachments: m
                .email_attachments
                .as_deref()
                .map(|json| {
                    serde_json::from_str(json).unwrap_or_else(|e| {
                        // Written by `order_row` only; an unreadable value is sent without
                        // attachments rather than never.
                        tracing::error!(order_id = m.id, error = %e, "unreadable email attachments");
                        Vec::new()
                    })
                })
                .unwrap_or_default(),
        });
        let sms = m.sms_body.map(|body| SmsTemplate { sender: m.sms_sender, body });
        let chain = m.chain_id.map(|chain_id| ChainPlacement {
            chain_id,
            order_type: m.order_type.unwrap_or(OrderType::Notification),
            sms_anytime: m.sms_anytime,
            dialog_id: m.dialog_id,
            transmission_id: m.transmission_id,
        });
        StoredOrder {
            order: Order {
                id: m.id,
                creator: m.creator,
                created: m.created,
                kind: m.order_kind,
                status: m.status,
                channel: m.notification_channel,
                requested_send_time: m.requested_send_time,
                senders_reference: m.senders_reference,
                resource_id: m.resource_id,
                resource_action: m.resource_action,
                ignore_reservation: m.ignore_reservation,
                condition_endpoint: m.condition_endpoint,
                email,
                sms,
                chain,
            },
            status_changed: m.status_changed,
            recipient_count: u32::try_from(m.recipient_count).unwrap_or_default(),
            workflow_started: m.workflow_started,
        }
    }
}

/// A recipient row read back.
impl From<order_recipient::Model> for Recipient {
    fn from(r: order_recipient::Model) -> Self {
        Recipient {
            email: r.email,
            mobile: r.mobile,
            org_no: r.org_no,
            nin: r.nin,
            allow_stale: r.allow_stale,
            external_identity: r.external_identity,
        }
    }
}

/// What a cancel request found.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// No such order for this creator.
    NotFound,
    /// Cancelled by this call.
    Cancelled(StoredOrder),
    /// Cancelled before: nothing changed.
    AlreadyCancelled(StoredOrder),
    /// Already being processed, finished, or too close to its send time.
    TooLate(StoredOrder),
}

/// The gauges of `/metrics`: orders per status, notifications per channel and status, and dead
/// reports not yet re-applied.
#[derive(Debug, Clone, Default)]
pub struct StatusCounts {
    /// Orders per status.
    pub orders: Vec<(OrderStatus, i64)>,
    /// Notifications per channel and status.
    pub notifications: Vec<(Channel, NotificationStatus, i64)>,
    /// Dead reports not yet re-applied.
    pub dead_reports: u64,
}

impl Store {
    /// Stores an order and its recipients in one transaction: all or nothing.
    pub async fn insert_order(&self, new: NewOrder) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        Self::insert_order_rows(&txn, new).await?;
        txn.commit().await
    }

    pub(super) async fn insert_order_rows(
        txn: &sea_orm::DatabaseTransaction,
        new: NewOrder,
    ) -> Result<(), DbErr> {
        let order_id = new.order.id.clone();
        order::Entity::insert(order::ActiveModel::from(order_row(&new)))
            .exec_without_returning(txn)
            .await?;
        for chunk in new.recipients.chunks(500).enumerate() {
            let (chunk_no, rows) = chunk;
            let models = rows.iter().enumerate().map(|(i, r)| order_recipient::ActiveModel {
                order_id: Set(order_id.clone()),
                idx: Set((chunk_no * 500 + i) as i32),
                email: Set(r.email.clone()),
                mobile: Set(r.mobile.clone()),
                org_no: Set(r.org_no.clone()),
                nin: Set(r.nin.clone()),
                allow_stale: Set(r.allow_stale),
                external_identity: Set(r.external_identity.clone()),
            });
            order_recipient::Entity::insert_many(models).exec_without_returning(txn).await?;
        }
        Ok(())
    }

    /// An order of `creator`, with its recipients; `None` when missing or another org's.
    pub async fn get_order(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Option<(StoredOrder, Vec<Recipient>)>, DbErr> {
        let Some(o) = order::Entity::find_by_id(id.to_owned())
            .filter(order::Column::Creator.eq(creator))
            .one(&*self.db)
            .await?
        else {
            return Ok(None);
        };
        let recipients = order_recipient::Entity::find()
            .filter(order_recipient::Column::OrderId.eq(id))
            .order_by_asc(order_recipient::Column::Idx)
            .all(&*self.db)
            .await?;
        Ok(Some((o.into(), recipients.into_iter().map(Recipient::from).collect())))
    }

    /// Orders of `creator` with a sender's reference, oldest first, with their recipients.
    pub async fn orders_by_senders_reference(
        &self,
        creator: &str,
        senders_reference: &str,
    ) -> Result<Vec<(StoredOrder, Vec<Recipient>)>, DbErr> {
        let orders = order::Entity::find()
            .filter(order::Column::Creator.eq(creator))
            .filter(order::Column::SendersReference.eq(senders_reference))
            .order_by_asc(order::Column::Created)
            .all(&*self.db)
            .await?;
        let mut by_order: HashMap<String, Vec<Recipient>> = HashMap::new();
        let ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
        for chunk in ids.chunks(500) {
            for r in order_recipient::Entity::find()
                .filter(order_recipient::Column::OrderId.is_in(chunk.iter().cloned()))
                .order_by_asc(order_recipient::Column::Idx)
                .all(&*self.db)
                .await?
            {
                by_order.entry(r.order_id.clone()).or_default().push(r.into());
            }
        }
        Ok(orders
            .into_iter()
            .map(|o| {
                let r = by_order.remove(&o.id).unwrap_or_default();
                (o.into(), r)
            })
            .collect())
    }

    /// Cancels an order (of `creator`, when given: an operator names none) that is still `Registered` and whose send time is more than
    /// `cutoff` away, in one conditional update (so a concurrent start cannot slip between the
    /// check and the change).
    pub async fn cancel_order(
        &self,
        id: &str,
        creator: Option<&str>,
        cutoff: chrono::Duration,
    ) -> Result<CancelOutcome, DbErr> {
        let mut find = order::Entity::find_by_id(id.to_owned());
        if let Some(creator) = creator {
            find = find.filter(order::Column::Creator.eq(creator));
        }
        let Some(o) = find.one(&*self.db).await? else {
            return Ok(CancelOutcome::NotFound);
        };
        if o.status == OrderStatus::Cancelled {
            return Ok(CancelOutcome::AlreadyCancelled(o.into()));
        }
        let now = Utc::now();
        let txn = self.db.begin().await?;
        let res = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(OrderStatus::Cancelled))
            .col_expr(order::Column::StatusChanged, Expr::value(now))
            .filter(order::Column::Id.eq(id))
            .filter(order::Column::Status.eq(OrderStatus::Registered))
            .filter(order::Column::RequestedSendTime.gt(now + cutoff))
            .exec(&txn)
            .await?;
        if res.rows_affected == 1 {
            Self::enqueue_order_webhook(&txn, id, OrderStatus::Cancelled).await?;
        }
        txn.commit().await?;
        let o = order::Entity::find_by_id(id.to_owned()).one(&*self.db).await?.unwrap_or(o).into();
        if res.rows_affected == 1 {
            Ok(CancelOutcome::Cancelled(o))
        } else {
            Ok(CancelOutcome::TooLate(o))
        }
    }

    /// An order of `creator`, without its recipients; `None` when missing or another org's.
    pub async fn order_of(&self, id: &str, creator: &str) -> Result<Option<StoredOrder>, DbErr> {
        let found = order::Entity::find_by_id(id.to_owned())
            .filter(order::Column::Creator.eq(creator))
            .one(&*self.db)
            .await?;
        Ok(found.map(StoredOrder::from))
    }

    /// An order by id, whoever created it (for the worker).
    pub async fn order(&self, id: &str) -> Result<Option<StoredOrder>, DbErr> {
        Ok(order::Entity::find_by_id(id.to_owned()).one(&*self.db).await?.map(StoredOrder::from))
    }

    /// Records that an order's workflow exists.
    pub async fn mark_workflow_started(&self, id: &str) -> Result<(), DbErr> {
        order::Entity::update_many()
            .col_expr(order::Column::WorkflowStarted, Expr::value(true))
            .filter(order::Column::Id.eq(id))
            .exec(&*self.db)
            .await?;
        Ok(())
    }

    /// The oldest order not yet finished (registered, processing or processed), of any creator:
    /// one index seek per unfinished status.
    pub async fn oldest_unfinished_order(&self) -> Result<Option<StoredOrder>, DbErr> {
        let mut oldest: Option<order::Model> = None;
        for status in [OrderStatus::Registered, OrderStatus::Processing, OrderStatus::Processed] {
            let found = order::Entity::find()
                .filter(order::Column::Status.eq(status))
                .order_by_asc(order::Column::Created)
                .order_by_asc(order::Column::Id)
                .limit(1)
                .one(&*self.db)
                .await?;
            if let Some(o) = found
                && oldest.as_ref().is_none_or(|b| o.created < b.created)
            {
                oldest = Some(o);
            }
        }
        Ok(oldest.map(Into::into))
    }

    /// Orders whose workflow has not been started yet (oldest first).
    pub async fn orders_pending_start(&self, limit: u64) -> Result<Vec<StoredOrder>, DbErr> {
        let rows = order::Entity::find()
            .filter(order::Column::WorkflowStarted.eq(false))
            .order_by_asc(order::Column::Created)
            .limit(limit)
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(StoredOrder::from).collect())
    }

    /// How many accepted orders wait for their workflow to start, counted up to `cap`: the
    /// dispatcher's index, read for ids only.
    pub async fn count_pending_start(&self, cap: u64) -> Result<u64, DbErr> {
        let ids = order::Entity::find()
            .select_only()
            .column(order::Column::Id)
            .filter(order::Column::WorkflowStarted.eq(false))
            .order_by_asc(order::Column::Created)
            .limit(cap)
            .into_tuple::<String>()
            .all(&*self.db)
            .await?;
        Ok(ids.len() as u64)
    }

    /// Moves an order from one of `from` to `to`; returns whether it moved.
    pub async fn transition_order(
        &self,
        id: &str,
        from: &[OrderStatus],
        to: OrderStatus,
    ) -> Result<bool, DbErr> {
        let finished = matches!(to, OrderStatus::Completed | OrderStatus::SendConditionNotMet);
        let txn = self.db.begin().await?;
        let res = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(to))
            .col_expr(order::Column::StatusChanged, Expr::value(Utc::now()))
            .filter(order::Column::Id.eq(id))
            .filter(order::Column::Status.is_in(from.iter().copied()))
            .exec(&txn)
            .await?;
        let moved = res.rows_affected > 0;
        if moved && finished {
            // The status feed's entry commits with the status. On PostgreSQL the lock makes
            // entries commit in sequence order, so a reader paging by sequence number never
            // passes an entry that commits later (SQLite has one writer anyway).
            if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
                txn.execute_unprepared("LOCK TABLE status_feed IN SHARE ROW EXCLUSIVE MODE")
                    .await?;
            }
            let creator = order::Entity::find_by_id(id.to_owned())
                .one(&txn)
                .await?
                .map(|o| o.creator)
                .unwrap_or_default();
            status_feed::Entity::insert(status_feed::ActiveModel {
                order_id: Set(id.to_owned()),
                creator: Set(creator),
                created: Set(Utc::now()),
                ..Default::default()
            })
            .on_conflict(OnConflict::column(status_feed::Column::OrderId).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
            Self::enqueue_order_webhook(&txn, id, to).await?;
        }
        txn.commit().await?;
        Ok(moved)
    }

    /// Orders by id (any creator), for pages that name several.
    pub async fn orders_by_ids(&self, ids: &[String]) -> Result<Vec<StoredOrder>, DbErr> {
        let rows = order::Entity::find()
            .filter(order::Column::Id.is_in(ids.iter().cloned()))
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(StoredOrder::from).collect())
    }

    /// Recipients `from_index..from_index+limit` of an order, each with its index.
    pub async fn recipients_slice(
        &self,
        order_id: &str,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<(u32, Recipient)>, DbErr> {
        let rows = order_recipient::Entity::find()
            .filter(order_recipient::Column::OrderId.eq(order_id))
            .filter(order_recipient::Column::Idx.gte(from_index as i32))
            .order_by_asc(order_recipient::Column::Idx)
            .limit(limit as u64)
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(|r| (r.idx as u32, Recipient::from(r))).collect())
    }

    /// Orders an operator looks for, newest first, a page at a time; with how many orders of
    /// each status match the search's other criteria (all pages, any status), so a page shows
    /// where the whole search stands. Keyset paging on `(created, id)`: a page costs the same
    /// at the millionth order as at the first.
    pub async fn search_orders(&self, q: &OrderSearch) -> Result<OrderPage, DbErr> {
        let mut scope = Condition::all();
        if let Some(creator) = &q.creator {
            scope = scope.add(order::Column::Creator.eq(creator.as_str()));
        }
        if let Some(channel) = q.channel {
            scope = scope.add(order::Column::NotificationChannel.eq(channel));
        }
        if let Some(from) = q.created_from {
            scope = scope.add(order::Column::Created.gte(from));
        }
        if let Some(to) = q.created_to {
            scope = scope.add(order::Column::Created.lt(to));
        }
        if let Some(reference) = &q.senders_reference {
            scope = scope.add(order::Column::SendersReference.eq(reference.as_str()));
        }
        if let Some(id) = &q.id {
            scope = scope.add(order::Column::Id.eq(id.as_str()));
        }
        let mut page = scope.clone();
        if let Some(status) = q.status {
            page = page.add(order::Column::Status.eq(status));
        }
        if let Some((created, id)) = &q.before {
            // `(created, id) < (t, id)`, written as a range on `created` the index answers.
            page = page.add(order::Column::Created.lte(*created)).add(
                Condition::any()
                    .add(order::Column::Created.lt(*created))
                    .add(order::Column::Id.lt(id.as_str())),
            );
        }
        let limit = q.limit.clamp(1, 500);
        let mut rows = order::Entity::find()
            .filter(page)
            .order_by_desc(order::Column::Created)
            .order_by_desc(order::Column::Id)
            .limit(limit + 1)
            .all(&*self.db)
            .await?;
        // Counted over the newest `COUNT_CAP` matches, read along the index ending in
        // `(created, id)` that the page reads: a search over millions of orders reads at most
        // the cap's rows.
        let newest = order::Entity::find()
            .select_only()
            .column(order::Column::Status)
            .filter(scope)
            .order_by_desc(order::Column::Created)
            .order_by_desc(order::Column::Id)
            .limit(COUNT_CAP)
            .into_query();
        let status = sea_orm::sea_query::Alias::new("status");
        let count = sea_orm::sea_query::Query::select()
            .column(status.clone())
            .expr(Expr::cust("COUNT(*)"))
            .from_subquery(newest, sea_orm::sea_query::Alias::new("newest"))
            .group_by_col(status)
            .to_owned();
        let backend = self.db.get_database_backend();
        let mut counts = Vec::new();
        for row in self.db.query_all(backend.build(&count)).await? {
            let n = row.try_get_by_index::<i64>(1)?;
            counts.push((row.try_get_by_index::<OrderStatus>(0)?, n.max(0) as u64));
        }
        let next = if rows.len() as u64 > limit {
            rows.truncate(limit as usize);
            rows.last().map(|o| (o.created, o.id.clone()))
        } else {
            None
        };
        Ok(OrderPage { orders: rows.into_iter().map(StoredOrder::from).collect(), counts, next })
    }

    /// Orders per status, and notifications per (channel, status), across all orders: the
    /// gauges of `/metrics`.
    pub async fn status_counts(&self) -> Result<StatusCounts, DbErr> {
        let orders = order::Entity::find()
            .select_only()
            .column(order::Column::Status)
            .column_as(order::Column::Id.count(), "n")
            .group_by(order::Column::Status)
            .into_tuple::<(OrderStatus, i64)>()
            .all(&*self.db)
            .await?;
        let notifications = notification::Entity::find()
            .select_only()
            .column(notification::Column::Channel)
            .column(notification::Column::Status)
            .column_as(notification::Column::Id.count(), "n")
            .group_by(notification::Column::Channel)
            .group_by(notification::Column::Status)
            .into_tuple::<(Channel, NotificationStatus, i64)>()
            .all(&*self.db)
            .await?;
        let dead = dead_report::Entity::find()
            .filter(dead_report::Column::AppliedAt.is_null())
            .count(&*self.db)
            .await?;
        Ok(StatusCounts { orders, notifications, dead_reports: dead })
    }

    /// The time a notification for `send_time` is given up at.
    pub fn expiry_from(send_time: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
        send_time.max(Utc::now())
            + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(48))
    }
}

/// How many of a search's orders its counts cover, the newest first: when they add up to this,
/// more orders match.
pub const COUNT_CAP: u64 = 10_000;

/// What an operator looks for: each criterion given narrows the search; none finds every order.
#[derive(Debug, Clone, Default)]
pub struct OrderSearch {
    /// The creator org.
    pub creator: Option<String>,
    /// The order's status.
    pub status: Option<OrderStatus>,
    /// The order's channel or channel preference.
    pub channel: Option<NotificationChannel>,
    /// Accepted at or after this.
    pub created_from: Option<DateTime<Utc>>,
    /// Accepted before this.
    pub created_to: Option<DateTime<Utc>>,
    /// The sender's own reference, exactly.
    pub senders_reference: Option<String>,
    /// The order's id.
    pub id: Option<String>,
    /// Orders older than this `(created, id)`: the `next` of the page before.
    pub before: Option<(DateTime<Utc>, String)>,
    /// Orders a page (1 to 500).
    pub limit: u64,
}

/// A page of a search.
#[derive(Debug, Clone)]
pub struct OrderPage {
    /// The orders, newest first.
    pub orders: Vec<StoredOrder>,
    /// How many orders of each status the search finds, leaving its status criterion and the
    /// paging aside, over its newest [`COUNT_CAP`] orders.
    pub counts: Vec<(OrderStatus, u64)>,
    /// Where the next page starts, when there is one.
    pub next: Option<(DateTime<Utc>, String)>,
}
