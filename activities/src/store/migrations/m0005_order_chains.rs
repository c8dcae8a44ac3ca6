use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0005OrderChains;

impl MigrationName for M0005OrderChains {
    fn name(&self) -> &str {
        "m0005_order_chains"
    }
}

/// The newer order API: an order chain (a notification and its reminders) created once per
/// creator and idempotency id, and the per-order settings it brings.
#[async_trait::async_trait]
impl MigrationTrait for M0005OrderChains {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("order_chains"))
                .col(col("id").string().not_null().primary_key())
                .col(col("creator").string().not_null())
                .col(col("idempotency_id").string().not_null())
                .col(col("request_hash").string().not_null())
                .col(col("response").text().not_null())
                .col(col("created").timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ux_order_chains_creator_idempotency")
                .table(tbl("order_chains"))
                .col(Alias::new("creator"))
                .col(Alias::new("idempotency_id"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("orders"))
                .add_column(col("chain_id").string().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("orders"))
                .add_column(col("order_type").string().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("orders"))
                .add_column(col("sms_anytime").boolean().not_null().default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("orders"))
                .add_column(col("dialog_id").string().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("orders"))
                .add_column(col("transmission_id").string().null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_orders_chain")
                .table(tbl("orders"))
                .col(Alias::new("chain_id"))
                .to_owned(),
        )
        .await?;
        // The status feed: one entry per order that reached Completed or SendConditionNotMet,
        // numbered in commit order.
        m.create_table(
            Table::create()
                .table(tbl("status_feed"))
                .col(col("seq").big_integer().not_null().auto_increment().primary_key())
                .col(col("order_id").string().not_null().unique_key())
                .col(col("creator").string().not_null())
                .col(col("created").timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_status_feed_creator_seq")
                .table(tbl("status_feed"))
                .col(Alias::new("creator"))
                .col(Alias::new("seq"))
                .to_owned(),
        )
        .await
    }
}
