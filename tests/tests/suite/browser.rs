//! Headless Chromium driven by chromedriver over WebDriver (Debian packages `chromium` and
//! `chromium-driver`, installed by `scripts/bootstrap`): what the browser tests use to act as a
//! person does (click, type, press keys) and to look at what they see.

use base64::Engine;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use varsel_tests::{eventually, free_port};

/// How long the browser tests wait for a page to show something.
pub const PAGE: Duration = Duration::from_secs(30);

/// chromedriver and one browser session.
pub struct Browser {
    child: Child,
    url: String,
    http: reqwest::Client,
    sid: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The WebDriver key code of Tab, Enter.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` × `height`, keeping the
    /// browser's console log.
    pub async fn start(width: u32, height: u32) -> Self {
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
        let profile = tempfile::tempdir().unwrap();
        let mut b = Self { child, url, http, sid: String::new(), _profile: profile };
        let session = b
            .raw(
                reqwest::Method::POST,
                "/session",
                Some(json!({"capabilities": {"alwaysMatch": {
                    "goog:loggingPrefs": {"browser": "ALL"},
                    "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                             "--disable-background-networking", "--disable-component-update", "--disable-sync",
                             format!("--window-size={width},{height}"),
                             format!("--user-data-dir={}", b._profile.path().display())]
                }}}})),
            )
            .await;
        b.sid = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {session}"))
            .to_owned();
        b
    }

    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    /// A WebDriver command of this session.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.sid), body).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The element `css` finds, waiting until it is on the page.
    pub async fn find(&self, css: &str) -> String {
        eventually(format!("{css} on the page"), PAGE, || async {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            found
                .as_object()
                .and_then(|o| o.values().next())
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        })
        .await
    }

    /// Every element `css` finds now.
    pub async fn find_all(&self, css: &str) -> Vec<String> {
        let found = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.as_object()?.values().next()?.as_str().map(str::to_owned))
            .collect()
    }

    /// Clicks what `css` finds.
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Types `text` into what `css` finds.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Presses keys (text, or [`TAB`], [`ENTER`]) wherever the focus is.
    pub async fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": k.to_string()}));
            actions.push(json!({"type": "keyUp", "value": k.to_string()}));
        }
        self.call(
            reqwest::Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    /// Runs `script` in the page and gives back what it returns.
    pub async fn run(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The visible text of what `css` finds.
    pub async fn text(&self, css: &str) -> String {
        let id = self.find(css).await;
        let t = self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None).await;
        t.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the page's visible text (of `css`) satisfies `done`.
    pub async fn wait_text(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let done = &done;
        eventually(what, PAGE, || async move {
            let ids = self.find_all(css).await;
            let Some(id) = ids.first() else { return Err("not on the page".to_owned()) };
            let t = self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None).await;
            let t = t.as_str().unwrap_or_default().to_owned();
            if done(&t) { Ok(t) } else { Err(t) }
        })
        .await
    }

    /// Waits until the page's source satisfies `done`.
    pub async fn wait_source(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let done = &done;
        eventually(what, PAGE, || async move {
            let source = self.call(reqwest::Method::GET, "/source", None).await;
            let source = source.as_str().unwrap_or_default().to_owned();
            done(&source).then_some(source)
        })
        .await
    }

    /// Asserts that the page fits the window's width and that each element `css` names is shown
    /// to a person: displayed, with a size, inside the window's width.
    pub async fn assert_visible(&self, page: &str, selectors: &[&str]) {
        let width = self.run("return window.innerWidth").await.as_f64().unwrap_or(0.0);
        let wide = self.run("return document.documentElement.scrollWidth").await;
        assert!(
            wide.as_f64().unwrap_or(f64::MAX) <= width,
            "{page}: wider than the window ({wide} > {width}): it scrolls sideways"
        );
        for css in selectors {
            let id = self.find(css).await;
            let shown =
                self.call(reqwest::Method::GET, &format!("/element/{id}/displayed"), None).await;
            assert_eq!(shown, Value::Bool(true), "{page}: {css} is not displayed");
            let rect = self.call(reqwest::Method::GET, &format!("/element/{id}/rect"), None).await;
            let (x, w, h) = (
                rect["x"].as_f64().unwrap_or(-1.0),
                rect["width"].as_f64().unwrap_or(0.0),
                rect["height"].as_f64().unwrap_or(0.0),
            );
            assert!(w > 0.0 && h > 0.0, "{page}: {css} has no size: {rect}");
            assert!(
                x >= 0.0 && x + w <= width + 1.0,
                "{page}: {css} is outside the window: {rect}"
            );
        }
    }

    /// Takes a screenshot of the window, writes it to `path` and checks that it shows
    /// something: a PNG of the window's size, not one colour.
    pub async fn screenshot(&self, path: &std::path::Path) {
        let shot = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().expect("a screenshot"))
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        assert!(
            png.len() > 20_000,
            "{}: a nearly blank screenshot ({} bytes)",
            path.display(),
            png.len()
        );
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// The browser console's messages so far (and forgets them).
    pub async fn console_log(&self) -> Vec<Value> {
        self.call(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"})))
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Ends the session.
    pub async fn close(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}
