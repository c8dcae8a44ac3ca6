//! Provider faults: an SMTP relay that answers 421/451, cuts connections or stalls, and an SMS
//! gateway that answers 5xx, throttles with 429 `Retry-After` or does not answer. Each is retried
//! (with backoff, a per-attempt timeout, or at the pace the provider asks) and the order
//! completes once the provider recovers; a permanent refusal (550) is final at once.

use poem::http::StatusCode;
use poem::web::Data;
use poem::{
    EndpointExt, Request, Response, Route, Server, handler,
    listener::{Acceptor, Listener, TcpListener},
};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use varsel_tests::{Db, KannelGateway, SmtpServer, TestApp, TestAppOptions, on_both_databases};

const T: Duration = Duration::from_secs(90);

async fn smtp_faults(db: Db) {
    let smtp = SmtpServer::start_flaky();
    let mut opts = TestAppOptions::new(db, smtp.url());
    // A short per-command timeout, so the stalled relay costs one second per attempt.
    opts.tweak = Box::new(|c| c.email.smtp_timeout_secs = 1);
    let app = TestApp::spawn(opts).await;
    let addresses = [
        "flaky1@example.no",
        "busy1@example.no",
        "drop1@example.no",
        "stall1@example.no",
        "fine1@example.no",
    ];
    let mut recipients: Vec<_> = addresses.iter().map(|a| json!({"emailAddress": a})).collect();
    recipients.push(json!({"emailAddress": "rejected1@example.no"}));
    let id = app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    let started = Instant::now();
    app.wait_status(&id, "Completed", T).await;
    let took = started.elapsed();

    // Each address received exactly one message: no fault produced a duplicate.
    let received = smtp.messages();
    for a in addresses {
        assert_eq!(received.iter().filter(|m| m.to.contains(a)).count(), 1, "{a}: {received:?}");
        assert!(smtp.rcpt_attempts(a) >= 1, "{a} was attempted");
    }
    assert_eq!(received.len(), addresses.len(), "nothing else was delivered");
    for a in ["flaky1@example.no", "busy1@example.no", "drop1@example.no", "stall1@example.no"] {
        assert!(smtp.rcpt_attempts(a) >= 2, "{a} was retried after its fault");
    }
    // 550 is final: one attempt, no retry.
    assert_eq!(smtp.rcpt_attempts("rejected1@example.no"), 1);
    let rows = app.store.notifications(&id).await.unwrap();
    for r in &rows {
        let expected =
            if r.address.starts_with("rejected") { "Email_Failed" } else { "Email_Succeeded" };
        assert_eq!(r.status.as_str(), expected, "{}: {:?}", r.address, r.status_reason);
    }
    // The stall was cut by the per-attempt timeout, not waited out (the relay stalls for 30 s).
    assert!(took < Duration::from_secs(25), "the order took {took:?}");
    app.stop().await;
}
on_both_databases!(
    an_smtp_relay_that_refuses_cuts_and_stalls_is_retried_until_it_delivers,
    smtp_faults
);

/// What the gateway in front of Kannel does with one request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// 503 without `Retry-After`.
    Unavailable,
    /// 429 `Retry-After: n`; every request within the next n seconds gets 429 too.
    Throttle(u64),
    /// No answer for 30 s.
    Stall,
    /// Passed on to Kannel.
    Forward,
}

#[derive(Clone)]
struct FaultyGateway {
    kannel: String,
    script: Arc<Mutex<Vec<Fault>>>,
    throttled_until: Arc<Mutex<Option<Instant>>>,
    /// (when, what was done) per request.
    seen: Arc<Mutex<Vec<(Instant, Fault)>>>,
    http: reqwest::Client,
}

