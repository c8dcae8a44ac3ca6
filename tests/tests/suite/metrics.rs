//! `/metrics` in Prometheus text format says what happened, in numbers an operator can alert on.

use serde_json::json;
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_orders_notifications_sends_and_reports() {
    let smtp = SmtpServer::start_flaky();
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, smtp.url())).await;
    let email = app.order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "ok@example.no"}, {"emailAddress": "rejected@example.no"}]})).await;
    let sms = app
        .order(
            "/orders/sms",
            &json!({"body": "b", "recipients": [{"mobileNumber": "+4799999999"}]}),
        )
        .await;
    app.wait_status(&email, "Completed", Duration::from_secs(60)).await;
    app.wait_status(&sms, "Completed", Duration::from_secs(60)).await;
    for id in [&email, &sms] {
        assert_eq!(app.get(&format!("/orders/{id}"), "ttd").await.status(), 200);
    }

    let resp = app.http.get(format!("{}/metrics", app.base_url)).send().await.unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    assert_eq!(value(&text, r#"varsel_orders_accepted_total{endpoint="email"}"#), 1.0);
    assert_eq!(value(&text, r#"varsel_orders_accepted_total{endpoint="sms"}"#), 1.0);
    assert_eq!(value(&text, r#"varsel_orders{status="Completed"}"#), 2.0);
    assert_eq!(value(&text, r#"varsel_orders_finished_total{status="Completed"}"#), 2.0);
    assert_eq!(
        value(&text, r#"varsel_notifications{channel="email",status="Email_Succeeded"}"#),
        1.0
    );
    assert_eq!(value(&text, r#"varsel_notifications{channel="email",status="Email_Failed"}"#), 1.0);
    assert_eq!(value(&text, r#"varsel_notifications{channel="sms",status="SMS_Delivered"}"#), 1.0);
    assert_eq!(value(&text, r#"varsel_notifications_unsent{channel="email"}"#), 0.0);
    assert_eq!(
        value(&text, r#"varsel_provider_errors_total{kind="permanent",provider="smtp"}"#),
        1.0
    );
    assert_eq!(value(&text, r#"varsel_send_seconds_count{provider="smtp"}"#), 2.0);
    assert_eq!(value(&text, r#"varsel_send_seconds_count{provider="simulator"}"#), 1.0);
    assert_eq!(
        value(&text, r#"varsel_delivery_reports_total{channel="sms",outcome="applied"}"#),
        1.0
    );
    assert_eq!(value(&text, r#"varsel_delivery_report_lag_seconds_count{channel="sms"}"#), 1.0);
    assert_eq!(value(&text, "varsel_dead_reports"), 0.0);
    // The in-process worker's Temporal SDK metrics come with them.
    assert!(text.lines().any(|l| l.starts_with("temporal_worker_task_slots_available{")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("temporal_workflow_completed_total{")), "{text}");
    // The build, and the API's own answers by route (ids as :id) and status.
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(value(&text, &format!(r#"varsel_build_info{{version="{version}"}}"#)), 1.0);
    let posted = r#"varsel_http_requests_total{method="POST",route="/notifications/api/v1/orders/email",status="202"}"#;
    assert_eq!(value(&text, posted), 1.0);
    let read = r#"varsel_http_requests_total{method="GET",route="/notifications/api/v1/orders/:id",status="200"}"#;
    assert_eq!(value(&text, read), 2.0, "the two reads, under one route");
    let timed = r#"varsel_http_request_duration_seconds_count{method="GET",route="/notifications/api/v1/orders/:id"}"#;
    assert_eq!(value(&text, timed), 2.0);

    // The database gauges are recounted at most every 30 s: a scrape right after another order
    // completed still shows the last count (no count over every notification per scrape).
    let third = app.order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "third@example.no"}]})).await;
    app.wait_status(&third, "Completed", Duration::from_secs(60)).await;
    let again = app.http.get(format!("{}/metrics", app.base_url)).send().await.unwrap();
    let again = again.text().await.unwrap();
    assert_eq!(value(&again, r#"varsel_orders{status="Completed"}"#), 2.0, "the cached count");
    assert_eq!(
        value(&again, r#"varsel_orders_accepted_total{endpoint="email"}"#),
        2.0,
        "counters are live"
    );

    // The alert rules and the dashboard name only series that exist.
    for file in ["deploy/prometheus/alerts.yml", "deploy/grafana/varsel.json"] {
        let named = std::fs::read_to_string(varsel_tests::project_root().join(file)).unwrap();
        let mut series: Vec<&str> = named
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("varsel_") && w.len() > "varsel_".len())
            .collect();
        series.sort();
        series.dedup();
        assert!(series.len() >= 5, "{file} names varsel's series");
        for name in series {
            let exported = text
                .lines()
                .any(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']));
            assert!(exported, "{file} names {name}, which /metrics does not export");
        }
    }
    app.stop().await;
}
