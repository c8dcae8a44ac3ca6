//! The database: orders, recipients, notifications and the embedded contact register.
//!
//! Works on SQLite (embedded default) and PostgreSQL (production) through sea-orm.

pub mod entities;
pub mod migrations;

use chrono::{DateTime, Utc};
use entities::{
    contact_organization, contact_person, dead_report, notification, notification_event, order,
    order_chain, order_recipient, status_feed,
};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection,
    DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use std::collections::HashMap;
use std::time::Duration;
use varsel_workflows::domain::{Channel, NotificationStatus, OrderStatus};

/// A handle on the database, cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
}

/// An order ready to be stored, with its recipients (already validated and normalised).
#[derive(Debug, Clone)]
pub struct NewOrder {
    /// The order row.
    pub order: order::Model,
    /// The recipients, in submitted order.
    pub recipients: Vec<NewRecipient>,
}

/// One submitted recipient.
#[derive(Debug, Clone, Default)]
pub struct NewRecipient {
    /// Explicit email address.
    pub email: Option<String>,
    /// Explicit mobile number, normalised.
    pub mobile: Option<String>,
    /// Organisation number.
    pub org_no: Option<String>,
    /// National identity number.
    pub nin: Option<String>,
}

/// What storing an order chain came to.
#[derive(Debug, Clone)]
pub enum ChainInsert {
    /// Stored now.
    Created,
    /// The creator already had a chain with this idempotency id; nothing was stored.
    Exists(order_chain::Model),
}

/// What a cancel request found.
#[derive(Debug, Clone)]
pub enum CancelOutcome {
    /// No such order for this creator.
    NotFound,
    /// Cancelled now or before.
    Cancelled(order::Model),
    /// Already being processed, finished, or too close to its send time.
    TooLate(order::Model),
}

/// Which notification a delivery report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTarget {
    /// Our notification id (carried in the report URL or as the email Message-ID).
    Notification(String),
    /// The provider's message reference.
    ProviderRef(String),
}

impl ReportTarget {
    fn text(&self) -> &str {
        match self {
            Self::Notification(s) | Self::ProviderRef(s) => s,
        }
    }
}

/// A delivery report, mapped to a status.
#[derive(Debug, Clone)]
pub struct Report {
    /// Which notification.
    pub target: ReportTarget,
    /// The status it reports.
    pub status: NotificationStatus,
    /// The provider's words, for the status description.
    pub reason: Option<String>,
    /// The provider's message reference, if the report carries one.
    pub provider_ref: Option<String>,
    /// The report as received.
    pub raw: String,
}

/// What applying a report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The notification moved; `open_left` notifications of its order still wait.
    Applied {
        /// The order.
        order_id: String,
        /// Open notifications left in the order.
        open_left: u64,
        /// Time since the notification last changed status (sent or accepted) until this report.
        lag: Option<std::time::Duration>,
    },
    /// Nothing changed: the notification was already at or past this status (a repeat).
    Unchanged {
        /// The order.
        order_id: String,
    },
    /// No notification matches; kept as a dead report.
    Dead {
        /// The dead report's id.
        id: String,
        /// Why.
        reason: &'static str,
    },
}

/// What settling an order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// The order's status now.
    pub status: OrderStatus,
    /// The earliest expiry of its open notifications.
    pub next_expiry: Option<DateTime<Utc>>,
}

/// A status-log line (notification, order, status, source, detail) and when it happened.
type EventAt<'a> = ((String, String, String, &'a str, Option<String>), DateTime<Utc>);

/// A provider's answer for one notification.
#[derive(Debug, Clone)]
pub struct ProviderResult {
    /// The notification.
    pub id: String,
    /// Its order.
    pub order_id: String,
    /// The status the answer means.
    pub status: NotificationStatus,
    /// The provider's words, or a policy note.
    pub reason: Option<String>,
    /// The provider's reference (for matching delivery reports).
    pub provider_ref: Option<String>,
    /// Whether a delivery report is still to come.
    pub awaits_report: bool,
    /// When the provider answered (the row and its status-log line carry this time, not the
    /// time the answer was committed with others).
    pub answered_at: DateTime<Utc>,
}

type Ack = tokio::sync::oneshot::Sender<Result<(), String>>;

/// Group commit of provider answers: concurrent senders hand their answers to one writer, which
/// records everything waiting in one transaction and then tells each sender. A send still counts
/// as done only once its answer is committed (the duplicate window after a crash stays one
/// in-flight send per sender), but the database sees one commit per group instead of one per
/// message, and SQLite's single writer is not fought over.
#[derive(Clone)]
pub struct ResultWriter {
    tx: tokio::sync::mpsc::UnboundedSender<(ProviderResult, Ack)>,
}

impl ResultWriter {
    /// Starts the writer; it ends when every clone is dropped.
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(ProviderResult, Ack)>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut group = vec![first];
                while group.len() < 256
                    && let Ok(more) = rx.try_recv()
                {
                    group.push(more);
                }
                let rows: Vec<&ProviderResult> = group.iter().map(|(r, _)| r).collect();
                let outcome = store.record_results(&rows).await.map_err(|e| e.to_string());
                for (_, ack) in group {
                    let _ = ack.send(outcome.clone());
                }
            }
        });
        Self { tx }
    }

    /// Records one answer; returns once it is committed.
    pub async fn record(&self, result: ProviderResult) -> Result<(), String> {
        let (ack, done) = tokio::sync::oneshot::channel();
        self.tx.send((result, ack)).map_err(|_| "the result writer stopped".to_owned())?;
        done.await.map_err(|_| "the result writer stopped".to_owned())?
    }
}

/// `orders.order_type` of an instant message (the newer API's `Instant`): sent by its request,
/// its workflow only settles it.
pub const ORDER_TYPE_INSTANT: &str = "Instant";

