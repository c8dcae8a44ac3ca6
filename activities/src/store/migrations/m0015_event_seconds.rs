use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseBackend};

use super::tbl;

pub(super) struct M0015EventSeconds;

impl MigrationName for M0015EventSeconds {
    fn name(&self) -> &str {
        "m0015_event_seconds"
    }
}

/// An order's notification events counted per second, status and source, kept as the events are
/// written: the console draws a large order's counts over time from a few hundred of these rows
/// instead of counting its hundreds of thousands of events. Filled from the events already kept.
#[async_trait::async_trait]
impl MigrationTrait for M0015EventSeconds {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("order_event_seconds"))
                .if_not_exists()
                .col(ColumnDef::new(Alias::new("order_id")).string().not_null())
                .col(ColumnDef::new(Alias::new("second")).big_integer().not_null())
                .col(ColumnDef::new(Alias::new("status")).string().not_null())
                .col(ColumnDef::new(Alias::new("source")).string().not_null())
                .col(ColumnDef::new(Alias::new("n")).big_integer().not_null())
                .primary_key(
                    Index::create()
                        .col(Alias::new("order_id"))
                        .col(Alias::new("second"))
                        .col(Alias::new("status"))
                        .col(Alias::new("source")),
                )
                .to_owned(),
        )
        .await?;
        let second = match m.get_database_backend() {
            DatabaseBackend::Postgres => "CAST(FLOOR(EXTRACT(EPOCH FROM at)) AS BIGINT)",
            _ => "CAST(strftime('%s', at) AS INTEGER)",
        };
        m.get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO order_event_seconds (order_id, second, status, source, n) \
                 SELECT order_id, {second}, status, source, COUNT(*) FROM notification_events \
                 GROUP BY order_id, {second}, status, source"
            ))
            .await?;
        Ok(())
    }
}
