use sea_orm_migration::prelude::*;

use super::tbl;

pub(super) struct M0016MetricSnapshots;

impl MigrationName for M0016MetricSnapshots {
    fn name(&self) -> &str {
        "m0016_metric_snapshots"
    }
}

/// Each varsel process's counters, a snapshot a minute, kept for a day and an hour: the
/// console's overview sums the last hour and day over every API and worker process of the
/// deployment, from their snapshots, instead of showing only the process that drew the page.
#[async_trait::async_trait]
impl MigrationTrait for M0016MetricSnapshots {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(tbl("metric_snapshots"))
                .if_not_exists()
                .col(ColumnDef::new(Alias::new("process")).string().not_null())
                .col(ColumnDef::new(Alias::new("taken")).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Alias::new("started")).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Alias::new("counters")).text().not_null())
                .primary_key(Index::create().col(Alias::new("process")).col(Alias::new("taken")))
                .to_owned(),
        )
        .await?;
        // Which processes lived in a window (read from this index alone), and the pruning of
        // snapshots a day old.
        m.create_index(
            Index::create()
                .name("ix_metric_snapshots_taken")
                .table(tbl("metric_snapshots"))
                .col(Alias::new("taken"))
                .col(Alias::new("process"))
                .to_owned(),
        )
        .await
    }
}
