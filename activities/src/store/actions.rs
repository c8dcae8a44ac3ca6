//! What people did to orders, and who: each cancel and redrive, for the order's timeline.

use super::Store;
use super::entities::order_action;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

/// One action on an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAction {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: String,
    /// `cancel` or `redrive`.
    pub action: String,
    /// What it did.
    pub detail: Option<String>,
}

impl Store {
    /// Records that `actor` did `action` to an order.
    pub async fn record_action(
        &self,
        order_id: &str,
        actor: &str,
        action: &str,
        detail: Option<String>,
    ) -> Result<(), DbErr> {
        order_action::Entity::insert(order_action::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            order_id: Set(order_id.to_owned()),
            at: Set(Utc::now()),
            actor: Set(actor.to_owned()),
            action: Set(action.to_owned()),
            detail: Set(detail),
        })
        .exec(&*self.db)
        .await?;
        Ok(())
    }

    /// The actions on an order, oldest first.
    pub async fn actions_of(&self, order_id: &str) -> Result<Vec<OrderAction>, DbErr> {
        Ok(order_action::Entity::find()
            .filter(order_action::Column::OrderId.eq(order_id))
            .order_by_asc(order_action::Column::At)
            .all(&*self.db)
            .await?
            .into_iter()
            .map(|a| OrderAction { at: a.at, actor: a.actor, action: a.action, detail: a.detail })
            .collect())
    }
}
