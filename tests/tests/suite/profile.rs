//! Persons, organisations and self-identified users looked up in Altinn Profile, and names in
//! Altinn Register, through stand-ins that speak their wire formats (as Altinn Notifications
//! calls them): reservations, Profile's 18-month rule asked for per recipient, names for
//! `$recipientName$` with a PlatformAccessToken Register verifies, and `recipientExternalIdentity`.

use serde_json::{Value, json};
use std::time::Duration;
use varsel_api::config::{NamesSource, OrganizationsSource, PersonsSource};
use varsel_tests::standins::{ProfileStandIn, RegisterStandIn, RsaKey};
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions};

const T: Duration = Duration::from_secs(60);

struct Altinn {
    app: TestApp,
    profile: ProfileStandIn,
    register: RegisterStandIn,
    smtp: SmtpServer,
    _key: RsaKey,
}

async fn start(db: Db) -> Altinn {
    let key = RsaKey::generate();
    let profile = ProfileStandIn::start().await;
    let register = RegisterStandIn::start(&key.public).await;
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db, smtp.url());
    let (profile_url, register_url, key_file) =
        (profile.url.clone(), register.url.clone(), key.private.clone());
    opts.tweak = Box::new(move |c| {
        c.contacts.persons = PersonsSource::Profile;
        c.contacts.organizations = OrganizationsSource::Profile;
        c.contacts.names = NamesSource::Altinn;
        c.contacts.profile_url = profile_url;
        c.contacts.altinn_register_url = register_url;
        c.contacts.altinn_access_token_key_file = key_file;
    });
    let app = TestApp::spawn(opts).await;
    Altinn { app, profile, register, smtp, _key: key }
}

async fn sent(smtp: &SmtpServer, n: usize) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> =
        smtp.wait_for(n, T).await.into_iter().map(|m| (m.to, m.subject)).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_are_found_in_altinn_profile_and_named_by_altinn_register() {
    let a = start(Db::Sqlite).await;
    a.profile.put_person("05050000001", "kari@profile.example", "99999991", false, false);
    a.profile.put_person("05050000002", "reserved@profile.example", "99999992", true, false);
    a.profile.put_person("05050000003", "stale@profile.example", "", false, true);
    a.profile.put_organization(
        "905050001",
        &["post@org.example", "POST@org.example"],
        &["40000001"],
    );
    a.register.put_name("05050000001", "Kari Nordmann");
    a.register.put_name("905050001", "Bedrift AS");

    let order = json!({
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "Hei $recipientName$", "body": "b"},
        "recipients": [{"nationalIdentityNumber": "05050000001"}, {"nationalIdentityNumber": "05050000002"},
                       {"nationalIdentityNumber": "05050000003"}, {"nationalIdentityNumber": "05050000009"},
                       {"organizationNumber": "905050001"}]
    });
    let resp = a.app.post("/orders", &order, "ttd").await;
    assert_eq!(resp.status(), 202);
    let accepted: Value = resp.json().await.unwrap();
    let lookup = &accepted["recipientLookup"];
    assert_eq!(lookup["isReserved"], json!(["05050000002"]), "{accepted}");
    let mut missing: Vec<String> =
        serde_json::from_value(lookup["missingContact"].clone()).unwrap();
    missing.sort();
    assert_eq!(missing, ["05050000003", "05050000009"], "{accepted}");
    let id = accepted["orderId"].as_str().unwrap().to_owned();
    a.app.wait_status(&id, "Completed", T).await;
    assert_eq!(
        sent(&a.smtp, 2).await,
        [
            ("kari@profile.example".to_owned(), "Hei Kari Nordmann".to_owned()),
            ("post@org.example".to_owned(), "Hei Bedrift AS".to_owned()),
        ],
        "one email for the organisation's duplicated address, names from Register"
    );
    assert_eq!(a.register.calls(), (1, 0), "one names lookup, with a token Register accepts");

    // Stale details are used when the recipient allows it (/future, per recipient).
    let chain = json!({"idempotencyId": "stale-ok", "recipient": {"recipientPerson": {
        "nationalIdentityNumber": "05050000003", "channelSchema": "Email",
        "useStaleContactInformation": true, "emailSettings": {"subject": "s", "body": "b"}}}});
    let resp = a.app.post("/future/orders", &chain, "ttd").await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    a.app
        .wait_status(created["notification"]["shipmentId"].as_str().unwrap(), "Completed", T)
        .await;
    assert!(sent(&a.smtp, 3).await.iter().any(|(to, _)| to == "stale@profile.example"));
    a.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_identified_users_are_reached_by_their_external_identity() {
    let a = start(Db::Postgres).await;
    let id = "urn:altinn:person:idporten-email:selv@example.no";
    a.profile.put_external(id, "selv@example.no", None);
    let chain = |reference: &str, urn: &str| {
        json!({"idempotencyId": reference, "recipient": {"recipientExternalIdentity": {
            "externalIdentity": urn, "channelSchema": "Email",
            "emailSettings": {"subject": "s", "body": "b"}}}})
    };
    // Profile matches identities without regard to case.
    let resp = a
        .app
        .post(
            "/future/orders",
            &chain("si", "urn:altinn:person:idporten-email:SELV@example.no"),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    a.app
        .wait_status(created["notification"]["shipmentId"].as_str().unwrap(), "Completed", T)
        .await;
    assert_eq!(sent(&a.smtp, 1).await[0].0, "selv@example.no");

    let resp = a
        .app
        .post("/future/orders", &chain("unknown", "urn:altinn:party:username:nobody"), "ttd")
        .await;
    assert_eq!(resp.status(), 422, "an identity Profile does not know has no contact details");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], "NOT-00001", "{p}");

    for (urn, message) in [
        ("", "ExternalIdentity cannot be null or empty."),
        ("urn:altinn:person:idporten-email:user@", "Invalid external identity URN format."),
        ("urn:altinn:person:wrongprefix:x", "Invalid external identity URN format."),
        ("urn:altinn:username:  ", "Invalid external identity URN format."),
    ] {
        let resp = a.app.post("/future/orders", &chain("bad", urn), "ttd").await;
        assert_eq!(resp.status(), 400, "{urn}");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(
            p["errors"]["Recipient.RecipientExternalIdentity.ExternalIdentity"],
            json!([message]),
            "{urn}: {p}"
        );
    }
    assert!(a.profile.calls() >= 2);
    a.app.stop().await;
}

