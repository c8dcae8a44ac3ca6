//! Wiring: `Application::build(config)` connects the database, migrates, starts the worker and
//! the dispatcher, and binds the HTTP API (port 0 picks a free port, as the tests do).

use crate::auth::Verifier;
use crate::config::{Config, SmsProvider};
use crate::error::render_poem_error;
use crate::health::{self, Readiness};
use crate::http::contacts::ContactsApi;
use crate::http::eventgrid::EventGridApi;
use crate::http::operator::OperatorApi;
use crate::http::orders::OrdersApi;
use crate::http::reports::ReportsApi;
use crate::http::security::ReportCredentials;
use crate::http::v2::V2Api;
use crate::http::webhooks::WebhooksApi;
use crate::server::{EdgeLimits, guard_body, serve};
pub use crate::state::AppState;
use crate::temporal::{Dispatcher, SdkMetrics, SignalEvents, WorkerHandle, spawn_worker};
use poem::endpoint::BoxEndpoint;
use poem::middleware::{NormalizePath, TrailingSlash};
use poem::{EndpointExt, Route, get, handler};
use poem_openapi::OpenApiService;
use std::sync::Arc;
use std::time::Duration;
use varsel_activities::events::OrderEvents;
use varsel_activities::instant::InstantSender;
use varsel_activities::metrics::Metrics;
use varsel_activities::order_activities::SendSlots;
use varsel_activities::providers::attachments::{AttachmentFetcher, AttachmentSettings};
use varsel_activities::providers::condition::ConditionClient;
use varsel_activities::providers::email::{EmailSettings, Mailer};
use varsel_activities::providers::outbound::OutboundPolicy;
use varsel_activities::providers::rate::SendRateLimits;
use varsel_activities::providers::sms::{Kannel, ReportSigner, Simulator, SmsRouter};
use varsel_activities::webhooks::WebhookSender;
use varsel_activities::{OrderActivitiesImpl, Store, WebhookActivitiesImpl};

/// Every API of the published contract.
pub type Apis = (OrdersApi, V2Api, ReportsApi, EventGridApi, OperatorApi, ContactsApi, WebhooksApi);

/// Title and version of the published contract.
pub fn openapi_service(state: Arc<AppState>, report_secret: String) -> OpenApiService<Apis, ()> {
    let reports =
        ReportsApi { state: state.clone(), signer: ReportSigner::new(report_secret.as_bytes()) };
    let v2 = V2Api { state: state.clone() };
    let operator = OperatorApi { state: state.clone() };
    let contacts = ContactsApi { state: state.clone() };
    let eventgrid = EventGridApi { state: state.clone() };
    let webhooks = WebhooksApi { state: state.clone() };
    let apis = (OrdersApi { state }, v2, reports, eventgrid, operator, contacts, webhooks);
    OpenApiService::new(apis, "varsel notification orders", env!("CARGO_PKG_VERSION"))
        .description(
            "varsel accepts notification orders on the Altinn Notifications order API and carries each one to \
             its recipients by email and SMS as a durable Temporal workflow. Errors are RFC 9457 problem details.",
        )
}

/// What status webhooks are posted with: the configured timeout, and only the destinations
/// `webhook_allowed_hosts` allows beside public ones.
pub fn webhook_sender(config: &Config) -> anyhow::Result<WebhookSender> {
    WebhookSender::new(
        // Below the delivery activity's heartbeat timeout (30 s), which it beats before each post.
        std::time::Duration::from_secs(config.webhooks.timeout_secs.clamp(1, 25)),
        OutboundPolicy::new(&config.webhooks.allowed_hosts),
    )
}

