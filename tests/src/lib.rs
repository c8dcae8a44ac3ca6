//! Test harness: starts the real parts (a Temporal dev server, an SMTP server process, SQLite or
//! PostgreSQL) and the real application on a random port, and reads what a user would see.

pub mod postfix;
pub mod standins;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use varsel_activities::Store;
use varsel_activities::store::entities::simulated_sms;
use varsel_api::auth::{CREATE_SCOPE, TokenKind, mint};
use varsel_api::config::IssuerKeys;
use varsel_api::devserver::{DevServer, DevServerOptions, find_temporal_bin};
use varsel_api::{Application, Config};
use varsel_workflows::order::StoredOrder;

/// The PlatformAccessToken issuers a test app accepts, each with a key of its own.
pub const PLATFORM_ISSUERS: &[&str] = &["ttd", "digdir", "nav"];

/// The project root (where `.venv` lives).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn logs_dir() -> PathBuf {
    let d = project_root().join("target/test-logs");
    std::fs::create_dir_all(&d).expect("log dir");
    d
}

/// Starts a Temporal dev server on `port` from a thread that stays alive until the test process
/// exits (the server is tied to it, and dies with the process).
pub fn start_temporal_on(port: u16) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let bin = find_temporal_bin().expect("the temporal CLI: run ./scripts/bootstrap");
        let opts = DevServerOptions {
            bin,
            port,
            ui_port: None,
            db_file: None,
            log_file: logs_dir().join(format!("temporal-{port}.log")),
        };
        match DevServer::start(&opts) {
            Ok(server) => {
                let _ = tx.send(Ok(server.address.clone()));
                let _keep = server;
                loop {
                    std::thread::park();
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
            }
        }
    });
    rx.recv().expect("temporal thread").expect("temporal dev server starts")
}

/// Blocks until something listens on loopback `port` (a server a test started as a process);
/// fails the test with `why()` after `within`.
pub(crate) fn wait_listening(port: u16, within: Duration, why: impl Fn() -> String) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How often `eventually` and `never_within` look.
const POLL: Duration = Duration::from_millis(100);

