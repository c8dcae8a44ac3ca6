//! Instant messages (`POST /future/orders/instant/sms` and `/instant/email`) against the real
//! stack: sent while the request waits, answered once per idempotency id (also when the same
//! request races with itself), 503 `NOT-00004` with nothing stored when the provider cannot take
//! the message, the SMS time-to-live, the shipment and the status feed, and Altinn's messages.

use serde_json::{Value, json};
use std::time::Duration;
use varsel_activities::providers::sms::SIMULATOR_SILENT_NUMBER;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, eventually, on_both_databases};

const T: Duration = Duration::from_secs(60);

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Option<String>, Value) {
    let resp = app.post(path, body, "ttd").await;
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    (status, location, resp.json().await.unwrap())
}

fn sms(id: &str, number: &str, ttl: i64) -> Value {
    json!({
        "idempotencyId": id,
        "sendersReference": "ref-sms",
        "recipientSms": {"phoneNumber": number, "timeToLiveInSeconds": ttl, "smsSettings": {"sender": "Varsel", "body": "Koden er 1234"}}
    })
}

fn email(id: &str, address: &str) -> Value {
    json!({
        "idempotencyId": id,
        "sendersReference": "ref-email",
        "recipientEmail": {"emailAddress": address, "emailSettings": {"subject": "Engangskode", "body": "Koden er 1234", "contentType": "Plain"}}
    })
}

/// No order, chain or notification of the creator is stored.
async fn nothing_stored(app: &TestApp, idempotency_id: &str) {
    assert!(
        app.store.find_chain("ttd", idempotency_id).await.unwrap().is_none(),
        "no chain for {idempotency_id}"
    );
    let orders = app.store.orders_by_senders_reference("ttd", "ref-email").await.unwrap();
    assert!(orders.is_empty(), "no order: {orders:?}");
    let orders = app.store.orders_by_senders_reference("ttd", "ref-sms").await.unwrap();
    assert!(orders.is_empty(), "no order: {orders:?}");
}