/// The OpenAPI document as served, pretty-printed JSON.
pub fn openapi_json() -> String {
    let cfg = Arc::new(Config::default());
    let store = Store::disconnected();
    let dispatcher = Arc::new(Dispatcher::new(cfg.clone(), store.clone()));
    let webhook_sender = webhook_sender(&cfg).expect("a webhook client");
    let state = Arc::new(AppState {
        config: cfg,
        contacts: varsel_activities::contacts::ContactSources::embedded(&store),
        store,
        verifier: Arc::new(Verifier::empty()),
        outbound: OutboundPolicy::default(),
        webhook_sender,
        dispatcher: dispatcher.clone(),
        base_url: String::new(),
        events: Arc::new(SignalEvents(dispatcher)),
        metrics: Metrics::new(),
        sdk_metrics: SdkMetrics::default(),
        sender: None,
        gauges: Default::default(),
        console: Default::default(),
    });
    let limits = crate::http::validate::Limits::from_config(&state.config);
    crate::http::schema_rules::stated(&openapi_service(state, String::new()).spec(), &limits)
}

/// The methods each documented path answers, for the `Allow` header of a 405 (RFC 9110
/// §15.5.6 requires it). Read from the OpenAPI document, so it cannot drift from the routes.
#[derive(Clone, Default)]
struct AllowedMethods(Arc<Vec<(regex::Regex, String)>>);

impl AllowedMethods {
    fn from_spec(spec: &str) -> Self {
        let doc: serde_json::Value = serde_json::from_str(spec).unwrap_or_default();
        let param = regex::Regex::new(r"\{[^}]+\}").expect("param pattern");
        let mut out = Vec::new();
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            let pattern = regex::escape(path).replace(r"\{", "{").replace(r"\}", "}");
            let pattern = param.replace_all(&pattern, "[^/]+");
            let Ok(re) = regex::Regex::new(&format!("^{pattern}/?$")) else { continue };
            let methods: Vec<String> =
                ops.as_object().into_iter().flatten().map(|(m, _)| m.to_uppercase()).collect();
            out.push((re, methods.join(", ")));
        }
        Self(Arc::new(out))
    }

    fn for_path(&self, path: &str) -> Option<&str> {
        self.0.iter().find(|(re, _)| re.is_match(path)).map(|(_, m)| m.as_str())
    }
}

async fn allow_header<E: poem::Endpoint>(
    ep: Arc<E>,
    req: poem::Request,
    allowed: AllowedMethods,
) -> poem::Result<poem::Response> {
    use poem::IntoResponse;
    let path = req.uri().path().to_owned();
    let mut resp = ep.call(req).await?.into_response();
    if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = allowed.for_path(&path)
        && let Ok(value) = poem::http::HeaderValue::from_str(methods)
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, value);
    }
    Ok(resp)
}

/// Prometheus text format: varsel's counters and histograms, plus gauges read from the database
/// at scrape time (orders and notifications by status, the queue of unsent notifications, dead
/// reports), plus the in-process worker's Temporal SDK metrics.
#[handler]
async fn metrics_endpoint(state: poem::web::Data<&Arc<AppState>>) -> poem::Result<poem::Response> {
    let counts = state.gauges.get(&state.store).await.map_err(|e| {
        poem::Error::from_string(
            format!("metrics unavailable: {e}"),
            poem::http::StatusCode::SERVICE_UNAVAILABLE,
        )
    })?;
    let scrape = prometheus::Registry::new();
    let gauge = |name: &str, help: &str, labels: &[&str]| {
        let g = prometheus::IntGaugeVec::new(prometheus::Opts::new(name, help), labels)
            .expect("valid metric");
        scrape.register(Box::new(g.clone())).expect("unique metric");
        g
    };
    let g_orders = gauge("varsel_orders", "Orders by status.", &["status"]);
    for (status, n) in counts.orders {
        g_orders.with_label_values(&[status.as_str()]).set(n);
    }
    let g_notes = gauge(
        "varsel_notifications",
        "Notifications by channel and status.",
        &["channel", "status"],
    );
    let g_queue = gauge(
        "varsel_notifications_unsent",
        "Notifications not yet handed to a provider (New or Sending), by channel.",
        &["channel"],
    );
    for channel in ["email", "sms"] {
        g_queue.with_label_values(&[channel]).set(0);
    }
    for (channel, status, n) in counts.notifications {
        g_notes.with_label_values(&[channel.as_str(), status.as_str()]).set(n);
        if status.is_pending() {
            g_queue.with_label_values(&[channel.as_str()]).add(n);
        }
    }
    let g_dead = prometheus::IntGauge::new(
        "varsel_dead_reports",
        "Delivery reports that matched nothing and wait for an operator.",
    )
    .expect("valid metric");
    g_dead.set(counts.dead_reports as i64);
    scrape.register(Box::new(g_dead)).expect("unique metric");
    let mut families = state.metrics.registry.gather();
    families.extend(scrape.gather());
    prometheus_response(families, &state.sdk_metrics).await
}

