//! Outbound safety and condition-endpoint faults: `conditionEndpoint` never reaches loopback,
//! private, link-local or metadata addresses unless allow-listed (directly, through a name or
//! through a redirect), and an endpoint that answers 500, garbage, a huge body, slowly or not at
//! all gives an inconclusive check within the time limit, never a hang or a crash.

use poem::http::StatusCode;
use poem::web::{Data, Json, Query};
use poem::{
    EndpointExt, Response, Route, Server, get, handler,
    listener::{Acceptor, Listener, TcpListener},
};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use varsel_activities::providers::condition::{ConditionClient, ConditionError};
use varsel_activities::providers::outbound::OutboundPolicy;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions};
use varsel_workflows::activities::ConditionOutcome;

const T: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(serde::Deserialize)]
struct To {
    to: String,
}

#[handler]
fn answer(
    Data(hits): Data<&Hits>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    hits.0.fetch_add(1, Ordering::SeqCst);
    let met = q.get("met").map(String::as_str) != Some("false");
    Response::builder()
        .content_type("application/json")
        .body(json!({"sendNotification": met}).to_string())
}

#[handler]
fn redirect(Data(hits): Data<&Hits>, Query(q): Query<To>) -> Response {
    hits.0.fetch_add(1, Ordering::SeqCst);
    Response::builder().status(StatusCode::FOUND).header("Location", q.to).finish()
}

/// `n` more redirects (to `/hops?n=n-1`), then a "not met" answer.
#[handler]
fn hops(
    Data(hits): Data<&Hits>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    hits.0.fetch_add(1, Ordering::SeqCst);
    let n: u32 = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(0);
    if n == 0 {
        return Response::builder()
            .content_type("application/json")
            .body(json!({"sendNotification": false}).to_string());
    }
    Response::builder()
        .status(StatusCode::FOUND)
        .header("Location", format!("/hops?n={}", n - 1))
        .finish()
}

#[handler]
fn loop_redirect() -> Response {
    Response::builder().status(StatusCode::FOUND).header("Location", "/loop").finish()
}

#[handler]
fn broken() -> (StatusCode, &'static str) {
    (StatusCode::INTERNAL_SERVER_ERROR, "boom")
}

#[handler]
fn garbage() -> Response {
    Response::builder().content_type("application/json").body("<html>not json</html>")
}

#[handler]
fn wrong_shape() -> Json<Value> {
    Json(json!({"sendNotification": "yes"}))
}

#[handler]
fn huge() -> Response {
    // 8 MiB of valid JSON: well over the 64 KiB limit.
    let filler = "x".repeat(8 * 1024 * 1024);
    Response::builder()
        .content_type("application/json")
        .body(format!(r#"{{"sendNotification": true, "pad": "{filler}"}}"#))
}

#[handler]
async fn slow() -> Json<Value> {
    tokio::time::sleep(Duration::from_secs(30)).await;
    Json(json!({"sendNotification": true}))
}

#[handler]
fn trickle() -> Response {
    // Headers at once, then a body that never ends: the whole-request timeout must still apply.
    let body = futures::stream::unfold((), |()| async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from_static(b" ")), ()))
    });
    Response::builder().content_type("application/json").body(poem::Body::from_bytes_stream(body))
}

/// A condition server on `ip`; returns its base URL and its hit counter.
async fn server_on(ip: &str) -> (String, Hits) {
    let hits = Hits::default();
    let acceptor = TcpListener::bind(format!("{ip}:0")).into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let app = Route::new()
        .at("/answer", get(answer))
        .at("/redirect", get(redirect))
        .at("/loop", get(loop_redirect))
        .at("/hops", get(hops))
        .at("/broken", get(broken))
        .at("/garbage", get(garbage))
        .at("/wrong-shape", get(wrong_shape))
        .at("/huge", get(huge))
        .at("/slow", get(slow))
        .at("/trickle", get(trickle))
        .data(hits.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (format!("http://{ip}:{port}"), hits)
}

/// A TCP listener that accepts connections and never answers.
async fn silent_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}")
}

