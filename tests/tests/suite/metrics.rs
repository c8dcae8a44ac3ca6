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
    app.stop().await;
}
