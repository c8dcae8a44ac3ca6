//! The reads and the send path stay fast with many orders and large ones: every query the read
//! endpoints and the send path make is answered from an index, on SQLite and on PostgreSQL
//! (checked in the query plans, not by timing). The queries are the store's own: each store call
//! runs once on sea-orm's mock connection, which records the SQL it issues, and that SQL, with its
//! values, is explained on the real database.

use sea_orm::{
    ConnectionTrait, DatabaseBackend, DatabaseConnection, MockDatabase, MockExecResult, Statement,
};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use varsel_activities::Store;
use varsel_activities::store::OrderSearch;
use varsel_workflows::domain::{Channel, OrderStatus};

type Call = fn(Store) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// (what it serves, the store call, the index that must answer its first query: SQLite's
/// name|PostgreSQL's name)
const QUERIES: &[(&str, Call, &str)] = &[
    (
        "GET /orders?sendersReference",
        |s| Box::pin(async move { drop(s.orders_by_senders_reference("ttd", "ref").await) }),
        "ix_orders_creator_sref_created_status",
    ),
    (
        "the dispatcher",
        |s| Box::pin(async move { drop(s.orders_pending_start(200).await) }),
        "ix_orders_workflow_started",
    ),
    (
        "GET /orders/{id}/notifications/*",
        |s| Box::pin(async move { drop(s.notifications_of("x", Channel::Email).await) }),
        // In recipient order: the identity index (order, recipient, channel, address) gives the
        // rows already sorted.
        "ux_notifications_identity",
    ),
    (
        "GET /orders/{id}/status",
        |s| Box::pin(async move { drop(s.notification_counts("x").await) }),
        // The counts kept as notifications change: a few rows of the order's, whatever its size.
        "sqlite_autoindex_order_counts_1|order_counts_pkey",
    ),
    (
        "a delivery report's \"anything open?\"",
        |s| Box::pin(async move { drop(s.count_open("x").await) }),
        "sqlite_autoindex_order_counts_1|order_counts_pkey",
    ),
    (
        "generation's recipients and GET /orders/{id}",
        |s| Box::pin(async move { drop(s.recipients_slice("x", 0, 1000).await) }),
        "sqlite_autoindex_order_recipients_1|order_recipients_pkey",
    ),
    (
        "GET /future/shipment/feed",
        |s| Box::pin(async move { drop(s.status_feed("ttd", 0, 500, false).await) }),
        "ix_status_feed_creator_seq",
    ),
    // The send path of a large order: each batch's claim and its "anything left?" probe read only
    // the rows they return (no sort over every pending row of the order).
    (
        "a send batch's claim",
        |s| Box::pin(async move { drop(s.claim_notifications("x", Channel::Email, 1000).await) }),
        "ix_notifications_order_channel_status_recipient",
    ),
    (
        "a send batch's claim of a slice",
        |s| {
            Box::pin(
                async move { drop(s.claim_slice("x", Channel::Email, 2000..3000, 1000).await) },
            )
        },
        "ix_notifications_order_channel_status_recipient",
    ),
    (
        "a send batch's pending probe in a slice",
        |s| Box::pin(async move { drop(s.has_pending_in("x", Channel::Sms, 0..1000).await) }),
        "ix_notifications_order_channel_status_recipient",
    ),
    (
        "a send batch's check of its claim",
        |s| Box::pin(async move { drop(s.reclaimed(&[("x".to_owned(), 1)]).await) }),
        "sqlite_autoindex_notifications_1|notifications_pkey",
    ),
    (
        "a send batch's pending probe",
        |s| Box::pin(async move { drop(s.has_pending("x", Channel::Email).await) }),
        "ix_notifications_order_channel_status_recipient",
    ),
    (
        "a webhook pair's waiting messages",
        |s| Box::pin(async move { drop(s.pending_webhooks("ep", "x", 50).await) }),
        // PostgreSQL, on these empty tables, may take the endpoint's index (in `seq` order, the
        // pair filtered): either way one endpoint's rows, never the table.
        "ix_webhook_messages_pair|ix_webhook_messages_",
    ),
    (
        "the status webhooks of notification changes (with every event logged)",
        |s| Box::pin(async move { drop(s.webhook_subscribers(&["x".to_owned()]).await) }),
        "ix_webhook_endpoints_creator",
    ),
    (
        "the webhook outbox",
        |s| Box::pin(async move { drop(s.undispatched_webhooks(500).await) }),
        "ix_webhook_messages_dispatched",
    ),
    (
        "GET /webhooks/{id}/deliveries",
        |s| Box::pin(async move { drop(s.webhook_messages_of("ep", None, Some(10), 50).await) }),
        "ix_webhook_messages_endpoint_seq",
    ),
    (
        "GET /operator/orders (newest first, every creator)",
        |s| Box::pin(async move { drop(s.search_orders(&search(None, None)).await) }),
        "ix_orders_created_status",
    ),
    (
        "GET /operator/orders?creator",
        |s| Box::pin(async move { drop(s.search_orders(&search(Some("ttd"), None)).await) }),
        "ix_orders_creator_created_status",
    ),
    (
        "GET /operator/orders?status",
        |s| {
            Box::pin(async move {
                drop(s.search_orders(&search(None, Some(OrderStatus::Completed))).await)
            })
        },
        "ix_orders_status_created",
    ),
    (
        "a redrive's preview",
        |s| Box::pin(async move { drop(s.redrivable_notifications("x", 1000).await) }),
        // Either of the order's indexes: one order's rows, never the table.
        "ux_notifications_identity|ix_notifications_order_channel_status_recipient",
    ),
    (
        "an order's timeline of actions (cancel, redrive)",
        |s| Box::pin(async move { drop(s.actions_of("x").await) }),
        "ix_order_actions_order_at",
    ),
    (
        "an order's timeline of webhook attempts",
        |s| Box::pin(async move { drop(s.webhook_attempts_of_order("x", None).await) }),
        "ix_webhook_attempts_order_at",
    ),
    (
        "the console: a page of an order's notifications, past the first, of some statuses",
        |s| {
            Box::pin(async move {
                let after = varsel_activities::store::NotificationKey {
                    recipient_idx: 7,
                    channel: Channel::Email,
                    address: "a@example.no".into(),
                };
                let failed = [varsel_workflows::domain::NotificationStatus::EmailFailedTtl];
                drop(s.notification_page("x", &failed, Some(&after), 51).await)
            })
        },
        // In recipient order from the identity index: the page is read, never the order.
        "ux_notifications_identity",
    ),
    (
        "the console: a page's notification events",
        |s| {
            Box::pin(
                async move { drop(s.events_of_notifications(&["a".into(), "b".into()]).await) },
            )
        },
        "ix_notification_events_notification_at",
    ),
    (
        "the console: why an order's notifications failed",
        |s| Box::pin(async move { drop(s.failure_reasons("x", 12).await) }),
        "ux_notifications_identity|ix_notifications_order_channel_status_recipient",
    ),
    (
        "the console: when an order's events begin and end",
        |s| Box::pin(async move { drop(s.event_span("x").await) }),
        "ix_notification_events_order_at",
    ),
    (
        "the console's picture: an order's events counted over time",
        |s| Box::pin(async move { drop(s.event_buckets("x", chrono::Utc::now(), 1.0).await) }),
        "ix_notification_events_order_at",
    ),
    (
        "the console's picture of a large order: its events counted per second",
        |s| Box::pin(async move { drop(s.event_seconds("x").await) }),
        "sqlite_autoindex_order_event_seconds_1|order_event_seconds_pkey",
    ),
    (
        "the console's overview: orders waiting for their workflow to start",
        |s| Box::pin(async move { drop(s.count_pending_start(1000).await) }),
        "ix_orders_workflow_started",
    ),
    (
        "the console's overview: the oldest unfinished order",
        |s| Box::pin(async move { drop(s.oldest_unfinished_order().await) }),
        "ix_orders_status_created",
    ),
    (
        "the console's overview: the processes that kept counters in a window",
        |s| {
            Box::pin(async move {
                drop(s.metric_window(chrono::Utc::now() - chrono::Duration::hours(1)).await)
            })
        },
        "ix_metric_snapshots_taken",
    ),
];