/// A TCP port on loopback for a server a test starts. Ports are handed out in turn, from a random
/// start, below the kernel's ephemeral range (where it picks the ports of outgoing connections),
/// each checked free: no two servers of a test process get the same port, and no client socket
/// takes one between the check and the server's bind (as could happen with a port the kernel
/// chose and released).
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static RANGE: OnceLock<(u32, u32)> = OnceLock::new();
    let (low, high) = *RANGE.get_or_init(|| {
        let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
            .unwrap_or(32_768);
        let high = ephemeral.clamp(12_000, 32_768);
        let low = 10_000;
        let start = uuid::Uuid::new_v4().as_u128() as u32 % (high - low);
        NEXT.store(start, Ordering::Relaxed);
        (low, high)
    });
    for _ in 0..(high - low) {
        let port = (low + NEXT.fetch_add(1, Ordering::Relaxed) % (high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {low} and {high}");
}

/// What a check of `eventually` answers: `Some(value)` / `Ok(value)` once it holds; `None`, or
/// `Err(what it saw)` while it does not (the last one seen goes into the failure message).
pub trait Check {
    /// What the wait returns.
    type Value;
    /// The value, or what was seen instead.
    fn outcome(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Check for Option<T> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: std::fmt::Display> Check for Result<T, E> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Polls `check` until it holds, and fails the test naming `what` (and what the check last saw)
/// when `within` passes first. The one way the tests wait for something to happen: no fixed
/// sleeps, no loop without a deadline. Borrow what the check needs first (`let app = &app;`) and
/// write `|| async move { … }`.
pub async fn eventually<C, Fut>(
    what: impl std::fmt::Display,
    within: Duration,
    mut check: impl FnMut() -> Fut,
) -> C::Value
where
    C: Check,
    Fut: std::future::Future<Output = C>,
{
    let deadline = Instant::now() + within;
    loop {
        let seen = match check().await.outcome() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}{}",
            seen.map(|s| format!("; last seen: {s}")).unwrap_or_default()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Checks `happened` throughout `window` and fails the test naming `what` if it ever answers
/// true: how the tests show that something does not happen (a resend, an early status change).
pub async fn never_within<Fut>(
    what: impl std::fmt::Display,
    window: Duration,
    mut happened: impl FnMut() -> Fut,
) where
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + window;
    loop {
        assert!(!happened().await, "{what}");
        if Instant::now() >= end {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The Temporal dev server shared by every test of this process.
pub fn temporal_address() -> String {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| start_temporal_on(free_port())).clone()
}

/// A Python with `aiosmtpd` (the project's `.venv`, or `VARSEL_TEST_PYTHON`).
fn python() -> PathBuf {
    if let Ok(p) = std::env::var("VARSEL_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    project_root().join(".venv/bin/python")
}

/// A real SMTP server process (aiosmtpd) writing what it receives to a maildir.
pub struct SmtpServer {
    child: Child,
    /// Its port.
    pub port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

/// An email as received by the SMTP server.
#[derive(Debug, Clone)]
pub struct ReceivedEmail {
    /// `To` header.
    pub to: String,
    /// Decoded subject.
    pub subject: String,
    /// Decoded body.
    pub body: String,
    /// `Content-Type` mime type.
    pub content_type: String,
    /// `From` header.
    pub from: String,
    /// `Message-ID` header.
    pub message_id: String,
}

impl SmtpServer {
    /// Starts the server and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with("aiosmtpd.handlers.Mailbox")
    }

    /// A server that takes messages of at most `bytes` (RFC 1870 `SIZE`) and refuses larger ones
    /// with 552 once their data is sent, as a relay with a message size limit does.
    pub fn start_with_size_limit(bytes: u64) -> Self {
        Self::spawn("aiosmtpd.handlers.Mailbox", &["-s", &bytes.to_string()])
    }

    /// A server that fails `flaky*`, `busy*`, `drop*`, `stall*` and `lost*` recipients once (451,
    /// 421, a cut connection, no answer, a stored message whose answer is cut off) and refuses
    /// `rejected*` always (550); see `tests/support/flaky_smtp.py`.
    pub fn start_flaky() -> Self {
        Self::start_with("flaky_smtp.Flaky")
    }

    fn start_with(handler: &str) -> Self {
        Self::spawn(handler, &[])
    }

    fn spawn(handler: &str, options: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let maildir = dir.path().join("maildir");
        let port = free_port();
        let child = Command::new(python())
            .env("PYTHONPATH", project_root().join("tests/support"))
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(options)
            .args(["-c", handler])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd: run ./scripts/bootstrap");
        wait_listening(port, Duration::from_secs(20), || "SMTP server did not start".into());
        Self { child, port, maildir, _dir: dir }
    }

    /// Switches the flaky server's outage for `outage*` recipients on or off.
    pub fn set_outage(&self, on: bool) {
        let flag = self.maildir.parent().expect("maildir has a parent").join("outage");
        if on {
            std::fs::write(flag, b"").expect("outage flag");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// How many times the flaky server saw `RCPT TO` for `address`.
    pub fn rcpt_attempts(&self, address: &str) -> usize {
        let log = self.maildir.parent().expect("maildir has a parent").join("rcpt.log");
        std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| *l == address).count()
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far.
    pub fn messages(&self) -> Vec<ReceivedEmail> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else { continue };
            for e in entries.flatten() {
                let raw = std::fs::read(e.path()).expect("read mail");
                let parsed = mailparse::parse_mail(&raw).expect("parse mail");
                let header = |name: &str| {
                    parsed
                        .headers
                        .iter()
                        .find(|h| h.get_key().eq_ignore_ascii_case(name))
                        .map(|h| h.get_value())
                        .unwrap_or_default()
                };
                out.push(ReceivedEmail {
                    to: header("To"),
                    from: header("From"),
                    message_id: header("Message-ID"),
                    subject: header("Subject"),
                    body: parsed.get_body().expect("body").trim_end().to_owned(),
                    content_type: parsed.ctype.mimetype.clone(),
                });
            }
        }
        out
    }

    /// Every message received so far, as the bytes the server stored.
    pub fn raw_messages(&self) -> Vec<Vec<u8>> {
        ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flat_map(|d| d.flatten().map(|e| std::fs::read(e.path()).expect("read mail")))
            .collect()
    }

    /// How many messages arrived so far (cheap: counts files).
    pub fn count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .map(|d| d.count())
            .sum()
    }

    /// Waits until at least `n` messages arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedEmail> {
        eventually(format!("{n} emails"), timeout, || async move {
            let m = self.messages();
            if m.len() >= n { Ok(m) } else { Err(format!("{} emails: {m:?}", m.len())) }
        })
        .await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    /// A SQLite file in a temp dir.
    Sqlite,
    /// A fresh database on the server named by `TEST_DATABASE_URL`.
    Postgres,
}

/// `TEST_DATABASE_URL`: the PostgreSQL server the PostgreSQL variants run on. A test that needs
/// it fails when it is not set, saying how to run it: nothing passes without having run.
pub fn postgres_url() -> String {
    std::env::var("TEST_DATABASE_URL").ok().filter(|s| !s.is_empty()).unwrap_or_else(|| {
        panic!(
            "TEST_DATABASE_URL is not set, and this test runs on PostgreSQL. Run the tests with \
             scripts/test (it uses the local server, postgres://postgres@127.0.0.1:5432/test, \
             unless TEST_DATABASE_URL names another), or set TEST_DATABASE_URL to a server where \
             the user may create databases."
        )
    })
}

/// Creates an empty database on the server of `base` and returns its URL.
pub async fn fresh_postgres_database(base: &str) -> String {
    let name = format!("varsel_test_{}", uuid::Uuid::new_v4().simple());
    let store = Store::connect(base, 1).await.expect("connect TEST_DATABASE_URL");
    store
        .conn()
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("database url with a path");
    format!("{prefix}/{name}")
}

/// Drops a database made by [`fresh_postgres_database`] (best effort).
pub async fn drop_postgres_database(base: &str, name: &str) {
    if let Ok(admin) = Store::connect(base, 1).await {
        let _ = admin
            .conn()
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// Options of a test app.
pub struct TestAppOptions {
    /// Database.
    pub db: Db,
    /// SMTP relay URL; empty uses the outbox folder.
    pub smtp_url: String,
    /// Temporal address; `None` uses the shared dev server.
    pub temporal_address: Option<String>,
    /// Adjusts the configuration further.
    pub tweak: Box<dyn FnOnce(&mut Config) + Send>,
}

impl TestAppOptions {
    /// Defaults: SQLite, shared Temporal, given SMTP URL.
    pub fn new(db: Db, smtp_url: impl Into<String>) -> Self {
        Self { db, smtp_url: smtp_url.into(), temporal_address: None, tweak: Box::new(|_| {}) }
    }
}

/// The real application, started for a test.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// HTTP client.
    pub http: reqwest::Client,
    /// Direct access to the database, to read notification rows.
    pub store: Store,
    /// The configuration the app runs with.
    pub config: Config,
    /// The inbound SMTP listener for bounces, when configured (`bounce_listen`).
    pub bounce_addr: Option<std::net::SocketAddr>,
    key: Vec<u8>,
    /// The PlatformAccessToken key of each issuer in [`PLATFORM_ISSUERS`].
    platform_keys: std::collections::BTreeMap<String, Vec<u8>>,
    /// (server URL, database name) of a per-test PostgreSQL database, dropped on stop.
    pg: Option<(String, String)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    /// Starts API and worker on a random port with their own task queue.
    pub async fn spawn(opts: TestAppOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let temporal = match opts.temporal_address {
            Some(a) => a,
            None => tokio::task::spawn_blocking(temporal_address).await.expect("temporal"),
        };
        let (database_url, pg) = match opts.db {
            Db::Sqlite => (format!("sqlite://{}", dir.path().join("varsel.db").display()), None),
            Db::Postgres => {
                let base = postgres_url();
                let url = fresh_postgres_database(&base).await;
                let name = url.rsplit('/').next().unwrap_or_default().to_owned();
                (url, Some((base, name)))
            }
        };
        let key: [u8; 32] = rand_key();
        let platform_keys: std::collections::BTreeMap<String, Vec<u8>> =
            PLATFORM_ISSUERS.iter().map(|org| ((*org).to_owned(), rand_key().to_vec())).collect();
        let mut cfg = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        cfg.database.url = database_url;
        cfg.http.listen = "127.0.0.1:0".into();
        cfg.temporal.address = temporal;
        cfg.temporal.task_queue = format!("test-{}", uuid::Uuid::new_v4().simple());
        cfg.email.smtp_url = opts.smtp_url;
        cfg.auth.hmac_secrets = vec![base64_engine_encode(&key).into()];
        cfg.auth.issuers = vec![varsel_api::auth::DEV_ISSUER.into()];
        cfg.auth.platform_issuers = platform_keys
            .iter()
            .map(|(org, k)| {
                let keys = IssuerKeys {
                    hmac_secrets: vec![base64_engine_encode(k).into()],
                    public_key_files: vec![],
                };
                (org.clone(), keys)
            })
            .collect();
        cfg.conditions.allowed_hosts = vec!["127.0.0.1".into(), "localhost".into()];
        cfg.email.attachment_allowed_hosts = vec!["127.0.0.1".into()];
        cfg.conditions.retry_ms = 200;
        cfg.conditions.attempts = 2;
        cfg.processing.max_retry_interval_ms = 2_000;
        cfg.processing.dispatch_interval_ms = 300;
        cfg.sms.simulator_report_delay_ms = 200;
        // Tests send SMS at any hour; the window has a test of its own.
        cfg.sms.sending_window = String::new();
        // No load balancer to drain from: stop() stops accepting at once (the drain has a test).
        cfg.shutdown_drain_secs = 0;
        // Shared by every process of the test, as by every host of a deployment.
        cfg.reports.secret = base64_engine_encode(&rand_key()).into();
        (opts.tweak)(&mut cfg);
        cfg.normalise();
        let app = Application::build(cfg.clone()).await.expect("app builds");
        let base_url = app.base_url().to_owned();
        let bounce_addr = app.bounce_addr();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = rx.await;
        }));
        let store = Store::connect(&cfg.database.url, 2).await.expect("store");
        varsel_api::dev::seed_demo_contacts(&store).await.expect("seed");
        Self {
            base_url,
            http: reqwest::Client::new(),
            store,
            config: cfg,
            bounce_addr,
            key: key.to_vec(),
            platform_keys,
            pg,
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// A valid bearer token for `org` with the create scope.
    pub fn token(&self, org: &str) -> String {
        mint(&self.key, TokenKind::Bearer { org: org.into(), scope: CREATE_SCOPE.into() }, 3600)
            .expect("mint")
    }

    /// The HMAC key this app's tokens are signed with.
    pub fn key(&self) -> Vec<u8> {
        self.key.clone()
    }

    /// A token signed with this app's key, with arbitrary claims.
    pub fn token_with(&self, claims: &Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            claims,
            &jsonwebtoken::EncodingKey::from_secret(&self.key),
        )
        .expect("encode")
    }

    /// A token with the operator scope (`varsel:operator`), signed with this app's key.
    pub fn operator_token(&self) -> String {
        self.token_with(&serde_json::json!({
            "iss": varsel_api::auth::DEV_ISSUER,
            "scope": varsel_api::auth::OPERATOR_SCOPE,
            "exp": chrono::Utc::now().timestamp() + 600,
        }))
    }

    /// A platform access token issued by `org` (one of [`PLATFORM_ISSUERS`]), signed with that
    /// issuer's own key.
    pub fn platform_token(&self, org: &str) -> String {
        mint(
            &self.platform_key(org),
            TokenKind::Platform { org: org.into(), app: format!("{org}/test-app") },
            3600,
        )
        .expect("mint")
    }

    /// The key of a PlatformAccessToken issuer (one of [`PLATFORM_ISSUERS`]).
    pub fn platform_key(&self, org: &str) -> Vec<u8> {
        self.platform_keys
            .get(org)
            .unwrap_or_else(|| panic!("{org} is not a platform issuer of the test app"))
            .clone()
    }

    /// `POST` JSON to a path under `/notifications/api/v1` as `org`.
    pub async fn post(&self, path: &str, body: &Value, org: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/notifications/api/v1{path}", self.base_url))
            .bearer_auth(self.token(org))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// `GET` a path under `/notifications/api/v1` as `org`.
    pub async fn get(&self, path: &str, org: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/notifications/api/v1{path}", self.base_url))
            .bearer_auth(self.token(org))
            .send()
            .await
            .expect("request")
    }

    /// Submits an order and returns its id, asserting 202.
    pub async fn order(&self, path: &str, body: &Value) -> String {
        let resp = self.post(path, body, "ttd").await;
        let status = resp.status();
        let json: Value = resp.json().await.expect("json");
        assert_eq!(status, 202, "{json}");
        json["orderId"].as_str().expect("orderId").to_owned()
    }

    /// The stored order row.
    pub async fn order_row(&self, id: &str) -> StoredOrder {
        self.store.order(id).await.expect("db").expect("order exists")
    }

    /// Waits until the order reaches `status`.
    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> StoredOrder {
        eventually(format!("order {id} {status}"), timeout, || async move {
            let o = self.order_row(id).await;
            let now = o.order.status.as_str();
            if now == status { Ok(o) } else { Err(format!("order {id} is {now}")) }
        })
        .await
    }

    /// Waits until the order's workflow has been started (the outbox flag is set).
    pub async fn wait_started(&self, id: &str, timeout: Duration) {
        eventually(format!("the workflow of order {id} started"), timeout, || async move {
            self.order_row(id).await.workflow_started.then_some(())
        })
        .await
    }

    /// Waits until every notification of the order has `status`.
    pub async fn wait_notifications(&self, id: &str, status: &str, timeout: Duration) {
        eventually(format!("every notification of {id} {status}"), timeout, || async move {
            let all = self.notifications(id).await;
            (!all.is_empty() && all.iter().all(|n| n.2 == status)).then_some(())
        })
        .await
    }

    /// The order's notifications as (channel, address, status).
    pub async fn notifications(&self, id: &str) -> Vec<(String, String, String)> {
        let mut v: Vec<_> = self
            .store
            .notifications(id)
            .await
            .expect("db")
            .into_iter()
            .map(|n| (n.channel.as_str().to_owned(), n.address, n.status.as_str().to_owned()))
            .collect();
        v.sort();
        v
    }

    /// What the SMS simulator accepted for an order.
    pub async fn simulated_sms(&self, order_id: &str) -> Vec<simulated_sms::Model> {
        let ids: Vec<String> = self
            .store
            .notifications(order_id)
            .await
            .expect("db")
            .into_iter()
            .map(|n| n.id)
            .collect();
        simulated_sms::Entity::find()
            .filter(simulated_sms::Column::NotificationId.is_in(ids))
            .all(self.store.conn())
            .await
            .expect("db")
    }

    /// The `varsel` binary at `exe`, configured like this app (same database, Temporal, task
    /// queue, data folder and keys) through a `VARSEL_CONFIG` file.
    pub fn command(&self, exe: &str, cfg: impl FnOnce(&mut Config)) -> std::process::Command {
        let mut config = self.config.clone();
        cfg(&mut config);
        let path = self._dir.path().join(format!("varsel-{}.toml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, toml::to_string(&config).expect("config as TOML"))
            .expect("write config");
        let mut cmd = std::process::Command::new(exe);
        cmd.env("VARSEL_CONFIG", &path)
            .env("VARSEL_LOG", "warn")
            .env_remove("TEMPORAL_ADDRESS")
            .env_remove("TEMPORAL_NAMESPACE");
        cmd
    }

    /// Runs `varsel ROLE` (`api`, `worker`, …) at `exe` as a process of its own, configured like
    /// this app and then by `cfg`; killed when the returned guard drops.
    pub fn spawn_role(&self, exe: &str, role: &str, cfg: impl FnOnce(&mut Config)) -> KillOnDrop {
        let mut cmd = self.command(exe, cfg);
        cmd.arg(role).stdout(Stdio::null());
        KillOnDrop(cmd.spawn().unwrap_or_else(|e| panic!("varsel {role}: {e}")))
    }

    /// Stops API and worker. Fails the test when the application ended with an error or a panic
    /// while it ran, or does not stop.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let ended = match self.task.take() {
            Some(t) => tokio::time::timeout(Duration::from_secs(20), t).await,
            None => Ok(Ok(Ok(()))),
        };
        if let Some((base, name)) = self.pg.take() {
            drop_postgres_database(&base, &name).await;
        }
        // An application that failed or panicked during the test fails the test, even when
        // every assertion before held.
        match ended {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("the application ended with an error: {e:#}"),
            Ok(Err(e)) => panic!("the application task failed: {e}"),
            Err(_) => panic!("the application did not stop within 20 s of being asked to"),
        }
    }
}

fn rand_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    for (i, b) in
        uuid::Uuid::new_v4().as_bytes().iter().chain(uuid::Uuid::new_v4().as_bytes()).enumerate()
    {
        k[i] = *b;
    }
    k
}

fn base64_engine_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// Runs a scenario on SQLite, and on the PostgreSQL of `TEST_DATABASE_URL` (which must be set).
#[macro_export]
macro_rules! on_both_databases {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::Db::Postgres).await;
            }
        }
    };
}

/// A real Kannel: bearerbox with a `fake` SMSC, smsbox with a `sendsms` user, and the
/// `fakesmsc` client that plays the network. Numbers starting `+4799000` are not routable.
pub struct KannelGateway {
    children: Vec<Child>,
    /// `http://127.0.0.1:<port>/cgi-bin/sendsms`.
    pub sendsms_url: String,
    /// The sendsms user's password.
    pub password: String,
    _dir: tempfile::TempDir,
}

/// Passes a `sendsms` request (its query) on to Kannel and hands back Kannel's answer: how a
/// gateway in front of the real one lets a request through.
pub async fn forward_to_kannel(
    http: &reqwest::Client,
    sendsms_url: &str,
    query: &str,
) -> poem::Response {
    use poem::http::StatusCode;
    match http.get(format!("{sendsms_url}?{query}")).send().await {
        Ok(r) => {
            let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
            poem::Response::builder()
                .status(status)
                .body(r.bytes().await.unwrap_or_default().to_vec())
        }
        Err(e) => poem::Response::builder().status(StatusCode::BAD_GATEWAY).body(e.to_string()),
    }
}

/// A switch in front of a real Kannel: while off, every `sendsms` request gets 503 (a gateway
/// outage); while on, requests pass through. Counts what it let through.
pub struct GatewaySwitch {
    /// `http://127.0.0.1:<port>/cgi-bin/sendsms`, to configure varsel with.
    pub url: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    passed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone)]
