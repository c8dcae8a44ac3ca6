//! Delivery tracking with real providers: Kannel's delivery reports, the simulator's test
//! numbers, email reports, dead reports and the time-to-live. An order completes exactly when
//! every notification is final.

use base64::Engine;
use serde_json::{Value, json};
use std::time::Duration;
use varsel_tests::{
    Db, KannelGateway, SmtpServer, TestApp, TestAppOptions, never_within, on_both_databases,
};

const T: Duration = Duration::from_secs(60);

fn basic(secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("reports:{secret}"))
    )
}

async fn kannel(db: Db) {
    let smtp = SmtpServer::start();
    let gw = tokio::task::spawn_blocking(KannelGateway::start).await.unwrap();
    let mut opts = TestAppOptions::new(db, smtp.url());
    let (url, password) = (gw.sendsms_url.clone(), gw.password.clone());
    opts.tweak = Box::new(move |c| {
        c.sms.provider = varsel_api::config::SmsProvider::Kannel;
        c.sms.kannel_sendsms_url = url;
        c.sms.kannel_password = password.into();
    });
    let app = TestApp::spawn(opts).await;
    let delivered = app
        .order(
            "/orders/sms",
            &json!({"body": "Hei fra varsel", "recipients": [{"mobileNumber": "+4799999999"}]}),
        )
        .await;
    let unroutable = app
        .order(
            "/orders/sms",
            &json!({"body": "Hei", "recipients": [{"mobileNumber": "+4799000001"}]}),
        )
        .await;
    app.wait_status(&delivered, "Completed", T).await;
    app.wait_status(&unroutable, "Completed", T).await;

    let rows = app.store.notifications(&delivered).await.unwrap();
    assert_eq!(rows[0].status.as_str(), "SMS_Delivered");
    assert!(rows[0].provider_ref.is_some(), "Kannel's message id is stored");
    assert!(
        rows[0].delivery_report.as_deref().unwrap().contains("type="),
        "the raw report is kept"
    );
    let rows = app.store.notifications(&unroutable).await.unwrap();
    // Kannel says it twice (403 "Not routable" and a "NACK/no SMSC" report); whichever is
    // recorded first, the status is the same.
    assert_eq!(rows[0].status.as_str(), "SMS_Failed_Undelivered", "{:?}", rows[0]);
    let reason = rows[0].status_reason.as_deref().unwrap();
    assert!(reason.contains("Not routable") || reason.contains("no SMSC"), "{reason}");
    let sms: Value = app
        .get(&format!("/orders/{unroutable}/notifications/sms"), "ttd")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sms["notifications"][0]["sendStatus"]["status"], "Failed_Undelivered");
    app.stop().await;
}
on_both_databases!(kannel_reports_delivered_and_undeliverable, kannel);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kannel_report_urls_are_authenticated() {
    use varsel_activities::providers::sms::ReportSigner;
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    opts.tweak = Box::new(|c| c.reports.secret = "s3cret".into());
    let app = TestApp::spawn(opts).await;
    let signer = ReportSigner::new(b"s3cret");
    let now = chrono::Utc::now().timestamp();
    let exp = now + 3600;
    let status = |query: String| {
        let url = format!("{}/notifications/api/v1/reports/sms/kannel?{query}", app.base_url);
        let http = app.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };
    let sig = signer.sign("abc", exp);
    assert_eq!(status(format!("nid=abc&exp={exp}&sig=00&type=1")).await, 401, "wrong signature");
    // The signature covers the notification id and the expiry varsel wrote into the URL.
    assert_eq!(
        status(format!("nid=abd&exp={exp}&sig={sig}&type=1")).await,
        401,
        "signature of another notification"
    );
    assert_eq!(
        status(format!("nid=abc&exp={}&sig={sig}&type=1", exp + 86_400)).await,
        401,
        "a later expiry than signed"
    );
    let other = ReportSigner::new(b"not-the-secret").sign("abc", exp);
    assert_eq!(
        status(format!("nid=abc&exp={exp}&sig={other}&type=1")).await,
        401,
        "signed with another secret"
    );
    let old = now - 10;
    assert_eq!(
        status(format!("nid=abc&exp={old}&sig={}&type=1", signer.sign("abc", old))).await,
        401,
        "expired"
    );
    // The URL varsel gives Kannel, with Kannel's fields filled in, is accepted (it names no
    // notification, so the report is kept as a dead report).
    let given = signer.report_url(&app.base_url, "abc", now);
    let filled = given.replace("%d", "1").replace("%A", "id%3A1").replace("%F", "f1");
    let resp = app.http.get(&filled).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{filled}");
    assert_eq!(
        status(format!("nid=abc&exp={exp}&type=1")).await,
        400,
        "missing signature is a bad request"
    );
    app.stop().await;
}

