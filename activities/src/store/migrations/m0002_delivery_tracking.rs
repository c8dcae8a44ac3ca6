use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0002DeliveryTracking;

impl MigrationName for M0002DeliveryTracking {
    fn name(&self) -> &str {
        "m0002_delivery_tracking"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002DeliveryTracking {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        m.alter_table(
            Table::alter()
                .table(tbl("notifications"))
                .add_column(col("segments").integer().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("notifications"))
                .add_column(col("delivery_report").text().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("notifications"))
                .add_column(col("awaits_report").boolean().not_null().default(false))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_notifications_provider_ref")
                .table(tbl("notifications"))
                .col(Alias::new("provider_ref"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(tbl("dead_reports"))
                .col(col("id").string().not_null().primary_key())
                .col(col("channel").string().not_null())
                .col(col("reference").string().not_null())
                .col(col("status").string().not_null())
                .col(col("payload").text().not_null())
                .col(col("reason").string().not_null())
                .col(col("received_at").timestamp_with_time_zone().not_null())
                .col(col("applied_at").timestamp_with_time_zone().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_dead_reports_applied_received")
                .table(tbl("dead_reports"))
                .col(Alias::new("applied_at"))
                .col(Alias::new("received_at"))
                .to_owned(),
        )
        .await
    }
}
