//! SMS rules: segments, sender length, the per-country sender policy and the sending window.

use serde_json::{Value, json};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, never_within, on_both_databases};

const T: Duration = Duration::from_secs(60);

async fn rules(db: Db) {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(db, smtp.url())).await;

    // Alphanumeric sender ids over 11 characters are refused at validation.
    let resp = app.post("/orders/sms", &json!({"body": "b", "senderNumber": "TwelveLetter", "recipients": [{"mobileNumber": "+4799999999"}]}), "ttd").await;
    assert_eq!(resp.status(), 400);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(
        p["errors"]["SenderNumber"][0],
        "An alphanumeric sender id can be at most 11 characters long."
    );
    let ok = app.post("/orders/sms", &json!({"body": "b", "senderNumber": "+4712345678901", "recipients": [{"mobileNumber": "+4799999999"}]}), "ttd").await;
    assert_eq!(ok.status(), 202, "numeric senders may be longer");

    let long_text = "a".repeat(200);
    let id = app
        .order(
            "/orders/sms",
            &json!({"body": format!("{long_text} https://example.no"), "senderNumber": "Skatteetat", "recipients": [
                {"mobileNumber": "+4799999999"},
                {"mobileNumber": "+358401234567"},
                {"mobileNumber": "+34612345678"},
                {"mobileNumber": "+66812345678"}
            ]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let sent = app.simulated_sms(&id).await;
    let sender_for = |to: &str| sent.iter().find(|s| s.recipient == to).map(|s| s.sender.clone());
    assert_eq!(sender_for("+4799999999").as_deref(), Some("Skatteetat"));
    assert_eq!(sender_for("+358401234567").as_deref(), Some("Skatteetat"));
    assert_eq!(
        sender_for("+34612345678").as_deref(),
        Some("+4759440000"),
        "Spain: the numeric sender"
    );
    assert_eq!(
        sender_for("+66812345678"),
        None,
        "Thailand: a URL from an unregistered sender is never sent"
    );

    let summary: Value =
        app.get(&format!("/orders/{id}/notifications/sms"), "ttd").await.json().await.unwrap();
    let by_number = |n: &str| {
        summary["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["recipient"]["mobileNumber"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_number("+4799999999")["segments"], 2, "218 characters take two segments");
    assert_eq!(by_number("+358401234567")["sendStatus"]["status"], "Delivered");
    assert!(
        by_number("+358401234567")["sendStatus"]["description"]
            .as_str()
            .unwrap()
            .contains("tuntematon")
    );
    assert!(
        by_number("+34612345678")["sendStatus"]["description"]
            .as_str()
            .unwrap()
            .contains("+4759440000")
    );
    let thai = by_number("+66812345678");
    assert_eq!(thai["sendStatus"]["status"], "Failed_Rejected");
    assert!(thai["sendStatus"]["description"].as_str().unwrap().contains("URL"));
    app.stop().await;
}
on_both_databases!(sms_sender_rules_and_segments, rules);

/// An SMS waits durably for the sending window; email in the same order goes at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_waits_for_the_sending_window() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    // The shared Temporal first: its start must not eat into the window's lead.
    tokio::task::spawn_blocking(varsel_tests::temporal_address).await.unwrap();
    // A window that opens eight seconds from now, Oslo time.
    // Whole seconds: the window is given to the second.
    use chrono::Timelike;
    let opens = (chrono::Utc::now().with_timezone(&chrono_tz::Europe::Oslo)
        + chrono::Duration::seconds(8))
    .with_nanosecond(0)
    .unwrap();
    let closes = opens + chrono::Duration::hours(1);
    let window = format!("{}-{}", opens.format("%H:%M:%S"), closes.format("%H:%M:%S"));
    opts.tweak = Box::new(move |c| c.sms.sending_window = window);
    let app = TestApp::spawn(opts).await;
    let id = app
        .order(
            "/orders",
            &json!({"notificationChannel": "EmailAndSms", "emailTemplate": {"subject": "s", "body": "b"}, "smsTemplate": {"body": "b"},
                    "recipients": [{"nationalIdentityNumber": "16069412345"}]}),
        )
        .await;
    smtp.wait_for(1, T).await;
    // Until just before the window opens, however long that still is: no SMS.
    let opens_utc = opens.with_timezone(&chrono::Utc);
    let lead = (opens_utc - chrono::Utc::now() - chrono::Duration::milliseconds(500))
        .to_std()
        .expect("the email went out well before the window opened");
    let (app_ref, id_ref) = (&app, &id);
    never_within("an SMS was sent before the window opened", lead, || async move {
        !app_ref.simulated_sms(id_ref).await.is_empty()
    })
    .await;
    assert_eq!(app.order_row(&id).await.order.status.as_str(), "Processed");
    app.wait_status(&id, "Completed", T).await;
    let sms = app.simulated_sms(&id).await;
    assert_eq!(sms.len(), 1);
    assert!(
        sms[0].accepted_at >= opens_utc,
        "sent at {}, the window opened at {opens_utc}",
        sms[0].accepted_at
    );
    app.stop().await;
}