/// An operator's search of one page, past the first (the keyset cursor in the query too).
fn search(creator: Option<&str>, status: Option<OrderStatus>) -> OrderSearch {
    OrderSearch {
        creator: creator.map(str::to_owned),
        status,
        before: Some((chrono::Utc::now(), "x".to_owned())),
        limit: 50,
        ..OrderSearch::default()
    }
}

/// The first query a store call makes, as sea-orm builds it for `backend`: the call runs on a mock
/// connection that answers every query with no rows.
async fn first_query(backend: DatabaseBackend, call: Call) -> Statement {
    let empty = (0..8).map(|_| Vec::<BTreeMap<&str, sea_orm::Value>>::new());
    let exec = (0..8).map(|_| MockExecResult { last_insert_id: 0, rows_affected: 0 });
    let conn: DatabaseConnection = MockDatabase::new(backend)
        .append_query_results(empty)
        .append_exec_results(exec)
        .into_connection();
    let store = Store::from_connection(conn);
    call(store.clone()).await;
    let log = store.into_connection().expect("the call let go of the store").into_transaction_log();
    log.iter()
        .flat_map(|t| t.statements().iter().cloned())
        .find(|st| ["SELECT", "UPDATE"].iter().any(|k| st.sql.trim_start().starts_with(k)))
        .expect("the call makes a query")
}

