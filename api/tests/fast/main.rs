//! The fast tier of `api`: the handlers through poem's `TestClient`, on in-memory SQLite, with
//! nothing but cargo: no Temporal server (workflow starts wait in the outbox, as when Temporal is
//! down), no SMTP server, no listening socket in use.

mod altinn_contract;
mod console;

use poem::endpoint::BoxEndpoint;
use poem::test::{TestClient, TestResponse};
use serde_json::{Value, json};
use varsel_api::auth::{CREATE_SCOPE, TokenKind, load_or_create_dev_key, mint};
use varsel_api::config::Config;
use varsel_api::startup::Application;

const V1: &str = "/notifications/api/v1";

/// One API process on in-memory SQLite, with its dev keys in a temporary data dir.
struct Fast {
    client: TestClient<BoxEndpoint<'static>>,
    key: Vec<u8>,
    /// A one-time link that signs the console in with [`Fast::operator`]'s token.
    console_link: String,
    _data: tempfile::TempDir,
}

impl Fast {
    async fn start() -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: data.path().to_path_buf(),
            run_worker: false,
            run_api: true,
            ..Config::default()
        };
        config.database.url = "sqlite::memory:".to_owned();
        config.database.max_connections = 1;
        config.http.listen = "127.0.0.1:0".to_owned();
        // Nothing listens there: starts fail at once and stay in the outbox.
        config.temporal.address = "127.0.0.1:1".to_owned();
        // One process: its dev keys in its data dir (the token helper below reads them).
        config.auth.allow_data_dir_keys = true;
        let app = Application::build(config).await.expect("the application builds");
        let client = TestClient::new(app.endpoint().expect("an API process"));
        let key = load_or_create_dev_key(data.path()).unwrap();
        let console_link = app.console_link(operator_token(&key)).expect("an API process");
        Self { client, key, console_link, _data: data }
    }

    /// A token of the operator `digdir`.
    fn operator(&self) -> String {
        operator_token(&self.key)
    }

    fn token(&self, org: &str) -> String {
        let kind = TokenKind::Bearer { org: org.into(), scope: CREATE_SCOPE.into() };
        mint(&self.key, kind, 3600).unwrap()
    }

    async fn post(&self, path: &str, body: &Value, org: &str) -> TestResponse {
        self.client
            .post(format!("{V1}{path}"))
            .header("Authorization", format!("Bearer {}", self.token(org)))
            .content_type("application/json")
            .body(body.to_string())
            .send()
            .await
    }

    async fn get(&self, path: &str, org: &str) -> TestResponse {
        self.client
            .get(format!("{V1}{path}"))
            .header("Authorization", format!("Bearer {}", self.token(org)))
            .send()
            .await
    }
}

fn operator_token(key: &[u8]) -> String {
    let kind =
        TokenKind::Bearer { org: "digdir".into(), scope: varsel_api::auth::OPERATOR_SCOPE.into() };
    mint(key, kind, 3600).unwrap()
}

async fn json_of(resp: TestResponse) -> Value {
    resp.json().await.value().deserialize::<Value>()
}

fn in_an_hour() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()
}

fn email_order(reference: &str) -> Value {
    json!({
        "notificationChannel": "Email",
        "requestedSendTime": in_an_hour(),
        "sendersReference": reference,
        "emailTemplate": {"subject": "s", "body": "b"},
        "recipients": [{"emailAddress": "a@example.no"}]
    })
}

#[tokio::test]
async fn an_order_is_accepted_and_reads_back_for_its_creator_only() {
    let fast = Fast::start().await;
    let resp = fast.post("/orders", &email_order("case-1"), "ttd").await;
    resp.assert_status(poem::http::StatusCode::ACCEPTED);
    let location = resp.0.headers()["location"].to_str().unwrap().to_owned();
    let accepted = json_of(resp).await;
    let id = accepted["orderId"].as_str().expect("an order id").to_owned();
    assert!(location.ends_with(&format!("/orders/{id}")), "{location}");
    assert_eq!(accepted["recipientLookup"], Value::Null, "no lookup for explicit addresses");

    let status = json_of(fast.get(&format!("/orders/{id}/status"), "ttd").await).await;
    assert_eq!(status["id"], id);
    assert_eq!(status["sendersReference"], "case-1");
    assert_eq!(status["processingStatus"]["status"], "Registered");

    fast.get(&format!("/orders/{id}/status"), "nav")
        .await
        .assert_status(poem::http::StatusCode::NOT_FOUND);
    let listed = json_of(fast.get("/orders?sendersReference=case-1", "nav").await).await;
    assert_eq!(listed["count"], 0, "another org's orders are not listed: {listed}");
    let own = json_of(fast.get("/orders?sendersReference=case-1", "ttd").await).await;
    assert_eq!(own["count"], 1, "{own}");
}