async fn instant(db: Db) {
    let smtp = SmtpServer::start_flaky();
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(|c| c.sms.simulator_report_delay_ms = 200);
    let app = TestApp::spawn(opts).await;

    // Email: sent before the answer, which points to an endpoint that exists.
    let (status, location, first) =
        post(&app, "/future/orders/instant/email", &email("otp-1", "kari@example.no")).await;
    assert_eq!(status, 201, "{first}");
    let mails = smtp.messages();
    assert_eq!(mails.len(), 1, "the email is out when the request is answered: {mails:?}");
    assert_eq!(mails[0].to, "kari@example.no");
    assert_eq!(mails[0].subject, "Engangskode");
    assert_eq!(mails[0].body, "Koden er 1234");
    let shipment = first["notification"]["shipmentId"].as_str().unwrap().to_owned();
    assert_eq!(first["notification"]["sendersReference"], "ref-email");
    assert!(first["notification"].get("reminders").is_none(), "{first}");
    let got: Value = app
        .http
        .get(location.unwrap())
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, first);
    let row = app.wait_status(&shipment, "Completed", T).await;
    assert_eq!(row.order.chain.as_ref().map(|c| c.order_type.as_str()), Some("Instant"));
    let manifest: Value =
        app.get(&format!("/future/shipment/{shipment}"), "ttd").await.json().await.unwrap();
    assert_eq!(manifest["type"], "Instant", "{manifest}");
    assert_eq!(manifest["status"], "Order_Completed", "{manifest}");
    assert_eq!(manifest["recipients"][0]["destination"], "kari@example.no");
    assert_eq!(manifest["recipients"][0]["status"], "Email_Succeeded");
    let n = &app.store.notifications(&shipment).await.unwrap()[0];
    let ttl = n.expiry - row.order.created;
    assert!(
        (ttl - chrono::Duration::hours(48)).num_seconds().abs() <= 5,
        "an instant email stays open 48 hours: {ttl}"
    );

    // A repeat: the first answer, nothing sent again. Another request under the same id: 409.
    let (status, _, again) =
        post(&app, "/future/orders/instant/email", &email("otp-1", "kari@example.no")).await;
    assert_eq!((status, &again), (200, &first));
    let (status, _, p) =
        post(&app, "/future/orders/instant/email", &email("otp-1", "ola@example.no")).await;
    assert_eq!(status, 409, "{p}");
    let (status, _, p) =
        post(&app, "/future/orders/instant/sms", &sms("otp-1", "+4799999999", 300)).await;
    assert_eq!(status, 409, "the same id on the other endpoint is another request: {p}");
    assert_eq!(smtp.count(), 1);

    // SMS: eight identical requests at once send one message.
    let body = sms("otp-2", "+4799999999", 300);
    let answers =
        futures::future::join_all((0..8).map(|_| post(&app, "/future/orders/instant/sms", &body)))
            .await;
    let created: Vec<_> = answers.iter().filter(|a| a.0 == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for (status, _, answer) in &answers {
        // 200 with the first answer, or 409 while the first request still waited for the gateway.
        assert!(
            *status == 201 || (*status == 200 && *answer == created[0].2) || *status == 409,
            "{answers:?}"
        );
    }
    let shipment = created[0].2["notification"]["shipmentId"].as_str().unwrap().to_owned();
    assert_eq!(app.simulated_sms(&shipment).await.len(), 1, "one SMS for eight requests");
    let row = app.wait_status(&shipment, "Completed", T).await;
    let n = &app.store.notifications(&shipment).await.unwrap()[0];
    assert_eq!(n.status.as_str(), "SMS_Delivered");
    assert!(
        ((n.expiry - row.order.created) - chrono::Duration::seconds(300)).num_seconds().abs() <= 5,
        "expiry is the time-to-live"
    );
    let (status, _, again) = post(&app, "/future/orders/instant/sms", &body).await;
    assert_eq!(
        (status, &again),
        (200, &created[0].2),
        "once sent, every repeat gets the first answer"
    );

    // Altinn's deprecated shape (`recipient.recipientSms`) is the same request: its repeat of
    // otp-2 gets the first answer, and a new id is sent like any instant SMS.
    let old = |id: &str| {
        json!({
            "idempotencyId": id,
            "sendersReference": "ref-sms",
            "recipient": {"recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 300, "smsSettings": {"sender": "Varsel", "body": "Koden er 1234"}}}
        })
    };
    let (status, _, again) = post(&app, "/future/orders/instant", &old("otp-2")).await;
    assert_eq!((status, &again), (200, &created[0].2), "one request whichever shape");
    let (status, location, deprecated) = post(&app, "/future/orders/instant", &old("otp-5")).await;
    assert_eq!(status, 201, "{deprecated}");
    assert!(location.unwrap().ends_with(deprecated["notificationOrderId"].as_str().unwrap()));
    let old_shipment = deprecated["notification"]["shipmentId"].as_str().unwrap().to_owned();
    assert_eq!(app.simulated_sms(&old_shipment).await.len(), 1);
    app.wait_status(&old_shipment, "Completed", T).await;

    // Finished instant messages are in the status feed like any order.
    let app_ref = &app;
    eventually("three instant messages in the status feed", T, || async move {
        let feed: Value = app_ref.get("/future/shipment/feed", "ttd").await.json().await.unwrap();
        let types: Vec<&str> =
            feed.as_array().unwrap().iter().filter_map(|e| e["shipmentType"].as_str()).collect();
        (types.iter().filter(|t| **t == "Instant").count() == 3).then_some(())
    })
    .await;

    // An idempotency id is the creator's own: another organisation using the same one sends its
    // own message and gets its own answer, and the first creator's repeat is unchanged.
    let nav_body = email("otp-1", "nav-kari@example.no");
    let resp = app.post("/future/orders/instant/email", &nav_body, "nav").await;
    assert_eq!(resp.status(), 201, "another creator, the same idempotency id");
    let nav: Value = resp.json().await.unwrap();
    assert_ne!(nav["notificationOrderId"], first["notificationOrderId"], "{nav}");
    assert_eq!(smtp.messages().iter().filter(|m| m.to == "nav-kari@example.no").count(), 1);
    let (status, _, ttd_again) =
        post(&app, "/future/orders/instant/email", &email("otp-1", "kari@example.no")).await;
    assert_eq!((status, &ttd_again), (200, &first), "the first creator's answer is its own");
    let nav_again = app.post("/future/orders/instant/email", &nav_body, "nav").await;
    assert_eq!(nav_again.status(), 200);
    assert_eq!(nav_again.json::<Value>().await.unwrap(), nav, "and the other's is its own");
    let kari = smtp.messages().iter().filter(|m| m.to == "kari@example.no").count();
    assert_eq!(kari, 1, "no repeat sent again");

    // The relay is down: 503 NOT-00004 and nothing stored; once it is back the same request goes.
    smtp.set_outage(true);
    let down = email("otp-3", "outage@example.no");
    let (status, _, p) = post(&app, "/future/orders/instant/email", &down).await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(p["code"], "NOT-00004", "{p}");
    assert_eq!(p["type"], "urn:altinn:error:NOT-00004", "{p}");
    assert_eq!(p["title"], "A temporary network failure occurred", "{p}");
    assert!(app.store.find_chain("ttd", "otp-3").await.unwrap().is_none(), "nothing stored");
    let stored = app.store.orders_by_senders_reference("ttd", "ref-email").await.unwrap();
    assert_eq!(stored.len(), 1, "only the first email's order: {stored:?}");
    smtp.set_outage(false);
    let (status, _, p) = post(&app, "/future/orders/instant/email", &down).await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(smtp.messages().iter().filter(|m| m.to == "outage@example.no").count(), 1);

    // A permanent refusal is an answer, not an outage: stored, and final at once.
    let (status, _, p) =
        post(&app, "/future/orders/instant/email", &email("otp-4", "rejected@example.no")).await;
    assert_eq!(status, 201, "{p}");
    let shipment = p["notification"]["shipmentId"].as_str().unwrap().to_owned();
    app.wait_status(&shipment, "Completed", T).await;
    assert_eq!(app.notifications(&shipment).await[0].2, "Email_Failed");
    app.stop().await;
}
on_both_databases!(instant_messages_are_sent_once_per_idempotency_id, instant);

/// An instant SMS nobody reports on is given up at its own time-to-live, not the 48 hours of
/// scheduled messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreported_instant_sms_fails_at_its_time_to_live() {
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await;
    let (status, _, p) =
        post(&app, "/future/orders/instant/sms", &sms("ttl-1", SIMULATOR_SILENT_NUMBER, 60)).await;
    assert_eq!(status, 201, "{p}");
    let shipment = p["notification"]["shipmentId"].as_str().unwrap().to_owned();
    assert_eq!(app.notifications(&shipment).await[0].2, "SMS_Accepted");
    let started = std::time::Instant::now();
    app.wait_status(&shipment, "Completed", Duration::from_secs(120)).await;
    assert!(
        started.elapsed() >= Duration::from_secs(50),
        "not before its time-to-live: {:?}",
        started.elapsed()
    );
    assert_eq!(app.notifications(&shipment).await[0].2, "SMS_Failed_TTL");
    app.stop().await;
}