/// What a worker-only process reports on `/metrics`: its send and provider counters and the
/// Temporal SDK's worker metrics (the database gauges are the API's).
#[handler]
async fn worker_metrics_endpoint(
    poem::web::Data((metrics, sdk)): poem::web::Data<&(Metrics, SdkMetrics)>,
) -> poem::Result<poem::Response> {
    prometheus_response(metrics.registry.gather(), sdk).await
}

async fn prometheus_response(
    families: Vec<prometheus::proto::MetricFamily>,
    sdk: &SdkMetrics,
) -> poem::Result<poem::Response> {
    use prometheus::Encoder;
    let mut body = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&families, &mut body)
        .map_err(poem::error::InternalServerError)?;
    body.extend_from_slice(sdk.text().await.as_bytes());
    Ok(poem::Response::builder().content_type("text/plain; version=0.0.4").body(body))
}

/// The built application, bound and ready to run.
pub struct Application {
    port: u16,
    base_url: String,
    listener: Option<tokio::net::TcpListener>,
    state: Option<Arc<AppState>>,
    report_secret: String,
    worker: Option<WorkerHandle>,
    /// A worker-only process's metrics listener, with what it serves.
    worker_metrics: Option<(tokio::net::TcpListener, Metrics, SdkMetrics, Arc<Readiness>)>,
    /// The inbound SMTP listener for bounces, when this process runs one.
    bounces: Option<crate::bounces::BounceListener>,
    /// How long a signalled process may take to stop, and of that how long the API drains.
    grace: Duration,
    drain: Duration,
    /// Keeps this process's counters for the console's overview (every process, API or worker).
    sampler: crate::console::overview::Sampler,
}

impl Application {
    /// Connects, migrates, starts the worker (when configured) and binds the API.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        shared_secrets_configured(&config)?;
        let config = Arc::new(config);
        if config.database.url.starts_with("sqlite:") {
            std::fs::create_dir_all(&config.data_dir)?;
        }
        let store = Store::connect(&config.database.url, config.database.max_connections).await?;
        store.migrate().await?;
        // A Temporal that is down is waited for (orders are kept and started when it is back);
        // one that answers but refuses this client (TLS, certificate, API key) stops the start.
        match crate::temporal::connect(&config).await {
            Ok(_) => {}
            Err(e) if crate::temporal::unreachable(&e) => {
                tracing::warn!(error = %e, "Temporal is not reachable yet; orders are accepted and started when it is")
            }
            Err(e) => return Err(e),
        }

        config.sms_window()?;
        // One set of sources and one Maskinporten client (with its token cache) for the API and
        // the worker of this process.
        let upstream = crate::upstream::Upstream::from_config(&config, &store)?;
        let metrics = Metrics::new();
        let sdk_metrics = SdkMetrics::default();
        let every = config.processing.metric_snapshot_secs;
        if !(1..=600).contains(&every) {
            anyhow::bail!(
                "VARSEL_METRIC_SNAPSHOT_SECS must be between 1 and 600 (the overview's last hour needs several snapshots of each process), not {every}"
            )
        }
        let sampler = crate::console::overview::Sampler {
            store: store.clone(),
            metrics: metrics.clone(),
            process: Default::default(),
            every: Duration::from_secs(every),
        };
        let dispatcher = Arc::new(Dispatcher::new(config.clone(), store.clone()));
        let events: Arc<dyn OrderEvents> = Arc::new(SignalEvents(dispatcher.clone()));
        let report_secret = crate::auth::load_or_create_report_secret(&config)?;
        let build_providers = |base_url: &str| {
            providers(&config, &store, &upstream, base_url, &report_secret, &events, &metrics)
        };