async fn plans(store: &Store, sqlite: bool) -> Vec<String> {
    let db = store.conn();
    let backend = db.get_database_backend();
    if !sqlite {
        // Tiny test tables would be scanned anyway; forbid that so the plan shows what the
        // planner can use.
        db.execute_unprepared("SET enable_seqscan = off").await.unwrap();
    }
    let mut out = Vec::new();
    for (_, call, _) in QUERIES {
        let query = first_query(backend, *call).await;
        let explain = if sqlite {
            format!("EXPLAIN QUERY PLAN {}", query.sql)
        } else {
            format!("EXPLAIN {}", query.sql)
        };
        let values = query.values.clone().unwrap_or(sea_orm::Values(Vec::new()));
        let rows =
            db.query_all(Statement::from_sql_and_values(backend, explain, values)).await.unwrap();
        let text: Vec<String> = rows
            .iter()
            .map(|r| {
                if sqlite {
                    r.try_get_by_index::<String>(3).unwrap()
                } else {
                    r.try_get_by_index::<String>(0).unwrap()
                }
            })
            .collect();
        out.push(format!("{}\n{}", query.sql, text.join("\n")));
    }
    out
}

fn check(plans: &[String]) {
    for ((what, _, index), plan) in QUERIES.iter().zip(plans) {
        assert!(
            index.split('|').any(|i| plan.contains(i)),
            "{what} is not answered by {index}:\n{plan}"
        );
        assert!(
            !plan.contains("SCAN ") && !plan.contains("Seq Scan"),
            "{what} scans a table:\n{plan}"
        );
        if what.starts_with("a send batch") {
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
                "{what} sorts:\n{plan}"
            );
        }
    }
}

#[tokio::test]
async fn reads_use_indexes_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("i.db").display()), 1)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let p = plans(&store, true).await;
    check(&p);
}

#[tokio::test]
async fn reads_use_indexes_on_postgres() {
    let base = varsel_tests::postgres_url();
    let url = varsel_tests::fresh_postgres_database(&base).await;
    let store = Store::connect(&url, 1).await.unwrap();
    store.migrate().await.unwrap();
    let p = plans(&store, false).await;
    drop(store);
    varsel_tests::drop_postgres_database(&base, url.rsplit('/').next().unwrap()).await;
    check(&p);
}

/// Several processes starting at once against one PostgreSQL all migrate without error.
#[tokio::test]
async fn concurrent_migrations_on_postgres() {
    let base = varsel_tests::postgres_url();
    let url = varsel_tests::fresh_postgres_database(&base).await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::connect(&url, 1).await.unwrap();
            store.migrate().await
        }));
    }
    for t in tasks {
        t.await.unwrap().expect("every process migrates");
    }
    varsel_tests::drop_postgres_database(&base, url.rsplit('/').next().unwrap()).await;
}
