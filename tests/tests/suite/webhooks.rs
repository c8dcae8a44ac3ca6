//! Status webhooks to senders, on real processes: a receiver on loopback that fails for a while
//! and then recovers gets every event of an order exactly once, in the order it happened, each
//! signed so that the Standard Webhooks reference library verifies it; the order's timeline
//! shows every attempt; an endpoint that keeps failing is disabled with its reason, and a
//! delivery is redelivered once it is enabled again; private destinations are refused.

use poem::http::{HeaderMap, StatusCode};
use poem::listener::{Acceptor, Listener};
use poem::web::Data;
use poem::{EndpointExt, IntoResponse, Response, Route, handler, post};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, eventually, never_within};

const T: Duration = Duration::from_secs(60);

/// One request the receiver got, and what it answered.
#[derive(Clone, Debug)]
struct Received {
    headers: HeaderMap,
    body: Vec<u8>,
    answered: u16,
}

impl Received {
    fn id(&self) -> String {
        self.headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

#[derive(Default)]
struct ReceiverState {
    /// Requests still to refuse with 500.
    refuse: AtomicUsize,
    got: Mutex<Vec<Received>>,
}

/// A webhook receiver on loopback: answers 500 to its first `refuse` requests, then 204.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

#[handler]
async fn receive(headers: &HeaderMap, body: Vec<u8>, state: Data<&Arc<ReceiverState>>) -> Response {
    let refuse =
        state.refuse.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let answered = if refuse { 500 } else { 204 };
    state.got.lock().unwrap().push(Received { headers: headers.clone(), body, answered });
    if refuse {
        (StatusCode::INTERNAL_SERVER_ERROR, "receiver is down").into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

impl Receiver {
    async fn start(refuse: usize) -> Self {
        let state =
            Arc::new(ReceiverState { refuse: AtomicUsize::new(refuse), ..Default::default() });
        let acceptor =
            poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().expect("tcp").port();
        let app = Route::new().at("/hook", post(receive)).data(state.clone());
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { url: format!("http://127.0.0.1:{port}/hook"), state }
    }

    fn got(&self) -> Vec<Received> {
        self.state.got.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.answered == 204).collect()
    }
}

/// Waits until the pair's workflow has ended, replays its history against the current code, and
/// keeps it as a fixture when `VARSEL_RECORD_HISTORIES` is set (and the file is missing).
async fn replay_pair(app: &TestApp, endpoint_id: &str, order_id: &str, fixture: &str) {
    let client = varsel_api::temporal::connect(&app.config).await.expect("temporal client");
    let id = varsel_workflows::webhook::webhook_workflow_id(endpoint_id, order_id);
    let client = &client;
    let id = &id;
    let bytes = eventually(format!("the workflow {id} ended"), T, || async move {
        let bytes = varsel_api::replay::fetch_history_json(client, id).await.ok()?;
        let history: Value = serde_json::from_slice(&bytes).ok()?;
        let last = history["events"].as_array()?.last()?["event_type"].as_i64()?;
        // WorkflowExecutionCompleted.
        (last == 2).then_some(bytes)
    })
    .await;
    let results =
        varsel_api::replay::replay_json(&[(fixture.to_owned(), bytes.clone())]).await.unwrap();
    assert!(results[0].1.is_ok(), "{fixture}: {:?}", results[0].1);
    super::replay::keep_fixture(fixture, &bytes);
}

async fn app_with(
    db: Db,
    tweak: impl FnOnce(&mut varsel_api::config::Config) + Send + 'static,
) -> (TestApp, SmtpServer) {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(move |c| {
        c.webhooks.allowed_hosts = vec!["127.0.0.1".into()];
        c.webhooks.retry_initial_ms = 200;
        c.webhooks.retry_max_ms = 800;
        tweak(c);
    });
    (TestApp::spawn(opts).await, smtp)
}

async fn register(app: &TestApp, url: &str, events: &[&str]) -> Value {
    let resp = app.post("/webhooks", &json!({"url": url, "events": events}), "ttd").await;
    let status = resp.status();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body
}

async fn deliveries(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let resp = app.get(&format!("/webhooks/{endpoint}/deliveries?limit=200"), "ttd").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    body["deliveries"].as_array().cloned().unwrap_or_default()
}

fn verify(secret: &str, r: &Received) {
    standardwebhooks::Webhook::new(secret)
        .expect("a Standard Webhooks secret")
        .verify(&r.body, &r.headers)
        .unwrap_or_else(|e| panic!("delivery {} does not verify: {e}", r.id()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_then_recovers_gets_every_event_once_in_order_and_signed() {
    // The pair's workflow ends soon after its last delivery, so its history can be replayed.
    let (app, _smtp) = app_with(Db::Sqlite, |c| c.webhooks.idle_secs = 2).await;
    let receiver = Receiver::start(5).await;
    let endpoint = register(
        &app,
        &receiver.url,
        &["notification.status_changed", "notification.final", "order.completed"],
    )
    .await;
    let (endpoint_id, secret) = (
        endpoint["id"].as_str().unwrap().to_owned(),
        endpoint["secret"].as_str().unwrap().to_owned(),
    );
    assert!(secret.starts_with("whsec_"), "{endpoint}");

    let id = app
        .order(
            "/orders/email",
            &json!({"subject": "Hei", "body": "Fra varsel.", "sendersReference": "hook-1", "recipients": [
                {"emailAddress": "a@example.com"},
                {"emailAddress": "b@example.com"},
                {"emailAddress": "c@example.com"},
            ]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;

    // Three notifications: created, handed over, accepted (3 changes each, the last final),
    // and the order's completion.
    let expected = 3 * 3 + 3 + 1;
    let accepted = eventually("every event accepted by the receiver", T, || async {
        let got = receiver.accepted();
        let done = got.iter().any(|r| r.json()["type"] == "order.completed");
        (done && got.len() >= expected).then_some(got)
    })
    .await;
    // Nothing more comes.
    let n = accepted.len();
    never_within("a repeated delivery", Duration::from_secs(2), || async {
        receiver.accepted().len() > n
    })
    .await;
    let accepted = receiver.accepted();
    assert_eq!(
        accepted.len(),
        expected,
        "{:#?}",
        accepted.iter().map(Received::json).collect::<Vec<_>>()
    );

    // Exactly once: every message id accepted once, and they are the endpoint's deliveries.
    let mut ids: Vec<String> = accepted.iter().map(Received::id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), expected, "a message was accepted twice");
    let listed = deliveries(&app, &endpoint_id).await;
    assert_eq!(listed.len(), expected);
    for d in &listed {
        assert_eq!(d["status"], "Delivered", "{d}");
        assert!(ids.contains(&d["id"].as_str().unwrap().to_owned()), "{d}");
    }
    // The failed attempts were at the first messages, which came again with the same id.
    let refused: Vec<Received> = receiver.got().into_iter().filter(|r| r.answered == 500).collect();
    assert_eq!(refused.len(), 5);
    for r in &refused {
        assert!(ids.contains(&r.id()), "a refused message was never delivered");
    }

    // Each signed so that the reference library verifies it, with this endpoint's secret.
    for r in &accepted {
        verify(&secret, r);
    }
    assert!(
        standardwebhooks::Webhook::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
            .verify(&accepted[0].body, &accepted[0].headers)
            .is_err(),
        "another secret must not verify"
    );

    // In order: each notification's changes in its lifecycle, final after its last change,
    // and the order's completion last.
    let events: Vec<Value> = accepted.iter().map(Received::json).collect();
    assert_eq!(events.last().unwrap()["type"], "order.completed");
    let done = &events.last().unwrap()["data"];
    assert_eq!(done["orderId"], id.as_str());
    assert_eq!(done["sendersReference"], "hook-1");
    assert_eq!(done["notifications"]["Email_Succeeded"], 3, "{done}");
    let mut per_notification: std::collections::BTreeMap<String, Vec<(String, String)>> =
        Default::default();
    for e in &events[..events.len() - 1] {
        let data = &e["data"];
        assert_eq!(data["orderId"], id.as_str());
        per_notification
            .entry(data["notificationId"].as_str().unwrap().to_owned())
            .or_default()
            .push((
                e["type"].as_str().unwrap().to_owned(),
                data["status"].as_str().unwrap().to_owned(),
            ));
    }
    assert_eq!(per_notification.len(), 3);
    for (nid, seen) in per_notification {
        let want: Vec<(String, String)> = [
            ("notification.status_changed", "Email_New"),
            ("notification.status_changed", "Email_Sending"),
            ("notification.status_changed", "Email_Succeeded"),
            ("notification.final", "Email_Succeeded"),
        ]
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
        assert_eq!(seen, want, "notification {nid}");
    }

    // The order's timeline shows the attempts, the refused ones with the receiver's answer.
    let history: Value =
        app.get(&format!("/orders/{id}/history"), "ttd").await.json().await.unwrap();
    let webhook_lines: Vec<&str> = history["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "webhook")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(webhook_lines.len(), expected + 5, "{webhook_lines:#?}");
    assert!(
        webhook_lines
            .iter()
            .any(|l| l.contains("failed: HTTP 500") && l.contains("receiver is down")),
        "{webhook_lines:#?}"
    );
    // The first message met every refusal, and was accepted at its sixth attempt.
    assert!(
        webhook_lines.iter().any(|l| l.contains("attempt 6: accepted (HTTP 204)")),
        "{webhook_lines:#?}"
    );

    replay_pair(&app, &endpoint_id, &id, "webhook_retried").await;

    // Another organisation sees nothing of the endpoint.
    assert_eq!(app.get(&format!("/webhooks/{endpoint_id}"), "other").await.status(), 404);
    assert_eq!(
        app.get(&format!("/webhooks/{endpoint_id}/deliveries"), "other").await.status(),
        404
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_keeps_failing_is_disabled_and_a_delivery_is_redelivered_after() {
    // On PostgreSQL (the other tests run on SQLite).
    let (app, _smtp) = app_with(Db::Postgres, |c| c.webhooks.retry_for_secs = 3).await;
    let receiver = Receiver::start(usize::MAX).await;
    let endpoint = register(&app, &receiver.url, &["order.completed", "order.cancelled"]).await;
    let (endpoint_id, secret) = (
        endpoint["id"].as_str().unwrap().to_owned(),
        endpoint["secret"].as_str().unwrap().to_owned(),
    );

    let id = app
        .order(
            "/orders/email",
            &json!({"subject": "Hei", "body": "Fra varsel.", "recipients": [{"emailAddress": "a@example.com"}]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let disabled = eventually("the endpoint disabled", T, || async {
        let e: Value =
            app.get(&format!("/webhooks/{endpoint_id}"), "ttd").await.json().await.ok()?;
        (e["enabled"] == false).then_some(e)
    })
    .await;
    let reason = disabled["disabledReason"].as_str().unwrap_or_default();
    assert!(reason.contains("HTTP 500") && reason.contains("retries ran out"), "{disabled}");
    replay_pair(&app, &endpoint_id, &id, "webhook_gave_up").await;
    let listed = deliveries(&app, &endpoint_id).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "Failed");
    assert!(listed[0]["attempts"].as_u64().unwrap() >= 2, "{}", listed[0]);
    let message_id = listed[0]["id"].as_str().unwrap().to_owned();

    // Disabled: redelivery waits for the owner to enable it.
    let redeliver = format!("/webhooks/{endpoint_id}/deliveries/{message_id}/redeliver");
    assert_eq!(app.post(&redeliver, &json!({}), "ttd").await.status(), 409);
    receiver.state.refuse.store(0, Ordering::SeqCst);
    let enabled = app
        .http
        .patch(format!("{}/notifications/api/v1/webhooks/{endpoint_id}", app.base_url))
        .bearer_auth(app.token("ttd"))
        .json(&json!({"enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(enabled.status(), 200);
    let enabled: Value = enabled.json().await.unwrap();
    assert_eq!(enabled["enabled"], true);
    assert!(enabled.get("disabledReason").is_none(), "{enabled}");
    assert_eq!(app.post(&redeliver, &json!({}), "ttd").await.status(), 202);
    let got = eventually("the redelivery accepted", T, || async {
        receiver.accepted().into_iter().find(|r| r.id() == message_id)
    })
    .await;
    verify(&secret, &got);
    assert_eq!(got.json()["type"], "order.completed");

    // A rotation: both secrets sign until the overlap ends.
    let rotated = app.post(&format!("/webhooks/{endpoint_id}/secret"), &json!({}), "ttd").await;
    assert_eq!(rotated.status(), 200);
    let new_secret = rotated.json::<Value>().await.unwrap()["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    // A cancelled order tells the endpoint too.
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let cancelled = app
        .order(
            "/orders/email",
            &json!({"subject": "Hei", "body": "Senere.", "requestedSendTime": later,
                    "recipients": [{"emailAddress": "a@example.com"}]}),
        )
        .await;
    let resp = app
        .http
        .put(format!("{}/notifications/api/v1/orders/{cancelled}/cancel", app.base_url))
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let got = eventually("the cancellation delivered", T, || async {
        receiver.accepted().into_iter().find(|r| r.json()["type"] == "order.cancelled")
    })
    .await;
    assert_eq!(got.json()["data"]["orderId"], cancelled.as_str());
    verify(&new_secret, &got);
    verify(&secret, &got);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_loopback_and_metadata_destinations_are_refused() {
    let (app, _smtp) = app_with(Db::Sqlite, |c| c.webhooks.allowed_hosts = vec![]).await;
    for (url, why) in [
        ("http://127.0.0.1:9/hook", "not a public address"),
        ("http://10.1.2.3/hook", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://[::1]/hook", "not a public address"),
        ("http://localhost:9/hook", "no public address"),
        ("ftp://example.com/hook", "absolute http or https URL"),
        ("/relative", "absolute http or https URL"),
        ("https://user:pw@example.com/hook", "credentials"),
    ] {
        let resp =
            app.post("/webhooks", &json!({"url": url, "events": ["order.completed"]}), "ttd").await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 400, "{url}: {body}");
        let message = body["errors"]["url"][0].as_str().unwrap_or_default();
        assert!(message.contains(why), "{url}: {body}");
    }
    // An unknown event is named.
    let resp = app
        .post(
            "/webhooks",
            &json!({"url": "https://example.com/h", "events": ["order.done"]}),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 400);
    assert!(
        app.get("/webhooks", "ttd")
            .await
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .is_empty()
    );
    app.stop().await;
}