/// The channel plan on what Profile answers: `SmsPreferred` falls back to email for a person
/// with only an email, `EmailAndSms` reaches an organisation on both of its lists, and a
/// reserved person is reached only when the order ignores the reservation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_fallback_and_reservations_work_on_profile_answers() {
    let a = start(Db::Sqlite).await;
    a.profile.put_person("07070000001", "both@profile.example", "99000011", false, false);
    a.profile.put_person("07070000002", "emailonly@profile.example", "", false, false);
    a.profile.put_person("07070000003", "reserved@profile.example", "99000013", true, false);
    a.profile.put_organization("907070001", &["org@profile.example"], &["40000011"]);
    let order = |channel: &str| {
        json!({
            "notificationChannel": channel,
            "emailTemplate": {"subject": "s", "body": "b"},
            "smsTemplate": {"body": "sms"},
            "recipients": [{"nationalIdentityNumber": "07070000001"}, {"nationalIdentityNumber": "07070000002"},
                           {"organizationNumber": "907070001"}]
        })
    };
    let addresses = |id: String| {
        let app = &a.app;
        async move {
            app.wait_status(&id, "Completed", T).await;
            let mut v: Vec<(String, String)> = app
                .store
                .notifications(&id)
                .await
                .unwrap()
                .into_iter()
                .map(|n| (n.channel.as_str().to_owned(), n.address))
                .collect();
            v.sort();
            v
        }
    };
    let id = a.app.order("/orders", &order("SmsPreferred")).await;
    assert_eq!(
        addresses(id).await,
        [
            ("email".to_owned(), "emailonly@profile.example".to_owned()),
            ("sms".to_owned(), "+4740000011".to_owned()),
            ("sms".to_owned(), "+4799000011".to_owned()),
        ]
    );
    let id = a.app.order("/orders", &order("EmailAndSms")).await;
    assert_eq!(
        addresses(id).await,
        [
            ("email".to_owned(), "both@profile.example".to_owned()),
            ("email".to_owned(), "emailonly@profile.example".to_owned()),
            ("email".to_owned(), "org@profile.example".to_owned()),
            ("sms".to_owned(), String::new()),
            ("sms".to_owned(), "+4740000011".to_owned()),
            ("sms".to_owned(), "+4799000011".to_owned()),
        ],
        "the person without a mobile is not identified for SMS"
    );
    for (ignore, expected) in [(false, "Email_Failed_RecipientReserved"), (true, "Email_Succeeded")]
    {
        let chain = json!({"idempotencyId": format!("reserved-{ignore}"), "recipient": {"recipientPerson": {
            "nationalIdentityNumber": "07070000003", "channelSchema": "Email", "ignoreReservation": ignore,
            "emailSettings": {"subject": "s", "body": "b"}}}});
        let resp = a.app.post("/future/orders", &chain, "ttd").await;
        assert_eq!(resp.status(), 201);
        let created: Value = resp.json().await.unwrap();
        let id = created["notification"]["shipmentId"].as_str().unwrap().to_owned();
        a.app.wait_status(&id, "Completed", T).await;
        let statuses: Vec<String> = a
            .app
            .store
            .notifications(&id)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.status.as_str().to_owned())
            .collect();
        assert_eq!(statuses, [expected], "ignoreReservation {ignore}");
    }
    a.app.stop().await;
}
