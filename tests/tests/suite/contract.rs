//! The contract: every validation message of reference §2.1, auth and tenancy, the seed
//! examples as written, problem details for malformed input, and nothing half-stored.

use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use varsel_activities::store::entities::order;
use varsel_tests::{Db, TestApp, TestAppOptions};

async fn app() -> TestApp {
    TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await
}

async fn order_count(app: &TestApp) -> u64 {
    order::Entity::find().count(app.store.conn()).await.unwrap()
}

fn valid_order() -> Value {
    json!({
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "s", "body": "b"},
        "recipients": [{"emailAddress": "a@example.no"}]
    })
}

fn with(mut base: Value, path: &[&str], value: Value) -> Value {
    let mut cur = &mut base;
    for p in &path[..path.len() - 1] {
        cur = &mut cur[*p];
    }
    if value.is_null() {
        cur.as_object_mut().unwrap().remove(path[path.len() - 1]);
    } else {
        cur[path[path.len() - 1]] = value;
    }
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_validation_rule_answers_its_exact_message_and_stores_nothing() {
    let app = app().await;
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/orders",
            with(valid_order(), &["notificationChannel"], Value::Null),
            "NotificationChannel",
            "A notification channel must be defined.",
        ),
        (
            "/orders",
            with(valid_order(), &["requestedSendTime"], json!("2030-01-01T10:00:00")),
            "RequestedSendTime",
            "The requested send time value must have specified a time zone.",
        ),
        (
            "/orders",
            with(valid_order(), &["requestedSendTime"], json!(past)),
            "RequestedSendTime",
            "Send time must be in the future. Leave blank to send immediately.",
        ),
        (
            "/orders",
            with(valid_order(), &["conditionEndpoint"], json!("not a url")),
            "ConditionEndpoint",
            "The condition endpoint must be a valid URL.",
        ),
        (
            "/orders",
            with(valid_order(), &["conditionEndpoint"], json!("ftp://example.com/x")),
            "ConditionEndpoint",
            "The condition endpoint must be a valid URL.",
        ),
        // A valid URL varsel will not call: the message says why (Altinn's says "must be a valid URL").
        (
            "/orders",
            with(valid_order(), &["conditionEndpoint"], json!("http://10.0.0.1/x")),
            "ConditionEndpoint",
            "The condition endpoint is not reachable for varsel: 10.0.0.1 is not a public address and is not allow-listed; varsel calls only public hosts, and others that VARSEL_CONDITION_ALLOWED_HOSTS lists.",
        ),
        (
            "/orders",
            with(valid_order(), &["conditionEndpoint"], json!("http://intranet/x")),
            "ConditionEndpoint",
            "The condition endpoint's host intranet is not a public DNS name (one with a top-level domain); varsel calls only public hosts, and others that VARSEL_CONDITION_ALLOWED_HOSTS lists.",
        ),
        (
            "/orders",
            with(valid_order(), &["resourceAction"], json!("read")),
            "ResourceAction",
            "ResourceAction cannot be specified without a ResourceId.",
        ),
        (
            "/orders",
            with(
                with(valid_order(), &["resourceAction"], json!("  ")),
                &["resourceId"],
                json!("urn:altinn:resource:x"),
            ),
            "ResourceAction",
            "ResourceAction cannot be blank or whitespace.",
        ),
        (
            "/orders",
            with(valid_order(), &["recipients"], json!([])),
            "Recipients",
            "One or more recipient is required.",
        ),
        (
            "/orders",
            with(valid_order(), &["recipients"], Value::Null),
            "Recipients",
            "One or more recipient is required.",
        ),
        (
            "/orders",
            with(valid_order(), &["recipients"], json!([{}])),
            "Recipients[0]",
            "Either a valid email address, organization number, or national identity number must be provided for each recipient.",
        ),
        (
            "/orders",
            with(
                with(valid_order(), &["notificationChannel"], json!("Sms")),
                &["smsTemplate"],
                json!({"body": "b"}),
            )
            .pipe(|v| with(v, &["recipients"], json!([{"emailAddress": "a@example.no"}]))),
            "Recipients[0]",
            "Either a valid mobile number starting with country code, organization number, or national identity number must be provided for each recipient.",
        ),
        (
            "/orders",
            with(
                with(valid_order(), &["notificationChannel"], json!("EmailPreferred")),
                &["smsTemplate"],
                json!({"body": "b"}),
            )
            .pipe(|v| with(v, &["recipients"], json!([{}]))),
            "Recipients[0]",
            "Either a valid email address, mobile number starting with country code, organization number, or national identity number must be provided for each recipient.",
        ),
        (
            "/orders",
            with(valid_order(), &["recipients"], json!([{"emailAddress": "not-an-address"}])),
            "Recipients[0]",
            "Invalid email address format.",
        ),
        (
            "/orders",
            with(valid_order(), &["recipients"], json!([{"emailAddress": "a@b.no;c@d.no"}])),
            "Recipients[0]",
            "Invalid email address format.",
        ),
        (
            "/orders/sms",
            json!({"body": "b", "recipients": [{"mobileNumber": "40000001"}]}),
            "Recipients[0]",
            "Mobile number can contain only '+' and numeric characters, and it must adhere to the E.164 standard.",
        ),
        (
            "/orders",
            with(valid_order(), &["recipients"], json!([{"nationalIdentityNumber": "123"}])),
            "Recipients[0]",
            "National identity number must be 11 digits long.",
        ),
        (
            "/orders",
            with(valid_order(), &["recipients"], json!([{"organizationNumber": "12345"}])),
            "Recipients[0]",
            "Organization number must be 9 digits long.",
        ),
        (
            "/orders",
            with(
                valid_order(),
                &["recipients"],
                json!([{"nationalIdentityNumber": "16069412345", "emailAddress": "a@example.no"}]),
            ),
            "Recipients[0]",
            "National identity number cannot be combined with email address, mobile number, or organization number.",
        ),
        (
            "/orders",
            with(
                valid_order(),
                &["recipients"],
                json!([{"organizationNumber": "311000179", "emailAddress": "a@example.no"}]),
            ),
            "Recipients[0]",
            "Organization number cannot be combined with email address, mobile number, or national identity number.",
        ),
        (
            "/orders",
            with(valid_order(), &["emailTemplate"], Value::Null),
            "EmailTemplate",
            "An email template is required for the selected notification channel.",
        ),
        (
            "/orders",
            with(valid_order(), &["notificationChannel"], json!("SmsPreferred")),
            "SmsTemplate",
            "An SMS template is required for the selected the notification channel.",
        ),
        (
            "/orders",
            with(valid_order(), &["notificationChannel"], json!("EmailAndSms")),
            "SmsTemplate",
            "An SMS template is required for the selected the notification channel.",
        ),
        (
            "/orders",
            with(valid_order(), &["emailTemplate", "body"], json!("")),
            "EmailTemplate.Body",
            "The email template body must not be empty.",
        ),
        (
            "/orders",
            with(valid_order(), &["emailTemplate", "subject"], json!(" ")),
            "EmailTemplate.Subject",
            "The email template subject must not be empty.",
        ),
        (
            "/orders",
            with(
                with(valid_order(), &["notificationChannel"], json!("Sms")),
                &["smsTemplate"],
                json!({"body": ""}),
            )
            .pipe(|v| with(v, &["recipients"], json!([{"mobileNumber": "+4799999999"}]))),
            "SmsTemplate.Body",
            "The SMS template body must not be empty.",
        ),
        (
            "/orders/email",
            json!({"subject": "s", "recipients": [{"emailAddress": "a@example.no"}]}),
            "Body",
            "The email template body must not be empty.",
        ),
        (
            "/orders/email",
            json!({"body": "b", "recipients": [{"emailAddress": "a@example.no"}]}),
            "Subject",
            "The email template subject must not be empty.",
        ),
        (
            "/orders/email",
            json!({"subject": "s", "body": "b", "recipients": [{"mobileNumber": "+4799999999"}]}),
            "Recipients[0]",
            "Either a valid email address, organization number, or national identity number must be provided for each recipient.",
        ),
        (
            "/orders/sms",
            json!({"recipients": [{"mobileNumber": "+4799999999"}]}),
            "Body",
            "The SMS template body must not be empty.",
        ),
        (
            "/orders/sms",
            json!({"body": "b", "recipients": [{"emailAddress": "a@example.no"}]}),
            "Recipients[0]",
            "Either a valid mobile number starting with country code, organization number, or national identity number must be provided for each recipient.",
        ),
    ];
    for (path, body, key, message) in cases {
        let resp = app.post(path, &body, "ttd").await;
        assert_eq!(resp.status(), 400, "{path} {body}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{path} {body}");
        let problem: Value = resp.json().await.unwrap();
        assert_eq!(problem["title"], "One or more validation errors occurred.");
        let messages = problem["errors"][key]
            .as_array()
            .unwrap_or_else(|| panic!("no key {key} in {problem} for {body}"));
        assert!(
            messages.iter().any(|m| m == message),
            "{key}: expected {message:?} in {problem} for {body}"
        );
    }
    assert_eq!(order_count(&app).await, 0, "nothing is stored for an invalid request");
    app.stop().await;
}

