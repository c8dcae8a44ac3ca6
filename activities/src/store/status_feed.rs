//! The status feed: order status changes in sequence for the feed endpoint, and its retention.

use super::Store;
use super::entities::status_feed;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// One entry of the status feed: an order that finished, in commit order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    /// Sequence number, the feed's cursor.
    pub seq: i64,
    /// The order.
    pub order_id: String,
    /// Its creator.
    pub creator: String,
    /// When the entry was written.
    pub created: DateTime<Utc>,
}

impl From<status_feed::Model> for FeedEntry {
    fn from(m: status_feed::Model) -> Self {
        Self { seq: m.seq, order_id: m.order_id, creator: m.creator, created: m.created }
    }
}

impl Store {
    /// A page of `creator`'s status feed: entries after `seq` oldest first, or before it newest
    /// first (`seq = 0`: the newest).
    pub async fn status_feed(
        &self,
        creator: &str,
        seq: i64,
        limit: u64,
        descending: bool,
    ) -> Result<Vec<FeedEntry>, DbErr> {
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
        Ok(q.limit(limit).all(&*self.db).await?.into_iter().map(FeedEntry::from).collect())
    }

    /// Deletes feed entries written before `before`; returns how many.
    pub async fn prune_status_feed(&self, before: DateTime<Utc>) -> Result<u64, DbErr> {
        Ok(status_feed::Entity::delete_many()
            .filter(status_feed::Column::Created.lt(before))
            .exec(&*self.db)
            .await?
            .rows_affected)
    }
}
