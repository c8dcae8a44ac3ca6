//! The docs page in a real browser: headless Chromium driven by chromedriver (Debian packages
//! `chromium` and `chromium-driver`, installed by `scripts/bootstrap`) lists the order
//! operations and renders an example request.

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use varsel_tests::{Db, TestApp, TestAppOptions, eventually, free_port};

struct Driver {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian chromium-driver): run ./scripts/bootstrap");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let (status, http_ref) = (format!("{url}/status"), &http);
        eventually("chromedriver starts", Duration::from_secs(20), || {
            let status = status.clone();
            async move { http_ref.get(status).send().await.ok().map(drop) }
        })
        .await;
        Self { child, url, http }
    }

    /// Clicks the element `selector` finds.
    async fn click(&self, sid: &str, selector: &str) {
        let id = eventually(format!("{selector} on the page"), Duration::from_secs(30), || async {
            let found = self
                .call(
                    reqwest::Method::POST,
                    &format!("/session/{sid}/element"),
                    Some(json!({"using": "css selector", "value": selector})),
                )
                .await;
            found
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .await;
        self.call(
            reqwest::Method::POST,
            &format!("/session/{sid}/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Waits until the page's source satisfies `done`.
    async fn wait_for_source(&self, sid: &str, what: &str, done: impl Fn(&str) -> bool) {
        let done = &done;
        eventually(what, Duration::from_secs(30), || async move {
            let source =
                self.call(reqwest::Method::GET, &format!("/session/{sid}/source"), None).await;
            done(source.as_str().unwrap_or_default()).then_some(())
        })
        .await
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_lists_the_operations_and_renders_an_example() {
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await;
    let driver = Driver::start().await;
    let profile = tempfile::tempdir().unwrap();
    let session = driver
        .call(
            reqwest::Method::POST,
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.path().display())]
            }}}})),
        )
        .await;
    let sid =
        session["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {session}")).to_owned();
    let s = |p: &str| format!("/session/{sid}{p}");
    driver
        .call(
            reqwest::Method::POST,
            &s("/url"),
            Some(json!({"url": format!("{}/docs", app.base_url)})),
        )
        .await;

    // The operations are listed.
    let (driver_ref, s_ref) = (&driver, &s);
    let paths = eventually("the operations are listed", Duration::from_secs(30), || async move {
        let (driver, s) = (driver_ref, s_ref);
        let found = driver
            .call(
                reqwest::Method::POST,
                &s("/elements"),
                Some(json!({"using": "css selector",
                    "value": ".opblock-summary-path, .opblock-summary-path__deprecated"})),
            )
            .await;
        let mut texts = Vec::new();
        for el in found.as_array().cloned().unwrap_or_default() {
            let id = el
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|v| v.as_str())
                .unwrap()
                .to_owned();
            texts.push(
                driver
                    .call(reqwest::Method::GET, &s(&format!("/element/{id}/text")), None)
                    .await
                    .as_str()
                    .unwrap_or_default()
                    .replace('\u{200b}', ""),
            );
        }
        if texts.len() >= 8 { Ok(texts) } else { Err(format!("{texts:?}")) }
    })
    .await;
    for expected in [
        "/notifications/api/v1/orders",
        "/notifications/api/v1/orders/email",
        "/notifications/api/v1/orders/sms",
        "/notifications/api/v1/orders/{id}",
        "/notifications/api/v1/orders/{id}/status",
        "/notifications/api/v1/orders/{id}/cancel",
    ] {
        assert!(paths.iter().any(|p| p == expected), "{expected} not in {paths:?}");
    }
    // Altinn's legacy order API (nine operations) and the older instant endpoint are shown
    // deprecated, as Altinn's document marks them.
    let deprecated = driver
        .call(
            reqwest::Method::POST,
            &s("/elements"),
            Some(json!({"using": "css selector", "value": ".opblock.opblock-deprecated"})),
        )
        .await;
    assert_eq!(deprecated.as_array().map(Vec::len), Some(10), "{deprecated}");

    // Credentials can be entered: "Authorize" offers the bearer token and the PlatformAccessToken.
    driver.click(&sid, ".auth-wrapper .authorize").await;
    driver
        .wait_for_source(&sid, "the Authorize dialog offers both credentials", |s| {
            s.contains("bearerToken") && s.contains("PlatformAccessToken")
        })
        .await;
    driver
        .call(
            reqwest::Method::POST,
            &s("/url"),
            Some(json!({"url": format!("{}/docs", app.base_url)})),
        )
        .await;
    driver
        .wait_for_source(&sid, "the docs page loads again", |s| {
            s.contains("operations-Orders-createOrder")
        })
        .await;

    // Opening "POST /orders" renders the seed example as its request body.
    driver.click(&sid, "#operations-Orders-createOrder .opblock-summary").await;
    driver
        .wait_for_source(&sid, "the example request renders", |s| {
            s.contains("9A547448-FDF4-4E60-87AC-C2F652C8353C") && s.contains("Demo SMS content")
        })
        .await;
    driver.call(reqwest::Method::DELETE, &s(""), None).await;
    app.stop().await;
}
