use sea_orm_migration::prelude::*;

use super::tbl;

pub(super) struct M0007SliceIndex;

impl MigrationName for M0007SliceIndex {
    fn name(&self) -> &str {
        "m0007_slice_index"
    }
}

/// The send path's index gains the recipient: a slice's claim (order, channel, unsent, its
/// recipients) reads only the slice's rows, however many slices of the order are in flight.
/// Same prefix as the index it replaces, so the status counts and the whole-order claim are
/// answered as before.
#[async_trait::async_trait]
impl MigrationTrait for M0007SliceIndex {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("ix_notifications_order_channel_status_recipient")
                .table(tbl("notifications"))
                .col(Alias::new("order_id"))
                .col(Alias::new("channel"))
                .col(Alias::new("status"))
                .col(Alias::new("recipient_idx"))
                .to_owned(),
        )
        .await?;
        m.drop_index(
            Index::drop()
                .name("ix_notifications_order_channel_status")
                .table(tbl("notifications"))
                .to_owned(),
        )
        .await
    }
}
