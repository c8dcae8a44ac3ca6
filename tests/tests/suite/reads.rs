//! Order reads and cancellation, as Altinn clients use them.

use serde_json::{Value, json};
use std::time::Duration;
use temporalio_client::WorkflowExecutionStatus;
use varsel_api::Config;
use varsel_tests::{
    Db, SmtpServer, TestApp, TestAppOptions, eventually, never_within, on_both_databases,
    temporal_address,
};
use varsel_workflows::OrderWorkflow;

const T: Duration = Duration::from_secs(60);

async fn reads(db: Db) {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(db, smtp.url())).await;
    let sref = format!("case-{}", uuid::Uuid::new_v4().simple());
    let id = app
        .order(
            "/orders",
            &json!({
                "sendersReference": sref,
                "notificationChannel": "EmailPreferred",
                "emailTemplate": {"subject": "s", "body": "b"},
                "smsTemplate": {"body": "b"},
                "recipients": [{"organizationNumber": "311000179"}, {"nationalIdentityNumber": "11876995923"}, {"nationalIdentityNumber": "01017012345"}]
            }),
        )
        .await;
    let other = app.order("/orders/sms", &json!({"sendersReference": sref, "body": "b", "recipients": [{"mobileNumber": "+4799999999"}]})).await;
    app.wait_status(&id, "Completed", T).await;
    app.wait_status(&other, "Completed", T).await;

    // By sender's reference: both orders, in creation order; other orgs see none.
    let list: Value =
        app.get(&format!("/orders?sendersReference={sref}"), "ttd").await.json().await.unwrap();
    assert_eq!(list["count"], 2);
    assert_eq!(list["orders"][0]["id"], id);
    assert_eq!(list["orders"][1]["id"], other);
    let none: Value =
        app.get(&format!("/orders?sendersReference={sref}"), "other").await.json().await.unwrap();
    assert_eq!(none, json!({"count": 0, "orders": []}));
    let missing = app.get("/orders", "ttd").await;
    assert_eq!(missing.status(), 400);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");

    // Status: per-channel counts and links.
    let status: Value = app.get(&format!("/orders/{id}/status"), "ttd").await.json().await.unwrap();
    assert_eq!(status["id"], id);
    assert_eq!(status["processingStatus"]["status"], "Completed");
    assert_eq!(
        status["processingStatus"]["description"],
        "Order processing is completed. All notifications have a final status."
    );
    assert!(status["processingStatus"]["lastUpdate"].is_string());
    let summary = &status["notificationsStatusSummary"];
    assert_eq!(summary["email"]["generated"], 2);
    assert_eq!(summary["email"]["succeeded"], 1);
    assert_eq!(summary["sms"]["generated"], 1);
    assert_eq!(summary["sms"]["succeeded"], 1);
    let email_link = summary["email"]["links"]["self"].as_str().unwrap().to_owned();
    assert!(email_link.ends_with(&format!("/orders/{id}/notifications/email")));

    // The channel lists, through the links the status gave.
    let email: Value = app
        .http
        .get(&email_link)
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(email["orderId"], id);
    assert_eq!(email["sendersReference"], sref.as_str());
    assert_eq!((email["generated"].as_u64(), email["succeeded"].as_u64()), (Some(2), Some(1)));
    let notes = email["notifications"].as_array().unwrap();
    let sent = notes.iter().find(|n| n["recipient"]["organizationNumber"] == "311000179").unwrap();
    assert_eq!(sent["succeeded"], true);
    assert_eq!(sent["recipient"]["emailAddress"], "post@digdir-test.no");
    assert_eq!(sent["sendStatus"]["status"], "Succeeded");
    let reserved =
        notes.iter().find(|n| n["recipient"]["nationalIdentityNumber"] == "11876995923").unwrap();
    assert_eq!(reserved["succeeded"], false);
    assert_eq!(reserved["sendStatus"]["status"], "Failed_RecipientReserved");
    assert!(reserved["recipient"].get("emailAddress").is_none(), "no address, no field");
    assert!(reserved["sendStatus"]["description"].as_str().unwrap().contains("reserved"));
    let sms: Value =
        app.get(&format!("/orders/{id}/notifications/sms"), "ttd").await.json().await.unwrap();
    assert_eq!(sms["notifications"][0]["recipient"]["mobileNumber"], "+4798765432");
    assert_eq!(sms["notifications"][0]["sendStatus"]["status"], "Delivered");

    // Every read is scoped to the creator.
    for path in [
        format!("/orders/{id}/status"),
        format!("/orders/{id}/notifications/email"),
        format!("/orders/{id}/notifications/sms"),
    ] {
        assert_eq!(app.get(&path, "other").await.status(), 404, "{path}");
    }
    app.stop().await;
}
on_both_databases!(reads_answer_status_and_notifications_per_channel, reads);

