use sea_orm_migration::prelude::*;

use super::tbl;

pub(super) struct M0014CoveringSearch;

impl MigrationName for M0014CoveringSearch {
    fn name(&self) -> &str {
        "m0014_covering_search"
    }
}

/// The order search counts its newest matches by status: with `status` at the end of the indexes
/// it walks (all orders, a creator's, a creator's by reference), the count reads the index
/// alone, not a row per order. Each index replaces the one it extends (same leading columns, so
/// every query those answered, these answer).
#[async_trait::async_trait]
impl MigrationTrait for M0014CoveringSearch {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, old, columns) in [
            ("ix_orders_created_status", "ix_orders_created", &["created", "id", "status"][..]),
            (
                "ix_orders_creator_created_status",
                "ix_orders_creator_created",
                &["creator", "created", "id", "status"][..],
            ),
            (
                "ix_orders_creator_sref_created_status",
                "ix_orders_creator_sref_created",
                &["creator", "senders_reference", "created", "id", "status"][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(tbl("orders"));
            for c in columns {
                index.col(Alias::new(*c));
            }
            m.create_index(index.to_owned()).await?;
            m.drop_index(Index::drop().name(old).table(tbl("orders")).to_owned()).await?;
        }
        Ok(())
    }
}
