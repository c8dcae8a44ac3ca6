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
    recipients.push(json!({"emailAddress": "lost1@example.no"}));
    let id = app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    let started = Instant::now();
    app.wait_status(&id, "Completed", T).await;
    let took = started.elapsed();

    // A fault that kept the message from the relay produced no duplicate: each such address
    // received exactly one message.
    let received = smtp.messages();
    for a in addresses {
        assert_eq!(received.iter().filter(|m| m.to.contains(a)).count(), 1, "{a}: {received:?}");
        assert!(smtp.rcpt_attempts(a) >= 1, "{a} was attempted");
    }
    for a in ["flaky1@example.no", "busy1@example.no", "drop1@example.no", "stall1@example.no"] {
        assert!(smtp.rcpt_attempts(a) >= 2, "{a} was retried after its fault");
    }
    // The relay stored a message and its answer was lost: varsel cannot know it arrived, so it
    // sends it again, once. That is the at-least-once duplicate, and it carries the same
    // Message-ID, so the receiving system can drop it.
    let lost: Vec<_> = received.iter().filter(|m| m.to.contains("lost1@example.no")).collect();
    assert_eq!(lost.len(), 2, "a stored message whose answer was lost is sent once more");
    assert_eq!(lost[0].message_id, lost[1].message_id, "the duplicate is recognisable");
    assert_eq!(smtp.rcpt_attempts("lost1@example.no"), 2);
    assert_eq!(received.len(), addresses.len() + 2, "nothing else was delivered");
    // 550 is final: one attempt, no retry.
    assert_eq!(smtp.rcpt_attempts("rejected1@example.no"), 1);
    let rows = app.store.notifications(&id).await.unwrap();
    assert_eq!(rows.len(), addresses.len() + 2, "one notification per recipient");
    for r in &rows {
        let expected =
            if r.address.starts_with("rejected") { "Email_Failed" } else { "Email_Succeeded" };
        assert_eq!(r.status.as_str(), expected, "{}: {:?}", r.address, r.status_reason);
    }
    // Every message names its notification (`Message-ID: <notification id@varsel>`) and comes
    // from the configured sender.
    for m in &received {
        let n = rows.iter().find(|r| m.to.contains(&r.address)).expect("a notification");
        assert_eq!(m.message_id, format!("<{}@varsel>", n.id), "{}", m.to);
        assert_eq!(m.from, app.config.email.from, "{}", m.to);
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
    /// (when, what was done, the request's query) per request.
    seen: Arc<Mutex<Vec<(Instant, Fault, String)>>>,
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
    let query = req.uri().query().unwrap_or_default().to_owned();
    g.seen.lock().unwrap().push((now, fault, query));
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
            varsel_tests::forward_to_kannel(
                &g.http,
                &g.kannel,
                req.uri().query().unwrap_or_default(),
            )
            .await
        }
    }
}

/// One parameter of a query string, decoded; empty when absent.
fn param(query: &str, name: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
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
    let throttles: Vec<Instant> = seen
        .iter()
        .filter(|(_, f, _)| matches!(f, Fault::Throttle(_)))
        .map(|(t, _, _)| *t)
        .collect();
    assert!(!throttles.is_empty(), "{seen:?}");
    let first_throttle = throttles[0];
    let window_end = first_throttle + Duration::from_secs(3);
    // Inside the Retry-After window only sends already under way when the gateway first said 429
    // arrive, each once: no message is tried again before the delay the gateway asked for.
    let mut in_window: Vec<String> = seen
        .iter()
        .filter(|(t, _, _)| *t >= first_throttle && *t < window_end - Duration::from_millis(100))
        .map(|(_, _, query)| param(query, "to"))
        .collect();
    let requests = in_window.len();
    in_window.sort();
    in_window.dedup();
    assert_eq!(in_window.len(), requests, "a message was retried inside the window: {seen:?}");
    assert!(
        throttles.len() <= numbers.len(),
        "each in-flight send hit the throttle at most once: {seen:?}"
    );
    // The stalled request was given up after the gateway timeout and the message sent again.
    assert!(seen.iter().any(|(_, f, _)| *f == Fault::Stall));
    let forwarded = seen.iter().filter(|(_, f, _)| *f == Fault::Forward).count();
    // Kannel is told to stop trying when varsel gives the message up: the notification's 48 hours
    // of time-to-live, in Kannel's minutes.
    for (_, _, query) in &seen {
        assert_eq!(param(query, "validity"), "2880", "{query}");
    }
    assert_eq!(forwarded, numbers.len(), "each SMS reached Kannel exactly once: {seen:?}");
    app.stop().await;
}
