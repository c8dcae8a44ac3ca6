//! Schema migrations, portable across SQLite and PostgreSQL. Never edit a released migration:
//! add a new one, in a file of its own, and list it in `Migrator`.

mod m0001_initial;
mod m0002_delivery_tracking;
mod m0003_notification_events;
mod m0004_send_rate_slots;
mod m0005_order_chains;
mod m0006_contact_updated;
mod m0007_slice_index;
mod m0008_order_counts;
mod m0009_webhooks;
mod m0010_email_attachments;
mod m0011_order_search;
mod m0012_order_actions;
mod m0013_console_indexes;
mod m0014_covering_search;
mod m0015_event_seconds;
mod m0016_metric_snapshots;

use sea_orm_migration::prelude::*;

/// All migrations in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::M0001Initial),
            Box::new(m0002_delivery_tracking::M0002DeliveryTracking),
            Box::new(m0003_notification_events::M0003NotificationEvents),
            Box::new(m0004_send_rate_slots::M0004SendRateSlots),
            Box::new(m0005_order_chains::M0005OrderChains),
            Box::new(m0006_contact_updated::M0006ContactUpdated),
            Box::new(m0007_slice_index::M0007SliceIndex),
            Box::new(m0008_order_counts::M0008OrderCounts),
            Box::new(m0009_webhooks::M0009Webhooks),
            Box::new(m0010_email_attachments::M0010EmailAttachments),
            Box::new(m0011_order_search::M0011OrderSearch),
            Box::new(m0012_order_actions::M0012OrderActions),
            Box::new(m0013_console_indexes::M0013ConsoleIndexes),
            Box::new(m0014_covering_search::M0014CoveringSearch),
            Box::new(m0015_event_seconds::M0015EventSeconds),
            Box::new(m0016_metric_snapshots::M0016MetricSnapshots),
        ]
    }
}

/// A column of the given name.
fn col(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name))
}

/// A table of the given name.
fn tbl(name: &str) -> Alias {
    Alias::new(name)
}