        // Bind first: the worker needs the API's address for Kannel's report URLs.
        let (port, base_url, listener, state) = if config.run_api {
            let listener =
                tokio::net::TcpListener::bind(&config.http.listen).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on VARSEL_LISTEN={}: {e}", config.http.listen)
                })?;
            let addr = listener.local_addr()?;
            let base_url = config.base_url(&addr.to_string());
            let sender = InstantSender::new(build_providers(&base_url)?);
            let state = Arc::new(AppState {
                config: config.clone(),
                store: store.clone(),
                contacts: upstream.contacts.clone(),
                verifier: Arc::new(Verifier::from_config(&config)?),
                outbound: OutboundPolicy::new(&config.conditions.allowed_hosts),
                webhook_sender: webhook_sender(&config)?,
                dispatcher: dispatcher.clone(),
                base_url: base_url.clone(),
                events: events.clone(),
                metrics: metrics.clone(),
                sdk_metrics: sdk_metrics.clone(),
                sender: Some(sender),
                gauges: Default::default(),
                console: crate::console::ConsoleState {
                    links: Default::default(),
                    process: sampler.process.clone(),
                },
            });
            (addr.port(), base_url, Some(listener), Some(state))
        } else {
            (0, config.base_url(&config.http.listen), None, None)
        };

        let worker = if config.run_worker {
            // Its own providers: the worker runs on a runtime of its own, and connection pools
            // (SMTP) belong to the runtime that opened them. The contact sources are shared.
            let activities = build_providers(&base_url)?;
            let webhooks = WebhookActivitiesImpl {
                store: store.clone(),
                sender: webhook_sender(&config)?,
                metrics: metrics.clone(),
            };
            Some(spawn_worker(config.clone(), activities, webhooks, sdk_metrics.clone()))
        } else {
            None
        };

        let worker_metrics = if !config.run_api
            && config.run_worker
            && !config.worker_metrics_listen.is_empty()
        {
            let listener = tokio::net::TcpListener::bind(&config.worker_metrics_listen)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot serve worker metrics on VARSEL_WORKER_METRICS_LISTEN={}: {e}",
                        config.worker_metrics_listen
                    )
                })?;
            tracing::info!(url = %format!("http://{}/metrics", listener.local_addr()?), "worker metrics");
            let readiness = Arc::new(Readiness::new(store.clone(), config.clone()));
            Some((listener, metrics.clone(), sdk_metrics.clone(), readiness))
        } else {
            None
        };

        let bounces = match config.bounce_addresses(&report_secret) {
            Some(addresses) if config.run_bounces && !config.email.bounce_listen.is_empty() => {
                let listener = crate::bounces::BounceListener::bind(
                    &config.email.bounce_listen,
                    addresses,
                    config.email.bounce_max_bytes,
                    store.clone(),
                    events.clone(),
                    metrics.clone(),
                )
                .await?;
                tracing::info!(addr = %listener.local_addr()?, domain = config.email.bounce_domain, "bounce listener (SMTP)");
                Some(listener)
            }
            None if config.run_bounces && !config.email.bounce_listen.is_empty() => {
                anyhow::bail!(
                    "VARSEL_BOUNCE_LISTEN needs VARSEL_EMAIL_BOUNCE_DOMAIN: the domain whose addresses it takes mail for"
                )
            }
            _ => None,
        };

        let (grace, drain) = (config.shutdown_grace(), config.shutdown_drain());
        Ok(Self {
            bounces,
            port,
            base_url,
            listener,
            state,
            worker,
            report_secret,
            worker_metrics,
            grace,
            drain,
            sampler,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the inbound SMTP listener for bounces listens, when this process runs one.
    pub fn bounce_addr(&self) -> Option<std::net::SocketAddr> {
        self.bounces.as_ref().and_then(|b| b.local_addr().ok())
    }

    /// The API's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A one-time link that signs the operator console in with `token` (`None` in a process
    /// without the API).
    pub fn console_link(&self, token: String) -> Option<String> {
        self.state.as_ref().map(|s| crate::console::sign_in_link(s, &self.base_url, token))
    }

    /// The API's routes, unserved (`None` in a worker-only process): for poem's `TestClient`.
    pub fn endpoint(&self) -> Option<BoxEndpoint<'static>> {
        self.state.as_ref().map(|state| api_routes(state.clone(), &self.report_secret))
    }

    /// Serves until `shutdown` resolves, then drains within the configured grace period: the API
    /// answers new requests with 503 for `shutdown_drain_secs` and finishes those in flight,
    /// while the worker stops polling and its running batches record the sends they started.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // One signal for both halves: the worker starts draining as the API does.
        let (signal, signalled) = tokio::sync::watch::channel(false);
        let signal = Arc::new(signal);
        let notify = signal.clone();
        let relay = tokio::spawn(async move {
            shutdown.await;
            let _ = notify.send(true);
        });
        let on_signal = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let worker = self.worker.take().map(|w| {
            let rx = signalled.clone();
            tokio::spawn(async move {
                on_signal(rx).await;
                tokio::task::spawn_blocking(move || w.stop()).await
            })
        });
        let bounces = self
            .bounces
            .take()
            .map(|listener| tokio::spawn(listener.serve(on_signal(signalled.clone()))));
        let shutdown = on_signal(signalled.clone());
        let (grace, drain) = (self.grace, self.drain);
        let sampler = tokio::spawn(self.sampler.clone().run());
        let result = match (self.listener.take(), self.state.take()) {
            (Some(listener), Some(state)) => {
                let dispatcher = tokio::spawn(state.dispatcher.clone().run());
                let webhooks = tokio::spawn(state.dispatcher.clone().run_webhooks());
                let housekeeping = tokio::spawn(crate::temporal::prune_status_feed(
                    state.store.clone(),
                    state.config.processing.status_feed_retention_days,
                ));
                let limits = EdgeLimits::from_config(&state.config);
                let app = api_routes(state, &self.report_secret);
                let r = serve(listener, app, limits, shutdown, drain, grace - drain).await;
                dispatcher.abort();
                webhooks.abort();
                housekeeping.abort();
                r.map_err(Into::into)
            }
            _ => match self.worker_metrics.take() {
                Some((listener, metrics, sdk, readiness)) => {
                    let app = Route::new()
                        .at("/health", get(health::live))
                        .at("/health/live", get(health::live))
                        .at("/health/ready", get(health::ready).data(readiness))
                        .at("/metrics", get(worker_metrics_endpoint).data((metrics, sdk)))
                        .with(NormalizePath::new(TrailingSlash::Trim));
                    let limits = EdgeLimits {
                        max_connections: 64,
                        max_body_bytes: 0,
                        ..EdgeLimits::from_config(&Config::default())
                    };
                    serve(listener, app, limits, shutdown, Duration::ZERO, Duration::from_secs(5))
                        .await
                        .map_err(Into::into)
                }
                None => {
                    shutdown.await;
                    Ok(())
                }
            },
        };
        // The API ended (signalled, or failed): the worker stops too.
        let _ = signal.send(true);
        sampler.abort();
        relay.abort();
        if let Some(b) = bounces {
            let _ = b.await;
        }
        let stopped = match worker {
            Some(w) => w.await.map_err(anyhow::Error::from).and_then(|r| Ok(r?)),
            None => Ok(()),
        };
        // What this process counted since its last snapshot stays in the overview's windows;
        // a database that does not answer holds the stop up for at most a few seconds.
        if tokio::time::timeout(Duration::from_secs(3), self.sampler.keep_last()).await.is_err() {
            tracing::warn!("the last metric snapshot was not kept: the database did not answer");
        }
        stopped?;
        result
    }
}

