//! The published contract: the committed `openapi/openapi.json` is what the code generates and
//! what the server serves. Regenerate with `cargo run -q -- openapi > openapi/openapi.json`.

use serde_json::Value;
use varsel_tests::{Db, TestApp, TestAppOptions, project_root};

#[test]
fn committed_openapi_matches_the_code() {
    let committed: Value = serde_json::from_slice(
        &std::fs::read(project_root().join("openapi/openapi.json")).expect("openapi/openapi.json"),
    )
    .expect("valid JSON");
    let generated: Value = serde_json::from_str(&varsel_api::startup::openapi_json()).unwrap();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -q -- openapi > openapi/openapi.json` and commit it"
    );
    for path in [
        "/notifications/api/v1/orders",
        "/notifications/api/v1/orders/email",
        "/notifications/api/v1/orders/sms",
    ] {
        let op = &generated["paths"][path]["post"];
        for status in ["202", "400", "401", "403"] {
            assert!(op["responses"][status].is_object(), "{path} documents {status}");
        }
        assert!(
            op["summary"].is_string() && op["description"].is_string(),
            "{path} has a summary and description"
        );
    }
}

/// The document the app serves.
async fn served_document(app: &TestApp) -> Value {
    let resp = app.http.get(format!("{}/notifications/api/v1/openapi.json", app.base_url)).send();
    resp.await.unwrap().json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_document_and_a_browsable_ui() {
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await;
    let served = served_document(&app).await;
    let generated: Value = serde_json::from_str(&varsel_api::startup::openapi_json()).unwrap();
    assert_eq!(served, generated);
    let docs = app.http.get(format!("{}/docs", app.base_url)).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    app.stop().await;
}

/// The document states what the validators demand with this deployment's limits, on
/// `/openapi.json` and on the docs page alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_states_this_deployments_limits() {
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    opts.tweak = Box::new(|c| c.limits.max_recipients = 7);
    let app = TestApp::spawn(opts).await;
    let served = served_document(&app).await;
    let recipients = &served["components"]["schemas"]["NotificationOrderRequestExt"];
    assert_eq!(recipients["properties"]["recipients"]["maxItems"], 7, "{recipients}");
    assert!(recipients["required"].as_array().unwrap().iter().any(|r| r == "recipients"));
    let page = app.http.get(format!("{}/docs", app.base_url)).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(page.contains("\"maxItems\": 7"), "the docs page shows the served document");
    app.stop().await;
}

/// Every request example the document shows is an order the API accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_examples_are_accepted() {
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await;
    let doc: Value = serde_json::from_str(&varsel_api::startup::openapi_json()).unwrap();
    for (path, schema) in [
        ("/orders", "NotificationOrderRequestExt"),
        ("/orders/email", "EmailNotificationOrderRequestExt"),
        ("/orders/sms", "SmsNotificationOrderRequestExt"),
    ] {
        let example = &doc["components"]["schemas"][schema]["example"];
        assert!(example.is_object(), "{schema} has an example");
        let resp = app.post(path, example, "ttd").await;
        assert_eq!(resp.status(), 202, "{schema}: {}", resp.text().await.unwrap());
    }
    app.stop().await;
}

/// Every operation of the document answers the same with and without a trailing slash (Altinn's
/// routing does, and its own API test suite calls `POST /orders/email/`, `/future/orders/` and
/// `GET …/notifications/sms/`): not a redirect, which clients do not follow for a POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_alike_with_a_trailing_slash() {
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    opts.tweak = Box::new(|c| c.run_worker = false);
    let app = TestApp::spawn(opts).await;
    let doc: Value = serde_json::from_str(&varsel_api::startup::openapi_json()).unwrap();
    let id = uuid::Uuid::new_v4().to_string();
    let mut walked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", &id);
        for (method, _) in ops.as_object().unwrap() {
            let mut answers = Vec::new();
            for url in
                [format!("{}{concrete}", app.base_url), format!("{}{concrete}/", app.base_url)]
            {
                let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let mut req = app.http.request(method.clone(), &url).bearer_auth(app.token("ttd"));
                if method == reqwest::Method::POST || method == reqwest::Method::PUT {
                    req = req.json(&serde_json::json!({}));
                }
                let resp = req.send().await.unwrap();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                answers.push((
                    status,
                    body["detail"].clone(),
                    body["errors"].as_object().map(|e| e.keys().cloned().collect::<Vec<_>>()),
                ));
            }
            assert_eq!(answers[0], answers[1], "{method} {path} and {path}/");
            assert!(
                !(answers[0].0 == 404
                    && answers[0].1.as_str().is_some_and(|d| d.eq_ignore_ascii_case("not found"))),
                "{method} {path} is routed"
            );
            walked += 1;
        }
    }
    assert!(walked >= 20, "every operation walked: {walked}");
    // The calls of Altinn's API test suite, as it makes them.
    let email = serde_json::json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "a@example.no"}]});
    assert_eq!(app.post("/orders/email/", &email, "ttd").await.status(), 202);
    let sms = serde_json::json!({"body": "b", "recipients": [{"mobileNumber": "+4799999999"}]});
    let resp = app.post("/orders/sms/", &sms, "ttd").await;
    assert_eq!(resp.status(), 202);
    let order: Value = resp.json().await.unwrap();
    let sms_id = order["orderId"].as_str().unwrap();
    assert_eq!(app.get(&format!("/orders/{sms_id}/notifications/sms/"), "ttd").await.status(), 200);
    assert_eq!(
        app.get(&format!("/orders/{sms_id}/notifications/email/"), "ttd").await.status(),
        200
    );
    let chain = serde_json::json!({"idempotencyId": uuid::Uuid::new_v4().to_string(),
        "recipient": {"recipientEmail": {"emailAddress": "a@example.no", "emailSettings": {"subject": "s", "body": "b"}}}});
    assert_eq!(app.post("/future/orders/", &chain, "ttd").await.status(), 201);
    app.stop().await;
}
