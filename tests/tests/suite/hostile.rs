//! Hostile input, walked over every endpoint that takes some, on SQLite and PostgreSQL alike:
//! text a database cannot store, values no network or mailbox accepts, sizes no real request
//! has, repeats, out-of-range numbers and dates, wrongly typed fields, oversized headers. Each
//! is a 400 (or 404, 431) problem detail naming what is wrong, nothing of it is stored, and
//! what is accepted goes out as a mailbox takes it.

use serde_json::{Value, json};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, on_both_databases};

const T: Duration = Duration::from_secs(60);

/// Sets `value` at `path` (object keys, or array indexes as numbers in text) of `base`.
fn with(mut base: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut base;
    for key in &path[..path.len() - 1] {
        cur = match key.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*key],
        };
    }
    cur[path[path.len() - 1]] = value;
    base
}

fn v1_order() -> Value {
    json!({
        "notificationChannel": "EmailPreferred",
        "emailTemplate": {"subject": "s", "body": "b"},
        "smsTemplate": {"body": "b"},
        "recipients": [{"emailAddress": "a@example.no"}],
    })
}

fn chain() -> Value {
    json!({
        "idempotencyId": uuid::Uuid::new_v4().to_string(),
        "recipient": {"recipientEmail": {"emailAddress": "a@example.no", "emailSettings": {"subject": "s", "body": "b"}}},
    })
}

fn instant_email() -> Value {
    json!({
        "idempotencyId": uuid::Uuid::new_v4().to_string(),
        "recipientEmail": {"emailAddress": "a@example.no", "emailSettings": {"subject": "s", "body": "b"}},
    })
}

fn instant_sms() -> Value {
    json!({
        "idempotencyId": uuid::Uuid::new_v4().to_string(),
        "recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 3600, "smsSettings": {"body": "b"}},
    })
}

async fn orders_stored(app: &TestApp) -> usize {
    use sea_orm::{EntityTrait, PaginatorTrait};
    varsel_activities::store::entities::order::Entity::find().count(app.store.conn()).await.unwrap()
        as usize
}