trait Pipe: Sized {
    fn pipe<R>(self, f: impl FnOnce(Self) -> R) -> R {
        f(self)
    }
}
impl Pipe for Value {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_wrong_types_and_unknown_routes_are_problem_details() {
    let app = app().await;
    let url = format!("{}/notifications/api/v1/orders", app.base_url);
    for raw in [
        r#"{"recipients":"#,
        r#"{"recipients": "abc"}"#,
        r#"{"notificationChannel": "Pigeon", "recipients": []}"#,
        r#"{"ignoreReservation": "yes"}"#,
        r#"{"resourceId": false}"#,
        r#"{"recipients": [{"emailAddress": 5}]}"#,
        "[1,2]",
        "",
    ] {
        let resp = app
            .http
            .post(&url)
            .bearer_auth(app.token("ttd"))
            .header("content-type", "application/json")
            .body(raw.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{raw}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{raw}");
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["status"], 400);
        assert!(p["errors"].is_object(), "{p}");
    }
    // Bodies no parser should choke on: nesting far past serde's recursion limit, invalid
    // UTF-8 (inside a string and as a lone byte), a BOM-less UTF-16 body, a NUL.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object =
        format!(r#"{{"recipients": [{}{}]}}"#, r#"{"a":"#.repeat(5_000), "}".repeat(5_000));
    let mut bad_utf8 =
        br#"{"notificationChannel": "Email", "emailTemplate": {"subject": "s", "body": ""#.to_vec();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    bad_utf8.extend_from_slice(br#""}, "recipients": [{"emailAddress": "a@example.no"}]}"#);
    let utf16: Vec<u8> =
        r#"{"recipients": []}"#.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    for (what, raw) in [
        ("deeply nested array", deep.into_bytes()),
        ("deeply nested object", deep_object.into_bytes()),
        ("invalid UTF-8", bad_utf8),
        ("a lone 0xff", vec![0xff]),
        ("UTF-16", utf16),
        ("NUL", b"\0".to_vec()),
    ] {
        let resp = app
            .http
            .post(&url)
            .bearer_auth(app.token("ttd"))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{what}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json", "{what}");
    }
    // A method a path does not answer: 405 naming the ones it does (RFC 9110 §15.5.6).
    let resp = app
        .http
        .request(reqwest::Method::TRACE, &url)
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let allow = resp.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let resp = app
        .http
        .get(format!("{}/notifications/api/v1/nothing-here", app.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(order_count(&app).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enums_are_case_insensitive_and_unknown_properties_ignored() {
    let app = app().await;
    for channel in ["email", "EMAIL", "Email", "0"] {
        let mut body = valid_order();
        body["notificationChannel"] = if channel == "0" { json!(0) } else { json!(channel) };
        body["emailTemplate"]["content-type"] = json!("Plain");
        body["somethingElse"] = json!({"x": 1});
        let resp = app.post("/orders", &body, "ttd").await;
        assert_eq!(resp.status(), 202, "{channel}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_and_tenancy() {
    let app = app().await;
    let url = format!("{}/notifications/api/v1/orders", app.base_url);
    let now = chrono::Utc::now().timestamp();
    let post = |auth: Option<(&'static str, String)>| {
        let mut r =
            app.http.post(&url).json(&with(valid_order(), &["sendersReference"], json!("ref-337")));
        if let Some((h, v)) = auth {
            r = r.header(h, v);
        }
        r.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();

    assert_eq!(status(post(None).await.unwrap()), 401, "missing token");
    assert_eq!(
        status(post(Some(("Authorization", "Bearer not-a-jwt".into()))).await.unwrap()),
        401,
        "garbage"
    );
    let expired = app.token_with(&json!({"iss": varsel_api::auth::DEV_ISSUER, "scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd", "exp": now - 600}));
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {expired}")))).await.unwrap()),
        401,
        "expired"
    );
    let foreign = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd", "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(b"some other key"),
    )
    .unwrap();
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {foreign}")))).await.unwrap()),
        401,
        "badly signed"
    );
    let unsigned = format!(
        "{}.{}.",
        base64_url(r#"{"alg":"none","typ":"JWT"}"#),
        base64_url(&json!({"scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd", "exp": now + 600}).to_string())
    );
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {unsigned}")))).await.unwrap()),
        401,
        "alg none"
    );
    let iss = varsel_api::auth::DEV_ISSUER;
    let not_yet = app.token_with(&json!({"iss": iss, "scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd", "nbf": now + 600, "exp": now + 1200}));
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {not_yet}")))).await.unwrap()),
        401,
        "not yet valid"
    );
    let wrong_issuer = app.token_with(&json!({"iss": "https://evil.example/", "scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd", "exp": now + 600}));
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {wrong_issuer}")))).await.unwrap()),
        401,
        "wrong issuer"
    );
    let no_issuer = app.token_with(&json!({"scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd", "exp": now + 600}));
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {no_issuer}")))).await.unwrap()),
        401,
        "no issuer"
    );
    let no_exp = app.token_with(
        &json!({"iss": iss, "scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd"}),
    );
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {no_exp}")))).await.unwrap()),
        401,
        "no expiry"
    );
    // An HS256 token whose header claims RS256, and one signed by the right key with HS512.
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &json!({"iss": iss, "scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": "ttd", "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(&app.key()),
    )
    .unwrap();
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {hs512}")))).await.unwrap()),
        401,
        "unexpected algorithm"
    );
    let no_scope = app.token_with(&json!({"iss": iss, "scope": "altinn:something.else", "urn:altinn:org": "ttd", "exp": now + 600}));
    let resp = post(Some(("Authorization", format!("Bearer {no_scope}")))).await.unwrap();
    assert_eq!(resp.status(), 403, "no scope");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let no_org = app.token_with(
        &json!({"iss": iss, "scope": varsel_api::auth::CREATE_SCOPE, "exp": now + 600}),
    );
    assert_eq!(
        status(post(Some(("Authorization", format!("Bearer {no_org}")))).await.unwrap()),
        403,
        "no org"
    );