fn client(allowed: &[&str]) -> ConditionClient {
    let entries: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
    ConditionClient::new(Duration::from_secs(2), OutboundPolicy::new(&entries)).unwrap()
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn refused(r: Result<ConditionOutcome, ConditionError>, what: &str) -> String {
    match r {
        Err(ConditionError::Refused(reason)) => reason,
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_refused_unless_allow_listed() {
    let (base, hits) = server_on("127.0.0.1").await;
    let port = base.rsplit(':').next().unwrap().to_owned();

    // Nothing allow-listed: a loopback literal, a name that resolves to loopback, and the
    // metadata address are refused before any connection.
    let strict = client(&[]);
    let reason = refused(strict.check(&format!("{base}/answer")).await, "loopback literal");
    assert!(reason.contains("127.0.0.1"), "{reason}");
    let reason = refused(
        strict.check(&format!("http://localhost:{port}/answer")).await,
        "name resolving to loopback",
    );
    assert!(reason.contains("localhost resolves to"), "{reason}");
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[::ffff:7f00:1]/x",
        "http://10.0.0.1/x",
        "http://0x7f000001/x",
        "http://2130706433/x",
        "file:///etc/passwd",
    ] {
        refused(strict.check(url).await, url);
    }
    assert_eq!(hits.get(), 0, "no refused request reached the server");

    // Allow-listed by address: reachable, and by name: reachable.
    assert_eq!(
        client(&["127.0.0.1"]).check(&format!("{base}/answer")).await.unwrap(),
        ConditionOutcome::Met
    );
    assert_eq!(
        client(&["localhost"])
            .check(&format!("http://localhost:{port}/answer?met=false"))
            .await
            .unwrap(),
        ConditionOutcome::NotMet
    );
    assert_eq!(hits.get(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_into_refused_ranges_are_not_followed() {
    let (allowed, allowed_hits) = server_on("127.0.0.1").await;
    // Another loopback address, not allow-listed: it must never be reached.
    let (inner, inner_hits) = server_on("127.0.0.2").await;
    let c = client(&["127.0.0.1"]);

    for target in [
        format!("{inner}/answer?met=false"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[::1]:1/".into(),
    ] {
        let url = format!("{allowed}/redirect?to={}", encode(&target));
        let reason = refused(c.check(&url).await, &target);
        assert!(reason.contains("redirect to"), "{reason}");
    }
    assert_eq!(inner_hits.get(), 0, "the redirect target was never contacted");

    // A redirect within the allowed destinations is followed; an endless one stops.
    let url = format!("{allowed}/redirect?to={}", encode(&format!("{allowed}/answer?met=false")));
    assert_eq!(c.check(&url).await.unwrap(), ConditionOutcome::NotMet);
    refused(c.check(&format!("{allowed}/loop")).await, "redirect loop");
    assert!(allowed_hits.get() >= 4);

    // Three redirects are followed; a fourth is refused, and its target is never asked.
    let before = allowed_hits.get();
    assert_eq!(c.check(&format!("{allowed}/hops?n=3")).await.unwrap(), ConditionOutcome::NotMet);
    assert_eq!(allowed_hits.get() - before, 4, "three redirects and the answer");
    let before = allowed_hits.get();
    let reason = refused(c.check(&format!("{allowed}/hops?n=4")).await, "four redirects");
    assert!(reason.contains("more than 3 redirects"), "{reason}");
    assert_eq!(allowed_hits.get() - before, 4, "the fourth redirect's target was not asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faulty_condition_endpoints_are_inconclusive_within_the_time_limit() {
    let (base, _) = server_on("127.0.0.1").await;
    let silent = silent_server().await;
    let c = client(&["127.0.0.1"]);
    for (path, expect) in [
        (format!("{base}/broken"), "HTTP 500"),
        (format!("{base}/garbage"), "not JSON"),
        (format!("{base}/wrong-shape"), "no boolean sendNotification"),
        (format!("{base}/huge"), "exceeds 65536 bytes"),
        (format!("{base}/slow"), "unreachable"),
        (format!("{base}/trickle"), "unreadable"),
        (format!("{silent}/answer"), "unreachable"),
        ("http://127.0.0.1:1/answer".to_owned(), "unreachable"),
    ] {
        let started = Instant::now();
        match c.check(&path).await {
            Err(ConditionError::Inconclusive(reason)) => {
                assert!(reason.contains(expect), "{path}: {reason}")
            }
            other => panic!("{path}: expected inconclusive, got {other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{path} took {:?}", started.elapsed());
    }
}

/// Through the whole stack: an order whose allow-listed endpoint redirects to a refused address
/// is not decided by that address (the check is inconclusive and the order is sent, as for any
/// unreadable condition), and an IP literal in a private range is refused at the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_cannot_use_its_condition_endpoint_to_reach_private_addresses() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| c.conditions.allowed_hosts = vec!["127.0.0.1".into()]);
    let app = TestApp::spawn(opts).await;
    let (allowed, _) = server_on("127.0.0.1").await;
    let (inner, inner_hits) = server_on("127.0.0.2").await;

    let order = |endpoint: String| json!({"subject": "s", "body": "b", "conditionEndpoint": endpoint, "recipients": [{"emailAddress": "ssrf@example.no"}]});
    for endpoint in [
        format!("{inner}/answer"),
        "http://169.254.169.254/latest/meta-data/".into(),
        "http://[::1]/x".into(),
        "http://localhost/x".into(),
        "http://10.1.2.3/x".into(),
    ] {
        let resp = app.post("/orders/email", &order(endpoint.clone()), "ttd").await;
        assert_eq!(resp.status(), 400, "{endpoint}");
        let p: Value = resp.json().await.unwrap();
        // The answer says why: the address is not public, or the name is not a public DNS name.
        let message = p["errors"]["ConditionEndpoint"][0].as_str().unwrap();
        assert!(message.ends_with("varsel calls only public hosts, and others that VARSEL_CONDITION_ALLOWED_HOSTS lists."), "{endpoint}: {p}");
        assert!(
            message.contains("is not a public address")
                || message.contains("is not a public DNS name"),
            "{endpoint}: {p}"
        );
    }

    let sneaky = format!("{allowed}/redirect?to={}", encode(&format!("{inner}/answer?met=false")));
    let id = app.order("/orders/email", &order(sneaky)).await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(inner_hits.get(), 0, "the private address behind the redirect was never contacted");
    assert_eq!(smtp.wait_for(1, T).await.len(), 1);
    app.stop().await;
}