/// Secrets every host of a deployment must share are configured, not made up by this host in its
/// data dir (where N hosts would make N different ones: tokens minted for one refused by the
/// next, reports signed by one worker refused by another API). `VARSEL_ALLOW_DATA_DIR_KEYS=true`
/// (set by `varsel dev`) allows them for a single host. A worker-only process sending through
/// Kannel needs the public base URL its delivery reports come back to (an API process knows
/// its own address, the default).
fn shared_secrets_configured(config: &Config) -> anyhow::Result<()> {
    if config.auth.allow_data_dir_keys {
        return Ok(());
    }
    if config.run_api && !config.auth.has_keys() {
        anyhow::bail!(
            "no token verification keys are configured: set VARSEL_AUTH_HMAC_SECRETS, \
             VARSEL_AUTH_PUBLIC_KEY_FILES, VARSEL_AUTH_JWKS_URLS or VARSEL_PLATFORM_ISSUERS__<ISSUER>__… (the same on \
             every API host), or VARSEL_ALLOW_DATA_DIR_KEYS=true to let this single host make its \
             own in its data dir"
        );
    }
    let reports_used = config.run_api || config.sms.provider == SmsProvider::Kannel;
    if reports_used && config.reports.secret.is_empty() {
        anyhow::bail!(
            "VARSEL_REPORT_SECRET is not set: the secret that signs Kannel's report URLs and is \
             the password of the email report endpoint must be the same on every host (or set \
             VARSEL_ALLOW_DATA_DIR_KEYS=true to let this single host make its own)"
        );
    }
    if config.run_worker
        && !config.run_api
        && config.sms.provider == SmsProvider::Kannel
        && config.http.public_base_url.is_empty()
    {
        anyhow::bail!(
            "VARSEL_PUBLIC_BASE_URL is not set: Kannel posts its delivery reports to the API, at \
             the URL a worker gives it, and a worker does not know where the API is reachable"
        );
    }
    Ok(())
}

