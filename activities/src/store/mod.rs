//! The database: orders, recipients, notifications and the embedded contact register.
//!
//! Works on SQLite (embedded default) and PostgreSQL (production) through sea-orm. One `Store`
//! handle; its queries live in a module per aggregate: `orders`, `chains` (the `/future` API's
//! chains and instant messages), `notifications`, `contact_register`, `reports` (delivery and
//! dead reports), `rate_slots`, `status_feed`, `events` (the notification event log), `actions` (who cancelled
//! or redrove an order) and `webhooks` (status
//! webhooks: endpoints, messages, attempts). This file
//! holds the connection, the migrations and what the modules share.

mod actions;
mod chains;
mod contact_register;
pub mod entities;
mod events;
mod metric_snapshots;
pub mod migrations;
mod notifications;
mod orders;
mod rate_slots;
mod reports;
mod status_feed;
mod webhooks;

pub use actions::OrderAction;
pub use chains::{Chain, ChainInsert, InstantWriter};
pub use contact_register::{OrgContact, PersonContact};
pub use events::{EventBucket, EventSecond, StatusEvent};
pub use metric_snapshots::{MetricSnapshot, ProcessWindow};
pub use notifications::{
    FailureReason, Notification, NotificationKey, ProviderResult, ResultWriter, Settled,
};
pub use orders::{COUNT_CAP, CancelOutcome, OrderPage, OrderSearch, StatusCounts};
pub use reports::{ApplyOutcome, DeadReport, Report, ReportTarget};
pub use status_feed::FeedEntry;
pub use webhooks::{
    DeliveryStatus, EndpointChange, NewEndpoint, Undispatched, WebhookAttempt, WebhookEndpoint,
    WebhookMessage,
};

use entities::notification;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use std::sync::Arc;
use std::time::Duration;
use varsel_workflows::domain::NotificationStatus;

/// A handle on the database, cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    db: Arc<DatabaseConnection>,
}

/// Notifications that still wait: not yet sent, or sent to a provider that reports delivery
/// and not yet reported.
pub(super) fn open_condition() -> sea_orm::Condition {
    open_on(notification::Column::Status, notification::Column::AwaitsReport)
}

/// [`open_condition`] over any table with a status and an awaits-report column (the
/// notifications themselves, or their counts).
pub(super) fn open_on(
    status: impl sea_orm::ColumnTrait,
    awaits_report: impl sea_orm::ColumnTrait,
) -> sea_orm::Condition {
    use sea_orm::Condition;
    let unsent = [
        NotificationStatus::EmailNew,
        NotificationStatus::EmailSending,
        NotificationStatus::SmsNew,
        NotificationStatus::SmsSending,
    ];
    let sent = [NotificationStatus::EmailSucceeded, NotificationStatus::SmsAccepted];
    Condition::any()
        .add(status.is_in(unsent))
        .add(Condition::all().add(status.is_in(sent)).add(awaits_report.eq(true)))
}

/// The next group of a group-commit writer: waits for one item, then takes whatever else is
/// already waiting, `max` in all at most. `None` once every sender is gone.
pub(super) async fn next_group<T>(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<T>,
    max: usize,
) -> Option<Vec<T>> {
    let mut group = vec![rx.recv().await?];
    while group.len() < max
        && let Ok(more) = rx.try_recv()
    {
        group.push(more);
    }
    Some(group)
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
        Ok(Self { db: Arc::new(db) })
    }

    /// A store on a connection made elsewhere (a test's mock connection, a tool's own pool);
    /// not migrated.
    pub fn from_connection(db: DatabaseConnection) -> Self {
        Self { db: Arc::new(db) }
    }

    /// The connection back, when this is the last handle on it (a test reads its mock
    /// connection's log this way).
    pub fn into_connection(self) -> Result<DatabaseConnection, Self> {
        Arc::try_unwrap(self.db).map_err(|db| Self { db })
    }

    /// A store with no connection, for generating documents offline; every query fails.
    pub fn disconnected() -> Self {
        Self { db: Arc::new(DatabaseConnection::Disconnected) }
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
        migrations::Migrator::up(&*self.db, None).await
    }

    /// What readiness asks of the database: that it answers, and how many of this build's
    /// migrations it still lacks (0 when another process of an older build runs against it
    /// and this one has migrated, say).
    pub async fn readiness(&self) -> Result<usize, DbErr> {
        self.db.ping().await?;
        Ok(migrations::Migrator::get_pending_migrations(&*self.db).await?.len())
    }

    /// The underlying connection.
    pub fn conn(&self) -> &DatabaseConnection {
        &self.db
    }
}