/// A person's contact points as the register has them.
#[derive(Debug, Clone)]
pub struct PersonContact {
    /// Full name.
    pub name: Option<String>,
    /// Email address.
    pub email: Option<String>,
    /// Mobile number (as stored; normalise before use).
    pub mobile: Option<String>,
    /// Reserved against digital notifications.
    pub reserved: bool,
}

/// An organisation's notification addresses as the register has them.
#[derive(Debug, Clone)]
pub struct OrgContact {
    /// Registered name.
    pub name: Option<String>,
    /// Email addresses.
    pub emails: Vec<String>,
    /// Mobile numbers (as stored; normalise before use).
    pub mobiles: Vec<String>,
}

/// Notifications that still wait: not yet sent, or sent to a provider that reports delivery
/// and not yet reported.
fn open_condition() -> sea_orm::Condition {
    use sea_orm::Condition;
    let unsent = [
        NotificationStatus::EmailNew,
        NotificationStatus::EmailSending,
        NotificationStatus::SmsNew,
        NotificationStatus::SmsSending,
    ];
    let sent = [NotificationStatus::EmailSucceeded, NotificationStatus::SmsAccepted];
    Condition::any().add(notification::Column::Status.is_in(unsent.iter().map(|s| s.as_str()))).add(
        Condition::all()
            .add(notification::Column::Status.is_in(sent.iter().map(|s| s.as_str())))
            .add(notification::Column::AwaitsReport.eq(true)),
    )
}

