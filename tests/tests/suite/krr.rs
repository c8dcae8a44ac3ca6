//! Persons looked up in KRR (a stand-in on loopback speaking KRR's wire format), with tokens
//! from Maskinporten (a stand-in that verifies the JWT-bearer grant): KRR's statuses, the
//! 18-month rule both ways, a refused number, a Maskinporten token reused and renewed, a grant
//! signed with the wrong key, a KRR outage in the middle of an order, and send conditions
//! checked with a Maskinporten or a static token.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use varsel_activities::providers::maskinporten::{Maskinporten, MaskinportenSettings};
use varsel_api::config::PersonsSource;
use varsel_tests::standins::{KRR_SCOPE, KrrStandIn, MaskinportenStandIn, RsaKey};
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, eventually, never_within};

const T: Duration = Duration::from_secs(60);
const CLIENT: &str = "varsel-test-client";
const KID: &str = "varsel-key-1";

/// A Maskinporten that knows `key`, a KRR behind it, and a varsel looking persons up there.
struct Krr {
    app: TestApp,
    krr: KrrStandIn,
    maskinporten: MaskinportenStandIn,
    smtp: SmtpServer,
    _key: RsaKey,
}

async fn start(db: Db, signing_key: Option<RsaKey>, tweak: fn(&mut varsel_api::Config)) -> Krr {
    let key = RsaKey::generate();
    let maskinporten = MaskinportenStandIn::start(
        CLIENT,
        KID,
        &key.public,
        &[KRR_SCOPE],
        Duration::from_secs(120),
    )
    .await;
    let krr = KrrStandIn::start(&maskinporten).await;
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db, smtp.url());
    let (krr_url, token_url) = (krr.url.clone(), maskinporten.token_url.clone());
    let key_file = signing_key.as_ref().unwrap_or(&key).private.clone();
    opts.tweak = Box::new(move |c| {
        c.contacts.persons = PersonsSource::Krr;
        c.contacts.krr_url = krr_url;
        c.contacts.batch = 300;
        c.maskinporten.maskinporten_token_url = token_url;
        c.maskinporten.maskinporten_client_id = CLIENT.into();
        c.maskinporten.maskinporten_key_file = key_file;
        c.maskinporten.maskinporten_kid = KID.into();
        c.processing.max_retry_interval_ms = 1_000;
        tweak(c);
    });
    let app = TestApp::spawn(opts).await;
    // Keep the other key's files alive as long as the app that reads them.
    let _key = signing_key.unwrap_or(key);
    Krr { app, krr, maskinporten, smtp, _key }
}

fn email_order(nins: &[&str]) -> Value {
    json!({
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "s", "body": "b"},
        "recipients": nins.iter().map(|n| json!({"nationalIdentityNumber": n})).collect::<Vec<_>>()
    })
}

