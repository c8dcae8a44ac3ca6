//! Coded errors as an operator meets them, against `varsel api` as a process of its own (so its
//! log lines can be read): a problem detail's `traceId` is the request's trace id (the caller's
//! W3C `traceparent`, or a new one), the `traceresponse` header says the same, and the log line
//! of that request carries it; a client that gives up on an instant send is logged as 499
//! `NOT-00002` under its trace id and counted, while the send itself goes on in that trace.

use serde_json::{Value, json};
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Duration;
use varsel_tests::{Db, TestApp, TestAppOptions, eventually};

const VARSEL: &str = env!("CARGO_BIN_EXE_varsel");

/// The JSON log lines the process wrote so far.
fn log_lines(path: &std::path::Path) -> Vec<Value> {
    let mut text = String::new();
    std::fs::File::open(path).unwrap().read_to_string(&mut text).unwrap();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The first log line of trace `trace_id` whose message is `message`.
async fn logged(path: &std::path::Path, trace_id: &str, message: &str) -> Value {
    eventually(
        &format!("a \"{message}\" line of trace {trace_id}"),
        Duration::from_secs(30),
        || {
            let found = log_lines(path).into_iter().find(|line| {
                let in_trace = |span: &Value| span["trace_id"].as_str() == Some(trace_id);
                line["message"] == message
                    && (in_trace(&line["span"])
                        || line["spans"].as_array().is_some_and(|spans| spans.iter().any(in_trace)))
            });
            std::future::ready(found)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_problems_trace_id_leads_to_its_log_line_and_an_abandoned_send_is_a_499() {
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    opts.tweak = Box::new(|c| c.run_worker = false);
    let app = TestApp::spawn(opts).await;

    // An SMTP server that takes connections and never greets: an instant email's send waits.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let smtp_port = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in silent.incoming().flatten() {
            held.push(stream);
        }
    });

    let port = varsel_tests::port();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = app.command(VARSEL, |c| {
        c.http.listen = format!("127.0.0.1:{port}");
        c.email.smtp_url = format!("smtp://127.0.0.1:{smtp_port}");
        c.email.smtp_timeout_secs = 5;
    });
    cmd.arg("api")
        .env("VARSEL_LOG", "info")
        .env("VARSEL_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(logs.reopen().unwrap());
    let _api = varsel_tests::KillOnDrop(cmd.spawn().expect("varsel api"));
    let addr = format!("127.0.0.1:{port}");
    eventually("varsel api answers", Duration::from_secs(60), || {
        std::future::ready(TcpStream::connect(&addr).is_ok().then_some(()))
    })
    .await;
    let base = format!("http://{addr}/notifications/api/v1");
    let http = reqwest::Client::new();
    let token = app.token("ttd");

    // The caller's trace: its id is the problem's `traceId` and the log line's `trace_id`.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = http
        .get(format!("{base}/future/shipment/{}", uuid::Uuid::new_v4()))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let traceresponse = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
    assert!(traceresponse.starts_with(&format!("00-{trace_id}-")), "{traceresponse}");
    let problem: Value = resp.json().await.unwrap();
    assert_eq!(problem["traceId"], trace_id, "{problem}");
    assert_eq!(problem["status"], 404, "{problem}");
    assert_eq!(problem["statusDescription"], "Not Found", "{problem}");
    assert!(problem["code"].as_str().is_some_and(|c| c.starts_with("NOT-")), "{problem}");
    let line = logged(logs.path(), trace_id, "answered").await;
    assert_eq!(line["status"], 404, "{line}");

    // No traceparent: a new trace id, the same in the body, the header and the log.
    let resp = http
        .post(format!("{base}/future/orders"))
        .bearer_auth(&token)
        .json(&json!({"idempotencyId": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let traceresponse = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
    let problem: Value = resp.json().await.unwrap();
    let fresh = problem["traceId"].as_str().expect("a traceId").to_owned();
    assert_eq!(fresh.len(), 32, "{problem}");
    assert_ne!(fresh, trace_id);
    assert!(traceresponse.contains(&fresh), "{traceresponse} names {fresh}");
    // A validation problem has ASP.NET's shape, as Altinn's: errors, no code.
    assert!(problem["errors"]["Recipient"].is_array(), "{problem}");
    logged(logs.path(), &fresh, "answered").await;

    // An instant email whose SMTP server never answers; the client gives up after a second.
    let abandoned = "0af7651916cd43dd8448eb211c80319c";
    let gave_up = http
        .post(format!("{base}/future/orders/instant/email"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{abandoned}-b7ad6b7169203331-01"))
        .timeout(Duration::from_secs(1))
        .json(&json!({
            "idempotencyId": "otp-abandoned",
            "recipientEmail": {"emailAddress": "kari@example.no",
                "emailSettings": {"subject": "Engangskode", "body": "Koden er 1234"}}
        }))
        .send()
        .await;
    assert!(gave_up.is_err_and(|e| e.is_timeout()), "the client gave up");
    let line =
        logged(logs.path(), abandoned, "client closed the request before it was answered").await;
    assert_eq!(line["status"], 499, "{line}");
    assert_eq!(line["code"], "NOT-00002", "{line}");
    let metrics = http.get(format!("http://{addr}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.lines().any(|l| l.starts_with("varsel_http_requests_total")
            && l.contains("/future/orders/instant/email")
            && l.contains("status=\"499\"")),
        "the 499 is counted:\n{metrics}"
    );
    // The send went on without its client, in the request's trace: the provider never took the
    // message, so nothing is kept and the same request can be sent again.
    let line =
        logged(logs.path(), abandoned, "instant message not sent: the provider could not take it")
            .await;
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(app.store.find_chain("ttd", "otp-abandoned").await.unwrap().is_none());
    app.stop().await;
}