#[tokio::test]
async fn invalid_orders_get_altinns_messages_and_nothing_is_stored() {
    let fast = Fast::start().await;
    let cases = [
        (
            "notificationChannel",
            Value::Null,
            "NotificationChannel",
            "A notification channel must be defined.",
        ),
        (
            "requestedSendTime",
            json!("2030-01-01T10:00:00"),
            "RequestedSendTime",
            "The requested send time value must have specified a time zone.",
        ),
        (
            "emailTemplate",
            Value::Null,
            "EmailTemplate",
            "An email template is required for the selected notification channel.",
        ),
        (
            "recipients",
            json!([{"nationalIdentityNumber": "123"}]),
            "Recipients[0]",
            "National identity number must be 11 digits long.",
        ),
    ];
    for (field, value, key, message) in cases {
        let mut body = email_order("invalid");
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        let resp = fast.post("/orders", &body, "ttd").await;
        resp.assert_status(poem::http::StatusCode::BAD_REQUEST);
        resp.assert_header("content-type", "application/problem+json");
        let problem = json_of(resp).await;
        assert_eq!(problem["title"], "One or more validation errors occurred.");
        let messages = problem["errors"][key].as_array().unwrap_or_else(|| panic!("{problem}"));
        assert!(messages.iter().any(|m| m == message), "{key}: {message:?} in {problem}");
    }
    let listed = json_of(fast.get("/orders?sendersReference=invalid", "ttd").await).await;
    assert_eq!(listed["count"], 0, "nothing stored: {listed}");
}

