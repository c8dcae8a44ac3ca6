//! End to end: an order goes in over HTTP and comes out at a real SMTP server and the SMS
//! simulator, carried by a real Temporal workflow.

use serde_json::{Value, json};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, eventually, on_both_databases};

const T: Duration = Duration::from_secs(60);

async fn app(db: Db, smtp: &SmtpServer) -> TestApp {
    TestApp::spawn(TestAppOptions::new(db, smtp.url())).await
}

async fn email_order_with_keywords(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let resp = app
        .post(
            "/orders/email",
            &json!({
                "sendersReference": "ref-2023-12-02",
                "subject": "Important notification regarding your organization, $recipientName$",
                "body": "Dear $recipientName$, this is an official notification regarding your organization, identified by the organization number $recipientNumber$.",
                "contentType": "Plain",
                "recipients": [{"organizationNumber": "311000179"}, {"emailAddress": "someone@example.no"}]
            }),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let id = body["orderId"].as_str().unwrap().to_owned();
    assert!(location.ends_with(&format!("/notifications/api/v1/orders/{id}")));
    assert_eq!(body["recipientLookup"]["status"], "Success");

    let mails = smtp.wait_for(2, T).await;
    let org_mail = mails.iter().find(|m| m.to.contains("post@digdir-test.no")).expect("org email");
    assert_eq!(
        org_mail.subject,
        "Important notification regarding your organization, Digitaliseringsdirektoratet Test AS"
    );
    assert!(
        org_mail.body.contains("Dear Digitaliseringsdirektoratet Test AS"),
        "{}",
        org_mail.body
    );
    assert!(org_mail.body.contains("organization number 311000179."));
    assert_eq!(org_mail.content_type, "text/plain");
    let plain = mails.iter().find(|m| m.to.contains("someone@example.no")).expect("plain email");
    // A bare address has no party: keywords stay as written (Altinn's rule).
    assert!(plain.subject.ends_with("$recipientName$"));

    app.wait_status(&id, "Completed", T).await;
    assert_eq!(
        app.notifications(&id).await,
        vec![
            ("email".into(), "post@digdir-test.no".into(), "Email_Succeeded".into()),
            ("email".into(), "someone@example.no".into(), "Email_Succeeded".into()),
        ]
    );

    // The Location answers with the stored order.
    let got = app.http.get(&location).bearer_auth(app.token("ttd")).send().await.unwrap();
    assert_eq!(got.status(), 200);
    let got: Value = got.json().await.unwrap();
    assert_eq!(got["id"], id);
    assert_eq!(got["creator"], "ttd");
    assert_eq!(got["notificationChannel"], "Email");
    assert_eq!(got["sendersReference"], "ref-2023-12-02");
    assert_eq!(got["recipients"][0]["organizationNumber"], "311000179");
    assert_eq!(got["emailTemplate"]["contentType"], "Plain");
    assert!(got.get("smsTemplate").is_none(), "nulls are omitted");
    // Another org cannot see it.
    assert_eq!(app.get(&format!("/orders/{id}"), "other").await.status(), 404);
    app.stop().await;
}
on_both_databases!(email_order_arrives_with_keywords_replaced, email_order_with_keywords);

async fn sms_order(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let id = app
        .order(
            "/orders/sms",
            &json!({
                "sendersReference": "ref-2024-01-01",
                "body": "Hei $recipientName$, dette er en SMS.",
                "recipients": [{"mobileNumber": "+4799999999"}, {"organizationNumber": "313000001"}, {"nationalIdentityNumber": "01017012345"}]
            }),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let mut sms = app.simulated_sms(&id).await;
    sms.sort_by(|a, b| a.recipient.cmp(&b.recipient));
    let got: Vec<(&str, &str, &str)> =
        sms.iter().map(|s| (s.recipient.as_str(), s.sender.as_str(), s.body.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("+4790000001", "Altinn", "Hei Mobilbedriften AS, dette er en SMS."),
            ("+4798765432", "Altinn", "Hei Per Uten Epost, dette er en SMS."),
            ("+4799999999", "Altinn", "Hei $recipientName$, dette er en SMS."),
        ]
    );
    // The simulator reports each one delivered shortly after accepting it.
    assert!(app.notifications(&id).await.iter().all(|n| n.2 == "SMS_Delivered"));
    assert!(smtp.messages().is_empty());
    app.stop().await;
}
on_both_databases!(sms_order_reaches_the_simulator, sms_order);

/// Seed example 1 (`emailPreferred`) plus a person without email: email where possible, SMS as
/// fallback, and the reserved person gets nothing.
async fn email_preferred(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let resp = app
        .post(
            "/orders",
            &json!({
                "sendersReference": "9A547448-FDF4-4E60-87AC-C2F652C8353C",
                "emailTemplate": {"subject": "A test email from Altinn Notifications", "body": "A message to be sent immediately from an org.", "content-type": "Plain"},
                "smsTemplate": {"body": "Demo SMS content"},
                "notificationChannel": "emailPreferred",
                "recipients": [{"organizationNumber": "311000179"}, {"nationalIdentityNumber": "11876995923"}, {"nationalIdentityNumber": "01017012345"}],
                "resourceId": "app_ttd_apps-test"
            }),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["recipientLookup"],
        json!({"status": "PartialSuccess", "isReserved": ["11876995923"], "missingContact": []})
    );
    let id = body["orderId"].as_str().unwrap();
    app.wait_status(id, "Completed", T).await;
    assert_eq!(
        app.notifications(id).await,
        vec![
            ("email".into(), "".into(), "Email_Failed_RecipientReserved".into()),
            ("email".into(), "post@digdir-test.no".into(), "Email_Succeeded".into()),
            ("sms".into(), "+4798765432".into(), "SMS_Delivered".into()),
        ]
    );
    let mails = smtp.wait_for(1, T).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(app.simulated_sms(id).await.len(), 1);
    app.stop().await;
}
on_both_databases!(email_preferred_falls_back_to_sms, email_preferred);

/// Seed example 2 (`smsPreferred` with keywords): SMS where a mobile exists, email otherwise.
async fn sms_preferred(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let id = app
        .order(
            "/orders",
            &json!({
                "sendersReference": "586B753D-9A02-49C8-AC22-2060E3A7862F",
                "emailTemplate": {"subject": "Important notification regarding your organization, $recipientName$", "body": "Dear $recipientName$, org $recipientNumber$.", "content-type": "Plain"},
                "smsTemplate": {"body": "Dear $recipientName$, org $recipientNumber$."},
                "notificationChannel": "smsPreferred",
                "recipients": [{"organizationNumber": "311000179"}, {"organizationNumber": "312508729"}],
                "resourceId": "app_ttd_apps-test"
            }),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let sms = app.simulated_sms(&id).await;
    assert_eq!(sms.len(), 1);
    assert_eq!(sms[0].recipient, "+4740000001");
    assert_eq!(sms[0].body, "Dear Digitaliseringsdirektoratet Test AS, org 311000179.");
    let mails = smtp.wait_for(1, T).await;
    assert_eq!(mails[0].to, "kontakt@fjordvarsel.no");
    assert_eq!(
        mails[0].subject,
        "Important notification regarding your organization, Fjordvarsel AS"
    );
    assert_eq!(mails[0].body, "Dear Fjordvarsel AS, org 312508729.");
    app.stop().await;
}
on_both_databases!(sms_preferred_falls_back_to_email, sms_preferred);

async fn reservation(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let order = |ignore: bool| {
        json!({
            "notificationChannel": "EmailAndSms",
            "emailTemplate": {"subject": "s", "body": "b"},
            "smsTemplate": {"body": "b"},
            "ignoreReservation": ignore,
            "recipients": [{"nationalIdentityNumber": "11876995923"}]
        })
    };
    let blocked = app.order("/orders", &order(false)).await;
    app.wait_status(&blocked, "Completed", T).await;
    assert_eq!(
        app.notifications(&blocked).await,
        vec![
            ("email".into(), "".into(), "Email_Failed_RecipientReserved".into()),
            ("sms".into(), "".into(), "SMS_Failed_RecipientReserved".into()),
        ]
    );
    assert!(smtp.messages().is_empty());
    assert!(app.simulated_sms(&blocked).await.is_empty());

    let allowed = app.order("/orders", &order(true)).await;
    app.wait_status(&allowed, "Completed", T).await;
    let mails = smtp.wait_for(1, T).await;
    assert_eq!(mails[0].to, "kari.reservert@example.no");
    assert_eq!(app.simulated_sms(&allowed).await.len(), 1);
    app.stop().await;
}
on_both_databases!(reserved_person_gets_nothing_unless_ignore_reservation, reservation);

async fn unknown_recipients(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let resp = app
        .post(
            "/orders",
            &json!({
                "notificationChannel": "Email",
                "emailTemplate": {"subject": "s", "body": "b", "contentType": "html"},
                "recipients": [{"nationalIdentityNumber": "02027012345"}, {"organizationNumber": "999999999"}]
            }),
            "ttd",
        )
        .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["recipientLookup"],
        json!({"status": "Failed", "isReserved": [], "missingContact": ["02027012345", "999999999"]})
    );
    let id = body["orderId"].as_str().unwrap();
    app.wait_status(id, "Completed", T).await;
    let statuses: Vec<String> = app.notifications(id).await.into_iter().map(|n| n.2).collect();
    assert_eq!(statuses, ["Email_Failed_RecipientNotIdentified"; 2], "one per recipient");
    app.stop().await;
}
on_both_databases!(recipients_without_contact_points_fail_as_not_identified, unknown_recipients);

async fn html_email(db: Db) {
    let smtp = SmtpServer::start();
    let app = app(db, &smtp).await;
    let id = app
        .order(
            "/orders/email",
            &json!({"subject": "Line one\r\nBcc: victim@example.no", "body": "<p>Hello <b>there</b></p>", "contentType": "HTML", "recipients": [{"emailAddress": "html@example.no"}]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let mails = smtp.wait_for(1, T).await;
    assert_eq!(mails[0].content_type, "text/html");
    assert_eq!(mails[0].body, "<p>Hello <b>there</b></p>");
    // A CR/LF in the subject folds into a space; it cannot add a header.
    assert_eq!(mails[0].subject, "Line one Bcc: victim@example.no");
    assert_eq!(mails.len(), 1);

    // A sender address with a line break is refused, not folded into a header.
    let resp = app
        .post(
            "/orders",
            &json!({"notificationChannel": "Email", "emailTemplate": {"fromAddress": "a@example.no\r\nBcc: victim@example.no", "subject": "s", "body": "b"}, "recipients": [{"emailAddress": "x@example.no"}]}),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 400);
    let p: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(p["errors"]["EmailTemplate.FromAddress"][0], "Invalid email address format.");

    // A plain body is never HTML, and SMTP control lines inside it (a lone "." ending the data,
    // then new commands) stay text: no message is cut short and no recipient is added.
    let plain =
        "<b>not bold</b>\r\n.\r\nRCPT TO:<victim@example.no>\r\nDATA\r\nBcc: victim@example.no";
    let id = app.order("/orders/email", &json!({"subject": "plain", "body": plain, "recipients": [{"emailAddress": "plain@example.no"}]})).await;
    app.wait_status(&id, "Completed", T).await;
    let mails = smtp.wait_for(2, T).await;
    let m = mails.iter().find(|m| m.to.contains("plain@example.no")).expect("the plain email");
    assert_eq!(m.content_type, "text/plain");
    assert_eq!(m.body.replace("\r\n", "\n"), plain.replace("\r\n", "\n"));
    assert_eq!(mails.len(), 2, "nobody else received anything: {mails:?}");
    app.stop().await;
}
on_both_databases!(
    html_body_passes_unchanged_plain_stays_plain_and_nothing_injects_headers,
    html_email
);

/// A long order continues as new between batches and still sends every notification once.
async fn continued(db: Db) {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(|c| {
        c.processing.generate_batch = 2;
        c.processing.send_batch = 2;
        c.processing.max_batches_per_run = 2;
    });
    let app = TestApp::spawn(opts).await;
    let mut recipients: Vec<Value> =
        (0..7).map(|i| json!({"emailAddress": format!("r{i}@example.no")})).collect();
    recipients.extend((0..3).map(|i| json!({"mobileNumber": format!("+479000010{i}")})));
    let id = app
        .order(
            "/orders",
            &json!({
                "notificationChannel": "EmailPreferred",
                "emailTemplate": {"subject": "s", "body": "b"},
                "smsTemplate": {"body": "b"},
                "recipients": recipients
            }),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let mails = smtp.wait_for(7, T).await;
    let mut to: Vec<String> = mails.iter().map(|m| m.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!((mails.len(), to.len()), (7, 7), "each address exactly once");
    assert_eq!(app.simulated_sms(&id).await.len(), 3);
    assert_eq!(app.notifications(&id).await.len(), 10);
    app.stop().await;
}
on_both_databases!(a_long_order_continues_as_new_and_sends_each_notification_once, continued);

/// A relay that refuses one recipient transiently: the send activity is retried, the refused
/// email arrives after the retry, and no email already recorded as sent is sent again. A
/// permanent refusal (550) ends in a failure status without retry, and an invalid register
/// address never reaches the relay.
async fn idempotent_retry(db: Db) {
    let smtp = SmtpServer::start_flaky();
    let app = TestApp::spawn(TestAppOptions::new(db, smtp.url())).await;
    app.store
        .upsert_organization(
            "314000001",
            &varsel_activities::store::OrgContact {
                name: Some("Broken Register AS".into()),
                emails: vec!["not an address".into()],
                mobiles: vec![],
            },
        )
        .await
        .unwrap();
    let id = app
        .order(
            "/orders/email",
            &json!({"subject": "s", "body": "b", "recipients": [
                {"emailAddress": "first@example.no"},
                {"emailAddress": "flaky@example.no"},
                {"emailAddress": "third@example.no"},
                {"emailAddress": "rejected@example.no"},
                {"organizationNumber": "314000001"}
            ]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let mails = smtp.wait_for(3, T).await;
    let mut to: Vec<String> = mails.iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec!["first@example.no", "flaky@example.no", "third@example.no"],
        "each accepted address exactly once"
    );
    assert_eq!(
        app.notifications(&id).await,
        vec![
            ("email".into(), "first@example.no".into(), "Email_Succeeded".into()),
            ("email".into(), "flaky@example.no".into(), "Email_Succeeded".into()),
            ("email".into(), "not an address".into(), "Email_Failed_InvalidFormat".into()),
            ("email".into(), "rejected@example.no".into(), "Email_Failed".into()),
            ("email".into(), "third@example.no".into(), "Email_Succeeded".into()),
        ]
    );
    let rows = app.store.notifications(&id).await.unwrap();
    let attempts = |addr: &str| rows.iter().find(|r| r.address == addr).unwrap().attempts;
    assert_eq!(attempts("first@example.no"), 1, "not claimed again after the retry");
    assert_eq!(attempts("flaky@example.no"), 2, "retried once");
    assert_eq!(attempts("rejected@example.no"), 1, "a permanent refusal is not retried");
    assert!(
        rows.iter()
            .find(|r| r.address == "rejected@example.no")
            .unwrap()
            .status_reason
            .as_deref()
            .unwrap()
            .contains("550")
    );
    app.stop().await;
}
on_both_databases!(a_retried_send_never_resends_what_was_recorded, idempotent_retry);

/// A batch slowed by a send-rate limit stops starting sends when its budget runs out and leaves
/// the rest to the next batch: the history shows several batches where one would hold every
/// notification, none of them retried, and each address gets its email once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_batch_stops_at_its_budget_and_the_next_batch_sends_the_rest() {
    const N: usize = 30;
    const RATE: usize = 5;
    const CONCURRENCY: usize = 2;
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| {
        c.processing.send_rate_limits.insert("smtp".into(), RATE as u32);
        c.processing.send_concurrency = CONCURRENCY;
        c.processing.send_budget_secs = 1;
    });
    let app = TestApp::spawn(opts).await;
    assert!(app.config.processing.send_batch as usize >= N, "one batch could hold the order");
    let recipients: Vec<Value> =
        (0..N).map(|i| json!({"emailAddress": format!("budget{i}@example.no")})).collect();
    let id = app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    app.wait_status(&id, "Completed", T).await;

    let mails = smtp.wait_for(N, T).await;
    let mut to: Vec<String> = mails.iter().map(|m| m.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!((mails.len(), to.len()), (N, N), "each address exactly once");

    let (app_ref, id_ref) = (&app, &id);
    let texts: Vec<String> =
        eventually("the history shows the workflow completed", T, || async move {
            let h: Value =
                app_ref.get(&format!("/orders/{id_ref}/history"), "ttd").await.json().await.ok()?;
            let texts: Vec<String> = h["entries"]
                .as_array()?
                .iter()
                .filter_map(|e| e["text"].as_str().map(str::to_owned))
                .collect();
            texts.iter().any(|t| t.contains("workflow completed")).then_some(texts)
        })
        .await;
    let sent: Vec<usize> = texts
        .iter()
        .filter(|t| t.starts_with("create and send a slice of the recipients: done ("))
        .map(|t| {
            let n = t.split("sent=").nth(1).expect("sent=");
            n.trim_end_matches(')').split(',').next().unwrap().parse().expect("a count")
        })
        .collect();
    assert!(sent.len() >= 3, "the order took several batches: {sent:?}\n{texts:#?}");
    // Within one second a batch touches at most two rate slots, plus the sends that already
    // waited for a slot when the budget ran out.
    assert!(
        (1..=2 * RATE + CONCURRENCY).contains(&sent[0]),
        "the first batch stopped at its budget: {sent:?}"
    );
    assert_eq!(sent.iter().sum::<usize>(), N, "the batches together sent each once: {sent:?}");
    assert!(
        !texts.iter().any(|t| t.starts_with("create and send a slice of the recipients: attempt")),
        "no batch timed out or was retried: {texts:#?}"
    );
    app.stop().await;
}
