//! The benchmark's reads of the order table: how far a set of orders has come. Only the
//! benchmark (and the production-profile test, which waits on a large order the same way)
//! needs them, so they are not part of the store.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use varsel_activities::Store;
use varsel_activities::store::entities::order;

/// How many of these orders have `status` (in chunks, for long lists).
pub async fn count_orders_with_status(
    store: &Store,
    ids: &[String],
    status: &str,
) -> Result<u64, DbErr> {
    let mut n = 0;
    for chunk in ids.chunks(500) {
        n += order::Entity::find()
            .filter(order::Column::Id.is_in(chunk.iter().cloned()))
            .filter(order::Column::Status.eq(status))
            .count(store.conn())
            .await?;
    }
    Ok(n)
}

/// The latest status change among these orders.
pub async fn last_status_change(
    store: &Store,
    ids: &[String],
) -> Result<Option<DateTime<Utc>>, DbErr> {
    let mut last = None;
    for chunk in ids.chunks(500) {
        let t: Option<DateTime<Utc>> = order::Entity::find()
            .select_only()
            .column_as(order::Column::StatusChanged.max(), "m")
            .filter(order::Column::Id.is_in(chunk.iter().cloned()))
            .into_tuple::<Option<DateTime<Utc>>>()
            .one(store.conn())
            .await?
            .flatten();
        last = last.max(t);
    }
    Ok(last)
}
