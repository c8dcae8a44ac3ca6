//! The newer order API against the real stack: order chains created once per idempotency id
//! (also when the same request races with itself), reminders that wait their delay in the
//! workflow and check their own condition, reminders cancelled with their notification, 422
//! `NOT-00001`, the validation messages, and shipments.

use poem::{
    Route, Server, get, handler,
    listener::{Acceptor, Listener, TcpListener},
    web::Json,
};
use serde_json::{Value, json};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, on_both_databases};

const T: Duration = Duration::from_secs(60);

#[handler]
fn condition_false() -> Json<Value> {
    Json(json!({"sendNotification": false}))
}

async fn condition_server() -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(
        Server::new_with_acceptor(acceptor).run(Route::new().at("/false", get(condition_false))),
    );
    format!("http://127.0.0.1:{port}")
}

fn email_recipient(address: &str, subject: &str) -> Value {
    json!({"recipientEmail": {"emailAddress": address, "emailSettings": {"subject": subject, "body": "b"}}})
}

async fn app(db: Db, smtp: &SmtpServer) -> TestApp {
    let mut opts = TestAppOptions::new(db, smtp.url());
    // A reminder's "day" lasts two seconds here.
    opts.tweak = Box::new(|c| c.processing.reminder_day_secs = 2);
    TestApp::spawn(opts).await
}

async fn post_chain(app: &TestApp, body: &Value, org: &str) -> (u16, Option<String>, Value) {
    let resp = app.post("/future/orders", body, org).await;
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    (status, location, resp.json().await.unwrap())
}

async fn idempotency(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let body = json!({
        "idempotencyId": "race-1",
        "sendersReference": "case-1",
        "recipient": email_recipient("race@example.no", "hello"),
        "reminders": [{"delayDays": 3, "recipient": email_recipient("race@example.no", "reminder")}]
    });
    // Eight identical requests at once: exactly one chain.
    let answers = futures::future::join_all((0..8).map(|_| post_chain(&app, &body, "ttd"))).await;
    let created: Vec<_> = answers.iter().filter(|a| a.0 == 201).collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    assert!(answers.iter().all(|a| a.0 == 201 || a.0 == 200), "{answers:?}");
    let first = &created[0].2;
    assert!(answers.iter().all(|a| a.2 == *first), "every answer is the first answer: {answers:?}");
    let chain_id = first["notificationOrderId"].as_str().unwrap();
    assert_eq!(first["notification"]["sendersReference"], "case-1");
    assert_eq!(first["notification"]["reminders"].as_array().unwrap().len(), 1);
    let shipment = first["notification"]["shipmentId"].as_str().unwrap().to_owned();
    let reminder = first["notification"]["reminders"][0]["shipmentId"].as_str().unwrap().to_owned();
    assert!(app.store.get_order(&shipment, "ttd").await.unwrap().is_some());
    assert!(app.store.get_order(&reminder, "ttd").await.unwrap().is_some());
    assert_eq!(
        app.store.chain_reminders(chain_id).await.unwrap().len(),
        1,
        "one reminder stored, not eight"
    );

    // The Location exists and answers the same.
    let location = created[0].1.clone().unwrap();
    assert!(
        location.ends_with(&format!("/notifications/api/v1/future/orders/{chain_id}")),
        "{location}"
    );
    let got: Value = app
        .http
        .get(&location)
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(got, *first);
    assert_eq!(
        app.http.get(&location).bearer_auth(app.token("digdir")).send().await.unwrap().status(),
        404
    );

    // The same id with another request: 409, nothing stored. Another org may use the same id.
    let mut other = body.clone();
    other["sendersReference"] = json!("case-2");
    let (status, _, p) = post_chain(&app, &other, "ttd").await;
    assert_eq!(status, 409, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("race-1"), "{p}");
    let (status, _, theirs) = post_chain(&app, &body, "digdir").await;
    assert_eq!(status, 201);
    assert_ne!(theirs["notificationOrderId"], first["notificationOrderId"]);

    app.wait_status(&shipment, "Completed", T).await;
    app.stop().await;
}
on_both_databases!(concurrent_repeats_of_an_idempotency_id_create_one_chain, idempotency);