/// Each of KRR's answers ends where a user expects, at acceptance (`recipientLookup`) and in
/// the notifications; the token is fetched once and carried on every call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn krr_statuses_reservations_and_the_18_month_rule() {
    let k = start(Db::Sqlite, None, |_| {}).await;
    let fresh = (chrono::Utc::now() - chrono::Duration::days(30)).to_rfc3339();
    let stale = "2023-01-10T10:00:00+01";
    k.krr.put_active("01010000001", "active@krr.example", "99999991", &fresh);
    k.krr.put(json!({"personidentifikator": "01010000002", "reservasjon": "JA", "status": "AKTIV",
        "varslingsstatus": "KAN_IKKE_VARSLES",
        "kontaktinformasjon": {"epostadresse": "reserved@krr.example", "epostadresse_oppdatert": fresh}}));
    k.krr.put(json!({"personidentifikator": "01010000003", "status": "SLETTET"}));
    k.krr.put_active("01010000004", "stale@krr.example", "99999994", stale);
    k.krr.put(json!({"personidentifikator": "01010000005", "reservasjon": "NEI", "status": "AKTIV",
        "varslingsstatus": "KAN_IKKE_VARSLES",
        "kontaktinformasjon": {"epostadresse": "cannot@krr.example", "epostadresse_oppdatert": fresh}}));
    k.krr.put_active("01010000006", "refused@krr.example", "99999996", &fresh);
    k.krr.refuse("01010000006");
    // 01010000007 is not in KRR: IKKE_REGISTRERT.
    let nins = [
        "01010000001",
        "01010000002",
        "01010000003",
        "01010000004",
        "01010000005",
        "01010000006",
        "01010000007",
    ];

    let resp = k.app.post("/orders", &email_order(&nins), "ttd").await;
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    let lookup = &accepted["recipientLookup"];
    assert_eq!(lookup["status"], "PartialSuccess", "{accepted}");
    assert_eq!(lookup["isReserved"], json!(["01010000002"]), "{accepted}");
    let mut missing: Vec<String> =
        serde_json::from_value(lookup["missingContact"].clone()).unwrap();
    missing.sort();
    assert_eq!(
        missing,
        ["01010000003", "01010000004", "01010000005", "01010000006", "01010000007"]
    );

    let id = accepted["orderId"].as_str().unwrap().to_owned();
    k.app.wait_status(&id, "Completed", T).await;
    let sent: Vec<String> = k.smtp.wait_for(1, T).await.into_iter().map(|m| m.to).collect();
    assert_eq!(sent, ["active@krr.example"]);
    assert!(k.krr.numbers() > 0);
    let by_nin: Vec<(Option<String>, String)> = k
        .app
        .store
        .notifications(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.nin, n.status.as_str().to_owned()))
        .collect();
    for (nin, status) in &by_nin {
        let expected = match nin.as_deref() {
            Some("01010000001") => "Email_Succeeded",
            Some("01010000002") => "Email_Failed_RecipientReserved",
            _ => "Email_Failed_RecipientNotIdentified",
        };
        assert_eq!(status, expected, "{nin:?}: {by_nin:?}");
    }
    assert_eq!(by_nin.len(), 7, "{by_nin:?}");

    // The same recipients again within VARSEL_CONTACTS_CACHE_SECS: KRR is not asked again.
    let asked = k.krr.numbers();
    let again = k.app.order("/orders", &email_order(&nins)).await;
    k.app.wait_status(&again, "Completed", T).await;
    assert_eq!(k.krr.numbers(), asked, "the answers, unknown numbers included, were remembered");

    // The 18-month rule both ways, per recipient (`useStaleContactInformation`, /future).
    let chain = |reference: &str, allow: bool| {
        json!({"idempotencyId": reference, "recipient": {"recipientPerson": {
            "nationalIdentityNumber": "01010000004", "channelSchema": "Email",
            "useStaleContactInformation": allow, "emailSettings": {"subject": "s", "body": "b"}}}})
    };
    let resp = k.app.post("/future/orders", &chain("stale-refused", false), "ttd").await;
    assert_eq!(resp.status(), 422, "stale contact details are missing ones");
    let resp = k.app.post("/future/orders", &chain("stale-allowed", true), "ttd").await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    let shipment = created["notification"]["shipmentId"].as_str().unwrap().to_owned();
    k.app.wait_status(&shipment, "Completed", T).await;
    let mut sent: Vec<String> = k.smtp.wait_for(3, T).await.into_iter().map(|m| m.to).collect();
    sent.sort();
    assert_eq!(sent, ["active@krr.example", "active@krr.example", "stale@krr.example"]);

    // Every call carried a token, and one token served them all.
    assert!(k.krr.calls() >= 4, "acceptance and generation of both orders: {}", k.krr.calls());
    assert_eq!(k.maskinporten.issued(), 1, "the token is reused while it is fresh");
    k.app.stop().await;
}

