//! The published contract: the committed `openapi/openapi.json` is what the code generates and
//! what the server serves. Regenerate with `cargo run -q -- openapi > openapi/openapi.json`.

use serde_json::Value;
use varsel_tests::{Db, TestApp, TestAppOptions, project_root};

#[test]
fn committed_openapi_matches_the_code() {
    let committed: Value = serde_json::from_slice(&std::fs::read(project_root().join("openapi/openapi.json")).expect("openapi/openapi.json"))
        .expect("valid JSON");
    let generated: Value = serde_json::from_str(&varsel_api::startup::openapi_json()).unwrap();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `cargo run -q -- openapi > openapi/openapi.json` and commit it"
    );
    for path in ["/notifications/api/v1/orders", "/notifications/api/v1/orders/email", "/notifications/api/v1/orders/sms"] {
        let op = &generated["paths"][path]["post"];
        for status in ["202", "400", "401", "403"] {
            assert!(op["responses"][status].is_object(), "{path} documents {status}");
        }
        assert!(op["summary"].is_string() && op["description"].is_string(), "{path} has a summary and description");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_document_and_a_browsable_ui() {
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await;
    let served: Value = app.http.get(format!("{}/notifications/api/v1/openapi.json", app.base_url)).send().await.unwrap().json().await.unwrap();
    let generated: Value = serde_json::from_str(&varsel_api::startup::openapi_json()).unwrap();
    assert_eq!(served, generated);
    let docs = app.http.get(format!("{}/docs", app.base_url)).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
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