/// Every route of an API process over its state, with the body guard, trailing-slash rewriting,
/// problem-details errors and `Allow` on 405: what `run_until` serves, and what the fast tests
/// call through poem's `TestClient`.
pub fn api_routes(state: Arc<AppState>, report_secret: &str) -> BoxEndpoint<'static> {
    let body_limits = EdgeLimits::from_config(&state.config);
    let api = openapi_service(state.clone(), report_secret.to_owned());
    let generated = api.spec();
    let allowed = AllowedMethods::from_spec(&generated);
    // The document as served states what the validators demand, with this process's limits;
    // the docs page shows that same document.
    let limits = crate::http::validate::Limits::from_config(&state.config);
    let spec = crate::http::schema_rules::stated(&generated, &limits);
    let ui = api.swagger_ui_html().replacen(&generated, &spec, 1);
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder().content_type("application/json").body(spec.clone())
    });
    let ui = poem::endpoint::make_sync(move |_| poem::web::Html(ui.clone()));
    let readiness = Arc::new(Readiness::new(state.store.clone(), state.config.clone()));
    let http_metrics = state.metrics.clone();
    let report_credentials = ReportCredentials {
        username: state.config.reports.username.clone(),
        secret: report_secret.to_owned(),
        eventgrid_key: state.config.reports.eventgrid_key.expose().to_owned(),
    };
    Route::new()
        .nest("/", api)
        .at("/notifications/api/v1/openapi.json", spec)
        .at("/docs", ui)
        .nest_no_strip("/console", crate::console::routes(state.clone()))
        .at("/health", get(health::live))
        .at("/health/live", get(health::live))
        .at("/health/ready", get(health::ready).data(readiness))
        .at("/metrics", get(metrics_endpoint).data(state.clone()))
        .data(state.verifier.clone())
        .data(report_credentials)
        .around(move |ep, req| guard_body(ep, req, body_limits.clone()))
        // Every route answers with and without a trailing slash (Altinn's routing does, and its
        // clients use both); rewritten, not redirected, as clients do not follow redirects of a
        // POST.
        .with(NormalizePath::new(TrailingSlash::Trim))
        .catch_all_error(|e| async move { render_poem_error(e) })
        .around(move |ep, req| allow_header(ep, req, allowed.clone()))
        .around(move |ep, req| crate::trace::observe_request(ep, req, http_metrics.clone()))
        .boxed()
}