struct SwitchState {
    kannel: String,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    passed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
}

#[poem::handler]
async fn switched(
    req: &poem::Request,
    poem::web::Data(s): poem::web::Data<&SwitchState>,
) -> poem::Response {
    use std::sync::atomic::Ordering;
    if !s.up.load(Ordering::SeqCst) {
        return poem::Response::builder()
            .status(poem::http::StatusCode::SERVICE_UNAVAILABLE)
            .body("gateway down");
    }
    s.passed.fetch_add(1, Ordering::SeqCst);
    forward_to_kannel(&s.http, &s.kannel, req.uri().query().unwrap_or_default()).await
}

impl GatewaySwitch {
    /// A switch in front of `kannel`, on or off.
    pub async fn start(kannel: &KannelGateway, up: bool) -> Self {
        use poem::EndpointExt;
        use poem::listener::{Acceptor, Listener};
        let state = SwitchState {
            kannel: kannel.sendsms_url.clone(),
            up: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(up)),
            passed: std::sync::Arc::default(),
            http: reqwest::Client::new(),
        };
        let acceptor =
            poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        let (up, passed) = (state.up.clone(), state.passed.clone());
        let app = poem::Route::new().at("/cgi-bin/sendsms", switched).data(state);
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
        Self { url: format!("http://127.0.0.1:{port}/cgi-bin/sendsms"), up, passed }
    }

    /// Turns the gateway on or off.
    pub fn set_up(&self, on: bool) {
        self.up.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests let through to Kannel so far.
    pub fn passed(&self) -> usize {
        self.passed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The prefix the test Kannel refuses to route.
pub const KANNEL_UNROUTABLE_PREFIX: &str = "+4799000";

impl KannelGateway {
    /// Starts bearerbox, fakesmsc and smsbox, and waits until smsbox accepts requests.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let [admin, smsbox, fake, sendsms] = [(); 4].map(|_| free_port());
        let log = |name: &str| dir.path().join(name).display().to_string();
        let conf = format!(
            "group = core\nadmin-port = {admin}\nadmin-password = admin\nsmsbox-port = {smsbox}\nbox-allow-ip = 127.0.0.1\n\
             log-level = 1\nlog-file = \"{bb}\"\ndlr-storage = internal\n\n\
             group = smsc\nsmsc = fake\nsmsc-id = fake\nport = {fake}\nconnect-allow-ip = 127.0.0.1\ndenied-prefix = \"{KANNEL_UNROUTABLE_PREFIX}\"\n\n\
             group = smsbox\nbearerbox-host = 127.0.0.1\nbearerbox-port = {smsbox}\nsendsms-port = {sendsms}\nlog-level = 1\nlog-file = \"{sb}\"\n\n\
             group = sendsms-user\nusername = varsel\npassword = kannel-secret\nmax-messages = 10\nconcatenation = true\n\n\
             group = sms-service\nkeyword = default\ncatch-all = true\ntext = \"No service\"\n",
            bb = log("bearerbox.log"),
            sb = log("smsbox.log"),
        );
        let conf_path = dir.path().join("kannel.conf");
        std::fs::write(&conf_path, conf).expect("write kannel.conf");
        let spawn = |cmd: &mut Command| {
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()
        };
        let wait_port = |port: u16, what: &str| {
            wait_listening(port, Duration::from_secs(20), || format!("{what} did not start"));
        };
        let mut children = Vec::new();
        children.push(
            spawn(Command::new("/usr/sbin/bearerbox").arg(&conf_path))
                .expect("bearerbox (Debian kannel): run ./scripts/bootstrap"),
        );
        wait_port(fake, "bearerbox");
        children.push(
            spawn(Command::new("/usr/lib/kannel/test/fakesmsc").args([
                "-H",
                "127.0.0.1",
                "-r",
                &fake.to_string(),
                "-m",
                "0",
                "1 2 text x",
            ]))
            .expect("fakesmsc (Debian kannel-extras)"),
        );
        children.push(spawn(Command::new("/usr/sbin/smsbox").arg(&conf_path)).expect("smsbox"));
        wait_port(sendsms, "smsbox");
        // Until fakesmsc has connected, bearerbox queues messages and later reports them
        // unroutable (a NACK) instead of refusing them at once: wait for the SMSC to be online.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            use std::io::{Read, Write};
            let status =
                std::net::TcpStream::connect(("127.0.0.1", admin)).ok().and_then(|mut s| {
                    s.write_all(b"GET /status.txt?password=admin HTTP/1.0\r\n\r\n").ok()?;
                    let mut text = String::new();
                    s.read_to_string(&mut text).ok()?;
                    Some(text)
                });
            if status.as_deref().is_some_and(|t| t.contains("(online")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Kannel's fake SMSC did not come online: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            children,
            sendsms_url: format!("http://127.0.0.1:{sendsms}/cgi-bin/sendsms"),
            password: "kannel-secret".into(),
            _dir: dir,
        }
    }
}

impl Drop for KannelGateway {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A child process (a `varsel` role, say) that is killed when the test ends, whichever way.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free TCP port on 127.0.0.1.
pub fn port() -> u16 {
    free_port()
}

/// A Temporal dev server with file persistence that a test can kill (SIGKILL) and start again
/// on the same port and database file. A thread of its own owns the process (the server is
/// tied to the thread that spawned it).
pub struct TemporalProcess {
    tx: std::sync::mpsc::Sender<(bool, std::sync::mpsc::Sender<Result<(), String>>)>,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    _dir: tempfile::TempDir,
}

impl TemporalProcess {
    /// Starts a server persisting to a file in a temp dir.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let opts = DevServerOptions {
            bin: find_temporal_bin().expect("the temporal CLI: run ./scripts/bootstrap"),
            port,
            ui_port: None,
            db_file: Some(dir.path().join("temporal.db")),
            log_file: logs_dir().join(format!("temporal-{port}.log")),
        };
        let (tx, rx) =
            std::sync::mpsc::channel::<(bool, std::sync::mpsc::Sender<Result<(), String>>)>();
        std::thread::spawn(move || {
            let mut server: Option<DevServer> = None;
            // `true` starts the server, `false` kills it; the thread ends with the test process.
            for (start, reply) in rx {
                let result = if start {
                    DevServer::start(&opts).map(|s| server = Some(s)).map_err(|e| e.to_string())
                } else {
                    if let Some(mut s) = server.take() {
                        s.kill();
                    }
                    Ok(())
                };
                let _ = reply.send(result);
            }
        });
        let this = Self { tx, address: format!("http://127.0.0.1:{port}"), _dir: dir };
        this.command(true);
        this
    }

    fn command(&self, start: bool) {
        let (reply, done) = std::sync::mpsc::channel();
        self.tx.send((start, reply)).expect("temporal thread");
        done.recv().expect("temporal thread").expect("temporal dev server");
    }

    /// Kills the server with SIGKILL.
    pub fn kill(&self) {
        self.command(false);
    }

    /// Starts it again on the same port and database file.
    pub fn restart(&self) {
        self.command(true);
    }
}

