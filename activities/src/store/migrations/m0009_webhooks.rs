use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0009Webhooks;

impl MigrationName for M0009Webhooks {
    fn name(&self) -> &str {
        "m0009_webhooks"
    }
}

/// Status webhooks: the endpoints a creator registered, one message per event and endpoint
/// (`seq` orders one order's events; `dispatched` is the outbox flag of the loop that wakes the
/// pair's workflow), and every attempt at delivering one (the order's timeline shows them).
#[async_trait::async_trait]
impl MigrationTrait for M0009Webhooks {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("webhook_endpoints"))
                .col(col("id").string().not_null().primary_key())
                .col(col("creator").string().not_null())
                .col(col("url").text().not_null())
                .col(col("description").text().null())
                .col(col("events").text().not_null())
                .col(col("secret").string().not_null())
                .col(col("previous_secret").string().null())
                .col(col("previous_secret_until").timestamp_with_time_zone().null())
                .col(col("enabled").boolean().not_null())
                .col(col("disabled_reason").text().null())
                .col(col("created").timestamp_with_time_zone().not_null())
                .col(col("updated").timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_webhook_endpoints_creator")
                .table(tbl("webhook_endpoints"))
                .col(Alias::new("creator"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(tbl("webhook_messages"))
                .col(col("seq").big_integer().not_null().auto_increment().primary_key())
                .col(col("id").string().not_null().unique_key())
                .col(col("endpoint_id").string().not_null())
                .col(col("order_id").string().not_null())
                .col(col("event_type").string().not_null())
                .col(col("payload").text().not_null())
                .col(col("created").timestamp_with_time_zone().not_null())
                .col(col("status").string().not_null())
                .col(col("attempts").integer().not_null())
                .col(col("last_attempt").timestamp_with_time_zone().null())
                .col(col("last_status_code").integer().null())
                .col(col("last_error").text().null())
                .col(col("delivered").timestamp_with_time_zone().null())
                .col(col("dispatched").boolean().not_null())
                .to_owned(),
        )
        .await?;
        // A pair's waiting messages, in order (the delivery activity).
        m.create_index(
            Index::create()
                .name("ix_webhook_messages_pair")
                .table(tbl("webhook_messages"))
                .col(Alias::new("endpoint_id"))
                .col(Alias::new("order_id"))
                .col(Alias::new("status"))
                .col(Alias::new("seq"))
                .to_owned(),
        )
        .await?;
        // An endpoint's deliveries, newest first (the sender's list).
        m.create_index(
            Index::create()
                .name("ix_webhook_messages_endpoint_seq")
                .table(tbl("webhook_messages"))
                .col(Alias::new("endpoint_id"))
                .col(Alias::new("seq"))
                .to_owned(),
        )
        .await?;
        // The outbox loop's scan.
        m.create_index(
            Index::create()
                .name("ix_webhook_messages_dispatched")
                .table(tbl("webhook_messages"))
                .col(Alias::new("dispatched"))
                .col(Alias::new("seq"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(tbl("webhook_attempts"))
                .col(col("id").string().not_null().primary_key())
                .col(col("message_id").string().not_null())
                .col(col("endpoint_id").string().not_null())
                .col(col("order_id").string().not_null())
                .col(col("event_type").string().not_null())
                .col(col("url").text().not_null())
                .col(col("attempt").integer().not_null())
                .col(col("at").timestamp_with_time_zone().not_null())
                .col(col("status_code").integer().null())
                .col(col("error").text().null())
                .col(col("duration_ms").big_integer().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_webhook_attempts_order_at")
                .table(tbl("webhook_attempts"))
                .col(Alias::new("order_id"))
                .col(Alias::new("at"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_webhook_attempts_message")
                .table(tbl("webhook_attempts"))
                .col(Alias::new("message_id"))
                .to_owned(),
        )
        .await
    }
}
