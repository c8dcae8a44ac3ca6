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

/// The id of the `i`th order [`seed_orders`] writes: a GUID that says which it is.
pub fn seeded_order_id(i: u64) -> String {
    format!("{i:08x}-0000-4000-8000-{i:012x}")
}

/// Writes `n` finished orders in one statement, ten seconds apart from 2026-01-01, over 50
/// creators (`bench-org-<i % 50>`) and 1,000 references (`ref-<i % 1000>`); a tenth
/// `Processing`, a hundredth `Cancelled`, the rest `Completed`; every workflow started, so
/// nothing picks them up. What the search phase searches.
pub async fn seed_orders(store: &Store, n: u64) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
    let columns = "id, creator, senders_reference, requested_send_time, created, \
         notification_channel, ignore_reservation, order_kind, status, status_changed, \
         recipient_count, workflow_started, email_subject, email_body";
    let status = "CASE WHEN i % 100 = 0 THEN 'Cancelled' WHEN i % 10 = 0 THEN 'Processing' \
         ELSE 'Completed' END";
    let db = store.conn();
    let backend = db.get_database_backend();
    let sql = match backend {
        DatabaseBackend::Postgres => format!(
            "INSERT INTO orders ({columns}) SELECT lpad(to_hex(i), 8, '0') || '-0000-4000-8000-' \
             || lpad(to_hex(i), 12, '0'), 'bench-org-' || (i % 50), 'ref-' || (i % 1000), t, t, \
             'Email', false, 'email', {status}, t, 1, true, 'Bench', 'A benchmark message.' \
             FROM (SELECT i, timestamptz '2026-01-01 00:00:00+00' + i * interval '10 seconds' AS t \
             FROM generate_series(0, $1 - 1) AS i) s"
        ),
        _ => format!(
            "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) \
             INSERT INTO orders ({columns}) SELECT printf('%08x-0000-4000-8000-%012x', i, i), \
             'bench-org-' || (i % 50), 'ref-' || (i % 1000), t, t, 'Email', 0, 'email', {status}, \
             t, 1, 1, 'Bench', 'A benchmark message.' FROM (SELECT i, strftime('%Y-%m-%dT%H:%M:%S', \
             '2026-01-01', '+' || (i * 10) || ' seconds') || '.000000000+00:00' AS t FROM n)"
        ),
    };
    db.execute(Statement::from_sql_and_values(backend, sql, [(n as i64).into()])).await?;
    Ok(())
}
