use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("orders"))
                .col(col("id").string().not_null().primary_key())
                .col(col("creator").string().not_null())
                .col(col("senders_reference").string().null())
                .col(col("requested_send_time").timestamp_with_time_zone().not_null())
                .col(col("created").timestamp_with_time_zone().not_null())
                .col(col("notification_channel").string().not_null())
                .col(col("ignore_reservation").boolean().not_null())
                .col(col("resource_id").string().null())
                .col(col("resource_action").string().null())
                .col(col("condition_endpoint").string().null())
                .col(col("email_from").string().null())
                .col(col("email_subject").string().null())
                .col(col("email_body").text().null())
                .col(col("email_content_type").string().null())
                .col(col("sms_sender").string().null())
                .col(col("sms_body").text().null())
                .col(col("order_kind").string().not_null())
                .col(col("status").string().not_null())
                .col(col("status_changed").timestamp_with_time_zone().not_null())
                .col(col("recipient_count").integer().not_null())
                .col(col("workflow_started").boolean().not_null())
                .to_owned(),
        )
        .await?;
        // Reads are always scoped to the creator; sendersReference lookups and the outbox scan
        // must not walk the table.
        m.create_index(
            Index::create()
                .name("ix_orders_creator_sref")
                .table(tbl("orders"))
                .col(Alias::new("creator"))
                .col(Alias::new("senders_reference"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_orders_workflow_started")
                .table(tbl("orders"))
                .col(Alias::new("workflow_started"))
                .col(Alias::new("created"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(tbl("order_recipients"))
                .col(col("order_id").string().not_null())
                .col(col("idx").integer().not_null())
                .col(col("email").string().null())
                .col(col("mobile").string().null())
                .col(col("org_no").string().null())
                .col(col("nin").string().null())
                .primary_key(Index::create().col(Alias::new("order_id")).col(Alias::new("idx")))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(tbl("notifications"))
                .col(col("id").string().not_null().primary_key())
                .col(col("order_id").string().not_null())
                .col(col("channel").string().not_null())
                .col(col("recipient_idx").integer().not_null())
                .col(col("org_no").string().null())
                .col(col("nin").string().null())
                .col(col("address").string().not_null())
                .col(col("subject").string().null())
                .col(col("body").text().null())
                .col(col("status").string().not_null())
                .col(col("status_changed").timestamp_with_time_zone().not_null())
                .col(col("status_reason").text().null())
                .col(col("provider_ref").string().null())
                .col(col("attempts").integer().not_null())
                .col(col("expiry").timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        // One notification per recipient, channel and address: a retried generate batch cannot
        // create a second row, so it cannot send a second message.
        m.create_index(
            Index::create()
                .name("ux_notifications_identity")
                .table(tbl("notifications"))
                .col(Alias::new("order_id"))
                .col(Alias::new("recipient_idx"))
                .col(Alias::new("channel"))
                .col(Alias::new("address"))
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_notifications_order_channel_status")
                .table(tbl("notifications"))
                .col(Alias::new("order_id"))
                .col(Alias::new("channel"))
                .col(Alias::new("status"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(tbl("contact_persons"))
                .col(col("nin").string().not_null().primary_key())
                .col(col("name").string().null())
                .col(col("email").string().null())
                .col(col("mobile").string().null())
                .col(col("reserved").boolean().not_null())
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table(tbl("contact_organizations"))
                .col(col("org_no").string().not_null().primary_key())
                .col(col("name").string().null())
                .col(col("emails").json().not_null())
                .col(col("mobiles").json().not_null())
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table(tbl("simulated_sms"))
                .col(col("id").string().not_null().primary_key())
                .col(col("notification_id").string().not_null())
                .col(col("recipient").string().not_null())
                .col(col("sender").string().not_null())
                .col(col("body").text().not_null())
                .col(col("accepted_at").timestamp_with_time_zone().not_null())
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("ix_simulated_sms_notification")
                .table(tbl("simulated_sms"))
                .col(Alias::new("notification_id"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}
