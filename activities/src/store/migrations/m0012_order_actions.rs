use sea_orm_migration::prelude::*;

use super::tbl;

pub(super) struct M0012OrderActions;

impl MigrationName for M0012OrderActions {
    fn name(&self) -> &str {
        "m0012_order_actions"
    }
}

/// Who cancelled or redrove an order, and when: read per order, oldest first, for its timeline.
#[async_trait::async_trait]
impl MigrationTrait for M0012OrderActions {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("order_actions"))
                .if_not_exists()
                .col(ColumnDef::new(Alias::new("id")).string().not_null().primary_key())
                .col(ColumnDef::new(Alias::new("order_id")).string().not_null())
                .col(ColumnDef::new(Alias::new("at")).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Alias::new("actor")).string().not_null())
                .col(ColumnDef::new(Alias::new("action")).string().not_null())
                .col(ColumnDef::new(Alias::new("detail")).text().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_order_actions_order_at")
                .table(tbl("order_actions"))
                .col(Alias::new("order_id"))
                .col(Alias::new("at"))
                .to_owned(),
        )
        .await
    }
}