/// A TCP proxy a test can cut: while down, open connections are closed and new ones are
/// accepted and closed at once (a database or network outage as clients see it).
pub struct TcpProxy {
    /// The port to connect to instead of the target's.
    pub port: u16,
    up: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Forwards a loopback port to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let conns: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> =
            Default::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().expect("conns").push(task.abort_handle());
            }
        });
        Self { port, up, conns, accept }
    }

    /// Cuts every connection and refuses new ones (`false`), or lets them through again.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, std::sync::atomic::Ordering::SeqCst);
        if !up {
            for c in self.conns.lock().expect("conns").drain(..) {
                c.abort();
            }
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.set_up(false);
    }
}

/// Temporal as a secured cluster serves it: Debian's nginx terminates TLS (HTTP/2) in front of
/// the dev server and lets through only clients with a certificate its own CA signed. The
/// certificates are made with `openssl` in a temp dir; the server's names `localhost`.
pub struct TlsTemporal {
    /// `https://localhost:<port>`.
    pub address: String,
    /// The CA that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// A client certificate (and its key) the proxy accepts.
    pub client_cert: PathBuf,
    /// The client certificate's key.
    pub client_key: PathBuf,
    /// A CA that signed neither.
    pub other_ca: PathBuf,
    nginx: Child,
    _dir: tempfile::TempDir,
}

