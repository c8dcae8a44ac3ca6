//! Determinism: committed histories of finished orders (one per workflow path) replay cleanly
//! against the current workflow code, and so do histories recorded just now.
//!
//! To record a fixture for a new path (existing files are kept; delete one to re-record it):
//! `VARSEL_RECORD_HISTORIES=1 cargo test -p varsel-tests --test replay`.

use poem::{
    Route, Server, get, handler,
    listener::{Acceptor, Listener, TcpListener},
    web::Json,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use varsel_api::Config;
use varsel_tests::{
    Db, SmtpServer, TestApp, TestAppOptions, eventually, project_root, temporal_address,
};

const T: Duration = Duration::from_secs(60);

fn fixtures_dir() -> PathBuf {
    project_root().join("tests/fixtures/histories")
}

/// Keeps a history as the fixture `name` when `VARSEL_RECORD_HISTORIES` is set. Only a missing
/// fixture is written: the committed ones were recorded by older code and are the point of the
/// test. Delete a file to re-record it.
pub(crate) fn keep_fixture(name: &str, history: &[u8]) {
    if std::env::var("VARSEL_RECORD_HISTORIES").is_err() {
        return;
    }
    std::fs::create_dir_all(fixtures_dir()).unwrap();
    let file = fixtures_dir().join(format!("{name}.json"));
    if !file.exists() {
        let pretty: Value = serde_json::from_slice(history).unwrap();
        std::fs::write(file, serde_json::to_vec_pretty(&pretty).unwrap()).unwrap();
    }
}

/// The workflow paths the fixtures must cover.
const PATHS: &[&str] = &[
    "sent_email",
    "sent_sms",
    "fallback",
    "reserved",
    "condition_false",
    "condition_inconclusive",
    "scheduled",
    "continued",
    "continued_as_new",
    "cancelled",
    "report_signal",
    "ttl",
    "redrive",
    "sent_email_one_channel",
    "instant_sms",
    "chain_reminder",
    // Recorded with sliced sending (the patch `varsel.sliced-sending`): slices generated and sent
    // by `send_slice`, several in flight, and a run continued at the next slice.
    "sliced_email",
    "sliced_sms",
    "sliced_fallback",
    "sliced_continued",
    "sliced_continued_as_new",
    // The webhook workflow (recorded by the webhook tests): deliveries retried until the
    // receiver recovered, then idle; and retries run out, the endpoint disabled.
    "webhook_retried",
    "webhook_gave_up",
];

/// Fresh histories kept under a second name: the same path recorded by the current code (the
/// first name's fixture was recorded before sliced sending).
const SLICED: &[(&str, &str)] = &[
    ("sent_email", "sliced_email"),
    ("sent_sms", "sliced_sms"),
    ("fallback", "sliced_fallback"),
    ("continued", "sliced_continued"),
    ("continued_as_new", "sliced_continued_as_new"),
];

/// Whether a history (JSON) schedules `send_slice`: it took the sliced path.
fn sends_slices(history: &[u8]) -> bool {
    String::from_utf8_lossy(history).contains("varsel.order.send_slice")
}

#[handler]
fn cond_false() -> Json<Value> {
    Json(json!({"sendNotification": false}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_histories_replay_cleanly() {
    let mut histories = Vec::new();
    for path in PATHS {
        let file = fixtures_dir().join(format!("{path}.json"));
        let bytes = std::fs::read(&file)
            .unwrap_or_else(|e| panic!("fixture {} missing: {e}", file.display()));
        histories.push((path.to_string(), bytes));
    }
    for (name, result) in varsel_api::replay::replay_json(&histories).await.expect("replayer") {
        assert!(result.is_ok(), "{name} no longer replays: {}", result.unwrap_err());
    }
    // The fixture of a continued order's first run holds the continue-as-new step itself.
    let first_run: Value =
        serde_json::from_slice(&histories.iter().find(|(n, _)| n == "continued_as_new").unwrap().1)
            .unwrap();
    let last = first_run["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["event_type"], 28, "continued_as_new ends by continuing as new");
    let sliced_first: Value = serde_json::from_slice(
        &histories.iter().find(|(n, _)| n == "sliced_continued_as_new").unwrap().1,
    )
    .unwrap();
    let last = sliced_first["events"].as_array().unwrap().last().unwrap();
    assert_eq!(last["event_type"], 28, "sliced_continued_as_new ends by continuing as new");
    // The fixtures cover both paths: the older ones never send slices, the newer ones do.
    for (name, bytes) in histories.iter().filter(|(n, _)| !n.starts_with("webhook_")) {
        assert_eq!(sends_slices(bytes), name.starts_with("sliced_"), "{name}");
    }

    // The check has teeth: a history whose recorded steps differ from what the code does now
    // (here, an activity the code never schedules) is reported as nondeterministic.
    let tampered = String::from_utf8(histories[0].1.clone())
        .unwrap()
        .replace("varsel.order.send_batch", "varsel.order.renamed_step");
    let results = varsel_api::replay::replay_json(&[("tampered".into(), tampered.into_bytes())])
        .await
        .expect("replayer");
    let err = results[0].1.as_ref().expect_err("a diverging history must not replay cleanly");
    assert!(err.contains("Nondeterminism"), "reported as nondeterminism: {err}");
    assert!(err.contains("renamed_step"), "naming the step that differs: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_histories_of_every_path_replay_cleanly() {
    let started = chrono::Utc::now();
    let smtp = SmtpServer::start_flaky();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    // The simulator's report comes well after sending, so the workflow waits for its signal.
    opts.tweak = Box::new(|c| c.sms.simulator_report_delay_ms = 1500);
    let app = TestApp::spawn(opts).await;
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let cport = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(
        Server::new_with_acceptor(acceptor).run(Route::new().at("/false", get(cond_false))),
    );
    let dead = format!("http://127.0.0.1:{}/nothing", varsel_tests::free_port());

    let email = |extra: Value| {
        let mut o =
            json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "r@example.no"}]});
        for (k, v) in extra.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    let orders = vec![
        ("sent_email", "/orders/email", email(json!({})), "Completed"),
        // Recorded after start_processing began naming the order's channels: no SMS batch.
        ("sent_email_one_channel", "/orders/email", email(json!({})), "Completed"),
        (
            "sent_sms",
            "/orders/sms",
            json!({"body": "b", "recipients": [{"mobileNumber": "+4799999999"}]}),
            "Completed",
        ),
        (
            "fallback",
            "/orders",
            json!({"notificationChannel": "EmailPreferred", "emailTemplate": {"subject": "s", "body": "b"}, "smsTemplate": {"body": "b"}, "recipients": [{"nationalIdentityNumber": "01017012345"}]}),
            "Completed",
        ),
        (
            "reserved",
            "/orders",
            json!({"notificationChannel": "Email", "emailTemplate": {"subject": "s", "body": "b"}, "recipients": [{"nationalIdentityNumber": "11876995923"}]}),
            "Completed",
        ),
        (
            "condition_false",
            "/orders/email",
            email(json!({"conditionEndpoint": format!("http://127.0.0.1:{cport}/false")})),
            "SendConditionNotMet",
        ),
        (
            "condition_inconclusive",
            "/orders/email",
            email(json!({"conditionEndpoint": dead})),
            "Completed",
        ),
        (
            "report_signal",
            "/orders/sms",
            json!({"body": "b", "recipients": [{"mobileNumber": "+4799999997"}]}),
            "Completed",
        ),
        (
            "scheduled",
            "/orders/email",
            email(
                json!({"requestedSendTime": (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339()}),
            ),
            "Completed",
        ),
    ];
    let mut ids = Vec::new();
    let later = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let cancelled = app.order("/orders/email", &email(json!({"requestedSendTime": later}))).await;
    for (name, path, body, _) in &orders {
        ids.push((name.to_string(), app.order(path, body).await));
    }
    for ((_, id), (_, _, _, status)) in ids.iter().zip(&orders) {
        app.wait_status(id, status, T).await;
    }

    // The newer API: an instant SMS (its run starts at settling) and a reminder of a chain.
    let resp = app
        .post(
            "/future/orders/instant/sms",
            &json!({"idempotencyId": "replay-instant", "recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 600, "smsSettings": {"body": "b"}}}),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 201);
    let instant: Value = resp.json().await.unwrap();
    let instant = instant["notification"]["shipmentId"].as_str().unwrap().to_owned();
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339();
    let recipient = json!({"recipientSms": {"phoneNumber": "+4799999999", "smsSettings": {"body": "b", "sendingTimePolicy": "Anytime"}}});
    let resp = app
        .post("/future/orders", &json!({"idempotencyId": "replay-chain", "recipient": recipient, "reminders": [{"requestedSendTime": soon, "recipient": recipient}]}), "ttd")
        .await;
    assert_eq!(resp.status(), 201);
    let chain: Value = resp.json().await.unwrap();
    let reminder = chain["notification"]["reminders"][0]["shipmentId"].as_str().unwrap().to_owned();
    for id in [&instant, &reminder] {
        app.wait_status(id, "Completed", T).await;
    }
    ids.push(("instant_sms".to_string(), instant));
    ids.push(("chain_reminder".to_string(), reminder));

    // A long order: tiny batches force continue-as-new; the last run (resumed mid-send) is kept.
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| {
        c.processing.generate_batch = 1;
        c.processing.send_batch = 1;
        c.processing.max_batches_per_run = 3;
        c.processing.notification_ttl_secs = 3;
        // Two slices in flight: the run takes slices until it has run three batches, finishes
        // the ones in flight and continues at the next.
        c.processing.send_window = 2;
    });
    let long_app = TestApp::spawn(opts).await;
    let recipients: Vec<Value> =
        (0..8).map(|i| json!({"emailAddress": format!("long{i}@example.no")})).collect();
    let long_id = long_app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    long_app.wait_status(&long_id, "Completed", T).await;
    ids.push(("continued".to_string(), long_id.clone()));
    // Never reported: settled by the time-to-live timer.
    let ttl_id = long_app
        .order("/orders/sms", &json!({"body": "b", "recipients": [{"mobileNumber": varsel_activities::providers::sms::SIMULATOR_SILENT_NUMBER}]}))
        .await;
    long_app.wait_status(&ttl_id, "Completed", T).await;
    ids.push(("ttl".to_string(), ttl_id));

    // A relay outage past the time-to-live, then an operator's redrive (its run is kept).
    smtp.set_outage(true);
    let redriven = long_app.order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "outage@example.no"}]})).await;
    long_app.wait_status(&redriven, "Completed", T).await;
    smtp.set_outage(false);
    let operator = long_app.operator_token();
    let resp = long_app
        .http
        .post(format!(
            "{}/notifications/api/v1/operator/orders/{redriven}/redrive",
            long_app.base_url
        ))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    long_app.wait_notifications(&redriven, "Email_Succeeded", T).await;
    long_app.wait_status(&redriven, "Completed", T).await;
    ids.push(("redrive".to_string(), redriven));

    // A cancelled order: its workflow waits for the send time and is cancelled.
    app.wait_started(&cancelled, T).await;
    let resp = app
        .http
        .put(format!("{}/notifications/api/v1/orders/{cancelled}/cancel", app.base_url))
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    ids.push(("cancelled".to_string(), cancelled));

    let mut cfg = Config::default();
    cfg.temporal.address = temporal_address();
    let client = varsel_api::temporal::connect(&cfg).await.expect("temporal client");
    let mut histories = Vec::new();
    for (name, id) in &ids {
        // The workflow closes right after its last activity; wait until the history says so.
        let client_ref = &client;
        let bytes = eventually(format!("{name}: the workflow closes"), T, || async move {
            let bytes =
                varsel_api::replay::fetch_history_json(client_ref, id).await.expect("history");
            let json: Value = serde_json::from_slice(&bytes).expect("history json");
            // The history is closed: completed (2), failed (3), timed out (4), canceled (21),
            // terminated (27) or continued as new (28).
            let closed = [2, 3, 4, 21, 27, 28];
            json["events"]
                .as_array()
                .and_then(|e| e.last())
                .is_some_and(|e| closed.iter().any(|t| e["event_type"] == *t))
                .then_some(bytes)
        })
        .await;
        histories.push((name.clone(), bytes));
    }
    // The long order's first run, which ends by continuing as new: the step itself.
    let last: Value =
        serde_json::from_slice(&histories.iter().find(|(n, _)| n == "continued").unwrap().1)
            .unwrap();
    let first_run = last["events"][0]["attributes"]["WorkflowExecutionStartedEventAttributes"]
        ["first_execution_run_id"]
        .as_str()
        .expect("the first run's id")
        .to_owned();
    let bytes = varsel_api::replay::fetch_run_history_json(&client, &long_id, &first_run)
        .await
        .expect("the first run's history");
    let json: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        json["events"].as_array().unwrap().last().unwrap()["event_type"],
        28,
        "the first run continued as new"
    );
    histories.push(("continued_as_new".to_string(), bytes));
    // Every fresh history that sends took the sliced path: all but the instant message's (it
    // only settles), the cancelled and condition-false orders' (nothing sent) and the redrive's
    // (it sends what failed, wherever it is); some are kept under their sliced names too.
    let unsliced = ["instant_sms", "cancelled", "condition_false", "redrive"];
    for (name, bytes) in &histories {
        assert_eq!(sends_slices(bytes), !unsliced.contains(&name.as_str()), "{name}");
    }
    for (old, new) in SLICED {
        let bytes = histories.iter().find(|(n, _)| n == old).unwrap().1.clone();
        histories.push((new.to_string(), bytes));
    }
    for (name, result) in varsel_api::replay::replay_json(&histories).await.expect("replayer") {
        assert!(result.is_ok(), "{name}: {}", result.unwrap_err());
    }

    // What `varsel replay` does: find orders in Temporal's visibility, fetch and replay each.
    let order_ids: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    let mut wanted = order_ids.clone();
    wanted.push("no-such-order".into());
    let verdicts = varsel_api::replay::replay_orders(&client, &wanted).await.unwrap();
    for (id, verdict) in &verdicts[..order_ids.len()] {
        assert!(
            matches!(verdict, varsel_api::replay::ReplayVerdict::Clean { events, .. } if *events > 5),
            "{id}: {verdict:?}"
        );
    }
    // Every run Temporal keeps is replayed, each once: a continued order's earlier runs, the
    // run a redrive started and the one before it (the latest run is fetched whether or not
    // visibility lists it yet, and not twice when it does).
    for (name, runs_wanted) in [("continued", 2..=99), ("redrive", 2..=2), ("sent_email", 1..=1)] {
        let id = &ids.iter().find(|(n, _)| n == name).unwrap().1;
        let (client, wanted) = (&client, &runs_wanted);
        eventually(format!("{name}: every run replays"), T, || async move {
            match varsel_api::replay::replay_order(client, id).await.unwrap() {
                varsel_api::replay::ReplayVerdict::Clean { runs, .. } if wanted.contains(&runs) => {
                    Ok(runs)
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await;
    }
    let unknown = varsel_api::replay::replay_order(&client, "no-such-order").await.unwrap();
    assert!(
        matches!(&unknown, varsel_api::replay::ReplayVerdict::Unavailable(m) if m.contains("never started")),
        "{unknown:?}"
    );
    assert!(matches!(
        verdicts.last().unwrap().1,
        varsel_api::replay::ReplayVerdict::Unavailable(_)
    ));
    // Visibility is eventually consistent.
    let (client_ref, order_ids_ref) = (&client, &order_ids);
    eventually("visibility lists the orders", T, || async move {
        let since = Some(started - chrono::Duration::seconds(5));
        let found =
            varsel_api::replay::find_orders(client_ref, false, since, 10_000).await.unwrap();
        order_ids_ref.iter().all(|id| found.contains(id)).then_some(())
    })
    .await;

    for (name, bytes) in &histories {
        keep_fixture(name, bytes);
    }
    app.stop().await;
    long_app.stop().await;
}