#[handler]
async fn gateway(req: &Request, Data(g): Data<&FaultyGateway>) -> Response {
    let now = Instant::now();
    let throttled = g.throttled_until.lock().unwrap().filter(|t| *t > now);
    let fault = if throttled.is_some() {
        Fault::Throttle(1)
    } else {
        let mut script = g.script.lock().unwrap();
        if script.is_empty() { Fault::Forward } else { script.remove(0) }
    };
    g.seen.lock().unwrap().push((now, fault));
    match fault {
        Fault::Unavailable => {
            Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body("overloaded")
        }
        Fault::Throttle(secs) => {
            let until = throttled.unwrap_or(now + Duration::from_secs(secs));
            *g.throttled_until.lock().unwrap() = Some(until);
            let left = until.saturating_duration_since(now).as_secs_f64().ceil() as u64;
            Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header("Retry-After", left.to_string())
                .body("slow down")
        }
        Fault::Stall => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Response::builder().status(StatusCode::SERVICE_UNAVAILABLE).body("too late")
        }
        Fault::Forward => {
            let url = format!("{}?{}", g.kannel, req.uri().query().unwrap_or_default());
            match g.http.get(url).send().await {
                Ok(r) => {
                    let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                    Response::builder()
                        .status(status)
                        .body(r.bytes().await.unwrap_or_default().to_vec())
                }
                Err(e) => Response::builder().status(StatusCode::BAD_GATEWAY).body(e.to_string()),
            }
        }
    }
}

/// A real Kannel behind a gateway that injects `script`'s faults, one per request, then passes
/// requests on.
async fn faulty_gateway(kannel: &KannelGateway, script: Vec<Fault>) -> (String, FaultyGateway) {
    let g = FaultyGateway {
        kannel: kannel.sendsms_url.clone(),
        script: Arc::new(Mutex::new(script)),
        throttled_until: Arc::default(),
        seen: Arc::default(),
        http: reqwest::Client::new(),
    };
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(
        Server::new_with_acceptor(acceptor)
            .run(Route::new().at("/cgi-bin/sendsms", gateway).data(g.clone())),
    );
    (format!("http://127.0.0.1:{port}/cgi-bin/sendsms"), g)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sms_gateway_that_fails_throttles_and_stalls_is_retried_at_the_pace_it_asks() {
    let kannel = tokio::task::spawn_blocking(KannelGateway::start).await.unwrap();
    let (url, g) =
        faulty_gateway(&kannel, vec![Fault::Unavailable, Fault::Throttle(3), Fault::Stall]).await;
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    let password = kannel.password.clone();
    opts.tweak = Box::new(move |c| {
        c.sms.provider = varsel_api::config::SmsProvider::Kannel;
        c.sms.kannel_sendsms_url = url;
        c.sms.kannel_password = password.into();
        c.sms.gateway_timeout_secs = 1;
    });
    let app = TestApp::spawn(opts).await;
    let numbers = ["+4799999991", "+4799999992", "+4799999993"];
    let recipients: Vec<_> = numbers.iter().map(|n| json!({"mobileNumber": n})).collect();
    let id = app.order("/orders/sms", &json!({"body": "Hei", "recipients": recipients})).await;
    app.wait_status(&id, "Completed", T).await;

    let rows = app.store.notifications(&id).await.unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        assert_eq!(r.status.as_str(), "SMS_Delivered", "{}: {:?}", r.address, r.status_reason);
    }
    let seen = g.seen.lock().unwrap().clone();
    let throttles: Vec<Instant> =
        seen.iter().filter(|(_, f)| matches!(f, Fault::Throttle(_))).map(|(t, _)| *t).collect();
    assert!(!throttles.is_empty(), "{seen:?}");
    let first_throttle = throttles[0];
    let window_end = first_throttle + Duration::from_secs(3);
    // Sends already under way when the gateway first said 429 may arrive a moment later; after
    // that, nothing is sent until the delay it asked for has passed.
    let hammered: Vec<_> = seen
        .iter()
        .filter(|(t, _)| {
            *t > first_throttle + Duration::from_millis(300)
                && *t < window_end - Duration::from_millis(100)
        })
        .collect();
    assert!(
        hammered.is_empty(),
        "requests inside the Retry-After window: {hammered:?} (all: {seen:?})"
    );
    assert!(
        throttles.len() <= numbers.len(),
        "each in-flight send hit the throttle at most once: {seen:?}"
    );
    // The stalled request was given up after the gateway timeout and the message sent again.
    assert!(seen.iter().any(|(_, f)| *f == Fault::Stall));
    let forwarded = seen.iter().filter(|(_, f)| *f == Fault::Forward).count();
    assert_eq!(forwarded, numbers.len(), "each SMS reached Kannel exactly once: {seen:?}");
    app.stop().await;
}