async fn reminders(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let cond = condition_server().await;
    // A notification now, a reminder one (two-second) day later, and a reminder whose own
    // condition says no.
    let (status, _, sent) = post_chain(
        &app,
        &json!({
            "idempotencyId": "with-reminders",
            "recipient": email_recipient("main@example.no", "notice"),
            "reminders": [
                {"delayDays": 1, "sendersReference": "r1", "recipient": email_recipient("reminded@example.no", "reminder")},
                {"delayDays": 1, "conditionEndpoint": format!("{cond}/false"), "recipient": email_recipient("never@example.no", "no")}
            ]
        }),
        "ttd",
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let main = sent["notification"]["shipmentId"].as_str().unwrap().to_owned();
    let r1 = sent["notification"]["reminders"][0]["shipmentId"].as_str().unwrap().to_owned();
    let r2 = sent["notification"]["reminders"][1]["shipmentId"].as_str().unwrap().to_owned();
    let main_row = app.wait_status(&main, "Completed", T).await;
    let r1_row = app.wait_status(&r1, "Completed", T).await;
    app.wait_status(&r2, "SendConditionNotMet", T).await;
    assert!(
        r1_row.order.requested_send_time
            >= main_row.order.requested_send_time + chrono::Duration::seconds(2)
    );
    let mails = smtp.wait_for(2, T).await;
    let reminder_mail =
        mails.iter().find(|m| m.to.contains("reminded@example.no")).expect("the reminder arrived");
    assert_eq!(reminder_mail.subject, "reminder");
    assert!(!mails.iter().any(|m| m.to.contains("never@example.no")));

    // The shipment view of the reminder.
    let s: Value = app.get(&format!("/future/shipment/{r1}"), "ttd").await.json().await.unwrap();
    assert_eq!(s["type"], "Reminder");
    assert_eq!(s["status"], "Order_Completed");
    assert_eq!(s["sendersReference"], "r1");
    assert_eq!(s["recipients"][0]["type"], "Email");
    assert_eq!(s["recipients"][0]["destination"], "reminded@example.no");
    assert_eq!(s["recipients"][0]["status"], "Email_Succeeded");
    let missing = app.get("/future/shipment/00000000-0000-0000-0000-000000000000", "ttd").await;
    assert_eq!(missing.status(), 404);
    let p: Value = missing.json().await.unwrap();
    assert_eq!(p["code"], "NOT-00003");
    assert_eq!(p["type"], "urn:altinn:error:NOT-00003");
    assert_eq!(
        app.get(&format!("/future/shipment/{r1}"), "digdir").await.status(),
        404,
        "another org's shipment"
    );

    // A notification for later, cancelled: its reminder is cancelled with it and nothing is sent.
    let later = (chrono::Utc::now() + chrono::Duration::minutes(30)).to_rfc3339();
    let (_, _, planned) = post_chain(
        &app,
        &json!({
            "idempotencyId": "cancelled",
            "requestedSendTime": later,
            "recipient": email_recipient("cancelled@example.no", "later"),
            "reminders": [{"delayDays": 1, "recipient": email_recipient("cancelled-reminder@example.no", "later")}]
        }),
        "ttd",
    )
    .await;
    let main = planned["notification"]["shipmentId"].as_str().unwrap().to_owned();
    let reminder =
        planned["notification"]["reminders"][0]["shipmentId"].as_str().unwrap().to_owned();
    let resp = app
        .http
        .put(format!("{}/notifications/api/v1/orders/{main}/cancel", app.base_url))
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    app.wait_status(&main, "Cancelled", T).await;
    app.wait_status(&reminder, "Cancelled", T).await;
    app.stop().await;
}
on_both_databases!(
    reminders_wait_their_delay_check_their_condition_and_go_with_a_cancel,
    reminders
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_chains_get_altinns_messages_and_missing_contacts_422() {
    let smtp = SmtpServer::start();
    let app = app(Db::Sqlite, &smtp).await;
    let cases = [
        (
            json!({"recipient": email_recipient("a@example.no", "s")}),
            "IdempotencyId",
            "IdempotencyId cannot be null or empty.",
        ),
        (json!({"idempotencyId": "x"}), "Recipient", "Recipient specification cannot be null."),
        (
            json!({"idempotencyId": "x", "recipient": {"recipientEmail": {"emailAddress": "a@example.no", "emailSettings": {"subject": "s", "body": "b"}}, "recipientSms": {"phoneNumber": "+4799999999", "smsSettings": {"body": "b"}}}}),
            "Recipient",
            "Must have exactly one recipient.",
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"recipientEmail": {"emailAddress": "not-an-address", "emailSettings": {"subject": "s", "body": "b"}}}}),
            "Recipient.RecipientEmail.EmailAddress",
            "Invalid email address format.",
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"recipientEmail": {"emailAddress": "a@example.no", "emailSettings": {"subject": "s", "body": "b", "sendingTimePolicy": "Daytime"}}}}),
            "Recipient.RecipientEmail.EmailSettings.SendingTimePolicy",
            "Email only supports send time anytime",
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"recipientSms": {"phoneNumber": "12", "smsSettings": {"body": "b"}}}}),
            "Recipient.RecipientSms.PhoneNumber",
            "Recipient phone number is not a valid mobile number.",
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"recipientOrganization": {"orgNumber": "311000179"}}}),
            "Recipient.RecipientOrganization.ChannelSchema",
            "Invalid channel scheme value.",
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"recipientPerson": {"nationalIdentityNumber": "11876995923", "emailSettings": {"subject": "s", "body": "b"}}}}),
            "Recipient.RecipientPerson.SmsSettings",
            "SmsSettings must be set when ChannelSchema is SmsPreferred or EmailPreferred",
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"recipientPerson": {"nationalIdentityNumber": "11876995923", "channelSchema": "Email", "resourceId": "app_x", "emailSettings": {"subject": "s", "body": "b"}}}}),
            "Recipient.RecipientPerson.ResourceId",
            "ResourceId must have a valid syntax.",
        ),
        (
            json!({"idempotencyId": "x", "requestedSendTime": "2030-01-01T10:00:00", "recipient": email_recipient("a@example.no", "s")}),
            "RequestedSendTime",
            "The requested send time value must have specified a time zone.",
        ),
        (
            json!({"idempotencyId": "x", "recipient": email_recipient("a@example.no", "s"), "reminders": [{"delayDays": 1, "requestedSendTime": "2030-01-01T10:00:00Z", "recipient": email_recipient("a@example.no", "s")}]}),
            "Reminders[0]",
            "Either DelayDays or RequestedSendTime must be defined, but not both.",
        ),
        (
            json!({"idempotencyId": "x", "recipient": email_recipient("a@example.no", "s"), "reminders": [{"delayDays": 0, "recipient": email_recipient("a@example.no", "s")}]}),
            "Reminders[0].DelayDays",
            "DelayDays must be greater than or equal to 1 day.",
        ),
        (
            json!({"idempotencyId": "x", "recipient": email_recipient("a@example.no", "s"), "reminders": [{"requestedSendTime": "2020-01-01T10:00:00Z", "recipient": email_recipient("a@example.no", "s")}]}),
            "Reminders[0].RequestedSendTime",
            "RequestedSendTime must be greater than or equal to the current UTC time.",
        ),
    ];
    for (body, key, message) in cases {
        let (status, _, p) = post_chain(&app, &body, "ttd").await;
        assert_eq!(status, 400, "{body}: {p}");
        assert_eq!(p["errors"][key][0], message, "{body}: {p}");
    }
    // A person with no contact details in the register: 422 NOT-00001, nothing stored. A
    // reserved person is not missing.
    let (status, _, p) = post_chain(
        &app,
        &json!({"idempotencyId": "missing", "recipient": {"recipientPerson": {"nationalIdentityNumber": "02027012345", "channelSchema": "Email", "emailSettings": {"subject": "s", "body": "b"}}}}),
        "ttd",
    )
    .await;
    assert_eq!(status, 422, "{p}");
    assert_eq!(p["code"], "NOT-00001");
    assert_eq!(p["title"], "Missing contact information for recipient(s)");
    assert!(app.store.find_chain("ttd", "missing").await.unwrap().is_none(), "nothing stored");
    let (status, _, p) = post_chain(
        &app,
        &json!({"idempotencyId": "reserved", "requestedSendTime": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339(),
                "recipient": {"recipientPerson": {"nationalIdentityNumber": "11876995923", "channelSchema": "Email", "emailSettings": {"subject": "s", "body": "b"}}}}),
        "ttd",
    )
    .await;
    assert_eq!(status, 201, "a reserved person is not missing contact details: {p}");
    app.stop().await;
}