#[tokio::test]
async fn credentials_are_checked_before_anything_else() {
    let fast = Fast::start().await;
    let anonymous = fast
        .client
        .post(format!("{V1}/orders"))
        .content_type("application/json")
        .body(email_order("anon").to_string())
        .send()
        .await;
    anonymous.assert_status(poem::http::StatusCode::UNAUTHORIZED);
    anonymous.assert_header("content-type", "application/problem+json");
    let forged = fast
        .client
        .post(format!("{V1}/orders"))
        .header("Authorization", "Bearer not.a.token")
        .content_type("application/json")
        .body("{ not even json")
        .send()
        .await;
    forged.assert_status(poem::http::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_idempotency_id_answers_the_first_answer_and_refuses_another_request() {
    let fast = Fast::start().await;
    let chain = |subject: &str| {
        json!({
            "idempotencyId": "fast-1",
            "requestedSendTime": in_an_hour(),
            "recipient": {"recipientEmail": {"emailAddress": "a@example.no",
                "emailSettings": {"subject": subject, "body": "b"}}}
        })
    };
    let body = chain("hello");
    let first = fast.post("/future/orders", &body, "ttd").await;
    first.assert_status(poem::http::StatusCode::CREATED);
    let first = json_of(first).await;
    let repeat = fast.post("/future/orders", &body, "ttd").await;
    repeat.assert_status_is_ok();
    assert_eq!(json_of(repeat).await, first, "a repeat gets the first answer");
    let other = fast.post("/future/orders", &chain("another"), "ttd").await;
    other.assert_status(poem::http::StatusCode::CONFLICT);
    // The id is the creator's own: another org may use it.
    fast.post("/future/orders", &body, "nav").await.assert_status(poem::http::StatusCode::CREATED);
}

/// Liveness says the process serves; readiness checks its parts and names the one that fails
/// (here Temporal, which nothing serves), with the database's and migrations' state beside it.
/// The probe is unauthenticated: it says what kind of failure, never the address or the error.
#[tokio::test]
async fn readiness_names_the_part_that_is_not_ready() {
    let app = Fast::start().await;
    for path in ["/health", "/health/live"] {
        let resp = app.client.get(path).send().await;
        resp.assert_status_is_ok();
        resp.assert_text("ok").await;
    }
    let resp = app.client.get("/health/ready").send().await;
    resp.assert_status(poem::http::StatusCode::SERVICE_UNAVAILABLE);
    resp.assert_content_type("application/problem+json");
    let body: Value = resp.json().await.value().deserialize();
    let cause = "does not answer (the cause is in this process's log)";
    assert_eq!(body["detail"], format!("Not ready: temporal: {cause}"), "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    assert_eq!(body["checks"]["migrations"], "ok", "{body}");
    assert_eq!(body["checks"]["temporal"], cause, "{body}");
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");
}

/// The contact register for operators: put, read and delete entries, upload NDJSON with bad
/// lines, export; an order's lookup finds what was put; a service owner may do none of it.
#[tokio::test]
async fn operators_load_the_contact_register_and_orders_find_it() {
    let fast = Fast::start().await;
    let operator = fast.operator();
    let base = format!("{V1}/operator/contacts");
    let call = |method: poem::http::Method, path: &str| {
        fast.client
            .request(method, format!("{base}{path}"))
            .header("Authorization", format!("Bearer {operator}"))
    };
    use poem::http::{Method, StatusCode};

    // Confirmed a month ago: within KRR's 18 months, so orders use it.
    let updated = (chrono::Utc::now() - chrono::Duration::days(30)).date_naive().to_string();
    let resp = call(Method::PUT, "/persons/01017012345")
        .content_type("application/json")
        .body(json!({"name": "Ola", "email": "ola@example.no", "mobileNumber": "99999999", "lastUpdated": updated}).to_string())
        .send()
        .await;
    resp.assert_status_is_ok();
    assert_eq!(
        json_of(resp).await,
        json!({"nationalIdentityNumber": "01017012345", "name": "Ola", "email": "ola@example.no",
               "mobileNumber": "+4799999999", "isReserved": false, "lastUpdated": format!("{updated}T00:00:00+00:00")})
    );
    let resp = call(Method::PUT, "/persons/0101701234")
        .content_type("application/json")
        .body(json!({"email": "ola@example.no"}).to_string())
        .send()
        .await;
    resp.assert_status(StatusCode::BAD_REQUEST);
    let problem = json_of(resp).await;
    assert_eq!(
        problem["errors"]["nationalIdentityNumber"],
        json!(["National identity number must be 11 digits long."]),
        "{problem}"
    );
    let resp = call(Method::PUT, "/organizations/910000000")
        .content_type("application/json")
        .body(json!({"name": "Bedrift AS", "emailList": ["post@bedrift.no", "POST@bedrift.no"], "mobileNumberList": ["+4740000001x"]}).to_string())
        .send()
        .await;
    resp.assert_status(StatusCode::BAD_REQUEST);
    assert!(json_of(resp).await["errors"]["mobileNumberList"].is_array());

    let upload = [
        r#"{"organizationNumber":"910000000","name":"Bedrift AS","emailList":["post@bedrift.no"]}"#,
        r#"{"organizationNumber":"9100"}"#,
    ]
    .join("\n");
    let resp = call(Method::POST, "/organizations")
        .content_type("application/x-ndjson")
        .body(upload)
        .send()
        .await;
    resp.assert_status_is_ok();
    let summary = json_of(resp).await;
    assert_eq!(summary["imported"], 1, "{summary}");
    assert_eq!(summary["rejected"], 1, "{summary}");
    assert_eq!(summary["errors"][0]["line"], 2, "{summary}");
    let resp = call(Method::POST, "/organizations").content_type("text/csv").body("x").send().await;
    resp.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let resp = call(Method::GET, "/organizations").send().await;
    resp.assert_status_is_ok();
    resp.assert_content_type("application/x-ndjson");
    resp.assert_text(
        "{\"organizationNumber\":\"910000000\",\"name\":\"Bedrift AS\",\"emailList\":[\"post@bedrift.no\"],\"mobileNumberList\":[]}\n",
    )
    .await;

    // Details older than 18 months are stale: an order does not use them.
    call(Method::PUT, "/persons/02017012345")
        .content_type("application/json")
        .body(json!({"email": "old@example.no", "lastUpdated": "2020-01-01"}).to_string())
        .send()
        .await
        .assert_status_is_ok();

    // An order naming both finds what was put.
    let order = json!({
        "notificationChannel": "Email",
        "requestedSendTime": in_an_hour(),
        "emailTemplate": {"subject": "s", "body": "b"},
        "recipients": [{"nationalIdentityNumber": "01017012345"}, {"organizationNumber": "910000000"},
                       {"nationalIdentityNumber": "09017012345"}, {"nationalIdentityNumber": "02017012345"}]
    });
    let resp = fast.post("/orders", &order, "ttd").await;
    resp.assert_status(StatusCode::ACCEPTED);
    let lookup = json_of(resp).await["recipientLookup"].clone();
    assert_eq!(lookup["status"], "PartialSuccess", "{lookup}");
    let mut missing: Vec<String> =
        serde_json::from_value(lookup["missingContact"].clone()).unwrap();
    missing.sort();
    assert_eq!(missing, ["02017012345", "09017012345"], "{lookup}");

    // Read and delete; a service owner's token is refused.
    call(Method::GET, "/persons/01017012345").send().await.assert_status_is_ok();
    call(Method::DELETE, "/persons/01017012345").send().await.assert_status(StatusCode::NO_CONTENT);
    call(Method::DELETE, "/persons/01017012345").send().await.assert_status(StatusCode::NOT_FOUND);
    call(Method::GET, "/persons/01017012345").send().await.assert_status(StatusCode::NOT_FOUND);
    let owner = fast
        .client
        .get(format!("{base}/organizations/910000000"))
        .header("Authorization", format!("Bearer {}", fast.token("ttd")))
        .send()
        .await;
    owner.assert_status(StatusCode::FORBIDDEN);
}

/// Operators find orders of every creator, newest first, a page at a time, with how many of each
/// status the search finds; a creator's token may not search.
#[tokio::test]
async fn operators_find_orders_newest_first_a_page_at_a_time() {
    let fast = Fast::start().await;
    let mut ids = Vec::new();
    for (org, reference) in [
        ("ttd", "case-1"),
        ("nav", "case-2"),
        ("ttd", "case-3"),
        ("nav", "case-4"),
        ("ttd", "case-5"),
    ] {
        let resp = fast.post("/orders", &email_order(reference), org).await;
        resp.assert_status(poem::http::StatusCode::ACCEPTED);
        ids.push(json_of(resp).await["orderId"].as_str().unwrap().to_owned());
    }
    let operator = fast.operator();
    let find = |query: String| {
        let req = fast
            .client
            .get(format!("{V1}/operator/orders{query}"))
            .header("Authorization", format!("Bearer {operator}"));
        async move {
            let resp = req.send().await;
            let status = resp.0.status().as_u16();
            (status, json_of(resp).await)
        }
    };
    let found = |page: &Value| -> Vec<String> {
        page["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };

    let (status, all) = find(String::new()).await;
    assert_eq!(status, 200, "{all}");
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(found(&all), newest_first);
    assert_eq!(all["counts"], json!({"Registered": 5}));
    assert_eq!(all["countLimit"], 10_000, "counts cover the newest 10,000 matches");
    assert!(all.get("nextCursor").is_none(), "{all}");
    let first = &all["orders"][0];
    assert_eq!(first["creator"], "ttd");
    assert_eq!(first["sendersReference"], "case-5");
    assert_eq!(first["channel"], "Email");
    assert_eq!(first["orderType"], "Notification");
    assert_eq!(first["recipients"], 1);

    // Narrowed by creator, reference, channel (any letter case) and time.
    assert_eq!(found(&find("?creator=ttd".into()).await.1).len(), 3);
    assert_eq!(found(&find("?sendersReference=case-2".into()).await.1), vec![ids[1].clone()]);
    assert_eq!(found(&find(format!("?id={}", ids[3])).await.1), vec![ids[3].clone()]);
    assert_eq!(found(&find("?channel=email".into()).await.1).len(), 5);
    let later = (chrono::Utc::now() + chrono::Duration::minutes(1)).to_rfc3339();
    let later = later.replace('+', "%2B");
    assert_eq!(found(&find(format!("?createdFrom={later}")).await.1).len(), 0);
    assert_eq!(found(&find(format!("?createdTo={later}")).await.1).len(), 5);
    // A status narrows the list, not the counts.
    let (_, completed) = find("?status=completed".into()).await;
    assert_eq!(found(&completed).len(), 0);
    assert_eq!(completed["counts"], json!({"Registered": 5}));

    // Two at a time: three pages, each order once, in order.
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    for page in 0.. {
        let (status, body) = find(query.clone()).await;
        assert_eq!(status, 200, "{body}");
        paged.extend(found(&body));
        match body["nextCursor"].as_str() {
            Some(next) => query = format!("?limit=2&cursor={next}"),
            None => {
                assert_eq!(page, 2, "three pages");
                break;
            }
        }
    }
    assert_eq!(paged, newest_first);

    // Wrong criteria name themselves; a creator's token may not search.
    for (query, key) in [
        ("?status=Lost", "status"),
        ("?channel=Fax", "channel"),
        ("?limit=0", "limit"),
        ("?limit=501", "limit"),
        ("?cursor=yesterday", "cursor"),
        ("?id=42", "id"),
        ("?createdFrom=today", "createdFrom"),
    ] {
        let (status, body) = find(query.into()).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body["errors"][key].is_array(), "{query}: {body}");
    }
    let resp = fast.get("/operator/orders", "ttd").await;
    resp.assert_status(poem::http::StatusCode::FORBIDDEN);
}