async fn delivered_sms_counts(db: Db) {
    // Altinn counts only Accepted SMS as succeeded in /status; a delivered SMS counts here too.
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(db, smtp.url())).await;
    let id = app.order("/orders/sms", &json!({"body": "b", "recipients": [{"mobileNumber": "+4799999999"}, {"mobileNumber": "+4799999998"}]})).await;
    app.wait_status(&id, "Completed", T).await;
    assert!(app.notifications(&id).await.iter().all(|n| n.2 == "SMS_Delivered"));
    let status: Value = app.get(&format!("/orders/{id}/status"), "ttd").await.json().await.unwrap();
    assert_eq!(status["notificationsStatusSummary"]["sms"]["succeeded"], 2);
    let sms: Value =
        app.get(&format!("/orders/{id}/notifications/sms"), "ttd").await.json().await.unwrap();
    assert_eq!(sms["succeeded"], 2);
    app.stop().await;
}
on_both_databases!(a_delivered_sms_counts_as_succeeded, delivered_sms_counts);

async fn cancel(db: Db) {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(|c| c.processing.cancel_cutoff_secs = 30);
    let app = TestApp::spawn(opts).await;
    let at = (chrono::Utc::now() + chrono::Duration::seconds(60)).to_rfc3339();
    let email_id = app.order("/orders/email", &json!({"subject": "s", "body": "b", "requestedSendTime": at, "recipients": [{"emailAddress": "never@example.no"}]})).await;
    let sms_id = app.order("/orders/sms", &json!({"body": "b", "requestedSendTime": at, "recipients": [{"mobileNumber": "+4799999999"}]})).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(10)).to_rfc3339();
    let too_soon = app.order("/orders/email", &json!({"subject": "s", "body": "b", "requestedSendTime": soon, "recipients": [{"emailAddress": "soon@example.no"}]})).await;
    // Wait until the workflows exist, so the cancellation reaches a running workflow.
    for id in [&email_id, &sms_id] {
        app.wait_started(id, T).await;
    }

    let put = |id: String, org: &'static str| {
        let req = app
            .http
            .put(format!("{}/notifications/api/v1/orders/{id}/cancel", app.base_url))
            .bearer_auth(app.token(org));
        async move { req.send().await.unwrap() }
    };
    for id in [&email_id, &sms_id] {
        let resp = put(id.clone(), "ttd").await;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["processingStatus"]["status"], "Cancelled");
        assert_eq!(
            body["processingStatus"]["description"],
            "Order processing was stopped due to order being cancelled."
        );
        // Idempotent.
        assert_eq!(put(id.clone(), "ttd").await.status(), 200);
    }
    // The timeline says who cancelled, once (the repeat changed nothing).
    let h: Value =
        app.get(&format!("/orders/{email_id}/history"), "ttd").await.json().await.unwrap();
    let actions: Vec<&Value> =
        h["entries"].as_array().unwrap().iter().filter(|e| e["source"] == "action").collect();
    assert_eq!(actions.len(), 1, "{h:#}");
    assert_eq!(actions[0]["text"], "cancel by creator ttd", "{h:#}");
    assert_eq!(put(email_id.clone(), "other").await.status(), 404, "another org's order");
    assert_eq!(put(uuid::Uuid::new_v4().to_string(), "ttd").await.status(), 404);
    let late = put(too_soon.clone(), "ttd").await;
    assert_eq!(late.status(), 409, "inside the cut-off");
    assert_eq!(late.headers()["content-type"], "application/problem+json");

    // The cancelled workflows end promptly, so nothing can be sent later.
    let mut cfg = Config::default();
    cfg.temporal.address = temporal_address();
    let client = varsel_api::temporal::connect(&cfg).await.unwrap();
    for id in [&email_id, &sms_id] {
        let handle = &client.get_workflow_handle::<OrderWorkflow>(id.as_str());
        eventually(
            format!("workflow {id} ends after its cancel"),
            Duration::from_secs(20),
            || async move {
                let status = handle.describe(Default::default()).await.unwrap().status();
                if status == WorkflowExecutionStatus::Running {
                    Err(format!("{status:?}"))
                } else {
                    Ok(())
                }
            },
        )
        .await;
        assert_eq!(app.order_row(id).await.order.status.as_str(), "Cancelled");
        assert!(app.notifications(id).await.is_empty());
    }
    // The order inside the cut-off is sent at its time; the cancelled ones never are.
    let mails = smtp.wait_for(1, T).await;
    let smtp_ref = &smtp;
    never_within("a cancelled order's email arrived", Duration::from_millis(500), || async move {
        smtp_ref.messages().len() > 1
    })
    .await;
    assert_eq!(smtp.messages().len(), 1);
    assert_eq!(mails[0].to, "soon@example.no");
    assert!(app.simulated_sms(&sms_id).await.is_empty());
    assert_eq!(
        put(too_soon.clone(), "ttd").await.status(),
        409,
        "a processed order cannot be cancelled"
    );
    app.stop().await;
}
on_both_databases!(a_cancelled_order_ends_and_sends_nothing, cancel);