impl Store {
    /// Connects (creating a SQLite file if needed) without migrating.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, DbErr> {
        let mut url = url.to_owned();
        if url.starts_with("sqlite:") && !url.contains("mode=") {
            url.push_str(if url.contains('?') { "&mode=rwc" } else { "?mode=rwc" });
        }
        let is_sqlite = url.starts_with("sqlite:");
        let mut opts = ConnectOptions::new(url);
        opts.max_connections(max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(5))
            .acquire_timeout(Duration::from_secs(10))
            .sqlx_logging(false);
        if is_sqlite {
            // On every pooled connection (these settings are per connection, except WAL): WAL
            // lets the API read while the worker writes; synchronous=NORMAL is durable across a
            // process crash and far cheaper per commit; busy_timeout turns lock contention into a
            // short wait instead of an error.
            opts.map_sqlx_sqlite_opts(|o| {
                o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    // 16 MiB of page cache a connection (SQLite's default is 2 MiB): a large
                    // order's random-keyed indexes stay in memory while it is sent.
                    .pragma("cache_size", "-16384")
            });
        }
        let db = Database::connect(opts).await?;
        Ok(Self { db })
    }

    /// A store with no connection, for generating documents offline; every query fails.
    pub fn disconnected() -> Self {
        Self { db: DatabaseConnection::Disconnected }
    }

    /// Applies pending migrations. On PostgreSQL they run in one transaction under an advisory
    /// lock, so API and worker processes starting together migrate once, one after the other.
    pub async fn migrate(&self) -> Result<(), DbErr> {
        if self.db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
            let txn = self.db.begin().await?;
            // Any constant shared by every varsel process; "varsel" in ASCII.
            txn.execute_unprepared("SELECT pg_advisory_xact_lock(508441031532)").await?;
            migrations::Migrator::up(&txn, None).await?;
            return txn.commit().await;
        }
        migrations::Migrator::up(&self.db, None).await
    }

    /// The underlying connection.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Stores an order and its recipients in one transaction: all or nothing.
    pub async fn insert_order(&self, new: NewOrder) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        Self::insert_order_rows(&txn, new).await?;
        txn.commit().await
    }

    async fn insert_order_rows(
        txn: &sea_orm::DatabaseTransaction,
        new: NewOrder,
    ) -> Result<(), DbErr> {
        let order_id = new.order.id.clone();
        order::Entity::insert(order::ActiveModel::from(new.order))
            .exec_without_returning(txn)
            .await?;
        for chunk in new.recipients.chunks(500).enumerate() {
            let (chunk_no, rows) = chunk;
            let models = rows.iter().enumerate().map(|(i, r)| order_recipient::ActiveModel {
                order_id: Set(order_id.clone()),
                idx: Set((chunk_no * 500 + i) as i32),
                email: Set(r.email.clone()),
                mobile: Set(r.mobile.clone()),
                org_no: Set(r.org_no.clone()),
                nin: Set(r.nin.clone()),
            });
            order_recipient::Entity::insert_many(models).exec_without_returning(txn).await?;
        }
        Ok(())
    }

    /// Stores an order chain and its orders in one transaction, unless the creator already has a
    /// chain with this idempotency id: then nothing is stored and that chain is returned. Two
    /// requests racing with the same id create one chain (the unique index decides).
    pub async fn insert_chain(
        &self,
        chain: order_chain::Model,
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
    async fn begin_chain(
        &self,
        chain: order_chain::Model,
    ) -> Result<Result<sea_orm::DatabaseTransaction, order_chain::Model>, DbErr> {
        let (creator, idempotency_id) = (chain.creator.clone(), chain.idempotency_id.clone());
        let txn = self.db.begin().await?;
        match order_chain::Entity::insert(order_chain::ActiveModel::from(chain))
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
        chain: order_chain::Model,
        order: NewOrder,
        n: notification::Model,
    ) -> Result<ChainInsert, DbErr> {
        let txn = match self.begin_chain(chain).await? {
            Ok(txn) => txn,
            Err(existing) => return Ok(ChainInsert::Exists(existing)),
        };
        Self::insert_order_rows(&txn, order).await?;
        let events = vec![
            (n.id.clone(), n.order_id.clone(), n.status.clone(), "created", None),
            (
                n.id.clone(),
                n.order_id.clone(),
                n.status.clone(),
                "sending",
                Some("attempt 1 (instant)".to_owned()),
            ),
        ];
        notification::Entity::insert(notification::ActiveModel::from(n))
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
    pub async fn chain_orders(&self, chain_id: &str) -> Result<Vec<order::Model>, DbErr> {
        order::Entity::find()
            .filter(order::Column::ChainId.eq(chain_id))
            .order_by_asc(order::Column::Created)
            .all(&self.db)
            .await
    }

    /// The creator's chain with this idempotency id.
    pub async fn find_chain(
        &self,
        creator: &str,
        idempotency_id: &str,
    ) -> Result<Option<order_chain::Model>, DbErr> {
        order_chain::Entity::find()
            .filter(order_chain::Column::Creator.eq(creator))
            .filter(order_chain::Column::IdempotencyId.eq(idempotency_id))
            .one(&self.db)
            .await
    }

    /// The creator's chain with this id.
    pub async fn get_chain(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Option<order_chain::Model>, DbErr> {
        order_chain::Entity::find_by_id(id.to_owned())
            .filter(order_chain::Column::Creator.eq(creator))
            .one(&self.db)
            .await
    }

    /// The reminders of a chain, in send-time order.
    pub async fn chain_reminders(&self, chain_id: &str) -> Result<Vec<order::Model>, DbErr> {
        order::Entity::find()
            .filter(order::Column::ChainId.eq(chain_id))
            .filter(order::Column::OrderType.eq("Reminder"))
            .order_by_asc(order::Column::RequestedSendTime)
            .all(&self.db)
            .await
    }

    /// An order of `creator`, with its recipients; `None` when missing or another org's.
    pub async fn get_order(
        &self,
        id: &str,
        creator: &str,
    ) -> Result<Option<(order::Model, Vec<order_recipient::Model>)>, DbErr> {
        let Some(o) = order::Entity::find_by_id(id.to_owned())
            .filter(order::Column::Creator.eq(creator))
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let recipients = order_recipient::Entity::find()
            .filter(order_recipient::Column::OrderId.eq(id))
            .order_by_asc(order_recipient::Column::Idx)
            .all(&self.db)
            .await?;
        Ok(Some((o, recipients)))
    }

    /// Orders of `creator` with a sender's reference, oldest first, with their recipients.
    pub async fn orders_by_senders_reference(
        &self,
        creator: &str,
        senders_reference: &str,
    ) -> Result<Vec<(order::Model, Vec<order_recipient::Model>)>, DbErr> {
        let orders = order::Entity::find()
            .filter(order::Column::Creator.eq(creator))
            .filter(order::Column::SendersReference.eq(senders_reference))
            .order_by_asc(order::Column::Created)
            .all(&self.db)
            .await?;
        let mut by_order: HashMap<String, Vec<order_recipient::Model>> = HashMap::new();
        let ids: Vec<String> = orders.iter().map(|o| o.id.clone()).collect();
        for chunk in ids.chunks(500) {
            for r in order_recipient::Entity::find()
                .filter(order_recipient::Column::OrderId.is_in(chunk.iter().cloned()))
                .order_by_asc(order_recipient::Column::Idx)
                .all(&self.db)
                .await?
            {
                by_order.entry(r.order_id.clone()).or_default().push(r);
            }
        }
        Ok(orders
            .into_iter()
            .map(|o| {
                let r = by_order.remove(&o.id).unwrap_or_default();
                (o, r)
            })
            .collect())
    }

    /// How many notifications of an order are in each (channel, status), without loading them.
    pub async fn notification_counts(
        &self,
        order_id: &str,
    ) -> Result<Vec<(String, String, i64)>, DbErr> {
        notification::Entity::find()
            .select_only()
            .column(notification::Column::Channel)
            .column(notification::Column::Status)
            .column_as(notification::Column::Id.count(), "n")
            .filter(notification::Column::OrderId.eq(order_id))
            .group_by(notification::Column::Channel)
            .group_by(notification::Column::Status)
            .into_tuple::<(String, String, i64)>()
            .all(&self.db)
            .await
    }

    /// The notifications of one channel of an order, in recipient order.
    pub async fn notifications_of(
        &self,
        order_id: &str,
        channel: Channel,
    ) -> Result<Vec<notification::Model>, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(notification::Column::Channel.eq(channel.as_str()))
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Address)
            .all(&self.db)
            .await
    }

    /// Cancels an order of `creator` that is still `Registered` and whose send time is more than
    /// `cutoff` away, in one conditional update (so a concurrent start cannot slip between the
    /// check and the change).
    pub async fn cancel_order(
        &self,
        id: &str,
        creator: &str,
        cutoff: chrono::Duration,
    ) -> Result<CancelOutcome, DbErr> {
        let Some(o) = order::Entity::find_by_id(id.to_owned())
            .filter(order::Column::Creator.eq(creator))
            .one(&self.db)
            .await?
        else {
            return Ok(CancelOutcome::NotFound);
        };
        if o.status == OrderStatus::Cancelled.as_str() {
            return Ok(CancelOutcome::Cancelled(o));
        }
        let now = Utc::now();
        let res = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(OrderStatus::Cancelled.as_str()))
            .col_expr(order::Column::StatusChanged, Expr::value(now))
            .filter(order::Column::Id.eq(id))
            .filter(order::Column::Status.eq(OrderStatus::Registered.as_str()))
            .filter(order::Column::RequestedSendTime.gt(now + cutoff))
            .exec(&self.db)
            .await?;
        let o = order::Entity::find_by_id(id.to_owned()).one(&self.db).await?.unwrap_or(o);
        if res.rows_affected == 1 {
            Ok(CancelOutcome::Cancelled(o))
        } else {
            Ok(CancelOutcome::TooLate(o))
        }
    }

    /// An order by id, whoever created it (for the worker).
    pub async fn order(&self, id: &str) -> Result<Option<order::Model>, DbErr> {
        order::Entity::find_by_id(id.to_owned()).one(&self.db).await
    }

    /// Takes up to `want` sends of `provider` from the one-second `slot`, which allows `cap` in
    /// all, across every worker sharing this database. Returns how many were granted (0: the slot
    /// is used up). A compare-and-set on the slot's count, so no lock is held.
    pub async fn take_send_tokens(
        &self,
        provider: &str,
        slot: i64,
        want: u32,
        cap: u32,
    ) -> Result<u32, DbErr> {
        use sea_orm::sea_query::{Alias, Query};
        let (t, p, s, u) = (
            Alias::new("send_rate_slots"),
            Alias::new("provider"),
            Alias::new("slot"),
            Alias::new("used"),
        );
        let backend = self.db.get_database_backend();
        for _ in 0..20 {
            let read = Query::select()
                .column(u.clone())
                .from(t.clone())
                .and_where(Expr::col(p.clone()).eq(provider))
                .and_where(Expr::col(s.clone()).eq(slot))
                .to_owned();
            let used: Option<i64> = match self.db.query_one(backend.build(&read)).await? {
                Some(row) => Some(row.try_get_by_index::<i32>(0).map(i64::from)?),
                None => None,
            };
            let take = (cap as i64 - used.unwrap_or(0)).clamp(0, want as i64);
            if take == 0 {
                return Ok(0);
            }
            let won = match used {
                None => {
                    let insert = Query::insert()
                        .into_table(t.clone())
                        .columns([p.clone(), s.clone(), u.clone()])
                        .values_panic([provider.into(), slot.into(), (take as i32).into()])
                        .on_conflict(
                            OnConflict::columns([p.clone(), s.clone()]).do_nothing().to_owned(),
                        )
                        .to_owned();
                    let won = self.db.execute(backend.build(&insert)).await?.rows_affected() == 1;
                    if won {
                        // A new slot: forget the ones older than a minute.
                        let old = Query::delete()
                            .from_table(t.clone())
                            .and_where(Expr::col(s.clone()).lt(slot - 60))
                            .to_owned();
                        self.db.execute(backend.build(&old)).await?;
                    }
                    won
                }
                Some(old) => {
                    let update = Query::update()
                        .table(t.clone())
                        .value(u.clone(), Expr::col(u.clone()).add(take))
                        .and_where(Expr::col(p.clone()).eq(provider))
                        .and_where(Expr::col(s.clone()).eq(slot))
                        .and_where(Expr::col(u.clone()).eq(old))
                        .to_owned();
                    self.db.execute(backend.build(&update)).await?.rows_affected() == 1
                }
            };
            if won {
                return Ok(take as u32);
            }
        }
        // Heavy contention on one slot: let the caller wait for the next.
        Ok(0)
    }

    /// Records that an order's workflow exists.
    pub async fn mark_workflow_started(&self, id: &str) -> Result<(), DbErr> {
        order::Entity::update_many()
            .col_expr(order::Column::WorkflowStarted, Expr::value(true))
            .filter(order::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Orders whose workflow has not been started yet (oldest first).
    pub async fn orders_pending_start(&self, limit: u64) -> Result<Vec<order::Model>, DbErr> {
        order::Entity::find()
            .filter(order::Column::WorkflowStarted.eq(false))
            .order_by_asc(order::Column::Created)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Moves an order from one of `from` to `to`; returns whether it moved.
    pub async fn transition_order(
        &self,
        id: &str,
        from: &[OrderStatus],
        to: OrderStatus,
    ) -> Result<bool, DbErr> {
        let finished = matches!(to, OrderStatus::Completed | OrderStatus::SendConditionNotMet);
        let txn = self.db.begin().await?;
        let res = order::Entity::update_many()
            .col_expr(order::Column::Status, Expr::value(to.as_str()))
            .col_expr(order::Column::StatusChanged, Expr::value(Utc::now()))
            .filter(order::Column::Id.eq(id))
            .filter(order::Column::Status.is_in(from.iter().map(|s| s.as_str())))
            .exec(&txn)
            .await?;
        let moved = res.rows_affected > 0;
        if moved && finished {
            // The status feed's entry commits with the status. On PostgreSQL the lock makes
            // entries commit in sequence order, so a reader paging by sequence number never
            // passes an entry that commits later (SQLite has one writer anyway).
            if txn.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
                txn.execute_unprepared("LOCK TABLE status_feed IN SHARE ROW EXCLUSIVE MODE")
                    .await?;
            }
            let creator = order::Entity::find_by_id(id.to_owned())
                .one(&txn)
                .await?
                .map(|o| o.creator)
                .unwrap_or_default();
            status_feed::Entity::insert(status_feed::ActiveModel {
                order_id: Set(id.to_owned()),
                creator: Set(creator),
                created: Set(Utc::now()),
                ..Default::default()
            })
            .on_conflict(OnConflict::column(status_feed::Column::OrderId).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await?;
        Ok(moved)
    }

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

    /// Orders by id (any creator), for pages that name several.
    pub async fn orders_by_ids(&self, ids: &[String]) -> Result<Vec<order::Model>, DbErr> {
        order::Entity::find()
            .filter(order::Column::Id.is_in(ids.iter().cloned()))
            .all(&self.db)
            .await
    }

    /// The notifications of several orders.
    pub async fn notifications_of_orders(
        &self,
        order_ids: &[String],
    ) -> Result<Vec<notification::Model>, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.is_in(order_ids.iter().cloned()))
            .order_by_asc(notification::Column::RecipientIdx)
            .all(&self.db)
            .await
    }

    /// Recipients `from_index..from_index+limit` of an order.
    pub async fn recipients_slice(
        &self,
        order_id: &str,
        from_index: u32,
        limit: u32,
    ) -> Result<Vec<order_recipient::Model>, DbErr> {
        order_recipient::Entity::find()
            .filter(order_recipient::Column::OrderId.eq(order_id))
            .filter(order_recipient::Column::Idx.gte(from_index as i32))
            .order_by_asc(order_recipient::Column::Idx)
            .limit(limit as u64)
            .all(&self.db)
            .await
    }

    /// Persons of the contact register, by national identity number.
    pub async fn lookup_persons(
        &self,
        nins: &[String],
    ) -> Result<HashMap<String, PersonContact>, DbErr> {
        if nins.is_empty() {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for chunk in nins.chunks(500) {
            for p in contact_person::Entity::find()
                .filter(contact_person::Column::Nin.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                out.insert(
                    p.nin,
                    PersonContact {
                        name: p.name,
                        email: p.email,
                        mobile: p.mobile,
                        reserved: p.reserved,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Organisations of the contact register, by organisation number.
    pub async fn lookup_organizations(
        &self,
        orgs: &[String],
    ) -> Result<HashMap<String, OrgContact>, DbErr> {
        if orgs.is_empty() {
            return Ok(HashMap::new());
        }
        let mut out = HashMap::new();
        for chunk in orgs.chunks(500) {
            for o in contact_organization::Entity::find()
                .filter(contact_organization::Column::OrgNo.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                let list = |v: &serde_json::Value| -> Vec<String> {
                    serde_json::from_value(v.clone()).unwrap_or_default()
                };
                out.insert(
                    o.org_no,
                    OrgContact { name: o.name, emails: list(&o.emails), mobiles: list(&o.mobiles) },
                );
            }
        }
        Ok(out)
    }

    /// Adds or replaces a person in the contact register.
    pub async fn upsert_person(&self, nin: &str, c: &PersonContact) -> Result<(), DbErr> {
        self.upsert_persons(&[(nin.to_owned(), c.clone())]).await
    }

    /// Adds or replaces many persons in the contact register, a few hundred rows a statement.
    pub async fn upsert_persons(&self, persons: &[(String, PersonContact)]) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        for chunk in persons.chunks(500) {
            contact_person::Entity::insert_many(chunk.iter().map(|(nin, c)| {
                contact_person::ActiveModel {
                    nin: Set(nin.clone()),
                    name: Set(c.name.clone()),
                    email: Set(c.email.clone()),
                    mobile: Set(c.mobile.clone()),
                    reserved: Set(c.reserved),
                }
            }))
            .on_conflict(
                OnConflict::column(contact_person::Column::Nin)
                    .update_columns([
                        contact_person::Column::Name,
                        contact_person::Column::Email,
                        contact_person::Column::Mobile,
                        contact_person::Column::Reserved,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        }
        txn.commit().await
    }

    /// Adds or replaces an organisation in the contact register.
    pub async fn upsert_organization(&self, org_no: &str, c: &OrgContact) -> Result<(), DbErr> {
        contact_organization::Entity::insert(contact_organization::ActiveModel {
            org_no: Set(org_no.to_owned()),
            name: Set(c.name.clone()),
            emails: Set(serde_json::json!(c.emails)),
            mobiles: Set(serde_json::json!(c.mobiles)),
        })
        .on_conflict(
            OnConflict::column(contact_organization::Column::OrgNo)
                .update_columns([
                    contact_organization::Column::Name,
                    contact_organization::Column::Emails,
                    contact_organization::Column::Mobiles,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        Ok(())
    }

    /// Inserts notifications, skipping any that already exist (same order, recipient, channel
    /// and address), so a retried batch is harmless.
    pub async fn insert_notifications(&self, rows: Vec<notification::Model>) -> Result<(), DbErr> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        for chunk in rows.chunks(200) {
            let models = chunk.iter().cloned().map(notification::ActiveModel::from);
            notification::Entity::insert_many(models)
                .on_conflict(
                    OnConflict::columns([
                        notification::Column::OrderId,
                        notification::Column::RecipientIdx,
                        notification::Column::Channel,
                        notification::Column::Address,
                    ])
                    .do_nothing()
                    .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await?;
        }
        // Only the rows this call created (a retried batch keeps its first ids) get an event.
        let mut created = Vec::new();
        for chunk in ids.chunks(500) {
            for n in notification::Entity::find()
                .filter(notification::Column::Id.is_in(chunk.iter().cloned()))
                .all(&self.db)
                .await?
            {
                created.push((n.id, n.order_id, n.status, "created", None));
            }
        }
        Self::log_events(&self.db, created).await
    }

    /// The notifications of one channel of an order not yet handed to a provider (`New`, or
    /// `Sending` left by an attempt that did not finish), through the (order, channel, status)
    /// index.
    fn unsent(order_id: &str, channel: Channel) -> sea_orm::Select<notification::Entity> {
        let pending =
            [NotificationStatus::new_for(channel), NotificationStatus::sending_for(channel)];
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(notification::Column::Channel.eq(channel.as_str()))
            .filter(notification::Column::Status.is_in(pending.iter().map(|s| s.as_str())))
    }

    /// Claims up to `limit` unsent notifications of one channel of an order and marks them
    /// `Sending` (counting the attempt). Rows left in `Sending` by a crashed attempt are claimed
    /// again: that is the documented at-least-once window.
    pub async fn claim_notifications(
        &self,
        order_id: &str,
        channel: Channel,
        limit: u32,
    ) -> Result<Vec<notification::Model>, DbErr> {
        // One transaction: one commit for the whole batch's claim and its status log.
        let txn = self.db.begin().await?;
        let rows = Self::unsent(order_id, channel)
            // No ORDER BY: the (order, channel, status) index yields rows in its own order and the
            // LIMIT stops the scan; sorting would read every pending row of a large order once
            // per batch.
            .limit(limit as u64)
            .all(&txn)
            .await?;
        if rows.is_empty() {
            return Ok(rows);
        }
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        notification::Entity::update_many()
            .col_expr(
                notification::Column::Status,
                Expr::value(NotificationStatus::sending_for(channel).as_str()),
            )
            .col_expr(notification::Column::StatusChanged, Expr::value(Utc::now()))
            .col_expr(
                notification::Column::Attempts,
                Expr::col(notification::Column::Attempts).add(1),
            )
            .filter(notification::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        let events = rows
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::sending_for(channel).as_str().to_owned(),
                    "sending",
                    Some(format!("attempt {}", r.attempts + 1)),
                )
            })
            .collect();
        Self::log_events(&txn, events).await?;
        txn.commit().await?;
        Ok(rows)
    }

    /// Records providers' answers, each only if its notification is still `Sending`, in one
    /// transaction; the status log gets a line for each row that moved.
    pub async fn record_results(&self, results: &[&ProviderResult]) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        let mut events = Vec::with_capacity(results.len());
        for r in results {
            let moved = notification::Entity::update_many()
                .col_expr(notification::Column::AwaitsReport, Expr::value(r.awaits_report))
                .col_expr(notification::Column::Status, Expr::value(r.status.as_str()))
                .col_expr(notification::Column::StatusChanged, Expr::value(r.answered_at))
                .col_expr(notification::Column::StatusReason, Expr::value(r.reason.clone()))
                .col_expr(notification::Column::ProviderRef, Expr::value(r.provider_ref.clone()))
                .filter(notification::Column::Id.eq(r.id.as_str()))
                .filter(
                    notification::Column::Status
                        .eq(NotificationStatus::sending_for(r.status.channel()).as_str()),
                )
                .exec(&txn)
                .await?
                .rows_affected;
            if moved > 0 {
                events.push((
                    (
                        r.id.clone(),
                        r.order_id.clone(),
                        r.status.as_str().to_owned(),
                        "provider",
                        r.reason.clone(),
                    ),
                    r.answered_at,
                ));
            }
        }
        Self::log_events_at(&txn, events).await?;
        txn.commit().await
    }

    /// Whether any notification of one channel of an order is not yet sent (an index probe that
    /// stops at the first row, however large the order).
    pub async fn has_pending(&self, order_id: &str, channel: Channel) -> Result<bool, DbErr> {
        Ok(Self::unsent(order_id, channel)
            .select_only()
            .column(notification::Column::Id)
            .limit(1)
            .into_tuple::<String>()
            .one(&self.db)
            .await?
            .is_some())
    }

    /// All notifications of an order, in recipient order.
    pub async fn notifications(&self, order_id: &str) -> Result<Vec<notification::Model>, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .order_by_asc(notification::Column::RecipientIdx)
            .order_by_asc(notification::Column::Channel)
            .all(&self.db)
            .await
    }

    /// How many notifications of an order still wait for sending or a report.
    pub async fn count_open(&self, order_id: &str) -> Result<u64, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(open_condition())
            .count(&self.db)
            .await
    }

    /// `Completed` when no notification is open (else `Processed`), and when the next open one
    /// expires.
    pub async fn settle_order(&self, order_id: &str) -> Result<Settled, DbErr> {
        let open = self.count_open(order_id).await?;
        let target = if open == 0 { OrderStatus::Completed } else { OrderStatus::Processed };
        self.transition_order(order_id, &[OrderStatus::Processing, OrderStatus::Processed], target)
            .await?;
        let next_expiry = if open == 0 {
            None
        } else {
            notification::Entity::find()
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(open_condition())
                .order_by_asc(notification::Column::Expiry)
                .one(&self.db)
                .await?
                .map(|n| n.expiry)
        };
        let status = self
            .order(order_id)
            .await?
            .and_then(|o| OrderStatus::parse(&o.status))
            .unwrap_or(target);
        Ok(Settled { status, next_expiry })
    }

    /// Gives up every open notification of an order whose expiry has passed: it becomes
    /// `*_Failed_TTL`, whether it was never sent or never reported. Returns how many.
    pub async fn expire_notifications(
        &self,
        order_id: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        let mut n = 0;
        let expiring = notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(open_condition())
            .filter(notification::Column::Expiry.lte(now))
            .all(&self.db)
            .await?;
        let events = expiring
            .iter()
            .filter_map(|r| {
                let ch = Channel::parse(&r.channel)?;
                Some((
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::ttl_for(ch).as_str().to_owned(),
                    "ttl",
                    Some(format!("still {} at its expiry", r.status)),
                ))
            })
            .collect();
        Self::log_events(&self.db, events).await?;
        for channel in [Channel::Email, Channel::Sms] {
            let res = notification::Entity::update_many()
                .col_expr(
                    notification::Column::Status,
                    Expr::value(NotificationStatus::ttl_for(channel).as_str()),
                )
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(notification::Column::Channel.eq(channel.as_str()))
                .filter(open_condition())
                .filter(notification::Column::Expiry.lte(now))
                .exec(&self.db)
                .await?;
            n += res.rows_affected;
        }
        Ok(n)
    }

    /// Gives up claimed (`Sending`) notifications of one channel whose time-to-live has passed,
    /// by id, in one transaction: only rows that really move (another attempt may have recorded
    /// a result meanwhile) get a status-log entry. Returns how many moved.
    pub async fn expire_claimed(
        &self,
        channel: Channel,
        rows: &[notification::Model],
        now: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        if rows.is_empty() {
            return Ok(0);
        }
        let ttl = NotificationStatus::ttl_for(channel);
        let txn = self.db.begin().await?;
        let mut events = Vec::new();
        for r in rows {
            let moved = notification::Entity::update_many()
                .col_expr(notification::Column::Status, Expr::value(ttl.as_str()))
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .filter(notification::Column::Id.eq(r.id.as_str()))
                .filter(
                    notification::Column::Status
                        .eq(NotificationStatus::sending_for(channel).as_str()),
                )
                .exec(&txn)
                .await?
                .rows_affected;
            if moved > 0 {
                events.push((
                    r.id.clone(),
                    r.order_id.clone(),
                    ttl.as_str().to_owned(),
                    "ttl",
                    Some(format!("still unsent at its expiry ({})", r.expiry.to_rfc3339())),
                ));
            }
        }
        let n = events.len() as u64;
        Self::log_events(&txn, events).await?;
        txn.commit().await?;
        Ok(n)
    }

    /// Applies a delivery report. A report only moves a notification forward (a repeat, or a
    /// late "accepted" after "delivered", changes nothing); a report for no notification, or for
    /// one already given up at its time-to-live, is kept as a dead report.
    pub async fn apply_report(
        &self,
        report: &Report,
        channel: Channel,
    ) -> Result<ApplyOutcome, DbErr> {
        self.apply_report_inner(report, channel, true).await
    }

    /// Re-applies a dead report: like [`Store::apply_report`], but an unmatched report is not
    /// stored again (the caller still holds it).
    pub async fn reapply_report(
        &self,
        report: &Report,
        channel: Channel,
    ) -> Result<ApplyOutcome, DbErr> {
        self.apply_report_inner(report, channel, false).await
    }

    async fn apply_report_inner(
        &self,
        report: &Report,
        channel: Channel,
        keep_dead: bool,
    ) -> Result<ApplyOutcome, DbErr> {
        // The update is guarded by the status read; when the sender (or another report) moved
        // the row in between, read again instead of losing this report.
        for _ in 0..8 {
            if let Some(outcome) = self.try_apply_report(report, channel, keep_dead).await? {
                return Ok(outcome);
            }
        }
        Err(DbErr::Custom("delivery report kept conflicting with concurrent updates".into()))
    }

    async fn try_apply_report(
        &self,
        report: &Report,
        channel: Channel,
        keep_dead: bool,
    ) -> Result<Option<ApplyOutcome>, DbErr> {
        let found = match &report.target {
            ReportTarget::Notification(id) => {
                notification::Entity::find_by_id(id.clone()).one(&self.db).await?
            }
            ReportTarget::ProviderRef(r) => {
                notification::Entity::find()
                    .filter(notification::Column::ProviderRef.eq(r.clone()))
                    .one(&self.db)
                    .await?
            }
        }
        .filter(|n| n.channel == channel.as_str());
        let Some(n) = found else {
            return self
                .dead_report(report, channel, "UNKNOWN_REFERENCE", keep_dead)
                .await
                .map(Some);
        };
        let current =
            NotificationStatus::parse(&n.status).unwrap_or(NotificationStatus::new_for(channel));
        if current == NotificationStatus::ttl_for(channel) {
            return self
                .dead_report(report, channel, "NOTIFICATION_EXPIRED", keep_dead)
                .await
                .map(Some);
        }
        // The raw report is kept even when it changes nothing.
        let mut update = notification::Entity::update_many()
            .col_expr(notification::Column::DeliveryReport, Expr::value(report.raw.clone()))
            .filter(notification::Column::Id.eq(n.id.clone()));
        if let Some(r) = &report.provider_ref
            && n.provider_ref.is_none()
        {
            update = update.col_expr(notification::Column::ProviderRef, Expr::value(r.clone()));
        }
        // A notification is still movable while it is unsent or sent-and-awaiting a report (a
        // provider that does not report may still send one: it is applied all the same).
        let moves = current.is_open() && report.status.rank() > current.rank();
        if !moves {
            update.exec(&self.db).await?;
            Self::log_events(
                &self.db,
                vec![(
                    n.id.clone(),
                    n.order_id.clone(),
                    report.status.as_str().to_owned(),
                    "report",
                    Some(format!("no change: already {}", n.status)),
                )],
            )
            .await?;
            return Ok(Some(ApplyOutcome::Unchanged { order_id: n.order_id }));
        }
        // A report without words keeps the note recorded at sending (e.g. a sender-policy note).
        if let Some(reason) = &report.reason {
            update =
                update.col_expr(notification::Column::StatusReason, Expr::value(reason.clone()));
        }
        let res = update
            .col_expr(notification::Column::Status, Expr::value(report.status.as_str()))
            .col_expr(notification::Column::StatusChanged, Expr::value(Utc::now()))
            // Guard against a concurrent report: only from the status we read.
            .filter(notification::Column::Status.eq(n.status.clone()))
            .exec(&self.db)
            .await?;
        if res.rows_affected == 0 {
            return Ok(None);
        }
        Self::log_events(
            &self.db,
            vec![(
                n.id.clone(),
                n.order_id.clone(),
                report.status.as_str().to_owned(),
                "report",
                report.reason.clone(),
            )],
        )
        .await?;
        let open_left = self.count_open(&n.order_id).await?;
        let lag = (Utc::now() - n.status_changed).to_std().ok();
        Ok(Some(ApplyOutcome::Applied { order_id: n.order_id, open_left, lag }))
    }

    async fn dead_report(
        &self,
        report: &Report,
        channel: Channel,
        reason: &'static str,
        keep: bool,
    ) -> Result<ApplyOutcome, DbErr> {
        let id = uuid::Uuid::new_v4().to_string();
        if !keep {
            return Ok(ApplyOutcome::Dead { id, reason });
        }
        dead_report::Entity::insert(dead_report::ActiveModel {
            id: Set(id.clone()),
            channel: Set(channel.as_str().to_owned()),
            reference: Set(report.target.text().to_owned()),
            status: Set(report.status.as_str().to_owned()),
            payload: Set(report.raw.clone()),
            reason: Set(reason.to_owned()),
            received_at: Set(Utc::now()),
            applied_at: Set(None),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(ApplyOutcome::Dead { id, reason })
    }

    /// Orders per status, and notifications per (channel, status), across all orders: the
    /// gauges of `/metrics`.
    pub async fn status_counts(
        &self,
    ) -> Result<(Vec<(String, i64)>, Vec<(String, String, i64)>, u64), DbErr> {
        let orders = order::Entity::find()
            .select_only()
            .column(order::Column::Status)
            .column_as(order::Column::Id.count(), "n")
            .group_by(order::Column::Status)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await?;
        let notifications = notification::Entity::find()
            .select_only()
            .column(notification::Column::Channel)
            .column(notification::Column::Status)
            .column_as(notification::Column::Id.count(), "n")
            .group_by(notification::Column::Channel)
            .group_by(notification::Column::Status)
            .into_tuple::<(String, String, i64)>()
            .all(&self.db)
            .await?;
        let dead = dead_report::Entity::find()
            .filter(dead_report::Column::AppliedAt.is_null())
            .count(&self.db)
            .await?;
        Ok((orders, notifications, dead))
    }

    /// Notifications a redrive would send again: failed without ever being accepted by a
    /// provider (`*_Failed_TTL` while unsent) or refused outright (`Email_Failed`, `SMS_Failed`).
    /// Nothing sent, accepted or delivered qualifies.
    fn redrivable() -> sea_orm::Condition {
        use sea_orm::Condition;
        Condition::any()
            .add(
                Condition::all()
                    .add(notification::Column::Status.is_in([
                        NotificationStatus::EmailFailedTtl.as_str(),
                        NotificationStatus::SmsFailedTtl.as_str(),
                    ]))
                    .add(notification::Column::AwaitsReport.eq(false)),
            )
            .add(notification::Column::Status.is_in([
                NotificationStatus::EmailFailed.as_str(),
                NotificationStatus::SmsFailed.as_str(),
            ]))
    }

    /// How many notifications of an order a redrive would send again.
    pub async fn count_redrivable(&self, order_id: &str) -> Result<u64, DbErr> {
        notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(Self::redrivable())
            .count(&self.db)
            .await
    }

    /// Resets the redrivable notifications to `New` with a fresh expiry and reopens the order.
    pub async fn redrive_reset(
        &self,
        order_id: &str,
        ttl: std::time::Duration,
    ) -> Result<u64, DbErr> {
        let now = Utc::now();
        let mut n = 0;
        let resetting = notification::Entity::find()
            .filter(notification::Column::OrderId.eq(order_id))
            .filter(Self::redrivable())
            .all(&self.db)
            .await?;
        let events = resetting
            .iter()
            .filter_map(|r| {
                let ch = Channel::parse(&r.channel)?;
                Some((
                    r.id.clone(),
                    r.order_id.clone(),
                    NotificationStatus::new_for(ch).as_str().to_owned(),
                    "redrive",
                    Some(format!("was {}", r.status)),
                ))
            })
            .collect();
        Self::log_events(&self.db, events).await?;
        for channel in [Channel::Email, Channel::Sms] {
            let res = notification::Entity::update_many()
                .col_expr(
                    notification::Column::Status,
                    Expr::value(NotificationStatus::new_for(channel).as_str()),
                )
                .col_expr(notification::Column::StatusChanged, Expr::value(now))
                .col_expr(
                    notification::Column::StatusReason,
                    Expr::value(Some("Redriven by an operator.".to_owned())),
                )
                .col_expr(notification::Column::Expiry, Expr::value(Self::expiry_from(now, ttl)))
                .filter(notification::Column::OrderId.eq(order_id))
                .filter(notification::Column::Channel.eq(channel.as_str()))
                .filter(Self::redrivable())
                .exec(&self.db)
                .await?;
            n += res.rows_affected;
        }
        self.transition_order(
            order_id,
            &[OrderStatus::Completed, OrderStatus::Processed],
            OrderStatus::Processing,
        )
        .await?;
        Ok(n)
    }

    /// Records status changes for the timeline, as of now: (notification, order, status, source,
    /// detail).
    async fn log_events<C: ConnectionTrait>(
        db: &C,
        rows: Vec<(String, String, String, &str, Option<String>)>,
    ) -> Result<(), DbErr> {
        let now = Utc::now();
        Self::log_events_at(db, rows.into_iter().map(|r| (r, now)).collect()).await
    }

    /// Records status changes for the timeline, each at its own time.
    async fn log_events_at<C: ConnectionTrait>(
        db: &C,
        rows: Vec<EventAt<'_>>,
    ) -> Result<(), DbErr> {
        for chunk in rows.chunks(200) {
            let models: Vec<notification_event::ActiveModel> = chunk
                .iter()
                .map(|((nid, oid, status, source, detail), at)| notification_event::ActiveModel {
                    id: Set(uuid::Uuid::new_v4().to_string()),
                    order_id: Set(oid.clone()),
                    notification_id: Set(nid.clone()),
                    status: Set(status.clone()),
                    source: Set((*source).to_owned()),
                    detail: Set(detail.clone()),
                    at: Set(*at),
                })
                .collect();
            if !models.is_empty() {
                notification_event::Entity::insert_many(models).exec_without_returning(db).await?;
            }
        }
        Ok(())
    }

    /// An order's notification events, oldest first.
    pub async fn notification_events(
        &self,
        order_id: &str,
    ) -> Result<Vec<notification_event::Model>, DbErr> {
        notification_event::Entity::find()
            .filter(notification_event::Column::OrderId.eq(order_id))
            .order_by_asc(notification_event::Column::At)
            .all(&self.db)
            .await
    }

    /// Dead reports not yet re-applied, oldest first.
    pub async fn dead_reports(&self, limit: u64) -> Result<Vec<dead_report::Model>, DbErr> {
        dead_report::Entity::find()
            .filter(dead_report::Column::AppliedAt.is_null())
            .order_by_asc(dead_report::Column::ReceivedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// One dead report.
    pub async fn dead_report_by_id(&self, id: &str) -> Result<Option<dead_report::Model>, DbErr> {
        dead_report::Entity::find_by_id(id.to_owned()).one(&self.db).await
    }

    /// Marks a dead report as re-applied.
    pub async fn mark_dead_report_applied(&self, id: &str) -> Result<(), DbErr> {
        dead_report::Entity::update_many()
            .col_expr(dead_report::Column::AppliedAt, Expr::value(Utc::now()))
            .filter(dead_report::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// The time a notification for `send_time` is given up at.
    pub fn expiry_from(send_time: DateTime<Utc>, ttl: std::time::Duration) -> DateTime<Utc> {
        send_time.max(Utc::now())
            + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(48))
    }
}
