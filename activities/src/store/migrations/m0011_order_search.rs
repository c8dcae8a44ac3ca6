use sea_orm_migration::prelude::*;

use super::tbl;

pub(super) struct M0011OrderSearch;

impl MigrationName for M0011OrderSearch {
    fn name(&self) -> &str {
        "m0011_order_search"
    }
}

/// The operators' order search reads newest first, a page at a time, across every creator or
/// within one, optionally of one status: one index for each, ending in `(created, id)` so the
/// keyset paging walks the index and never sorts the table. A creator's orders by sender's
/// reference (`GET /orders?sendersReference`, oldest first) get `created` in their index too, so
/// that they stay answered by it rather than by the new `(creator, created)`.
#[async_trait::async_trait]
impl MigrationTrait for M0011OrderSearch {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, leading) in [
            ("ix_orders_created", None),
            ("ix_orders_creator_created", Some("creator")),
            ("ix_orders_status_created", Some("status")),
        ] {
            let mut index = Index::create();
            index.name(name).table(tbl("orders"));
            if let Some(column) = leading {
                index.col(Alias::new(column));
            }
            m.create_index(index.col(Alias::new("created")).col(Alias::new("id")).to_owned())
                .await?;
        }
        m.create_index(
            Index::create()
                .name("ix_orders_creator_sref_created")
                .table(tbl("orders"))
                .col(Alias::new("creator"))
                .col(Alias::new("senders_reference"))
                .col(Alias::new("created"))
                .to_owned(),
        )
        .await?;
        m.drop_index(Index::drop().name("ix_orders_creator_sref").table(tbl("orders")).to_owned())
            .await
    }
}