async fn feed(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let n = 30;
    // A reader pages through the feed, seven entries at a time, while the orders complete.
    let reader = {
        let (http, base, token) = (app.http.clone(), app.base_url.clone(), app.token("ttd"));
        tokio::spawn(async move {
            let (mut seen, mut last) = (Vec::<(i64, String)>::new(), 0i64);
            let deadline = std::time::Instant::now() + T;
            while seen.len() < n && std::time::Instant::now() < deadline {
                let page: Vec<Value> = http
                    .get(format!(
                        "{base}/notifications/api/v1/future/shipment/feed?seq={last}&pageSize=7"
                    ))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for e in &page {
                    let s = e["sequenceNumber"].as_i64().unwrap();
                    assert!(s > last, "the feed went backwards: {s} after {last}");
                    last = s;
                    seen.push((s, e["shipmentId"].as_str().unwrap().to_owned()));
                }
                if page.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            seen
        })
    };
    let posts = (0..n).map(|i| {
        let app = &app;
        async move {
            let (status, _, body) =
                post_chain(app, &json!({"idempotencyId": format!("feed-{i}"), "recipient": email_recipient(&format!("feed{i}@example.no"), "s")}), "ttd").await;
            assert_eq!(status, 201, "{body}");
            body["notification"]["shipmentId"].as_str().unwrap().to_owned()
        }
    });
    let ids: Vec<String> = futures::future::join_all(posts).await;
    for id in &ids {
        app.wait_status(id, "Completed", T).await;
    }
    let seen = reader.await.unwrap();
    let mut read: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    read.sort();
    let mut expected: Vec<&String> = ids.iter().collect();
    expected.sort();
    assert_eq!(read, expected, "the paging reader saw every finished order exactly once");

    let all: Vec<Value> = app.get("/future/shipment/feed", "ttd").await.json().await.unwrap();
    assert_eq!(all.len(), n);
    assert_eq!(all[0]["status"], "Order_Completed");
    assert_eq!(all[0]["shipmentType"], "Notification");
    assert_eq!(all[0]["recipients"][0]["status"], "Email_Succeeded");
    let newest: Vec<Value> =
        app.get("/future/shipment/feed?orderBy=Desc&pageSize=5", "ttd").await.json().await.unwrap();
    assert_eq!(newest.len(), 5);
    assert_eq!(newest[0]["sequenceNumber"], all[n - 1]["sequenceNumber"]);
    assert!(newest[0]["sequenceNumber"].as_i64() > newest[1]["sequenceNumber"].as_i64());
    let theirs: Vec<Value> = app.get("/future/shipment/feed", "digdir").await.json().await.unwrap();
    assert!(theirs.is_empty(), "another org's feed is its own");
    let bad = app.get("/future/shipment/feed?seq=-1", "ttd").await;
    assert_eq!(bad.status(), 400);
    let p: Value = bad.json().await.unwrap();
    assert_eq!(p["errors"]["Seq"][0], "Sequence number cannot be less than 0.");
    app.stop().await;
}
on_both_databases!(the_status_feed_pages_every_finished_order_once_while_they_finish, feed);