async fn simulator_numbers(db: Db) {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(db, smtp.url())).await;
    let cases = [
        ("+4740000091", "SMS_Failed_InvalidRecipient"),
        ("+4740000092", "SMS_Failed_BarredReceiver"),
        ("+4740000093", "SMS_Failed_Deleted"),
        ("+4740000094", "SMS_Failed_Expired"),
        ("+4740000095", "SMS_Failed_Undelivered"),
        ("+4740000096", "SMS_Failed_Rejected"),
        ("+4740000097", "SMS_Failed"),
        ("+4740000099", "SMS_Delivered"),
    ];
    let recipients: Vec<Value> = cases.iter().map(|(n, _)| json!({"mobileNumber": n})).collect();
    let id = app.order("/orders/sms", &json!({"body": "test", "recipients": recipients})).await;
    app.wait_status(&id, "Completed", T).await;
    let got = app.notifications(&id).await;
    for (number, status) in cases {
        let n = got.iter().find(|n| n.1 == number).unwrap();
        assert_eq!(n.2, status, "{number}");
    }
    app.stop().await;
}
on_both_databases!(simulator_test_numbers_produce_each_status, simulator_numbers);

async fn email_reports(db: Db) {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(|c| {
        c.email.delivery_reports = true;
        c.reports.secret = "report-secret-for-tests".into();
    });
    let app = TestApp::spawn(opts).await;
    let statuses = [
        ("Delivered", "Email_Delivered"),
        ("bounced", "Email_Failed_Bounced"),
        ("FilteredSpam", "Email_Failed_FilteredSpam"),
        ("Quarantined", "Email_Failed_Quarantined"),
        ("Suppressed", "Email_Failed_SuppressedRecipient"),
    ];
    let recipients: Vec<Value> =
        (0..statuses.len()).map(|i| json!({"emailAddress": format!("r{i}@example.no")})).collect();
    let id = app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    smtp.wait_for(statuses.len(), T).await;
    // Sent, but not final: the order waits for the reports.
    app.wait_notifications(&id, "Email_Succeeded", T).await;
    let (app_ref, id_ref) = (&app, &id);
    never_within(
        "the order left Processed before any report",
        Duration::from_millis(500),
        || async move { app_ref.order_row(id_ref).await.order.status.as_str() != "Processed" },
    )
    .await;

    let url = format!("{}/notifications/api/v1/reports/email", app.base_url);
    let post = |body: Value, auth: Option<String>| {
        let mut r = app.http.post(&url).json(&body);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    let rows = app.store.notifications(&id).await.unwrap();
    assert_eq!(
        post(json!({"notificationId": rows[0].id, "status": "Delivered"}), None)
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        post(json!({"notificationId": rows[0].id, "status": "Delivered"}), Some(basic("wrong")))
            .await
            .unwrap()
            .status(),
        401
    );
    for ((report, expected), (i, row)) in statuses.iter().zip(rows.iter().enumerate()) {
        // Half by notification id, half by Message-ID, as providers report it.
        let body = if i % 2 == 0 {
            json!({"notificationId": row.id, "status": report, "detail": "provider says so"})
        } else {
            json!({"messageId": format!("<{}@varsel>", row.id), "status": report})
        };
        let resp: Value =
            post(body, Some(basic("report-secret-for-tests"))).await.unwrap().json().await.unwrap();
        assert_eq!(resp["outcome"], "applied", "{report}");
        let _ = expected;
    }
    let order = app.wait_status(&id, "Completed", T).await;
    assert_eq!(order.order.status.as_str(), "Completed");
    let got = app.notifications(&id).await;
    for (i, (_, expected)) in statuses.iter().enumerate() {
        let n = got.iter().find(|n| n.1 == format!("r{i}@example.no")).unwrap();
        assert_eq!(&n.2, expected);
    }
    // A repeat changes nothing; a report for nothing is kept, listed, and cannot be re-applied.
    let again: Value = post(
        json!({"notificationId": rows[0].id, "status": "Bounced"}),
        Some(basic("report-secret-for-tests")),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(again["outcome"], "unchanged");
    // Every report is in the order's timeline, the repeat included.
    let h: Value = app.get(&format!("/orders/{id}/history"), "ttd").await.json().await.unwrap();
    let reports: Vec<&str> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == "notification")
        .map(|e| e["text"].as_str().unwrap())
        .filter(|t| t.contains(": delivery report: "))
        .collect();
    assert_eq!(reports.len(), statuses.len() + 1, "{reports:#?}");
    assert!(
        reports.iter().any(|t| t.contains("no change: already Email_Delivered")),
        "{reports:#?}"
    );
    let dead: Value = post(
        json!({"notificationId": "no-such-notification", "status": "Delivered"}),
        Some(basic("report-secret-for-tests")),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(dead["outcome"], "dead");
    let operator = app.operator_token();
    let dead_reports = || {
        let req = app
            .http
            .get(format!("{}/notifications/api/v1/operator/dead-reports", app.base_url))
            .bearer_auth(&operator);
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let reapply = || {
        let req = app
            .http
            .post(format!(
                "{}/notifications/api/v1/operator/dead-reports/{}/reapply",
                app.base_url,
                dead["deadReportId"].as_str().unwrap()
            ))
            .bearer_auth(&operator);
        async move { req.send().await.unwrap() }
    };
    let list = dead_reports().await;
    assert_eq!(list[0]["reference"], "no-such-notification");
    assert_eq!(list[0]["reason"], "UNKNOWN_REFERENCE");
    assert_eq!(
        app.http
            .get(format!("{}/notifications/api/v1/operator/dead-reports", app.base_url))
            .bearer_auth(app.token("ttd"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(reapply().await.status(), 409);

    // The notification appears after its report (a report that raced the commit of its row, or
    // a database restored from a backup): the operator re-applies the dead report, it moves the
    // notification, and it leaves the dead list.
    let now = chrono::Utc::now();
    app.store
        .insert_notifications(vec![varsel_activities::store::Notification {
            id: "no-such-notification".into(),
            order_id: id.clone(),
            channel: varsel_workflows::domain::Channel::Email,
            recipient_idx: 99,
            org_no: None,
            nin: None,
            address: "late@example.no".into(),
            subject: None,
            body: None,
            status: varsel_workflows::domain::NotificationStatus::EmailSucceeded,
            status_changed: now,
            status_reason: None,
            provider_ref: None,
            attempts: 1,
            expiry: now + chrono::Duration::hours(1),
            segments: None,
            delivery_report: None,
            awaits_report: true,
        }])
        .await
        .unwrap();
    let reapplied = reapply().await;
    assert_eq!(reapplied.status(), 200);
    let applied: Value = reapplied.json().await.unwrap();
    assert_eq!(applied["outcome"], "applied", "{applied}");
    let rows = app.store.notifications(&id).await.unwrap();
    let late = rows.iter().find(|n| n.id == "no-such-notification").unwrap();
    assert_eq!(late.status.as_str(), "Email_Delivered");
    assert_eq!(dead_reports().await, json!([]), "an applied report leaves the dead list");
    let actions = app.store.actions_of(&id).await.unwrap();
    assert!(
        actions.iter().any(|a| a.action == "re-apply dead report"
            && a.actor.starts_with("operator ")
            && a.detail.as_deref() == Some("email Email_Delivered for no-such-notification")),
        "the order's timeline says who re-applied what: {actions:?}"
    );
    app.stop().await;
}
on_both_databases!(email_reports_map_to_statuses_and_complete_the_order, email_reports);

/// Azure Event Grid's ACS email events: the subscription's key in the query, the validation
/// handshake answered, reports applied as Altinn maps them (by Message-ID), other event types
/// ignored, and a delivery with one unreadable event applies nothing.
#[tokio::test]
async fn event_grid_email_events_are_verified_and_applied() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| {
        c.email.delivery_reports = true;
        c.reports.eventgrid_key = "event-grid-key-for-tests".to_owned().into();
    });
    let app = TestApp::spawn(opts).await;
    let recipients: Vec<Value> =
        (0..3).map(|i| json!({"emailAddress": format!("g{i}@example.no")})).collect();
    let id = app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    smtp.wait_for(3, T).await;
    app.wait_notifications(&id, "Email_Succeeded", T).await;
    let mut rows = app.store.notifications(&id).await.unwrap();
    rows.sort_by_key(|n| n.address.clone());

    let url = |key: &str| {
        format!("{}/notifications/api/v1/reports/email/eventgrid?key={key}", app.base_url)
    };
    let event = |n: usize, status: &str| {
        json!({
            "id": format!("event-{n}"), "topic": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Communication/communicationServices/z",
            "subject": format!("sender/noreply@varsel.example/message/{n}"),
            "eventType": "Microsoft.Communication.EmailDeliveryReportReceived",
            "eventTime": "2026-12-02T08:00:00Z", "dataVersion": "1.0", "metadataVersion": "1",
            "data": {
                "sender": "noreply@varsel.example", "recipient": rows[n].address,
                "messageId": format!("acs-operation-{n}"),
                "internetMessageId": format!("<{}@varsel>", rows[n].id),
                "status": status,
                "deliveryStatusDetails": {"statusMessage": format!("ACS says {status}")},
                "deliveryAttemptTimestamp": "2026-12-02T08:00:00Z"
            }
        })
    };
    let handshake = json!([{
        "id": "validation-1", "topic": "/subscriptions/x", "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2026-12-02T08:00:00Z", "dataVersion": "2", "metadataVersion": "1",
        "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                 "validationUrl": "https://rp-westeurope.eventgrid.azure.net/validate"}
    }]);
    let post = |key: &str, body: Value| {
        app.http.post(url(key)).header("aeg-event-type", "Notification").json(&body).send()
    };
    for key in ["", "wrong-key"] {
        let r = post(key, handshake.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "key {key:?}");
    }
    let r = post("event-grid-key-for-tests", handshake).await.unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer, json!({"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}));

    // One unreadable event (no status): the whole delivery is refused and nothing applied.
    let mut bad = event(0, "Delivered");
    bad["data"].as_object_mut().unwrap().remove("status");
    let r = post("event-grid-key-for-tests", json!([event(1, "Bounced"), bad])).await.unwrap();
    assert_eq!(r.status(), 400);
    let after: Vec<String> = app
        .store
        .notifications(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.status.as_str().to_owned())
        .collect();
    assert!(after.iter().all(|s| s == "Email_Succeeded"), "{after:?}");

    let mut other = event(0, "Delivered");
    other["eventType"] = json!("Microsoft.Communication.EmailEngagementTrackingReportReceived");
    let r = post(
        "event-grid-key-for-tests",
        json!([event(0, "Delivered"), event(1, "Bounced"), event(2, "Expanded"), other]),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let outcomes: Vec<&str> = answer["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["applied", "applied", "applied", "ignored"]);
    app.wait_status(&id, "Completed", T).await;
    let mut got = app.store.notifications(&id).await.unwrap();
    got.sort_by_key(|n| n.address.clone());
    let statuses: Vec<(&str, Option<&str>)> =
        got.iter().map(|n| (n.status.as_str(), n.status_reason.as_deref())).collect();
    assert_eq!(
        statuses,
        [
            ("Email_Delivered", Some("ACS says Delivered")),
            ("Email_Failed_Bounced", Some("ACS says Bounced")),
            ("Email_Failed", Some("ACS: Expanded: ACS says Expanded")),
        ]
    );
    app.stop().await;
}

/// Nothing final within the time-to-live: sent-but-unreported and never-sent notifications both
/// end *_Failed_TTL, the order completes, and a report arriving afterwards is kept as dead.
async fn ttl(db: Db) {
    let smtp = SmtpServer::start();
    let dead_port = varsel_tests::free_port();
    let mut opts = TestAppOptions::new(db, format!("smtp://127.0.0.1:{dead_port}"));
    opts.tweak = Box::new(|c| {
        c.processing.notification_ttl_secs = 4;
        c.reports.secret = "s3cret".into();
    });
    let app = TestApp::spawn(opts).await;
    drop(smtp);
    // The SMTP relay is down (never sent) and the simulator never reports this number.
    let email = app
        .order(
            "/orders/email",
            &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "x@example.no"}]}),
        )
        .await;
    let silent = app.order("/orders/sms", &json!({"body": "b", "recipients": [{"mobileNumber": varsel_activities::providers::sms::SIMULATOR_SILENT_NUMBER}]})).await;
    app.wait_status(&email, "Completed", T).await;
    app.wait_status(&silent, "Completed", T).await;
    assert_eq!(app.notifications(&email).await[0].2, "Email_Failed_TTL");
    assert_eq!(app.notifications(&silent).await[0].2, "SMS_Failed_TTL");
    let sms: Value =
        app.get(&format!("/orders/{silent}/notifications/sms"), "ttd").await.json().await.unwrap();
    assert_eq!(
        sms["notifications"][0]["sendStatus"]["status"], "Failed",
        "Altinn reports TTL as Failed"
    );

    let row = &app.store.notifications(&email).await.unwrap()[0];
    let late: Value = app
        .http
        .post(format!("{}/notifications/api/v1/reports/email", app.base_url))
        .header("Authorization", basic("s3cret"))
        .json(&json!({"notificationId": row.id, "status": "Delivered"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(late["outcome"], "dead");
    let dead = app.store.dead_reports(10).await.unwrap();
    assert_eq!(dead[0].reason, "NOTIFICATION_EXPIRED");
    app.stop().await;
}
on_both_databases!(open_notifications_fail_at_their_time_to_live, ttl);

/// Simulator mode with an allow-list: listed numbers go through the real gateway, the rest to the
/// simulator, as in Altinn's test environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_listed_numbers_go_to_the_gateway() {
    let smtp = SmtpServer::start();
    let gw = tokio::task::spawn_blocking(KannelGateway::start).await.unwrap();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    let (url, password) = (gw.sendsms_url.clone(), gw.password.clone());
    opts.tweak = Box::new(move |c| {
        c.sms.kannel_sendsms_url = url;
        c.sms.kannel_password = password.into();
        c.sms.allow_list = vec!["+4798000001".into()];
    });
    let app = TestApp::spawn(opts).await;
    let id = app.order("/orders/sms", &json!({"body": "b", "recipients": [{"mobileNumber": "+4798000001"}, {"mobileNumber": "+4798000002"}]})).await;
    app.wait_status(&id, "Completed", T).await;
    let rows = app.store.notifications(&id).await.unwrap();
    let by = |n: &str| rows.iter().find(|r| r.address == n).unwrap().clone();
    assert_eq!(by("+4798000001").status.as_str(), "SMS_Delivered");
    // Kannel reports type 1 (delivered) and 8 (SMSC accepted) in either order; the last is kept.
    assert!(
        by("+4798000001").delivery_report.unwrap().contains("nid="),
        "reported through the Kannel endpoint"
    );
    assert_eq!(by("+4798000002").status.as_str(), "SMS_Delivered");
    assert!(by("+4798000002").provider_ref.unwrap().starts_with("sim:"), "taken by the simulator");
    let simulated: Vec<String> =
        app.simulated_sms(&id).await.into_iter().map(|s| s.recipient).collect();
    assert_eq!(simulated, vec!["+4798000002"]);
    app.stop().await;
}