    // Scheme names are case-insensitive (RFC 9110 §11.1); a bare token or another scheme is not
    // a bearer token.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let resp = app
            .http
            .post(&url)
            .json(&valid_order())
            .header("Authorization", format!("{scheme} {}", app.token("ttd")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{scheme}");
    }
    for value in [app.token("ttd"), format!("Basic {}", app.token("ttd")), "Bearer".to_owned()] {
        let resp = post(Some(("Authorization", value.clone()))).await.unwrap();
        assert_eq!(resp.status(), 401, "{value}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    let numeric_org = app.token_with(&json!({"iss": iss, "scope": varsel_api::auth::CREATE_SCOPE, "urn:altinn:org": 991825827, "exp": now + 600}));
    let resp = post(Some(("Authorization", format!("Bearer {numeric_org}")))).await.unwrap();
    assert_eq!(resp.status(), 403, "an org claim that is a number");
    let p: Value = resp.json().await.unwrap();
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("must be a string naming the organisation, not a number"),
        "{p}"
    );

    // A PlatformAccessToken alone authorises, and its issuer is the creator.
    let resp = post(Some(("PlatformAccessToken", app.platform_token("digdir")))).await.unwrap();
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned();
    let got: Value = app.get(&format!("/orders/{id}"), "digdir").await.json().await.unwrap();
    assert_eq!(got["creator"], "digdir");

    // Platform tokens are verified with their issuer's own key and nothing else.
    let platform = |org: &str, claims: Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&app.platform_key(org)),
        )
        .unwrap()
    };
    let no_scope_other_org =
        app.token_with(&json!({"iss": iss, "urn:altinn:org": "other", "exp": now + 600}));
    let cross_uses = [
        (
            "a bearer-key token of another org, without scope, as a platform token",
            ("PlatformAccessToken", no_scope_other_org.clone()),
        ),
        (
            "a bearer token with the scope as a platform token",
            ("PlatformAccessToken", app.token("ttd")),
        ),
        (
            "a platform token as a bearer token",
            ("Authorization", format!("Bearer {}", app.platform_token("ttd"))),
        ),
        (
            "signed by ttd's key, claiming to be digdir",
            (
                "PlatformAccessToken",
                platform(
                    "ttd",
                    json!({"iss": "digdir", "urn:altinn:app": "ttd/app", "exp": now + 600}),
                ),
            ),
        ),
        (
            "signed by nav's key, claiming to be ttd",
            (
                "PlatformAccessToken",
                platform(
                    "nav",
                    json!({"iss": "ttd", "urn:altinn:app": "nav/app", "exp": now + 600}),
                ),
            ),
        ),
        (
            "without the app claim",
            ("PlatformAccessToken", platform("ttd", json!({"iss": "ttd", "exp": now + 600}))),
        ),
        (
            "expired",
            (
                "PlatformAccessToken",
                platform(
                    "ttd",
                    json!({"iss": "ttd", "urn:altinn:app": "ttd/app", "exp": now - 600}),
                ),
            ),
        ),
        (
            "an issuer varsel does not know",
            (
                "PlatformAccessToken",
                jsonwebtoken::encode(
                    &jsonwebtoken::Header::default(),
                    &json!({"iss": "stranger", "urn:altinn:app": "stranger/app", "exp": now + 600}),
                    &jsonwebtoken::EncodingKey::from_secret(&[7u8; 32]),
                )
                .unwrap(),
            ),
        ),
    ];
    for (what, header) in cross_uses {
        let resp = post(Some((header.0, header.1))).await.unwrap();
        assert_eq!(resp.status(), 401, "{what}");
    }
    // A valid platform token decides whatever bearer token comes with it; an invalid one is not
    // overruled by a valid bearer token.
    let both = app
        .http
        .post(&url)
        .json(&valid_order())
        .header("PlatformAccessToken", app.platform_token("ttd"))
        .bearer_auth("not-a-jwt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        both.status(),
        202,
        "a platform token with a user's bearer token, as Altinn apps send them"
    );
    let both = app
        .http
        .post(&url)
        .json(&valid_order())
        .header("PlatformAccessToken", no_scope_other_org)
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 401, "an invalid platform token next to a valid bearer token");
    // Two orgs' platform tokens never see each other's orders.
    let read = |org: &'static str, path: String| {
        let (http, url, token) = (
            app.http.clone(),
            format!("{}/notifications/api/v1{path}", app.base_url),
            app.platform_token(org),
        );
        async move {
            http.get(url)
                .header("PlatformAccessToken", token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(read("digdir", format!("/orders/{id}")).await, 200);
    assert_eq!(read("ttd", format!("/orders/{id}")).await, 404);
    assert_eq!(read("ttd", format!("/future/shipment/{id}")).await, 404);
    // Another org's order does not exist for ttd, on every endpoint that names an order.
    for path in ["", "/status", "/notifications/email", "/notifications/sms", "/history"] {
        let resp = app.get(&format!("/orders/{id}{path}"), "ttd").await;
        assert_eq!(resp.status(), 404, "another org's order{path}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
    }
    let cancel = app
        .http
        .put(format!("{url}/{id}/cancel"))
        .bearer_auth(app.token("ttd"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 404, "cancelling another org's order");
    let by_ref: Value =
        app.get("/orders?sendersReference=ref-337", "ttd").await.json().await.unwrap();
    assert_eq!(by_ref["count"], 0, "another org's orders are not listed: {by_ref}");
    assert_eq!(app.get("/orders/00000000-0000-0000-0000-000000000000", "ttd").await.status(), 404);
    let anon = app.http.get(format!("{url}/{id}")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    app.stop().await;
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

/// The curl examples of the seed documents, sent exactly as written (both token headers, tab
/// indentation, `content-type` inside `emailTemplate`), are accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_are_accepted_as_written() {
    let app = app().await;
    let examples: Vec<(&str, &str)> = vec![
        (
            "/orders",
            r#"{
    "sendersReference": "9A547448-FDF4-4E60-87AC-C2F652C8353C",
    "emailTemplate": {
        "subject": "A test email from Altinn Notifications",
        "body": "A message to be sent immediately from an org.",
        "content-type": "Plain"
    },
    "smsTemplate": {
        "body": "Demo SMS content"
    },
    "notificationChannel": "emailPreferred",
    "recipients": [
        {"organizationNumber": "311000179"},
        {"nationalIdentityNumber": "11876995923"}
    ],
    "resourceId": "app_ttd_apps-test"
}"#,
        ),
        (
            "/orders",
            r#"{
    "sendersReference": "586B753D-9A02-49C8-AC22-2060E3A7862F",
    "emailTemplate": {
        "subject": "Important notification regarding your organization, $recipientName$",
        "body": "Dear $recipientName$, this is an official notification regarding your organization, identified by the organization number $recipientNumber$. Please take the necessary actions.",
        "content-type": "Plain"
    },
    "smsTemplate": {
        "body": "Dear $recipientName$, this is an official notification regarding your organization, identified by the organization number $recipientNumber$. Please take the necessary actions."
    },
    "notificationChannel": "smsPreferred",
    "recipients": [
        {"organizationNumber": "311000179"},
        {"organizationNumber": "312508729"}
    ],
    "resourceId": "app_ttd_apps-test"
}"#,
        ),
        (
            "/orders/email",
            "{\n    \"sendersReference\": \"ref-2023-12-01\",\n\t\"subject\": \"A test email from Altinn Notifications\",\n\t\"body\": \"A message to be sent immediately from an org.\",\n\t\"contentType\": \"Plain\",\n\t\"recipients\": [{\"emailAddress\": \"testuser@altinn.no\"}, {\"nationalIdentityNumber\": \"11876995923\"}, {\"organizationNumber\": \"311000179\"}]\n}",
        ),
        (
            "/orders/email",
            "{\n    \"sendersReference\": \"ref-2023-12-02\",\n    \"subject\": \"Important notification regarding your organization, $recipientName$\",\n    \"body\": \"Dear $recipientName$, this is an official notification regarding your organization, identified by the organization number $recipientNumber$. Please take the necessary actions.\",\n    \"contentType\": \"Plain\",\n    \"recipients\": [{\"organizationNumber\": \"311000179\"}]\n}",
        ),
        (
            "/orders/sms",
            "{\n    \"sendersReference\": \"ref-2024-01-01\",\n\t\"body\": \"A text message to be sent immediately from an org.\",\n\t\"recipients\": [{\"mobileNumber\": \"+4799999999\"}, {\"nationalIdentityNumber\": \"11876995923\"}]\n}",
        ),
    ];
    for (path, raw) in examples {
        let resp = app
            .http
            .post(format!("{}/notifications/api/v1{path}", app.base_url))
            .header("Content-Type", "application/json")
            .header("PlatformAccessToken", app.platform_token("ttd"))
            .header("Authorization", format!("Bearer {}", app.token("ttd")))
            .body(raw.to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(status, 202, "{path}: {body}");
        assert!(body["orderId"].is_string());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100000_recipient_order_is_validated_like_a_small_one_within_the_body_limit() {
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    // Accepted, not sent: this test is about the request.
    opts.tweak = Box::new(|c| {
        c.run_worker = false;
        c.http.max_body_bytes = 8 * 1024 * 1024;
    });
    let app = TestApp::spawn(opts).await;
    let recipients: Vec<Value> =
        (0..100_000).map(|i| json!({"emailAddress": format!("r{i}@example.no")})).collect();
    let mut order = with(valid_order(), &["recipients"], json!(recipients));
    order["requestedSendTime"] =
        json!((chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339());

    // One bad address among them is named by its index, as in a small order; nothing is stored.
    let mut bad = order.clone();
    bad["recipients"][99_998] = json!({"emailAddress": "not-an-address"});
    let resp = app.post("/orders", &bad, "ttd").await;
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.unwrap();
    let keys: Vec<&String> = problem["errors"].as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["Recipients[99998]"], "{problem}");
    assert_eq!(order_count(&app).await, 0);

    // The whole order (about 4 MB) is accepted and stored with every recipient.
    let resp = app.post("/orders", &order, "ttd").await;
    assert_eq!(resp.status(), 202);
    let id = resp.json::<Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned();
    assert_eq!(app.order_row(&id).await.recipient_count, 100_000);

    // More recipients than the configured cap: 400 with its own message, nothing stored.
    let capped = TestApp::spawn({
        let mut o = TestAppOptions::new(Db::Sqlite, "");
        o.tweak = Box::new(|c| {
            c.run_worker = false;
            c.limits.max_recipients = 99_999;
        });
        o
    })
    .await;
    let resp = capped.post("/orders", &order, "ttd").await;
    assert_eq!(resp.status(), 400);
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(
        problem["errors"]["Recipients"][0],
        "An order can have at most 99999 recipients; this one has 100000.",
        "{problem}"
    );
    assert_eq!(order_count(&capped).await, 0);
    capped.stop().await;

    // Over the configured limit: 413, as problem details, whether the length is announced or not,
    // before the body is read (a raw client, so that what it has not sent yet cannot matter).
    let limit = 8 * 1024 * 1024;
    let addr = app.base_url.trim_start_matches("http://").to_owned();
    let token = app.token("ttd");
    let announced =
        raw_post(&addr, &token, &format!("Content-Length: {}\r\n", limit + 1), Vec::new()).await;
    assert!(announced.starts_with("HTTP/1.1 413"), "{announced}");
    assert!(
        announced.to_ascii_lowercase().contains("content-type: application/problem+json"),
        "{announced}"
    );
    // Chunked: one chunk just over the limit (its closing CRLF never sent).
    let mut chunk = format!("{:x}\r\n", limit + 1).into_bytes();
    chunk.extend(std::iter::repeat_n(b' ', limit + 1));
    let streamed = raw_post(&addr, &token, "Transfer-Encoding: chunked\r\n", chunk).await;
    assert!(streamed.starts_with("HTTP/1.1 413"), "{streamed}");
    assert_eq!(order_count(&app).await, 1);
    app.stop().await;
}

/// POSTs /orders over a bare TCP connection: the headers, `extra` header lines, then `body`
/// as given; returns the response head.
async fn raw_post(addr: &str, token: &str, extra: &str, body: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let (addr, token, extra) = (addr.to_owned(), token.to_owned(), extra.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST /notifications/api/v1/orders HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{extra}\r\n"
        );
        s.write_all(head.as_bytes()).unwrap();
        let _ = s.write_all(&body);
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    })
    .await
    .unwrap()
}
