//! The status feed: order status changes in sequence for the feed endpoint, and its retention.

use super::Store;
use super::entities::status_feed;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

impl Store {
    /// A page of `creator`'s status feed: entries after `seq` oldest first, or before it newest
    /// first (`seq = 0`: the newest).
    pub async fn status_feed(
        &self,
        creator: &str,
        seq: i64,
        limit: u64,
        descending: bool,
    ) -> Result<Vec<status_feed::Model>, DbErr> {
        let q = status_feed::Entity::find().filter(status_feed::Column::Creator.eq(creator));
        let q = match (descending, seq) {
            (false, _) => {
                q.filter(status_feed::Column::Seq.gt(seq)).order_by_asc(status_feed::Column::Seq)
            }
            (true, 0) => q.order_by_desc(status_feed::Column::Seq),
            (true, _) => {
                q.filter(status_feed::Column::Seq.lt(seq)).order_by_desc(status_feed::Column::Seq)
            }
        };
        q.limit(limit).all(&self.db).await
    }

    /// Deletes feed entries written before `before`; returns how many.
    pub async fn prune_status_feed(&self, before: DateTime<Utc>) -> Result<u64, DbErr> {
        Ok(status_feed::Entity::delete_many()
            .filter(status_feed::Column::Created.lt(before))
            .exec(&self.db)
            .await?
            .rows_affected)
    }
}
