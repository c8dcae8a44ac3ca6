//! An order's timeline: the workflow history in words, merged with its notifications.

use serde_json::{Value, json};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_shows_retries_with_their_failure_and_the_notifications() {
    let smtp = SmtpServer::start_flaky();
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, smtp.url())).await;
    let id = app.order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "flaky@example.no"}]})).await;
    app.wait_status(&id, "Completed", Duration::from_secs(60)).await;

    // The order is stored Completed by the workflow's last activity; the workflow itself
    // completes a moment later.
    let (app_ref, id_ref) = (&app, &id);
    let h: Value = eventually(
        "the history shows the workflow completed",
        Duration::from_secs(30),
        || async move {
            let resp = app_ref.get(&format!("/orders/{id_ref}/history"), "ttd").await;
            assert_eq!(resp.status(), 200);
            let h: Value = resp.json().await.unwrap();
            let done = h["entries"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["text"].as_str().unwrap().contains("workflow completed"));
            done.then_some(h)
        },
    )
    .await;
    assert_eq!(h["orderId"], id);
    assert!(h["temporalUi"].as_str().unwrap().ends_with(&format!("/workflows/{id}")));
    let texts: Vec<String> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["source"].as_str().unwrap(), e["text"].as_str().unwrap()))
        .collect();
    let has = |needle: &str| texts.iter().any(|t| t.contains(needle));
    assert!(has("workflow workflow started"), "{texts:#?}");
    let queue = format!("; task queue {}", app.config.temporal.task_queue);
    assert!(texts.iter().any(|t| t.ends_with(&queue)), "{queue} in {texts:#?}");
    assert!(has("claim the order for processing: done"), "{texts:#?}");
    assert!(
        texts.iter().any(|t| t.contains(
            "create and send a slice of the recipients: attempt 2; the previous attempt failed:"
        ) && t.contains("451")),
        "the retry and its cause: {texts:#?}"
    );
    assert!(has("notification email flaky@example.no: created: Email_New"), "{texts:#?}");
    assert!(
        has(
            "notification email flaky@example.no: handed to the provider: Email_Sending; attempt 1"
        ),
        "{texts:#?}"
    );
    assert!(
        has(
            "notification email flaky@example.no: handed to the provider: Email_Sending; attempt 2"
        ),
        "{texts:#?}"
    );
    assert!(
        has("notification email flaky@example.no: provider answered: Email_Succeeded"),
        "{texts:#?}"
    );
    assert!(has("workflow workflow completed"), "{texts:#?}");
    let times: Vec<&str> =
        h["entries"].as_array().unwrap().iter().map(|e| e["time"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "oldest first");

    assert_eq!(app.get(&format!("/orders/{id}/history"), "other").await.status(), 404);
    let operator = app.operator_token();
    let as_operator = app
        .http
        .get(format!("{}/notifications/api/v1/orders/{id}/history", app.base_url))
        .bearer_auth(operator)
        .send()
        .await
        .unwrap();
    assert_eq!(as_operator.status(), 200, "an operator sees every org's orders");
    app.stop().await;
}

