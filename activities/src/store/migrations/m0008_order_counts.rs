use sea_orm::{ConnectionTrait, DatabaseBackend};
use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0008OrderCounts;

impl MigrationName for M0008OrderCounts {
    fn name(&self) -> &str {
        "m0008_order_counts"
    }
}

/// An order's notifications counted as they change rather than counted when asked: one row per
/// (order, channel, status, awaiting a report) with how many notifications are there. The
/// database keeps it, in the transaction of every insert, status change and delete of a
/// notification, so no path of the store can forget it. Existing orders are counted once here.
///
/// SQLite has one writer, so a row trigger suffices. PostgreSQL counts once per statement
/// (transition tables), one upsert per touched counter, taken in key order, so concurrent
/// statements lock the shared counter rows in the same order and cannot deadlock on them.
#[async_trait::async_trait]
impl MigrationTrait for M0008OrderCounts {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("order_counts"))
                .col(col("order_id").string().not_null())
                .col(col("channel").string().not_null())
                .col(col("status").string().not_null())
                .col(col("awaits_report").boolean().not_null())
                .col(col("n").big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(Alias::new("order_id"))
                        .col(Alias::new("channel"))
                        .col(Alias::new("status"))
                        .col(Alias::new("awaits_report")),
                )
                .to_owned(),
        )
        .await?;
        let db = m.get_connection();
        db.execute_unprepared(
            "INSERT INTO order_counts (order_id, channel, status, awaits_report, n) \
             SELECT order_id, channel, status, awaits_report, COUNT(*) FROM notifications \
             GROUP BY order_id, channel, status, awaits_report",
        )
        .await?;
        let statements: &[&str] = match m.get_database_backend() {
            DatabaseBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        for s in statements {
            db.execute_unprepared(s).await?;
        }
        Ok(())
    }
}

const SQLITE: &[&str] = &[
    "CREATE TRIGGER tr_order_counts_insert AFTER INSERT ON notifications BEGIN
        INSERT INTO order_counts (order_id, channel, status, awaits_report, n)
        VALUES (new.order_id, new.channel, new.status, new.awaits_report, 1)
        ON CONFLICT (order_id, channel, status, awaits_report) DO UPDATE SET n = n + 1;
     END",
    "CREATE TRIGGER tr_order_counts_update AFTER UPDATE OF status, awaits_report ON notifications
     WHEN old.status IS NOT new.status OR old.awaits_report IS NOT new.awaits_report BEGIN
        UPDATE order_counts SET n = n - 1
        WHERE order_id = old.order_id AND channel = old.channel AND status = old.status
          AND awaits_report = old.awaits_report;
        INSERT INTO order_counts (order_id, channel, status, awaits_report, n)
        VALUES (new.order_id, new.channel, new.status, new.awaits_report, 1)
        ON CONFLICT (order_id, channel, status, awaits_report) DO UPDATE SET n = n + 1;
     END",
    "CREATE TRIGGER tr_order_counts_delete AFTER DELETE ON notifications BEGIN
        UPDATE order_counts SET n = n - 1
        WHERE order_id = old.order_id AND channel = old.channel AND status = old.status
          AND awaits_report = old.awaits_report;
     END",
];

const POSTGRES: &[&str] = &[
    "CREATE FUNCTION order_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
        INSERT INTO order_counts AS c (order_id, channel, status, awaits_report, n)
        SELECT order_id, channel, status, awaits_report, COUNT(*) FROM new_rows
        GROUP BY order_id, channel, status, awaits_report
        ORDER BY order_id, channel, status, awaits_report
        ON CONFLICT (order_id, channel, status, awaits_report) DO UPDATE SET n = c.n + excluded.n;
        RETURN NULL;
     END $$",
    "CREATE TRIGGER tr_order_counts_insert AFTER INSERT ON notifications
     REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION order_counts_insert()",
    "CREATE FUNCTION order_counts_update() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
        INSERT INTO order_counts AS c (order_id, channel, status, awaits_report, n)
        SELECT order_id, channel, status, awaits_report, SUM(d) FROM (
            SELECT o.order_id, o.channel, o.status, o.awaits_report, -1 AS d
            FROM old_rows o JOIN new_rows w ON w.id = o.id
            WHERE o.status <> w.status OR o.awaits_report <> w.awaits_report
            UNION ALL
            SELECT w.order_id, w.channel, w.status, w.awaits_report, 1 AS d
            FROM old_rows o JOIN new_rows w ON w.id = o.id
            WHERE o.status <> w.status OR o.awaits_report <> w.awaits_report
        ) moved
        GROUP BY order_id, channel, status, awaits_report
        HAVING SUM(d) <> 0
        ORDER BY order_id, channel, status, awaits_report
        ON CONFLICT (order_id, channel, status, awaits_report) DO UPDATE SET n = c.n + excluded.n;
        RETURN NULL;
     END $$",
    "CREATE TRIGGER tr_order_counts_update AFTER UPDATE ON notifications
     REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
     FOR EACH STATEMENT EXECUTE FUNCTION order_counts_update()",
    "CREATE FUNCTION order_counts_delete() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
        INSERT INTO order_counts AS c (order_id, channel, status, awaits_report, n)
        SELECT order_id, channel, status, awaits_report, -COUNT(*) FROM old_rows
        GROUP BY order_id, channel, status, awaits_report
        ORDER BY order_id, channel, status, awaits_report
        ON CONFLICT (order_id, channel, status, awaits_report) DO UPDATE SET n = c.n + excluded.n;
        RETURN NULL;
     END $$",
    "CREATE TRIGGER tr_order_counts_delete AFTER DELETE ON notifications
     REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION order_counts_delete()",
];
