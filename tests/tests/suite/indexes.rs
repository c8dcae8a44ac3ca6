//! The reads and the send path stay fast with many orders and large ones: every query the read endpoints make is answered from an
//! index, on SQLite and on PostgreSQL (checked in the query plans, not by timing).

use sea_orm::{ConnectionTrait, Statement};
use varsel_activities::Store;

/// (what it serves, the query, the index that must answer it: SQLite's name|PostgreSQL's name)
const QUERIES: &[(&str, &str, &str)] = &[
    (
        "GET /orders?sendersReference",
        "SELECT * FROM orders WHERE creator = 'ttd' AND senders_reference = 'ref'",
        "ix_orders_creator_sref",
    ),
    (
        "the dispatcher",
        "SELECT * FROM orders WHERE workflow_started = false ORDER BY created LIMIT 200",
        "ix_orders_workflow_started",
    ),
    (
        "GET /orders/{id}/notifications/*",
        "SELECT * FROM notifications WHERE order_id = 'x' AND channel = 'email'",
        "ix_notifications_order_channel_status",
    ),
    (
        "GET /orders/{id}/status",
        "SELECT channel, status, COUNT(id) FROM notifications WHERE order_id = 'x' GROUP BY channel, status",
        "ix_notifications_order_channel_status",
    ),
    (
        "GET /orders/{id}",
        "SELECT * FROM order_recipients WHERE order_id = 'x' ORDER BY idx",
        "sqlite_autoindex_order_recipients_1|order_recipients_pkey",
    ),
    // The send path of a large order: each batch's claim and its "anything left?" probe read only
    // the rows they return (no sort over every pending row of the order).
    (
        "a send batch's claim",
        "SELECT * FROM notifications WHERE order_id = 'x' AND channel = 'email' AND status IN ('Email_New', 'Email_Sending') LIMIT 1000",
        "ix_notifications_order_channel_status",
    ),
    (
        "a send batch's pending probe",
        "SELECT id FROM notifications WHERE order_id = 'x' AND channel = 'email' AND status IN ('Email_New', 'Email_Sending') LIMIT 1",
        "ix_notifications_order_channel_status",
    ),
];

async fn plans(store: &Store, sqlite: bool) -> Vec<String> {
    let db = store.conn();
    let backend = db.get_database_backend();
    if !sqlite {
        // Tiny test tables would be scanned anyway; forbid that so the plan shows what the
        // planner can use.
        db.execute_unprepared("SET enable_seqscan = off").await.unwrap();
    }
    let mut out = Vec::new();
    for (_, sql, _) in QUERIES {
        let explain =
            if sqlite { format!("EXPLAIN QUERY PLAN {sql}") } else { format!("EXPLAIN {sql}") };
        let rows = db.query_all(Statement::from_string(backend, explain)).await.unwrap();
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
        out.push(text.join("\n"));
    }
    out
}

fn check(plans: &[String]) {
    for ((what, sql, index), plan) in QUERIES.iter().zip(plans) {
        assert!(
            index.split('|').any(|i| plan.contains(i)),
            "{what}: `{sql}` is not answered by {index}:\n{plan}"
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
