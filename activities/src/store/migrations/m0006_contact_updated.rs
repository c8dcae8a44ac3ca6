use sea_orm_migration::prelude::*;

use super::{col, tbl};

pub(super) struct M0006ContactUpdated;

impl MigrationName for M0006ContactUpdated {
    fn name(&self) -> &str {
        "m0006_contact_updated"
    }
}

/// When a person's contact details were last confirmed or changed in the register they came
/// from (KRR's 18-month rule treats older ones as stale; unknown for rows loaded before), and
/// whether a recipient allows stale ones (`useStaleContactInformation`); a recipient's
/// external identity (a self-identified user, `recipientExternalIdentity`).
#[async_trait::async_trait]
impl MigrationTrait for M0006ContactUpdated {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(tbl("contact_persons"))
                .add_column(col("updated_at").timestamp_with_time_zone().null())
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("order_recipients"))
                .add_column(col("allow_stale").boolean().not_null().default(false))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table(tbl("order_recipients"))
                .add_column(col("external_identity").string().null())
                .to_owned(),
        )
        .await
    }
}
