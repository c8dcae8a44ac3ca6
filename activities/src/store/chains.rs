//! Order chains of the `/future` API: a notification with its reminders stored under one
//! idempotency id, and instant messages reserved, kept or discarded around their one send.

use super::entities::{
    notification, notification_event, order, order_chain, order_count, order_recipient,
};
use super::{Notification, ProviderResult, Store};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, TransactionTrait,
};
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
                let duplicate = is_duplicate(&e);
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

    /// Stores instant messages before they are sent, and records providers' answers to
    /// earlier ones, all in one transaction (the group commit of [`InstantWriter`]). Each
    /// message is its chain (the idempotency id), its order and its one notification, already
    /// `Sending` (one attempt), so a delivery report that arrives while its request still waits
    /// for the provider finds the row. A message whose chain exists already stores nothing (a
    /// savepoint keeps the others) and gets that chain back.
    pub async fn instant_group(
        &self,
        messages: Vec<(Chain, NewOrder, Notification)>,
        answers: &[&ProviderResult],
    ) -> Result<Vec<ChainInsert>, DbErr> {
        let txn = self.db.begin().await?;
        // For each message: `None` stored, or the (creator, idempotency id) that exists.
        let mut stored = Vec::with_capacity(messages.len());
        for (chain, order, n) in messages {
            let key = (chain.creator.clone(), chain.idempotency_id.clone());
            let savepoint = txn.begin().await?;
            let inserted = order_chain::Entity::insert(order_chain::ActiveModel::from(
                order_chain::Model::from(chain),
            ))
            .exec_without_returning(&savepoint)
            .await;
            match inserted {
                Ok(_) => {}
                Err(e) if is_duplicate(&e) => {
                    savepoint.rollback().await?;
                    stored.push(Some(key));
                    continue;
                }
                Err(e) => return Err(e),
            }
            Self::insert_order_rows(&savepoint, order).await?;
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
            notification::Entity::insert(notification::ActiveModel::from(
                notification::Model::from(n),
            ))
            .exec_without_returning(&savepoint)
            .await?;
            Self::log_events(&savepoint, events).await?;
            savepoint.commit().await?;
            stored.push(None);
        }
        Self::record_results_in(&txn, answers).await?;
        txn.commit().await?;
        let mut outcomes = Vec::with_capacity(stored.len());
        for s in stored {
            outcomes.push(match s {
                None => ChainInsert::Created,
                Some((creator, idempotency_id)) => ChainInsert::Exists(
                    self.find_chain(&creator, &idempotency_id)
                        .await?
                        .ok_or_else(|| DbErr::RecordNotFound("the existing chain".into()))?,
                ),
            });
        }
        Ok(outcomes)
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
        let seconds = Query::delete()
            .from_table(Alias::new(super::events::SECONDS))
            .and_where(Expr::col(Alias::new("order_id")).eq(order_id))
            .to_owned();
        txn.execute(txn.get_database_backend().build(&seconds)).await?;
        notification::Entity::delete_many()
            .filter(notification::Column::OrderId.eq(order_id))
            .exec(&txn)
            .await?;
        order_count::Entity::delete_many()
            .filter(order_count::Column::OrderId.eq(order_id))
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

/// The creator already has a chain with this idempotency id (the unique index said so).
fn is_duplicate(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

type Acked<T> = tokio::sync::oneshot::Sender<Result<T, DbErr>>;

/// An instant message's write, waiting for the next group.
enum InstantWrite {
    /// Store a message before it is sent.
    Reserve(Box<(Chain, NewOrder, Notification)>, Acked<ChainInsert>),
    /// Record the provider's answer to one.
    Record(ProviderResult, Acked<()>),
}

/// Group commit of instant messages: concurrent requests hand their reservations and their
/// providers' answers to one writer, which stores everything waiting in one transaction and
/// then tells each request. A request still goes on only once its write is committed, but the
/// database sees one commit per group instead of two per message, and the requests queue here
/// instead of in SQLite's busy handler (which sleeps up to 100 ms between tries).
#[derive(Clone)]
pub struct InstantWriter {
    tx: tokio::sync::mpsc::UnboundedSender<InstantWrite>,
}

impl InstantWriter {
    /// Starts the writer; it ends when every clone is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<InstantWrite>();
        tokio::spawn(async move {
            while let Some(group) = super::next_group(&mut rx, 128).await {
                let (mut messages, mut reserved, mut answers, mut recorded) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for write in group {
                    match write {
                        InstantWrite::Reserve(m, ack) => {
                            messages.push(*m);
                            reserved.push(ack);
                        }
                        InstantWrite::Record(r, ack) => {
                            answers.push(r);
                            recorded.push(ack);
                        }
                    }
                }
                let answer_refs: Vec<&ProviderResult> = answers.iter().collect();
                match store.instant_group(messages, &answer_refs).await {
                    Ok(outcomes) => {
                        for (ack, outcome) in reserved.into_iter().zip(outcomes) {
                            let _ = ack.send(Ok(outcome));
                        }
                        for ack in recorded {
                            let _ = ack.send(Ok(()));
                        }
                    }
                    Err(e) => {
                        // Nothing of the group is stored; each request learns why.
                        let e = e.to_string();
                        for ack in reserved {
                            let _ = ack.send(Err(DbErr::Custom(e.clone())));
                        }
                        for ack in recorded {
                            let _ = ack.send(Err(DbErr::Custom(e.clone())));
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Stores an instant message before it is sent (see [`Store::instant_group`]); returns once
    /// it is committed.
    pub async fn reserve(
        &self,
        chain: Chain,
        order: NewOrder,
        n: Notification,
    ) -> Result<ChainInsert, DbErr> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.send(InstantWrite::Reserve(Box::new((chain, order, n)), ack))?;
        done.await.map_err(|_| stopped())?
    }

    /// Records a provider's answer to an instant message; returns once it is committed.
    pub async fn record(&self, result: ProviderResult) -> Result<(), DbErr> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.send(InstantWrite::Record(result, ack))?;
        done.await.map_err(|_| stopped())?
    }

    fn send(&self, write: InstantWrite) -> Result<(), DbErr> {
        self.tx.send(write).map_err(|_| stopped())
    }
}

fn stopped() -> DbErr {
    DbErr::Custom("the instant writer stopped".into())
}
