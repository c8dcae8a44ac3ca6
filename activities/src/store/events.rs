//! The notification event log: every status a notification passed through, for the operator's
//! timeline.

use super::Store;
use super::entities::notification_event;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
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
        Ok(())
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
}
