use sea_orm_migration::prelude::*;

use super::tbl;

pub(super) struct M0013ConsoleIndexes;

impl MigrationName for M0013ConsoleIndexes {
    fn name(&self) -> &str {
        "m0013_console_indexes"
    }
}

/// The console's order page lists a page of an order's notifications, each with its own events:
/// those events are read by notification, not by scanning every event of a large order.
#[async_trait::async_trait]
impl MigrationTrait for M0013ConsoleIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("ix_notification_events_notification_at")
                .table(tbl("notification_events"))
                .col(Alias::new("notification_id"))
                .col(Alias::new("at"))
                .to_owned(),
        )
        .await
    }
}
