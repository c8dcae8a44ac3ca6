//! Schema migrations, portable across SQLite and PostgreSQL. Never edit a released migration:
//! add a new one.

use sea_orm_migration::prelude::*;

/// All migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002DeliveryTracking),
            Box::new(M0003NotificationEvents),
            Box::new(M0004SendRateSlots),
            Box::new(M0005OrderChains),
        ]
    }
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

fn tbl(name: &str) -> Alias {
    Alias::new(name)
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

struct M0002DeliveryTracking;

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

struct M0003NotificationEvents;

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

struct M0004SendRateSlots;

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

struct M0005OrderChains;

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
