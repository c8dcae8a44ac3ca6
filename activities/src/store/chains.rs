//! Order chains of the `/future` API: a notification with its reminders stored under one
//! idempotency id, and instant messages reserved, kept or discarded around their one send.

use super::entities::{notification, notification_event, order, order_chain, order_recipient};
use super::{Notification, Store};
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use varsel_workflows::order::{NewOrder, OrderType, StoredOrder};

/// An order chain: the creator's idempotency id, the request it was for, and the answer a
/// repeat of that request gets. What a new chain is stored from, and what a stored one reads as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The chain id (the notification order id of the answer).
    pub id: String,
    /// The creator org.
    pub creator: String,
    /// The creator's idempotency id.
    pub idempotency_id: String,
    /// Hash of the request, to tell a repeat from another request with the same id.
    pub request_hash: String,
    /// The answer, as JSON.
    pub response: String,
    /// When it was accepted.
    pub created: DateTime<Utc>,
}

impl From<order_chain::Model> for Chain {
    fn from(c: order_chain::Model) -> Self {
        Self {
            id: c.id,
            creator: c.creator,
            idempotency_id: c.idempotency_id,
            request_hash: c.request_hash,
            response: c.response,
            created: c.created,
        }
    }
}

impl From<Chain> for order_chain::Model {
    fn from(c: Chain) -> Self {
        Self {
            id: c.id,
            creator: c.creator,
            idempotency_id: c.idempotency_id,
            request_hash: c.request_hash,
            response: c.response,
            created: c.created,
        }
    }
}

/// What storing an order chain came to.
#[derive(Debug, Clone)]
pub enum ChainInsert {
    /// Stored now.
    Created,
    /// The creator already had a chain with this idempotency id; nothing was stored.
    Exists(Chain),
}

impl Store {
    /// Stores an order chain and its orders in one transaction, unless the creator already has a
    /// chain with this idempotency id: then nothing is stored and that chain is returned. Two
    /// requests racing with the same id create one chain (the unique index decides).
    pub async fn insert_chain(
        &self,
        chain: Chain,
        orders: Vec<NewOrder>,
    ) -> Result<ChainInsert, DbErr> {
        let txn = match self.begin_chain(chain).await? {
            Ok(txn) => txn,
            Err(existing) => return Ok(ChainInsert::Exists(existing)),
        };
        for new in orders {
            Self::insert_order_rows(&txn, new).await?;
        }
        txn.commit().await?;
        Ok(ChainInsert::Created)
    }

    /// Opens a transaction holding a new chain row; when the creator already has a chain with
    /// its idempotency id (the unique index decides, also between racing requests), nothing is
    /// kept and that chain is returned.
    pub(super) async fn begin_chain(
        &self,
        chain: Chain,
    ) -> Result<Result<sea_orm::DatabaseTransaction, Chain>, DbErr> {
        let (creator, idempotency_id) = (chain.creator.clone(), chain.idempotency_id.clone());
        let txn = self.db.begin().await?;
        match order_chain::Entity::insert(order_chain::ActiveModel::from(order_chain::Model::from(
            chain,
        )))
        .exec_without_returning(&txn)
        .await
        {
            Ok(_) => Ok(Ok(txn)),
            Err(e) => {
                let duplicate =
                    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)));
                txn.rollback().await?;
                if duplicate
                    && let Some(existing) = self.find_chain(&creator, &idempotency_id).await?
                {
                    return Ok(Err(existing));
                }
                Err(e)
            }
        }
    }

    /// Stores an instant message before it is sent: its chain (the idempotency id), its order
    /// and its one notification, already `Sending` (one attempt), in one transaction. Delivery
    /// reports that arrive while the request still waits for the provider find the row. As with
    /// [`Store::insert_chain`], a chain that exists already is returned and nothing is stored.
    pub async fn reserve_instant(
        &self,
        chain: Chain,
        order: NewOrder,
        n: Notification,
    ) -> Result<ChainInsert, DbErr> {
        let txn = match self.begin_chain(chain).await? {
            Ok(txn) => txn,
            Err(existing) => return Ok(ChainInsert::Exists(existing)),
        };
        Self::insert_order_rows(&txn, order).await?;
        let events = vec![
            (n.id.clone(), n.order_id.clone(), n.status, "created", None),
            (
                n.id.clone(),
                n.order_id.clone(),
                n.status,
                "sending",
                Some("attempt 1 (instant)".to_owned()),
            ),
        ];
        notification::Entity::insert(notification::ActiveModel::from(notification::Model::from(n)))
            .exec_without_returning(&txn)
            .await?;
        Self::log_events(&txn, events).await?;
        txn.commit().await?;
        Ok(ChainInsert::Created)
    }

    /// Removes an instant message whose provider could not take it, so that nothing of it stays
    /// stored and its idempotency id can be used again: chain, order, recipient, notification
    /// and status log, in one transaction.
    pub async fn discard_instant(&self, chain_id: &str, order_id: &str) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        notification_event::Entity::delete_many()
            .filter(notification_event::Column::OrderId.eq(order_id))
            .exec(&txn)
            .await?;
        notification::Entity::delete_many()
            .filter(notification::Column::OrderId.eq(order_id))
            .exec(&txn)
            .await?;
        order_recipient::Entity::delete_many()
            .filter(order_recipient::Column::OrderId.eq(order_id))
            .exec(&txn)
            .await?;
        order::Entity::delete_by_id(order_id.to_owned()).exec(&txn).await?;
        order_chain::Entity::delete_by_id(chain_id.to_owned()).exec(&txn).await?;
        txn.commit().await
    }

    /// The orders of a chain (an instant message's one order), oldest first.
    pub async fn chain_orders(&self, chain_id: &str) -> Result<Vec<StoredOrder>, DbErr> {
        let rows = order::Entity::find()
            .filter(order::Column::ChainId.eq(chain_id))
            .order_by_asc(order::Column::Created)
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(StoredOrder::from).collect())
    }

    /// The creator's chain with this idempotency id.
    pub async fn find_chain(
        &self,
        creator: &str,
        idempotency_id: &str,
    ) -> Result<Option<Chain>, DbErr> {
        let found = order_chain::Entity::find()
            .filter(order_chain::Column::Creator.eq(creator))
            .filter(order_chain::Column::IdempotencyId.eq(idempotency_id))
            .one(&*self.db)
            .await?;
        Ok(found.map(Chain::from))
    }

    /// The creator's chain with this id.
    pub async fn get_chain(&self, id: &str, creator: &str) -> Result<Option<Chain>, DbErr> {
        let found = order_chain::Entity::find_by_id(id.to_owned())
            .filter(order_chain::Column::Creator.eq(creator))
            .one(&*self.db)
            .await?;
        Ok(found.map(Chain::from))
    }

    /// The reminders of a chain, in send-time order.
    pub async fn chain_reminders(&self, chain_id: &str) -> Result<Vec<StoredOrder>, DbErr> {
        let rows = order::Entity::find()
            .filter(order::Column::ChainId.eq(chain_id))
            .filter(order::Column::OrderType.eq(OrderType::Reminder))
            .order_by_asc(order::Column::RequestedSendTime)
            .all(&*self.db)
            .await?;
        Ok(rows.into_iter().map(StoredOrder::from).collect())
    }
}