/// A KRR that answers 503 in the middle of a 900-person order makes its generation wait and
/// retry; nobody is "not identified" for it, and every person gets one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_krr_outage_mid_order_ends_with_every_recipient_served_once() {
    let k = start(Db::Postgres, None, |c| {
        c.processing.generate_batch = 300;
        // One slice at a time, so the outage falls between them.
        c.processing.send_window = 1;
        // Every lookup goes to KRR: nothing remembered from the acceptance.
        c.contacts.cache_secs = 0;
    })
    .await;
    let fresh = chrono::Utc::now().to_rfc3339();
    let nins: Vec<String> = (0..900).map(|i| format!("0202{i:07}")).collect();
    for (i, nin) in nins.iter().enumerate() {
        k.krr.put_active(nin, &format!("p{i}@outage.example"), "99999999", &fresh);
    }
    let refs: Vec<&str> = nins.iter().map(String::as_str).collect();
    // Slow answers, so the outage falls between the generation batches.
    k.krr.set_delay(Duration::from_millis(300));
    let id = k.app.order("/orders", &email_order(&refs)).await;
    let (app, id) = (&k.app, id.as_str());
    eventually("the first batch generated", T, || async move {
        let n = app.store.notifications(id).await.unwrap().len();
        (n >= 300).then_some(()).ok_or(n)
    })
    .await;
    k.krr.set_down(true);
    let before = k.app.store.notifications(id).await.unwrap().len();
    never_within("generation goes on while KRR is down", Duration::from_secs(3), || async move {
        app.store.notifications(id).await.unwrap().len() > before
    })
    .await;
    assert!(before < 900, "the outage came before the last batch ({before})");
    k.krr.set_down(false);
    k.app.wait_status(id, "Completed", T).await;
    let statuses: Vec<String> = k
        .app
        .store
        .notifications(id)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.status.as_str().to_owned())
        .collect();
    assert_eq!(statuses.len(), 900, "one notification a person");
    assert!(
        statuses.iter().all(|s| s == "Email_Succeeded"),
        "{:?}",
        statuses.iter().find(|s| *s != "Email_Succeeded")
    );
    let mut to: Vec<String> = k.smtp.wait_for(900, T).await.into_iter().map(|m| m.to).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 900, "each person once");
    k.app.stop().await;
}

/// Maskinporten refuses a grant signed with a key it does not know: the lookup cannot answer,
/// so the order is refused with 503 and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_signed_with_the_wrong_key_gets_no_token() {
    let k = start(Db::Sqlite, Some(RsaKey::generate()), |_| {}).await;
    k.krr.put_active("03030000001", "x@krr.example", "99999999", &chrono::Utc::now().to_rfc3339());
    let resp = k.app.post("/orders", &email_order(&["03030000001"]), "ttd").await;
    assert_eq!(resp.status(), 503);
    let p: Value = resp.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains("could not be looked up"), "{p}");
    assert_eq!(k.maskinporten.issued(), 0);
    assert_eq!(k.krr.calls(), 0, "no call reached KRR without a token");
    let listed: Value =
        k.app.get("/orders?sendersReference=none", "ttd").await.json().await.unwrap();
    assert_eq!(listed["count"], 0, "nothing stored");
    k.app.stop().await;
}

/// The client keeps a token until `renew_before` its expiry, then fetches a new one; the grant
/// it signs passes the stand-in's checks (signature, audience, issuer, lifetime, unused jti).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maskinporten_token_is_reused_until_near_expiry_then_renewed() {
    let key = RsaKey::generate();
    let mp =
        MaskinportenStandIn::start(CLIENT, KID, &key.public, &[KRR_SCOPE], Duration::from_secs(3))
            .await;
    let client = Arc::new(
        Maskinporten::new(MaskinportenSettings {
            token_url: mp.token_url.clone(),
            audience: mp.issuer.clone(),
            client_id: CLIENT.into(),
            key_pem: std::fs::read(&key.private).unwrap(),
            kid: Some(KID.into()),
            certificate_chain: vec![],
            renew_before: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
        })
        .unwrap(),
    );
    let first = client.token(KRR_SCOPE).await.unwrap();
    let again = futures::future::join_all((0..10).map(|_| client.token(KRR_SCOPE))).await;
    assert!(again.iter().all(|t| t.as_ref().unwrap() == &first), "the fresh token is reused");
    assert_eq!(mp.issued(), 1, "ten concurrent callers, one fetch");
    let (client, first) = (&client, &first);
    let renewed = eventually("a renewed token", Duration::from_secs(10), || async move {
        let t = client.token(KRR_SCOPE).await.unwrap();
        (t != *first).then_some(t).ok_or("the first")
    })
    .await;
    assert_eq!(mp.issued(), 2, "renewed once, a second before it expired");
    assert_eq!(client.token(KRR_SCOPE).await.unwrap(), renewed);
    let refused = client.token("krr:global/digitalpost.read").await.unwrap_err();
    assert!(refused.to_string().contains("invalid_scope"), "{refused}");
}

