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
        // A WebDriver command that hangs (a page that never loads) fails the test in words
        // well before CI's own time limit.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .expect("an HTTP client for WebDriver");
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

    /// A WebDriver command's value: what it answered, or the error object it answered with (a
    /// WebDriver error comes with a 4xx or 5xx status and a JSON body alike).
    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: not JSON: {e}"));
        v["value"].clone()
    }

    /// A WebDriver command of this session: its value, or the WebDriver error (`error` and
    /// `message`) it answered with.
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let v = self.raw(method, &format!("/session/{}{path}", self.sid), body).await;
        match v.get("error").and_then(Value::as_str) {
            Some(error) => Err(WebDriverError {
                error: error.to_owned(),
                message: v["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            }),
            None => Ok(v),
        }
    }

    /// A WebDriver command of this session that must succeed.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let what = format!("{method} {path}");
        self.try_call(method, path, body).await.unwrap_or_else(|e| panic!("WebDriver {what}: {e}"))
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    /// The element `css` finds, waiting until it is on the page.
    pub async fn find(&self, css: &str) -> String {
        eventually(format!("{css} on the page"), PAGE, || async {
            let found = self
                .try_call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            match found {
                Ok(element) => Ok(element_id(&element)),
                Err(e) if e.error == "no such element" => Err(self.whereabouts().await),
                Err(e) => panic!("WebDriver: finding {css}: {e}"),
            }
        })
        .await
    }

    /// Where the console is and what it says, for a failure's message: the address's fragment,
    /// the flash line and the beginning of the page.
    async fn whereabouts(&self) -> String {
        let seen = self
            .try_call(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({"script": "const f = document.querySelector('#flash'); \
                    const p = document.querySelector('#page') || document.body; \
                    return `not on the page (at ${location.hash || '/'}; flash: ${f ? f.textContent : ''}; \
                    page: ${(p.innerText || '').slice(0, 300)})`", "args": []})),
            )
            .await;
        match seen {
            Ok(v) => v.as_str().unwrap_or("not on the page").to_owned(),
            Err(e) => format!("not on the page ({e})"),
        }
    }

    /// A property of element `id` (`text`, `displayed`, `rect`); an error naming it when the page
    /// was drawn again since it was found, to be found again.
    pub async fn get(&self, id: &str, property: &str) -> Result<Value, String> {
        match self.try_call(reqwest::Method::GET, &format!("/element/{id}/{property}"), None).await
        {
            Ok(v) => Ok(v),
            Err(e) if e.error == "stale element reference" => Err(e.to_string()),
            Err(e) => panic!("WebDriver: the {property} of an element: {e}"),
        }
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
        found.as_array().map(|all| all.iter().map(element_id).collect()).unwrap_or_default()
    }

    /// Sends `command` to what `css` finds; when the page was drawn again between finding and
    /// acting (the console redraws a watched order's page), or the element could not take the
    /// command yet, finds it again.
    async fn on_element(&self, css: &str, command: &str, body: Value) {
        eventually(format!("{command} on {css}"), PAGE, || {
            let body = body.clone();
            async move {
                let id = self.find(css).await;
                match self
                    .try_call(
                        reqwest::Method::POST,
                        &format!("/element/{id}/{command}"),
                        Some(body),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    // Drawn again, or covered or not yet usable while the page changes: the
                    // command did nothing; try again until the page settles.
                    Err(e)
                        if [
                            "stale element reference",
                            "element click intercepted",
                            "element not interactable",
                        ]
                        .contains(&e.error.as_str()) =>
                    {
                        Err(e.to_string())
                    }
                    Err(e) => panic!("WebDriver: {command} on {css}: {e}"),
                }
            }
        })
        .await
    }

    /// Clicks what `css` finds.
    pub async fn click(&self, css: &str) {
        self.on_element(css, "click", json!({})).await;
    }

    /// Types `text` into what `css` finds.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", json!({"text": text})).await;
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
        self.wait_text(css, &format!("the text of {css}"), |_| true).await
    }

    /// Waits until the page's visible text (of `css`) satisfies `done`.
    pub async fn wait_text(&self, css: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
        let done = &done;
        eventually(what, PAGE, || async move {
            let ids = self.find_all(css).await;
            let Some(id) = ids.first() else { return Err(self.whereabouts().await) };
            let t = self.get(id, "text").await?;
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
            let (shown, rect) = eventually(format!("{page}: {css} measured"), PAGE, || async {
                let id = self.find(css).await;
                let shown = self.get(&id, "displayed").await?;
                let rect = self.get(&id, "rect").await?;
                Ok::<_, String>((shown, rect))
            })
            .await;
            assert_eq!(shown, Value::Bool(true), "{page}: {css} is not displayed");
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

/// What WebDriver answered instead of a value: its error code (`no such element`, `stale element
/// reference`, …) and the first line of its message.
#[derive(Debug)]
pub struct WebDriverError {
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// The id in a WebDriver element reference (the W3C's fixed key; an answer's other keys, such as
/// an error's, are no element).
fn element_id(reference: &Value) -> String {
    reference[ELEMENT]
        .as_str()
        .unwrap_or_else(|| panic!("not a WebDriver element reference: {reference}"))
        .to_owned()
}

/// The key of an element reference in WebDriver's answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
