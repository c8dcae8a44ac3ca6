use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0010EmailAttachments;

impl MigrationName for M0010EmailAttachments {
    fn name(&self) -> &str {
        "m0010_email_attachments"
    }
}

/// A composed email's attachments (`/future/orders/composed-email`): file name, declared media
/// type and URL of each, as one JSON array on the order (read with the order, never queried
/// apart); the files themselves are fetched when the email is sent and never stored.
#[async_trait::async_trait]
impl MigrationTrait for M0010EmailAttachments {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(tbl("orders"))
                .add_column(col("email_attachments").text().null())
                .to_owned(),
        )
        .await
    }
}