const CONDITION_SCOPE: &str = "altinn:system/notifications.condition.check";

/// A condition endpoint that answers only callers with a token `accepts` takes, and counts the
/// refused ones.
async fn guarded_condition(
    accepts: Arc<dyn Fn(&str) -> bool + Send + Sync>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use poem::listener::{Acceptor, Listener};
    use poem::{EndpointExt, IntoResponse};
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = refused.clone();
    let endpoint = poem::endpoint::make(move |req: poem::Request| {
        let (accepts, counter) = (accepts.clone(), counter.clone());
        async move {
            let token = req
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_owned();
            if accepts(&token) {
                poem::web::Json(json!({"sendNotification": true})).into_response()
            } else {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                poem::http::StatusCode::UNAUTHORIZED.into_response()
            }
        }
    });
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint.map_to_response()));
    (format!("http://127.0.0.1:{port}/condition"), refused)
}

fn conditional(endpoint: &str, to: &str) -> Value {
    json!({"subject": "s", "body": "b", "conditionEndpoint": endpoint,
           "recipients": [{"emailAddress": to}]})
}

/// The send condition is asked with a Maskinporten token for Altinn's condition scope, or with
/// a configured static token; an endpoint that refuses varsel's token is inconclusive, so the
/// order is sent anyway after its attempts (Altinn's rule), having been refused each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_conditions_are_checked_with_a_maskinporten_or_a_static_token() {
    let key = RsaKey::generate();
    let mp = Arc::new(
        MaskinportenStandIn::start(
            CLIENT,
            KID,
            &key.public,
            &[CONDITION_SCOPE],
            Duration::from_secs(120),
        )
        .await,
    );
    let checker = mp.clone();
    let (endpoint, refused) = guarded_condition(Arc::new(move |t: &str| {
        checker.accepts(t, CONDITION_SCOPE) || t == "static-secret"
    }))
    .await;
    let smtp = SmtpServer::start();

    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    let (token_url, key_file) = (mp.token_url.clone(), key.private.clone());
    opts.tweak = Box::new(move |c| {
        c.conditions.auth = varsel_api::config::ConditionAuthKind::Maskinporten;
        c.maskinporten.maskinporten_token_url = token_url;
        c.maskinporten.maskinporten_client_id = CLIENT.into();
        c.maskinporten.maskinporten_key_file = key_file;
        c.maskinporten.maskinporten_kid = KID.into();
    });
    let app = TestApp::spawn(opts).await;
    let id = app.order("/orders/email", &conditional(&endpoint, "mp@cond.example")).await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(mp.issued(), 1);
    assert_eq!(refused.load(std::sync::atomic::Ordering::SeqCst), 0, "the token was accepted");
    app.stop().await;

    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| {
        c.conditions.auth = varsel_api::config::ConditionAuthKind::Token;
        c.conditions.token = "static-secret".to_owned().into();
    });
    let app = TestApp::spawn(opts).await;
    let id = app.order("/orders/email", &conditional(&endpoint, "static@cond.example")).await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the static token was accepted"
    );
    app.stop().await;

    // Without a token the endpoint refuses every attempt; the order goes anyway at the end.
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, smtp.url())).await;
    let id = app.order("/orders/email", &conditional(&endpoint, "none@cond.example")).await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        app.config.conditions.attempts as usize,
        "each attempt without a token was refused"
    );
    let mut to: Vec<String> = smtp.wait_for(3, T).await.into_iter().map(|m| m.to).collect();
    to.sort();
    assert_eq!(to, ["mp@cond.example", "none@cond.example", "static@cond.example"]);
    app.stop().await;
}