/// The gateway cannot be reached: 503 `NOT-00004`, nothing stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_sms_gateway_is_503_and_stores_nothing() {
    let dead = varsel_tests::free_port();
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    opts.tweak = Box::new(move |c| {
        c.sms.provider = varsel_api::config::SmsProvider::Kannel;
        c.sms.kannel_sendsms_url = format!("http://127.0.0.1:{dead}/cgi-bin/sendsms");
        c.sms.gateway_timeout_secs = 2;
    });
    let app = TestApp::spawn(opts).await;
    let (status, _, p) =
        post(&app, "/future/orders/instant/sms", &sms("down-1", "+4799999999", 600)).await;
    assert_eq!(status, 503, "{p}");
    assert_eq!(p["code"], "NOT-00004", "{p}");
    assert!(
        !p["detail"].as_str().unwrap().contains("password"),
        "no gateway secrets in answers: {p}"
    );
    nothing_stored(&app, "down-1").await;
    // Repeating it is safe: still nothing stored while the gateway is down.
    let (status, _, _) =
        post(&app, "/future/orders/instant/sms", &sms("down-1", "+4799999999", 600)).await;
    assert_eq!(status, 503);
    nothing_stored(&app, "down-1").await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_instant_messages_get_altinns_messages() {
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await;
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "sms",
            json!({"recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 60, "smsSettings": {"body": "b"}}}),
            "IdempotencyId",
            "IdempotencyId cannot be null or empty.",
        ),
        ("sms", json!({"idempotencyId": "x"}), "RecipientSms", "SMS details cannot be null."),
        (
            "sms",
            json!({"idempotencyId": "x", "recipientSms": {"phoneNumber": "12345", "timeToLiveInSeconds": 60, "smsSettings": {"body": "b"}}}),
            "RecipientSms.PhoneNumber",
            "Recipient phone number is not a valid mobile number.",
        ),
        (
            "sms",
            json!({"idempotencyId": "x", "recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 59, "smsSettings": {"body": "b"}}}),
            "RecipientSms.TimeToLiveInSeconds",
            "Time-to-live must be between 60 and 172800 seconds (48 hours).",
        ),
        (
            "sms",
            json!({"idempotencyId": "x", "recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 172801, "smsSettings": {"body": "b"}}}),
            "RecipientSms.TimeToLiveInSeconds",
            "Time-to-live must be between 60 and 172800 seconds (48 hours).",
        ),
        (
            "sms",
            json!({"idempotencyId": "x", "recipientSms": {"phoneNumber": "+4799999999", "smsSettings": {"body": "b"}}}),
            "RecipientSms.TimeToLiveInSeconds",
            "Time-to-live must be between 60 and 172800 seconds (48 hours).",
        ),
        (
            "sms",
            json!({"idempotencyId": "x", "recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 60, "smsSettings": {"body": " "}}}),
            "RecipientSms.SmsSettings.Body",
            "The Body field is required.",
        ),
        (
            "email",
            json!({"recipientEmail": {"emailAddress": "a@b.no", "emailSettings": {"subject": "s", "body": "b"}}}),
            "IdempotencyId",
            "IdempotencyId cannot be null or empty.",
        ),
        ("email", json!({"idempotencyId": "x"}), "RecipientEmail", "Email details cannot be null."),
        (
            "email",
            json!({"idempotencyId": "x", "recipientEmail": {"emailAddress": "not-an-address", "emailSettings": {"subject": "s", "body": "b"}}}),
            "RecipientEmail.EmailAddress",
            "Invalid email address format.",
        ),
        (
            "email",
            json!({"idempotencyId": "x", "recipientEmail": {"emailAddress": "a@b.no"}}),
            "RecipientEmail.EmailSettings",
            "Email settings cannot be null.",
        ),
        (
            "email",
            json!({"idempotencyId": "x", "recipientEmail": {"emailAddress": "a@b.no", "emailSettings": {"subject": "", "body": "b"}}}),
            "RecipientEmail.EmailSettings.Subject",
            "The email subject cannot be empty.",
        ),
        (
            "email",
            json!({"idempotencyId": "x", "recipientEmail": {"emailAddress": "a@b.no", "emailSettings": {"subject": "s"}}}),
            "RecipientEmail.EmailSettings.Body",
            "The email body cannot be empty.",
        ),
        (
            "email",
            json!({"idempotencyId": "x", "recipientEmail": {"emailAddress": "a@b.no", "emailSettings": {"subject": "s", "body": "b", "senderEmailAddress": "nope"}}}),
            "RecipientEmail.EmailSettings.SenderEmailAddress",
            "Invalid email address format.",
        ),
    ];
    // The deprecated endpoint: the SMS endpoint's rules under its own paths.
    let old =
        |details: Value| json!({"idempotencyId": "x", "recipient": {"recipientSms": details}});
    let deprecated: Vec<(Value, &str, &str)> = vec![
        (json!({"idempotencyId": "x"}), "Recipient", "Recipient information cannot be null."),
        (
            json!({"idempotencyId": "x", "recipient": {}}),
            "Recipient.RecipientSms",
            "SMS delivery details cannot be null.",
        ),
        (
            json!({"recipient": {"recipientSms": {"phoneNumber": "+4799999999", "timeToLiveInSeconds": 60, "smsSettings": {"body": "b"}}}}),
            "IdempotencyId",
            "IdempotencyId cannot be null or empty.",
        ),
        (
            old(
                json!({"phoneNumber": "12345", "timeToLiveInSeconds": 60, "smsSettings": {"body": "b"}}),
            ),
            "Recipient.RecipientSms.PhoneNumber",
            "Recipient phone number is not a valid mobile number.",
        ),
        (
            old(
                json!({"phoneNumber": "+4799999999", "timeToLiveInSeconds": 59, "smsSettings": {"body": "b"}}),
            ),
            "Recipient.RecipientSms.TimeToLiveInSeconds",
            "Time-to-live must be between 60 and 172800 seconds (48 hours).",
        ),
        (
            old(json!({"phoneNumber": "+4799999999", "timeToLiveInSeconds": 60})),
            "Recipient.RecipientSms.SmsSettings",
            "SMS settings cannot be null.",
        ),
    ];
    for (body, key, message) in deprecated {
        let (status, _, p) = post(&app, "/future/orders/instant", &body).await;
        assert_eq!(status, 400, "{body}: {p}");
        let errors = p["errors"][key].as_array().unwrap_or_else(|| panic!("{key} in {p}"));
        assert!(errors.iter().any(|e| e == message), "{body}: {p}");
    }
    for (endpoint, body, key, message) in cases {
        let (status, _, p) = post(&app, &format!("/future/orders/instant/{endpoint}"), &body).await;
        assert_eq!(status, 400, "{body}: {p}");
        let errors = p["errors"][key].as_array().unwrap_or_else(|| panic!("{key} in {p}"));
        assert!(errors.iter().any(|e| e == message), "{body}: {p}");
    }
    app.stop().await;
}
