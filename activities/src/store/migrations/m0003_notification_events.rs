use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0003NotificationEvents;

impl MigrationName for M0003NotificationEvents {
    fn name(&self) -> &str {
        "m0003_notification_events"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003NotificationEvents {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("notification_events"))
                .col(col("id").string().not_null().primary_key())
                .col(col("order_id").string().not_null())
                .col(col("notification_id").string().not_null())
                .col(col("status").string().not_null())
                .col(col("source").string().not_null())
                .col(col("detail").text().null())
                .col(col("at").timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_notification_events_order_at")
                .table(tbl("notification_events"))
                .col(Alias::new("order_id"))
                .col(Alias::new("at"))
                .to_owned(),
        )
        .await
    }
}