/// A business certificate delivered as PKCS#12: the key signs the grant, and the file's
/// certificate goes with it as `x5c` (no kid), which Maskinporten checks against the
/// certificate it knows. A wrong password stops the start with a clear message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pkcs12_business_certificate_signs_the_grant_with_its_chain() {
    let key = RsaKey::generate();
    let (certificate, p12) = key.pkcs12("hemmelig");
    let mp = MaskinportenStandIn::start(
        CLIENT,
        "not-used",
        &key.public,
        &[KRR_SCOPE],
        Duration::from_secs(120),
    )
    .await;
    mp.register_certificate(&certificate);
    let config = |password: &str| varsel_api::config::MaskinportenConfig {
        maskinporten_token_url: mp.token_url.clone(),
        maskinporten_client_id: CLIENT.into(),
        maskinporten_key_file: p12.clone(),
        maskinporten_key_password: password.to_owned().into(),
        ..Default::default()
    };
    let client = varsel_api::upstream::maskinporten(&config("hemmelig")).unwrap().unwrap();
    client.token(KRR_SCOPE).await.unwrap();
    assert_eq!(mp.issued(), 1);
    let wrong = varsel_api::upstream::maskinporten(&config("feil")).unwrap_err().to_string();
    assert!(
        wrong
            .contains("neither PEM nor a PKCS#12 file that VARSEL_MASKINPORTEN_KEY_PASSWORD opens"),
        "{wrong}"
    );
}

/// The channel plan works on what KRR gives: with `SmsPreferred` a person with a mobile gets an
/// SMS, one with only an email gets the email instead, one with neither is not identified;
/// `EmailAndSms` sends both where both exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_fallback_work_on_krr_answers() {
    let k = start(Db::Sqlite, None, |_| {}).await;
    let fresh = (chrono::Utc::now() - chrono::Duration::days(10)).to_rfc3339();
    let person = |nin: &str, email: Option<&str>, mobile: Option<&str>| {
        json!({"personidentifikator": nin, "reservasjon": "NEI", "status": "AKTIV",
               "varslingsstatus": "KAN_VARSLES",
               "kontaktinformasjon": {"epostadresse": email, "epostadresse_oppdatert": fresh,
                                      "mobiltelefonnummer": mobile, "mobiltelefonnummer_oppdatert": fresh}})
    };
    k.krr.put(person("06060000001", Some("both@krr.example"), Some("99000001")));
    k.krr.put(person("06060000002", Some("emailonly@krr.example"), None));
    k.krr.put(person("06060000003", None, Some("99000003")));
    k.krr.put(person("06060000004", None, None));
    let recipients: Vec<Value> = ["06060000001", "06060000002", "06060000003", "06060000004"]
        .iter()
        .map(|n| json!({"nationalIdentityNumber": n}))
        .collect();
    let order = |channel: &str| {
        json!({
            "notificationChannel": channel,
            "emailTemplate": {"subject": "s", "body": "b"},
            "smsTemplate": {"body": "sms"},
            "recipients": recipients,
        })
    };
    let statuses = |id: String| {
        let app = &k.app;
        async move {
            app.wait_status(&id, "Completed", T).await;
            let mut v: Vec<(String, String, String)> = app
                .store
                .notifications(&id)
                .await
                .unwrap()
                .into_iter()
                .map(|n| (n.nin.unwrap_or_default(), n.channel.as_str().to_owned(), n.address))
                .collect();
            v.sort();
            v
        }
    };
    let sms_preferred = k.app.order("/orders", &order("SmsPreferred")).await;
    assert_eq!(
        statuses(sms_preferred).await,
        [
            ("06060000001".into(), "sms".into(), "+4799000001".into()),
            ("06060000002".into(), "email".into(), "emailonly@krr.example".into()),
            ("06060000003".into(), "sms".into(), "+4799000003".into()),
            ("06060000004".into(), "sms".into(), String::new()),
        ]
    );
    let both = k.app.order("/orders", &order("EmailAndSms")).await;
    let got = statuses(both).await;
    let channels_of = |nin: &str| -> Vec<String> {
        got.iter()
            .filter(|(n, _, a)| n == nin && !a.is_empty())
            .map(|(_, c, _)| c.clone())
            .collect()
    };
    assert_eq!(channels_of("06060000001"), ["email", "sms"], "{got:?}");
    assert_eq!(channels_of("06060000002"), ["email"], "{got:?}");
    assert_eq!(channels_of("06060000003"), ["sms"], "{got:?}");
    assert!(channels_of("06060000004").is_empty(), "{got:?}");
    k.app.stop().await;
}