/// The email and SMS providers and everything a send needs, as configured: what the worker's
/// activities use, and what an API process sends instant messages with.
fn providers(
    config: &Arc<Config>,
    store: &Store,
    upstream: &crate::upstream::Upstream,
    base_url: &str,
    report_secret: &str,
    events: &Arc<dyn OrderEvents>,
    metrics: &Metrics,
) -> anyhow::Result<OrderActivitiesImpl> {
    if config.email.dsn_notify
        && (config.email.smtp_url.is_empty() || config.email.bounce_domain.trim().is_empty())
    {
        anyhow::bail!(
            "VARSEL_EMAIL_DSN_NOTIFY needs VARSEL_SMTP_URL and VARSEL_EMAIL_BOUNCE_DOMAIN: the relay's notifications come back to the bounce addresses"
        )
    }
    let mailer = Mailer::new(&EmailSettings {
        smtp_url: Some(config.email.smtp_url.clone()).filter(|s| !s.is_empty()),
        default_from: config.email.from.clone(),
        outbox_dir: config.data_dir.join("outbox"),
        pool_size: config.email.smtp_pool_size,
        timeout: Duration::from_secs(config.email.smtp_timeout_secs),
        bounces: config.bounce_addresses(report_secret),
        dsn_notify: config.email.dsn_notify,
        max_message_bytes: config.email.max_message_bytes,
    })?;
    let attachments = AttachmentFetcher::new(
        AttachmentSettings {
            concurrency: config.email.attachment_concurrency,
            timeout: Duration::from_secs(config.email.attachment_timeout_secs.max(1)),
            max_message_bytes: config.email.max_message_bytes,
        },
        OutboundPolicy::new(&config.email.attachment_allowed_hosts),
    )?;
    let gateway = if config.sms.kannel_sendsms_url.is_empty() {
        None
    } else {
        Some(Kannel::new(
            config.sms.kannel_sendsms_url.clone(),
            config.sms.kannel_username.clone(),
            config.sms.kannel_password.expose().to_owned(),
            base_url.to_owned(),
            ReportSigner::new(report_secret.as_bytes()),
            Duration::from_secs(config.sms.gateway_timeout_secs.max(1)),
        )?)
    };
    let simulator = Some(Simulator::new(
        store.clone(),
        events.clone(),
        metrics.clone(),
        Duration::from_millis(config.sms.simulator_report_delay_ms),
    ));
    let sms = match config.sms.provider {
        SmsProvider::Simulator => {
            SmsRouter { simulator, gateway, allow_list: config.sms.allow_list.clone() }
        }
        SmsProvider::Kannel if gateway.is_some() => {
            SmsRouter { simulator: None, gateway, allow_list: vec![] }
        }
        SmsProvider::Kannel => {
            anyhow::bail!("VARSEL_SMS_PROVIDER=kannel needs VARSEL_KANNEL_SENDSMS_URL")
        }
    };
    let budget = config.processing.send_budget_secs;
    if !(1..=100).contains(&budget) {
        anyhow::bail!(
            "VARSEL_SEND_BUDGET_SECS must be between 1 and 100 (a send batch times out after 120 s), not {budget}"
        )
    }
    let window = config.processing.send_window;
    if !(1..=64).contains(&window) {
        anyhow::bail!("VARSEL_SEND_WINDOW must be between 1 and 64, not {window}")
    }
    Ok(OrderActivitiesImpl {
        store: store.clone(),
        contacts: upstream.contacts.clone(),
        mailer,
        attachments,
        sms,
        // With notifications asked for, every email's fate is reported: `Email_Succeeded` waits.
        email_reports: config.email.delivery_reports || config.email.dsn_notify,
        condition: ConditionClient::new(
            Duration::from_secs(config.conditions.timeout_secs),
            OutboundPolicy::new(&config.conditions.allowed_hosts),
        )?
        .with_auth(upstream.condition_auth.clone()),
        default_sms_sender: config.sms.default_sender.clone(),
        send_slots: SendSlots::new(config.processing.send_concurrency),
        send_budget: Duration::from_secs(budget),
        notification_ttl: Duration::from_secs(config.processing.notification_ttl_secs),
        sms_window: config.sms_window()?,
        sender_policies: config.sms.sender_policies.clone(),
        metrics: metrics.clone(),
        rate_limits: SendRateLimits::new(store.clone(), config.processing.send_rate_limits.clone()),
        pauses: Default::default(),
        draining: Default::default(),
    })
}
