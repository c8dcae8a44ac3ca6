//! Time, conditions and outages: the durable parts of the order workflow.

use poem::{
    EndpointExt, Route, Server, get, handler,
    listener::{Acceptor, Listener, TcpListener},
    web::{Data, Json},
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use varsel_tests::{
    Db, SmtpServer, TestApp, TestAppOptions, free_port, never_within, on_both_databases,
    start_temporal_on,
};

const T: Duration = Duration::from_secs(60);

#[handler]
fn condition_false() -> Json<Value> {
    Json(json!({"sendNotification": false}))
}

#[handler]
fn condition_true() -> Json<Value> {
    Json(json!({"sendNotification": true}))
}

#[handler]
fn condition_broken(hits: Data<&Arc<AtomicUsize>>) -> (poem::http::StatusCode, &'static str) {
    hits.fetch_add(1, Ordering::SeqCst);
    (poem::http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
}

/// A condition endpoint on loopback; returns its base URL and how often `/broken` was asked.
async fn condition_server() -> (String, Arc<AtomicUsize>) {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Route::new()
        .at("/false", get(condition_false))
        .at("/true", get(condition_true))
        .at("/broken", get(condition_broken))
        .data(hits.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (format!("http://127.0.0.1:{port}"), hits)
}

/// An email order to `cond@example.no`, with `extra` fields.
fn email_order(extra: Value) -> Value {
    email_order_to("cond@example.no", extra)
}

fn email_order_to(address: &str, extra: Value) -> Value {
    let mut o = json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": address}]});
    for (k, v) in extra.as_object().unwrap() {
        o[k] = v.clone();
    }
    o
}

async fn condition(db: Db) {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(db, smtp.url())).await;
    let (cond, broken_hits) = condition_server().await;
    // Each order to an address of its own, so a mail tells which order sent it.
    let order = |to: &str, path: &str| {
        email_order_to(to, json!({"conditionEndpoint": format!("{cond}/{path}")}))
    };
    let not_met = app.order("/orders/email", &order("false@example.no", "false")).await;
    let met = app.order("/orders/email", &order("true@example.no", "true")).await;
    // An endpoint that keeps failing is retried, then the order is sent anyway (Altinn's rule).
    let broken = app.order("/orders/email", &order("broken@example.no", "broken")).await;

    app.wait_status(&not_met, "SendConditionNotMet", T).await;
    app.wait_status(&met, "Completed", T).await;
    app.wait_status(&broken, "Completed", T).await;
    assert!(
        app.notifications(&not_met).await.is_empty(),
        "a false condition creates no notifications"
    );
    let mut to: Vec<String> = smtp.wait_for(2, T).await.into_iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, ["broken@example.no", "true@example.no"], "the met and the broken condition");
    // The broken endpoint was asked exactly as often as configured, then the order went.
    assert_eq!(broken_hits.load(Ordering::SeqCst), app.config.conditions.attempts as usize);
    let smtp_ref = &smtp;
    never_within(
        "a mail was sent for the false condition",
        Duration::from_millis(500),
        || async move { smtp_ref.messages().len() > 2 },
    )
    .await;
    app.stop().await;
}
on_both_databases!(a_false_condition_sends_nothing, condition);

async fn later(db: Db) {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(db, smtp.url())).await;
    let at = chrono::Utc::now() + chrono::Duration::seconds(8);
    let id = app
        .order("/orders/email", &email_order(json!({"requestedSendTime": at.to_rfc3339()})))
        .await;
    let smtp_ref = &smtp;
    never_within(
        "a mail was sent before the requested time",
        Duration::from_secs(4),
        || async move { !smtp_ref.messages().is_empty() },
    )
    .await;
    assert_eq!(app.order_row(&id).await.order.status.as_str(), "Registered");
    let mails = smtp.wait_for(1, T).await;
    assert!(chrono::Utc::now() >= at, "sent at or after the requested time");
    assert_eq!(mails.len(), 1);
    app.wait_status(&id, "Completed", T).await;
    app.stop().await;
}
on_both_databases!(an_order_for_later_waits_for_its_time, later);

/// Temporal is down when the order arrives: the order is accepted (202), stored, and its
/// workflow starts as soon as Temporal is reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_accepted_while_temporal_is_down_starts_when_it_comes_back() {
    let smtp = SmtpServer::start();
    let port = free_port();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.temporal_address = Some(format!("http://127.0.0.1:{port}"));
    let app = TestApp::spawn(opts).await;

    let started = Instant::now();
    let id = app.order("/orders/email", &email_order(json!({}))).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the API does not hang on a dead Temporal"
    );
    let row = app.order_row(&id).await;
    assert_eq!(row.order.status.as_str(), "Registered");
    assert!(!row.workflow_started);
    let smtp_ref = &smtp;
    never_within(
        "a mail was sent while Temporal was down",
        Duration::from_secs(1),
        || async move { !smtp_ref.messages().is_empty() },
    )
    .await;

    tokio::task::spawn_blocking(move || start_temporal_on(port)).await.unwrap();
    smtp.wait_for(1, Duration::from_secs(90)).await;
    let row = app.wait_status(&id, "Completed", T).await;
    assert!(row.workflow_started);
    app.stop().await;
}