/// Runs `openssl` with `args` in `dir`, and fails the test if it fails.
pub fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl: run scripts/bootstrap --test-tools");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl TlsTemporal {
    /// Starts the proxy in front of `temporal` (`http://127.0.0.1:<port>`).
    pub fn start(temporal: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let openssl = |args: &[&str]| openssl(d, args);
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        for ca in ["ca", "other-ca"] {
            let (key, crt, subj) =
                (format!("{ca}.key"), format!("{ca}.crt"), format!("/CN=varsel test {ca}"));
            let mut args =
                vec!["req", "-x509", "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &crt];
            args.extend(ec);
            openssl(&args);
        }
        for (name, ext) in [
            ("server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
            ("client", "extendedKeyUsage=clientAuth"),
        ] {
            std::fs::write(d.join(format!("{name}.ext")), ext).expect("ext");
            let (key, csr, crt, subj, extfile) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("/CN=varsel test {name}"),
                format!("{name}.ext"),
            );
            let mut args = vec!["req", "-subj", &subj, "-keyout", &key, "-out", &csr];
            args.extend(ec);
            openssl(&args);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &crt,
                "-extfile",
                &extfile,
            ]);
        }
        let port = free_port();
        let upstream = temporal.trim_start_matches("http://");
        for t in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(d.join("tmp").join(t)).expect("temp dirs");
        }
        let p = d.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {p}/nginx.pid;\nerror_log {p}/error.log warn;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/client_body;\n  proxy_temp_path {p}/tmp/proxy;\n\
             fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n\
             server {{\n    listen 127.0.0.1:{port} ssl http2;\n    ssl_certificate {p}/server.crt;\n\
             ssl_certificate_key {p}/server.key;\n    ssl_client_certificate {p}/ca.crt;\n    ssl_verify_client on;\n\
             client_max_body_size 0;\n    location / {{\n      grpc_pass grpc://{upstream};\n\
             grpc_read_timeout 600s;\n      grpc_send_timeout 600s;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(d.join("nginx.conf"), conf).expect("nginx.conf");
        let nginx = Command::new("/usr/sbin/nginx")
            .args([
                "-p",
                &p.to_string(),
                "-c",
                &format!("{p}/nginx.conf"),
                "-e",
                &format!("{p}/error.log"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx: run scripts/bootstrap --test-tools");
        wait_listening(port, Duration::from_secs(10), || {
            let log = std::fs::read_to_string(d.join("error.log")).unwrap_or_default();
            format!("nginx did not listen: {log}")
        });
        Self {
            address: format!("https://localhost:{port}"),
            ca: d.join("ca.crt"),
            client_cert: d.join("client.crt"),
            client_key: d.join("client.key"),
            other_ca: d.join("other-ca.crt"),
            nginx,
            _dir: dir,
        }
    }
}

impl Drop for TlsTemporal {
    fn drop(&mut self) {
        let _ = self.nginx.kill();
        let _ = self.nginx.wait();
    }
}