/// Posts `body` and asserts a 400 problem detail with a message under `key` containing `needle`.
async fn refused(app: &TestApp, path: &str, body: &Value, key: &str, needle: &str) {
    let resp = app.post(path, body, "ttd").await;
    let status = resp.status();
    assert_eq!(resp.headers()["content-type"], "application/problem+json", "{path} {key}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(status, 400, "{path} {key}: {p}");
    let messages =
        p["errors"][key].as_array().unwrap_or_else(|| panic!("{path}: no key {key} in {p}"));
    assert!(
        messages.iter().any(|m| m.as_str().unwrap().contains(needle)),
        "{path} {key}: {needle:?} not in {p}"
    );
}

async fn hostile(db: Db) {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(|c| c.reports.secret = "report-secret-for-tests".into());
    let app = TestApp::spawn(opts).await;
    let nul = "a\u{0}b";
    const NUL: &str = "NUL character";

    // Text no database stores: refused alike on both, naming the field.
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/orders",
            with(v1_order(), &["emailTemplate", "subject"], json!(nul)),
            "$.emailTemplate.subject",
        ),
        (
            "/orders",
            with(v1_order(), &["emailTemplate", "body"], json!(nul)),
            "$.emailTemplate.body",
        ),
        (
            "/orders",
            with(v1_order(), &["smsTemplate", "senderNumber"], json!(nul)),
            "$.smsTemplate.senderNumber",
        ),
        ("/orders", with(v1_order(), &["sendersReference"], json!(nul)), "$.sendersReference"),
        ("/orders", with(v1_order(), &["resourceId"], json!(nul)), "$.resourceId"),
        (
            "/orders",
            with(v1_order(), &["recipients", "0", "emailAddress"], json!(nul)),
            "$.recipients[0].emailAddress",
        ),
        (
            "/orders/sms",
            json!({"body": nul, "recipients": [{"mobileNumber": "+4799999999"}]}),
            "$.body",
        ),
        ("/future/orders", with(chain(), &["idempotencyId"], json!(nul)), "$.idempotencyId"),
        (
            "/future/orders",
            with(chain(), &["recipient", "recipientEmail", "emailSettings", "subject"], json!(nul)),
            "$.recipient.recipientEmail.emailSettings.subject",
        ),
        (
            "/future/orders/instant/email",
            with(instant_email(), &["recipientEmail", "emailSettings", "body"], json!(nul)),
            "$.recipientEmail.emailSettings.body",
        ),
        (
            "/future/orders/instant/sms",
            with(instant_sms(), &["recipientSms", "smsSettings", "sender"], json!(nul)),
            "$.recipientSms.smsSettings.sender",
        ),
    ];
    for (path, body, key) in &cases {
        refused(&app, path, body, key, NUL).await;
    }
    // In a path or a query: no order has such an id (ids are GUIDs: anything else is 404
    // problem details, as for an unknown order), and a reference with NUL is refused.
    for path in [
        "/orders/a%00b",
        "/orders/a%00b/status",
        "/future/shipment/a%00b",
        "/future/orders/a%00b",
        "/orders/not-a-guid",
        "/orders/12345/notifications/email",
        "/future/shipment/not-a-guid",
    ] {
        let resp = app.get(path, "ttd").await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{path}");
    }
    let resp = app
        .http
        .put(format!("{}/notifications/api/v1/orders/a%00b/cancel", app.base_url))
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = app.get("/orders?sendersReference=a%00b", "ttd").await;
    assert_eq!(resp.status(), 400);
    let p: Value = resp.json().await.unwrap();
    assert!(p["errors"]["SendersReference"][0].as_str().unwrap().contains(NUL), "{p}");

    // Sender ids no network shows as sent.
    let emoji = "😀".repeat(20);
    let bangs = "!".repeat(40);
    let digits = "1".repeat(30);
    for sender in [
        emoji.as_str(),
        bangs.as_str(),
        digits.as_str(),
        "Alt\ninn",
        "Alt\u{200b}inn",
        "Skatteetaten",
    ] {
        refused(&app, "/orders/sms", &json!({"body": "b", "senderNumber": sender, "recipients": [{"mobileNumber": "+4799999999"}]}), "SenderNumber", "sender id").await;
        refused(
            &app,
            "/orders",
            &with(v1_order(), &["smsTemplate", "senderNumber"], json!(sender)),
            "SmsTemplate.SenderNumber",
            "sender id",
        )
        .await;
        let body = with(instant_sms(), &["recipientSms", "smsSettings", "sender"], json!(sender));
        refused(
            &app,
            "/future/orders/instant/sms",
            &body,
            "RecipientSms.SmsSettings.Sender",
            "sender id",
        )
        .await;
    }

    // Subjects with control characters, and sizes no real request has.
    for subject in ["a\u{b}b", "a\u{1b}[31mb", "a\u{7f}b"] {
        refused(
            &app,
            "/orders",
            &with(v1_order(), &["emailTemplate", "subject"], json!(subject)),
            "EmailTemplate.Subject",
            "control characters",
        )
        .await;
        refused(&app, "/orders/email", &json!({"subject": subject, "body": "b", "recipients": [{"emailAddress": "a@example.no"}]}), "Subject", "control characters").await;
        let body =
            with(instant_email(), &["recipientEmail", "emailSettings", "subject"], json!(subject));
        refused(
            &app,
            "/future/orders/instant/email",
            &body,
            "RecipientEmail.EmailSettings.Subject",
            "control characters",
        )
        .await;
    }
    let mb = "x".repeat(1_000_000);
    let ten_mb = "y ".repeat(5_000_000);
    let kb100 = "z".repeat(100_000);
    refused(
        &app,
        "/orders",
        &with(v1_order(), &["emailTemplate", "subject"], json!(mb)),
        "EmailTemplate.Subject",
        "at most 500 characters",
    )
    .await;
    refused(
        &app,
        "/orders/email",
        &json!({"subject": ten_mb, "body": "b", "recipients": [{"emailAddress": "a@example.no"}]}),
        "Subject",
        "at most 500 characters",
    )
    .await;
    refused(
        &app,
        "/orders/email",
        &json!({"subject": "s", "body": ten_mb, "recipients": [{"emailAddress": "a@example.no"}]}),
        "Body",
        "at most 1048576 bytes",
    )
    .await;
    refused(
        &app,
        "/orders/sms",
        &json!({"body": ten_mb, "recipients": [{"mobileNumber": "+4799999999"}]}),
        "Body",
        "at most 16 are sent",
    )
    .await;
    refused(
        &app,
        "/orders",
        &with(v1_order(), &["sendersReference"], json!(mb)),
        "SendersReference",
        "at most 255 characters",
    )
    .await;
    refused(
        &app,
        "/future/orders",
        &with(chain(), &["idempotencyId"], json!(kb100)),
        "IdempotencyId",
        "at most 255 characters",
    )
    .await;
    refused(
        &app,
        "/future/orders/instant/sms",
        &with(instant_sms(), &["idempotencyId"], json!(kb100)),
        "IdempotencyId",
        "at most 255 characters",
    )
    .await;
    refused(
        &app,
        "/future/orders/instant/sms",
        &with(instant_sms(), &["recipientSms", "smsSettings", "body"], json!(ten_mb)),
        "RecipientSms.SmsSettings.Body",
        "at most 16 are sent",
    )
    .await;

    // Out of range: refused, not clamped.
    let reminder = json!({"delayDays": 1, "recipient": chain()["recipient"]});
    let many: Vec<Value> = (0..1000).map(|_| reminder.clone()).collect();
    refused(
        &app,
        "/future/orders",
        &with(chain(), &["reminders"], json!(many)),
        "Reminders",
        "at most 20 reminders",
    )
    .await;
    let far = with(reminder.clone(), &["delayDays"], json!(100_000));
    refused(
        &app,
        "/future/orders",
        &with(chain(), &["reminders"], json!([far])),
        "Reminders[0].DelayDays",
        "at most 3650 days",
    )
    .await;
    refused(
        &app,
        "/future/orders",
        &with(chain(), &["requestedSendTime"], json!("9999-12-31T00:00:00Z")),
        "RequestedSendTime",
        "at most 3650 days ahead",
    )
    .await;
    refused(
        &app,
        "/orders",
        &with(v1_order(), &["requestedSendTime"], json!("9999-12-31T00:00:00Z")),
        "RequestedSendTime",
        "at most 3650 days ahead",
    )
    .await;
    let resp = app.get("/future/shipment/feed?pageSize=ten", "ttd").await;
    assert_eq!(resp.status(), 400);
    let p: Value = resp.json().await.unwrap();
    assert!(
        p["errors"]["pageSize"][0]
            .as_str()
            .unwrap()
            .contains("The pageSize parameter is not valid"),
        "{p}"
    );
    for size in ["0", "-1", "501"] {
        let resp = app.get(&format!("/future/shipment/feed?pageSize={size}"), "ttd").await;
        assert_eq!(resp.status(), 400, "pageSize {size}");
        let p: Value = resp.json().await.unwrap();
        assert!(p["errors"]["PageSize"][0].as_str().unwrap().contains("between 1 and 500"), "{p}");
    }

    // A wrongly typed field is named by its path, in Altinn's envelope.
    refused(
        &app,
        "/orders",
        &with(v1_order(), &["emailTemplate", "subject"], json!(12345)),
        "$.emailTemplate.subject",
        "could not be converted to a string",
    )
    .await;
    refused(
        &app,
        "/orders",
        &with(v1_order(), &["ignoreReservation"], json!("yes")),
        "$.ignoreReservation",
        "a boolean",
    )
    .await;
    refused(
        &app,
        "/future/orders",
        &with(chain(), &["recipient", "recipientEmail", "emailAddress"], json!(5)),
        "$.recipient.recipientEmail.emailAddress",
        "a string",
    )
    .await;
    refused(
        &app,
        "/future/orders",
        &with(chain(), &["reminders"], json!([{"delayDays": "three"}])),
        "$.reminders[0].delayDays",
        "a whole number",
    )
    .await;
    assert_eq!(orders_stored(&app).await, 0, "nothing of a refused request is stored");

    // A header block no client needs: 431 problem details, not an empty answer.
    let resp = app
        .http
        .get(format!("{}/notifications/api/v1/orders?sendersReference=x", app.base_url))
        .bearer_auth(app.token("ttd"))
        .header("X-Padding", "p".repeat(1_000_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["status"], 431, "{p}");

    // One address three times (once in upper case) is one recipient, and the answer says so.
    let resp = app
        .post("/orders/email", &json!({"subject": "s", "body": "b", "recipients": [
            {"emailAddress": "dup@example.no"}, {"emailAddress": "DUP@example.no"}, {"emailAddress": "dup@example.no"}, {"emailAddress": "other@example.no"}
        ]}), "ttd")
        .await;
    assert_eq!(resp.status(), 202);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["duplicateRecipients"], json!([1, 2]), "{answer}");
    let id = answer["orderId"].as_str().unwrap().to_owned();
    app.wait_status(&id, "Completed", T).await;
    let mails = smtp.wait_for(2, T).await;
    assert_eq!(
        mails.iter().filter(|m| m.to.eq_ignore_ascii_case("dup@example.no")).count(),
        1,
        "{mails:?}"
    );
    assert_eq!(app.notifications(&id).await.len(), 2);
    // 100,000 copies of one address: one recipient.
    let copies: Vec<Value> = (0..100_000).map(|i| json!({"emailAddress": if i % 2 == 0 { "same@example.no" } else { "SAME@example.no" }})).collect();
    let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let resp = app
        .post(
            "/orders/email",
            &json!({"subject": "s", "body": "b", "requestedSendTime": later, "recipients": copies}),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 202);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["duplicateRecipients"].as_array().unwrap().len(), 99_999);
    assert_eq!(app.order_row(answer["orderId"].as_str().unwrap()).await.recipient_count, 1);

    // A long subject that is allowed goes out as header lines a mailbox takes (at most 998
    // characters), folded, and reads back whole.
    let long_subject = format!("{} {}", "w".repeat(480), "æøå");
    let id = app.order("/orders/email", &json!({"subject": long_subject, "body": "b", "recipients": [{"emailAddress": "long@example.no"}]})).await;
    app.wait_status(&id, "Completed", T).await;
    let mails = smtp.wait_for(3, T).await;
    let mail = mails.iter().find(|m| m.to == "long@example.no").expect("the long-subject mail");
    assert_eq!(mail.subject, long_subject);
    for raw in smtp.raw_messages() {
        for line in raw.split(|b| *b == b'\n') {
            assert!(line.len() <= 998, "a line of {} bytes", line.len());
        }
    }

    // HTTP Basic on the report endpoint, scheme in any case.
    use base64::Engine;
    let creds = base64::engine::general_purpose::STANDARD.encode("reports:report-secret-for-tests");
    for scheme in ["Basic", "basic", "BASIC"] {
        let resp = app
            .http
            .post(format!("{}/notifications/api/v1/reports/email", app.base_url))
            .header("Authorization", format!("{scheme} {creds}"))
            .json(&json!({"notificationId": "no-such-notification", "status": "Delivered"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{scheme}");
    }
    app.stop().await;
}
on_both_databases!(hostile_input_is_refused_alike_on_both_databases, hostile);
