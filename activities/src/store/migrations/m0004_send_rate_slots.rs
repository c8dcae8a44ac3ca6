use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0004SendRateSlots;

impl MigrationName for M0004SendRateSlots {
    fn name(&self) -> &str {
        "m0004_send_rate_slots"
    }
}

/// Per-provider send-rate limits shared by every worker: how many sends each provider was granted
/// in each one-second slot.
#[async_trait::async_trait]
impl MigrationTrait for M0004SendRateSlots {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("send_rate_slots"))
                .col(col("provider").string().not_null())
                .col(col("slot").big_integer().not_null())
                .col(col("used").integer().not_null())
                .primary_key(Index::create().col(Alias::new("provider")).col(Alias::new("slot")))
                .to_owned(),
        )
        .await
    }
}