/// Once Temporal's retention has deleted a workflow's history, the timeline is still there: the
/// order's record, its notifications' events and its webhook deliveries from the database, and a
/// word that the rest has expired. (Deleting the workflow is what retention does at its end.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_outlives_temporals_retention() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, smtp.url())).await;
    let id = app
        .order(
            "/orders/email",
            &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "kari@example.no"}]}),
        )
        .await;
    app.wait_status(&id, "Completed", Duration::from_secs(60)).await;
    let (app_ref, id_ref) = (&app, &id);
    let history = || async move {
        let resp = app_ref.get(&format!("/orders/{id_ref}/history"), "ttd").await;
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().await.unwrap()
    };
    eventually("the workflow completes", Duration::from_secs(30), || async move {
        let h = history().await;
        assert_eq!(h["workflowHistoryExpired"], false, "{h}");
        h["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"].as_str().unwrap().contains("workflow completed"))
            .then_some(())
    })
    .await;

    let deleted =
        std::process::Command::new(varsel_tests::project_root().join(".venv/bin/temporal"))
            .args(["workflow", "delete", "--yes", "--workflow-id", &id, "--address"])
            .arg(app.config.temporal.address.trim_start_matches("http://"))
            .args(["--namespace", &app.config.temporal.namespace])
            .output()
            .expect("the temporal CLI");
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));

    let h = eventually(
        "the history reads without Temporal's",
        // Temporal deletes a closed workflow's history in the background.
        Duration::from_secs(120),
        || async move {
            let h = history().await;
            (h["workflowHistoryExpired"] == true).then_some(h)
        },
    )
    .await;
    let entries = h["entries"].as_array().unwrap();
    let of = |source: &str| entries.iter().filter(|e| e["source"] == source).count();
    assert_eq!(of("workflow"), 0, "{h:#}");
    assert!(
        entries.iter().any(|e| e["source"] == "order"
            && e["text"].as_str().unwrap().contains("history has expired")),
        "{h:#}"
    );
    assert!(
        entries.iter().any(|e| e["text"].as_str().unwrap().contains("order Completed")),
        "{h:#}"
    );
    assert!(
        entries.iter().any(|e| e["text"]
            .as_str()
            .unwrap()
            .contains("email kari@example.no: provider answered: Email_Succeeded")),
        "{h:#}"
    );
    app.stop().await;
}

/// An order whose workflow has not been started yet (Temporal could not be reached when it was
/// accepted, and the dispatcher's next round has not come) has no history in Temporal: its
/// timeline and its page in the console say that it waits to be started, not that its history
/// expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_workflow_has_not_started_is_not_called_expired() {
    use varsel_workflows::domain::{EmailContentType, NotificationChannel, OrderStatus};
    use varsel_workflows::order::{EmailTemplate, NewOrder, Order, OrderKind, Recipient};
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    // The dispatcher's next round is an hour away.
    opts.tweak = Box::new(|c| c.processing.dispatch_interval_ms = 3_600_000);
    let app = TestApp::spawn(opts).await;
    // Stored as a request stores an order Temporal could not be reached for.
    let id = uuid::Uuid::new_v4().to_string();
    let now = chrono::Utc::now();
    let order = Order {
        id: id.clone(),
        creator: "ttd".to_owned(),
        created: now,
        kind: OrderKind::Orders,
        status: OrderStatus::Registered,
        channel: NotificationChannel::Email,
        requested_send_time: now,
        senders_reference: None,
        resource_id: None,
        resource_action: None,
        ignore_reservation: false,
        condition_endpoint: None,
        email: Some(EmailTemplate {
            from: None,
            subject: "s".to_owned(),
            body: "b".to_owned(),
            content_type: EmailContentType::Plain,
            attachments: vec![],
        }),
        sms: None,
        chain: None,
    };
    let kari = Recipient { email: Some("kari@example.no".to_owned()), ..Default::default() };
    app.store.insert_order(NewOrder { order, recipients: vec![kari] }).await.unwrap();

    let resp = app.get(&format!("/orders/{id}/history"), "ttd").await;
    assert_eq!(resp.status(), 200);
    let h: Value = resp.json().await.unwrap();
    assert_eq!(h["workflowHistoryExpired"], false, "{h:#}");
    let texts: Vec<&str> =
        h["entries"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert!(texts.iter().any(|t| t.contains("workflow has not been started yet")), "{texts:#?}");
    assert!(!texts.iter().any(|t| t.contains("expired")), "{texts:#?}");

    let page = app
        .http
        .get(format!("{}/console/fragments/orders/{id}", app.base_url))
        .bearer_auth(app.operator_token())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("workflow has not been started yet"), "{page}");
    assert!(!page.contains("retention period has passed"), "{page}");
    app.stop().await;
}
