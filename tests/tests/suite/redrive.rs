//! Redrive: after a relay outage outlasted the time-to-live, an operator sends the failed
//! notifications again; nothing already sent goes out twice, and the timeline shows the new run.

use serde_json::{Value, json};
use std::time::Duration;
use varsel_tests::{
    Db, GatewaySwitch, KannelGateway, SmtpServer, TestApp, TestAppOptions, never_within,
    on_both_databases,
};

const T: Duration = Duration::from_secs(60);

async fn redrive(db: Db) {
    let smtp = SmtpServer::start_flaky();
    smtp.set_outage(true);
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(|c| c.processing.notification_ttl_secs = 3);
    let app = TestApp::spawn(opts).await;
    // An operator the token names: the timeline records who redrove.
    let operator = app.token_with(&json!({
        "iss": varsel_api::auth::DEV_ISSUER,
        "scope": varsel_api::auth::OPERATOR_SCOPE,
        "sub": "ops-kari",
        "exp": chrono::Utc::now().timestamp() + 600,
    }));
    let redrive = |id: String| {
        let req = app
            .http
            .post(format!("{}/notifications/api/v1/operator/orders/{id}/redrive", app.base_url))
            .bearer_auth(&operator);
        async move { req.send().await.unwrap() }
    };

    // A running order (waiting for its send time) is refused.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let waiting = app.order("/orders/email", &json!({"subject": "s", "body": "b", "requestedSendTime": later, "recipients": [{"emailAddress": "x@example.no"}]})).await;
    app.wait_started(&waiting, T).await;
    let resp = redrive(waiting.clone()).await;
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("still running"));

    // The outage outlasts the time-to-live: one email went out, one failed.
    let id = app.order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "ok@example.no"}, {"emailAddress": "outage@example.no"}]})).await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(
        app.notifications(&id).await,
        vec![
            ("email".into(), "ok@example.no".into(), "Email_Succeeded".into()),
            ("email".into(), "outage@example.no".into(), "Email_Failed_TTL".into()),
        ]
    );
    let creator = app
        .http
        .post(format!("{}/notifications/api/v1/operator/orders/{id}/redrive", app.base_url))
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(creator.status(), 403, "redrive is an operator's tool");
    let creator_preview = app
        .http
        .get(format!("{}/notifications/api/v1/operator/orders/{id}/redrive", app.base_url))
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(creator_preview.status(), 403, "so is its preview");

    // The preview names exactly what a redrive would send again.
    let preview: Value = app
        .http
        .get(format!("{}/notifications/api/v1/operator/orders/{id}/redrive", app.base_url))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(preview["count"], 1, "{preview}");
    assert_eq!(preview["orderStatus"], "Completed", "{preview}");
    let listed = preview["notifications"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{preview}");
    assert_eq!(listed[0]["address"], "outage@example.no");
    assert_eq!(listed[0]["status"], "Email_Failed_TTL");

    // The relay is back: redrive sends the failed one, and only that one.
    smtp.set_outage(false);
    let resp = redrive(id.clone()).await;
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["notifications"], 1);
    app.wait_notifications(&id, "Email_Succeeded", T).await;
    app.wait_status(&id, "Completed", T).await;
    let mails = smtp.wait_for(2, T).await;
    let smtp_ref = &smtp;
    never_within("a third email arrived", Duration::from_millis(500), || async move {
        smtp_ref.messages().len() > 2
    })
    .await;
    let mut to: Vec<String> = smtp.messages().iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        vec!["ok@example.no", "outage@example.no"],
        "each address exactly once: {mails:?}"
    );

    // The timeline shows the redrive run; a second redrive has nothing to do.
    let h: Value = app.get(&format!("/orders/{id}/history"), "ttd").await.json().await.unwrap();
    let texts: Vec<&str> =
        h["entries"].as_array().unwrap().iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert!(
        texts.iter().any(|t| t.contains("reset failed notifications for a redrive: done")),
        "{texts:#?}"
    );
    assert!(
        texts
            .iter()
            .any(|t| t.contains("outage@example.no: time-to-live reached: Email_Failed_TTL")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("outage@example.no: reset by a redrive: Email_New")
            && t.ends_with("was Email_Failed_TTL")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("outage@example.no: provider answered: Email_Succeeded")),
        "{texts:#?}"
    );
    assert_eq!(
        texts.iter().filter(|t| t.starts_with("workflow completed")).count(),
        2,
        "{texts:#?}"
    );
    assert!(
        h["entries"].as_array().unwrap().iter().any(|e| e["source"] == "action"
            && e["text"] == "redrive by operator ops-kari: 1 notifications to send again"),
        "{h:#}"
    );
    let again = redrive(id.clone()).await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("nothing to redrive"));
    app.stop().await;
}
on_both_databases!(a_redrive_resends_only_what_failed, redrive);

/// The SMS path: a gateway outage outlasts the time-to-live, the SMS ends `SMS_Failed_TTL`
/// without having reached Kannel; once the gateway is back, a redrive sends it, once, and Kannel's
/// delivery report completes the order again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redrive_sends_an_sms_the_gateway_never_took() {
    let kannel = tokio::task::spawn_blocking(KannelGateway::start).await.unwrap();
    let gateway = GatewaySwitch::start(&kannel, false).await;
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    let (url, password) = (gateway.url.clone(), kannel.password.clone());
    opts.tweak = Box::new(move |c| {
        c.sms.provider = varsel_api::config::SmsProvider::Kannel;
        c.sms.kannel_sendsms_url = url;
        c.sms.kannel_password = password.into();
        c.sms.gateway_timeout_secs = 1;
        c.processing.notification_ttl_secs = 3;
    });
    let app = TestApp::spawn(opts).await;
    let id = app
        .order(
            "/orders/sms",
            &json!({"body": "Hei", "recipients": [{"mobileNumber": "+4799999981"}]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(app.notifications(&id).await[0].2, "SMS_Failed_TTL");
    assert_eq!(gateway.passed(), 0, "nothing reached Kannel during the outage");

    gateway.set_up(true);
    let operator = app.operator_token();
    let resp = app
        .http
        .post(format!("{}/notifications/api/v1/operator/orders/{id}/redrive", app.base_url))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.json::<Value>().await.unwrap()["notifications"], 1);
    app.wait_notifications(&id, "SMS_Delivered", T).await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(gateway.passed(), 1, "sent once, by the redrive");
    app.stop().await;
}
