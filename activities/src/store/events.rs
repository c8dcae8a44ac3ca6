//! The notification event log: every status a notification passed through, for the operator's
//! timeline.

use super::Store;
use super::entities::notification_event;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use std::collections::BTreeMap;
use varsel_workflows::domain::NotificationStatus;

/// A status-log line (notification, order, status, source, detail) and when it happened.
pub(super) type EventAt<'a> =
    ((String, String, NotificationStatus, &'a str, Option<String>), DateTime<Utc>);

/// One status a notification passed through, for the order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// The notification.
    pub notification_id: String,
    /// Its order.
    pub order_id: String,
    /// The status it moved to (or was reported as).
    pub status: NotificationStatus,
    /// What moved it: `created`, `sending`, `provider`, `report`, `ttl` or `redrive`.
    pub source: String,
    /// The provider's words, the report, or what did not change.
    pub detail: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

impl From<notification_event::Model> for StatusEvent {
    fn from(m: notification_event::Model) -> Self {
        Self {
            notification_id: m.notification_id,
            order_id: m.order_id,
            status: m.status,
            source: m.source,
            detail: m.detail,
            at: m.at,
        }
    }
}

impl Store {
    /// Records status changes for the timeline, as of now: (notification, order, status, source,
    /// detail).
    pub(super) async fn log_events<C: ConnectionTrait>(
        db: &C,
        rows: Vec<(String, String, NotificationStatus, &str, Option<String>)>,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        Self::log_events_at(db, rows.into_iter().map(|r| (r, now)).collect()).await
    }

    /// Records status changes for the timeline, each at its own time.
    pub(super) async fn log_events_at<C: ConnectionTrait>(
        db: &C,
        rows: Vec<EventAt<'_>>,
    ) -> Result<(), DbErr> {
        // The status webhooks that tell of these changes commit with them.
        Self::enqueue_notification_webhooks(db, &rows).await?;
        for chunk in rows.chunks(200) {
            let models: Vec<notification_event::ActiveModel> = chunk
                .iter()
                .map(|((nid, oid, status, source, detail), at)| notification_event::ActiveModel {
                    // Time-ordered, as notification ids: appended to the key's index.
                    id: Set(uuid::Uuid::now_v7().to_string()),
                    order_id: Set(oid.clone()),
                    notification_id: Set(nid.clone()),
                    status: Set(*status),
                    source: Set((*source).to_owned()),
                    detail: Set(detail.clone()),
                    at: Set(*at),
                })
                .collect();
            if !models.is_empty() {
                notification_event::Entity::insert_many(models).exec_without_returning(db).await?;
            }
        }
        Self::count_seconds(db, &rows).await
    }

    /// Adds the events to their order's counts per second, status and source, in the same
    /// transaction: a handful of upserts however many events (a batch's events share seconds).
    async fn count_seconds<C: ConnectionTrait>(db: &C, rows: &[EventAt<'_>]) -> Result<(), DbErr> {
        use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
        let mut counts: BTreeMap<(&str, i64, &str, &str), i64> = BTreeMap::new();
        for ((_, order_id, status, source, _), at) in rows {
            *counts
                .entry((order_id.as_str(), at.timestamp(), status.as_str(), source))
                .or_default() += 1;
        }
        let counts: Vec<_> = counts.into_iter().collect();
        let key = ["order_id", "second", "status", "source"].map(Alias::new);
        for chunk in counts.chunks(200) {
            let mut insert = Query::insert()
                .into_table(Alias::new(SECONDS))
                .columns(key.iter().cloned().chain([Alias::new("n")]))
                .to_owned();
            for ((order_id, second, status, source), n) in chunk {
                insert.values_panic([
                    (*order_id).into(),
                    (*second).into(),
                    (*status).into(),
                    (*source).into(),
                    (*n).into(),
                ]);
            }
            insert.on_conflict(
                OnConflict::columns(key.iter().cloned())
                    .value(Alias::new("n"), Expr::cust(format!("{SECONDS}.n + excluded.n")))
                    .to_owned(),
            );
            db.execute(db.get_database_backend().build(&insert)).await?;
        }
        Ok(())
    }

    /// An order's events counted per second (whole seconds since the epoch), status and source,
    /// oldest first: a few rows a second the order was busy, however many events.
    pub async fn event_seconds(&self, order_id: &str) -> Result<Vec<EventSecond>, DbErr> {
        use sea_orm::sea_query::{Alias, Expr, Query};
        let q = Query::select()
            .columns(["second", "status", "source", "n"].map(Alias::new))
            .from(Alias::new(SECONDS))
            .and_where(Expr::col(Alias::new("order_id")).eq(order_id))
            .order_by(Alias::new("second"), sea_orm::Order::Asc)
            .to_owned();
        let backend = self.db.get_database_backend();
        self.db
            .query_all(backend.build(&q))
            .await?
            .iter()
            .map(|r| {
                Ok(EventSecond {
                    second: r.try_get_by_index::<i64>(0)?,
                    status: r.try_get_by_index::<NotificationStatus>(1)?,
                    source: r.try_get_by_index::<String>(2)?,
                    count: r.try_get_by_index::<i64>(3)?,
                })
            })
            .collect()
    }

    /// An order's notification events, oldest first.
    pub async fn notification_events(&self, order_id: &str) -> Result<Vec<StatusEvent>, DbErr> {
        let rows = notification_event::Entity::find()
            .filter(notification_event::Column::OrderId.eq(order_id))
            .order_by_asc(notification_event::Column::At)
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(StatusEvent::from).collect())
    }

    /// The events of some notifications, each notification's oldest first (by notification, so
    /// a page of a large order's notifications reads only its own events).
    pub async fn events_of_notifications(
        &self,
        notification_ids: &[String],
    ) -> Result<Vec<StatusEvent>, DbErr> {
        let rows = notification_event::Entity::find()
            .filter(
                notification_event::Column::NotificationId.is_in(notification_ids.iter().cloned()),
            )
            .order_by_asc(notification_event::Column::NotificationId)
            .order_by_asc(notification_event::Column::At)
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(StatusEvent::from).collect())
    }

    /// When an order's first and last notification events happened; `None` before it has any.
    pub async fn event_span(
        &self,
        order_id: &str,
    ) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, DbErr> {
        let span = notification_event::Entity::find()
            .select_only()
            .column_as(notification_event::Column::At.min(), "first")
            .column_as(notification_event::Column::At.max(), "last")
            .filter(notification_event::Column::OrderId.eq(order_id))
            .into_tuple::<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)>()
            .one(&*self.db)
            .await?;
        Ok(match span {
            Some((Some(first), Some(last))) => Some((first, last)),
            _ => None,
        })
    }

    /// An order's notification events counted by time bucket (`width` seconds from `from`;
    /// bucket 0 starts at `from`), status and source: what the console draws an order's
    /// sent, delivered and failed notifications over time from, in one grouped query however
    /// many notifications the order has.
    pub async fn event_buckets(
        &self,
        order_id: &str,
        from: DateTime<Utc>,
        width: f64,
    ) -> Result<Vec<EventBucket>, DbErr> {
        let backend = self.db.get_database_backend();
        let sql = match backend {
            DatabaseBackend::Postgres => {
                "SELECT CAST(FLOOR(EXTRACT(EPOCH FROM (at - $1)) / $2) AS BIGINT) AS b, status, \
                 source, CAST(COUNT(*) AS BIGINT) AS n FROM notification_events \
                 WHERE order_id = $3 GROUP BY b, status, source"
            }
            _ => {
                "SELECT CAST((julianday(at) - julianday(?)) * 86400.0 / ? AS INTEGER) AS b, \
                 status, source, COUNT(*) AS n FROM notification_events \
                 WHERE order_id = ? GROUP BY b, status, source"
            }
        };
        let rows = self
            .db
            .query_all(Statement::from_sql_and_values(
                backend,
                sql,
                [from.into(), width.max(0.001).into(), order_id.into()],
            ))
            .await?;
        rows.iter()
            .map(|r| {
                Ok(EventBucket {
                    bucket: r.try_get_by_index::<i64>(0)?,
                    status: r.try_get_by_index::<NotificationStatus>(1)?,
                    source: r.try_get_by_index::<String>(2)?,
                    count: r.try_get_by_index::<i64>(3)?,
                })
            })
            .collect()
    }
}

/// The table of an order's events counted per second.
pub(super) const SECONDS: &str = "order_event_seconds";

/// How many notification events of an order had one status and source in one second.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSecond {
    /// The second: whole seconds since the Unix epoch.
    pub second: i64,
    /// The status the notifications moved to.
    pub status: NotificationStatus,
    /// What moved them.
    pub source: String,
    /// How many.
    pub count: i64,
}

/// How many notification events of one status and source fell into one time bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBucket {
    /// The bucket: whole widths since the start of the range (negative before it).
    pub bucket: i64,
    /// The status the notifications moved to.
    pub status: NotificationStatus,
    /// What moved them (`created`, `sending`, `provider`, `report`, `ttl`, `redrive`).
    pub source: String,
    /// How many.
    pub count: i64,
}
