//! `varsel-bench`: measures varsel on the embedded stack, each figure against a baseline taken in
//! the same run, on the same machine and the same Temporal server, so that the ratio means
//! something on a shared, noisy machine.
//!
//! - accept: `POST /orders` against a bare client starting a no-op workflow;
//! - small orders: single-recipient email orders from POST to `Completed` against a trivial
//!   one-activity workflow run by a worker with the same settings;
//! - bulk: one large email order to a local SMTP sink against lettre sending the same messages
//!   to the same sink with the same pooled connections;
//! - scale and sizes (`scale.rs`): one order on 1, 2 and 4 worker processes against a relay
//!   that answers after a delay, and orders of growing size.

pub mod baseline;
mod console;
pub mod fleet;
pub mod queries;
pub mod registers;
mod scale;

use baseline::{BenchInput, NoopWorkflow, OneActivityWorkflow, defs};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use temporalio_client::{Client, WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::ActivityError;
use temporalio_macros::activities;
use temporalio_sdk::activities::ActivityContext;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use varsel_activities::Store;
use varsel_activities::providers::email::{EmailSettings, Mailer, OutgoingEmail};
use varsel_activities::store::{OrgContact, PersonContact};
use varsel_api::Application;
use varsel_api::config::Config;
use varsel_api::devserver::{DevServer, DevServerOptions, find_temporal_bin};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Recipients of the bulk order.
    pub recipients: u32,
    /// Orders of the small-order phase.
    pub small_orders: u32,
    /// Seconds each accept measurement runs.
    pub accept_secs: u64,
    /// Concurrent clients in the accept and small-order phases.
    pub clients: usize,
    /// Phases to run: `accept`, `small`, `bulk`, `load`, `instant`, `import`, `krr`, and last
    /// the fleet phases `scale` and `sizes` (they stop the benchmark's own varsel).
    pub phases: Vec<String>,
    /// Persons in the import phase's file.
    pub import_persons: usize,
    /// Seconds the load phase offers orders.
    pub load_secs: u64,
    /// Where the JSON result goes.
    pub json_out: PathBuf,
    /// Worker processes of their own for every phase (0: the worker runs in the benchmark's
    /// process, beside the API).
    pub workers: usize,
    /// How long the `scale` phase's relay takes to answer each message, milliseconds.
    pub relay_delay_ms: u64,
    /// Worker counts of the `scale` phase.
    pub scale_workers: Vec<usize>,
    /// Recipients of the `scale` phase's order.
    pub scale_recipients: u32,
    /// Order sizes of the `sizes` phase.
    pub sizes: Vec<u32>,
    /// Orders the `search` phase seeds and searches.
    pub search_orders: u64,
    /// `sqlite` (a file in the run's folder) or `postgres` (a fresh database on
    /// `postgres_url`'s server, dropped afterwards); `VARSEL_DATABASE_URL` overrides both.
    pub database: String,
    /// A PostgreSQL server where the user may create databases.
    pub postgres_url: String,
}

/// One measured figure with its baseline.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// varsel's figure.
    pub value: f64,
    /// The baseline's figure (same unit).
    pub baseline: Option<f64>,
    /// value / baseline.
    pub ratio: Option<f64>,
    /// Unit of both.
    pub unit: String,
    /// The target, in words.
    pub target: String,
    /// Whether the target was met.
    pub met: Option<bool>,
}

impl Figure {
    /// A rate (higher is better) against its baseline's: met while at least `min_ratio` of it.
    fn ratio(name: &str, value: f64, baseline: f64, unit: &str, min_ratio: f64) -> Self {
        Self::against(name, value, baseline, unit, (">=", min_ratio), |r| r >= min_ratio)
    }

    /// A time (lower is better) against its baseline's: met while at most `max_ratio` times it.
    fn slower(name: &str, value: f64, baseline: f64, unit: &str, max_ratio: f64) -> Self {
        Self::against(name, value, baseline, unit, ("<=", max_ratio), |r| r <= max_ratio)
    }

    fn against(
        name: &str,
        value: f64,
        baseline: f64,
        unit: &str,
        (op, bound): (&str, f64),
        met: impl Fn(f64) -> bool,
    ) -> Self {
        let ratio = if baseline > 0.0 { value / baseline } else { 0.0 };
        Self {
            name: name.into(),
            value,
            baseline: Some(baseline),
            ratio: Some(ratio),
            unit: unit.into(),
            target: format!("ratio {op} {bound}"),
            met: Some(met(ratio)),
        }
    }

    fn plain(name: &str, value: f64, unit: &str, target: &str, met: Option<bool>) -> Self {
        Self {
            name: name.into(),
            value,
            baseline: None,
            ratio: None,
            unit: unit.into(),
            target: target.into(),
            met,
        }
    }
}

/// The baseline's one activity.
pub struct BenchActivitiesImpl;

#[activities]
impl BenchActivitiesImpl {
    #[activity(definition = defs::Echo)]
    pub async fn echo(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: BenchInput,
    ) -> Result<BenchInput, ActivityError> {
        Ok(input)
    }
}

const BASELINE_QUEUE: &str = "varsel-bench-baseline";

/// Runs the benchmark and prints its table; writes the JSON to `opts.json_out`.
pub async fn run(opts: BenchOptions) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let mut cfg = Config::load()?;
    let configured_temporal = std::env::var("TEMPORAL_ADDRESS").is_ok();
    // The embedded default: a dev server with a SQLite file in WAL mode, unless one is configured.
    let _server = if configured_temporal {
        None
    } else {
        let bin = find_temporal_bin().ok_or_else(|| {
            anyhow::anyhow!("the Temporal CLI was not found: run ./scripts/bootstrap")
        })?;
        let port = varsel_api::devserver::free_port()?;
        let server = DevServer::start(&DevServerOptions {
            bin,
            port,
            ui_port: None,
            db_file: Some(dir.path().join("temporal.db")),
            log_file: dir.path().join("temporal.log"),
        })?;
        cfg.temporal.address = server.address.clone();
        Some(server)
    };
    let sink = SmtpSink::start()?;
    cfg.data_dir = dir.path().to_path_buf();
    // A fresh PostgreSQL database, dropped at the end.
    let mut postgres = None;
    if std::env::var("VARSEL_DATABASE_URL").is_err() {
        cfg.database.url = match opts.database.as_str() {
            "sqlite" => String::new(),
            "postgres" => {
                let url = varsel_tests::fresh_postgres_database(&opts.postgres_url).await;
                postgres = Some(url.rsplit('/').next().unwrap_or_default().to_owned());
                url
            }
            other => anyhow::bail!("unknown database {other:?} (sqlite, postgres)"),
        };
    }
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.email.smtp_url = format!("smtp://127.0.0.1:{}", sink.port);
    cfg.temporal.task_queue = format!("varsel-bench-{}", uuid::Uuid::new_v4().simple());
    cfg.sms.sending_window = String::new();
    // One local process: the dev token key it mints with lives in its data dir.
    cfg.auth.allow_data_dir_keys = true;
    cfg.run_api = true;
    // With --workers N, the workers are processes of their own.
    cfg.run_worker = opts.workers == 0;
    cfg.normalise();
    let key = varsel_api::auth::load_or_create_dev_key(&cfg.data_dir)?;
    let token = varsel_api::auth::mint(
        &key,
        varsel_api::auth::TokenKind::Bearer {
            org: "bench".into(),
            scope: varsel_api::auth::CREATE_SCOPE.into(),
        },
        24 * 3600,
    )?;

    eprintln!(
        "varsel-bench: Temporal {}, database {}, SMTP sink {}",
        cfg.temporal.address,
        varsel_api::config::redact_url(&cfg.database.url),
        varsel_api::config::redact_url(&cfg.email.smtp_url)
    );
    let app = Application::build(cfg.clone()).await?;
    let _workers = if opts.workers > 0 {
        Some(fleet::Fleet::start(&cfg, false, opts.workers, dir.path()).await?)
    } else {
        None
    };
    let base = format!("{}/notifications/api/v1", app.base_url());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app_task = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    let in_process = tokio::sync::Mutex::new(Some(InProcess { stop: stop_tx, task: app_task }));
    let store = Store::connect(&cfg.database.url, 4).await?;
    let client = varsel_api::temporal::connect(&cfg).await?;
    let baseline_worker = BaselineWorker::spawn(cfg.clone());
    let http = reqwest::Client::builder().pool_max_idle_per_host(opts.clients).build()?;
    let bench = Bench {
        opts: opts.clone(),
        ctx: Arc::new(TaskCtx { base, token, http }),
        client,
        store,
        cfg: cfg.clone(),
        sink,
        in_process,
    };

    let mut figures = Vec::new();
    let mut fleets_began = false;
    for phase in &opts.phases {
        let on_fleets = matches!(phase.as_str(), "scale" | "sizes");
        anyhow::ensure!(
            on_fleets || !fleets_began,
            "phase {phase:?} runs on the benchmark's own process, which the fleet phases (scale, \
             sizes) stop: list it before them"
        );
        if on_fleets && !fleets_began {
            // The fleets share this database; this process's dispatcher would otherwise start
            // their orders on its own task queue whenever storing one outlasts its outbox cutoff.
            bench.stop_in_process().await;
            fleets_began = true;
        }
        let done = match phase.as_str() {
            "accept" => bench.accept().await,
            "small" => bench.small_orders().await,
            "bulk" => bench.bulk().await,
            "load" => bench.load().await,
            "instant" => bench.instant().await,
            "scale" => bench.scale().await,
            "sizes" => bench.sizes().await,
            "console" => bench.console().await,
            "search" => bench.search().await,
            "import" => {
                registers::import_phase(&bench.store, dir.path(), opts.import_persons).await
            }
            "krr" => {
                registers::krr_phase(&bench.store, &bench.ctx, &cfg, opts.recipients as usize).await
            }
            other => Err(anyhow::anyhow!(
                "unknown phase {other:?} (accept, small, bulk, load, instant, import, krr, scale, sizes, console, search)"
            )),
        };
        match done {
            Ok(measured) => figures.extend(measured),
            Err(e) => {
                // What was measured before is not lost with the phase that failed.
                print_table(&figures);
                return Err(e.context(format!("phase {phase}")));
            }
        }
    }

    print_table(&figures);
    let doc = json!({
        "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)},
        "temporal": if configured_temporal { "configured" } else { "embedded dev server (SQLite, WAL)" },
        "database": if cfg.database.url.starts_with("sqlite") { "sqlite" } else { "postgres" },
        "options": {"recipients": opts.recipients, "smallOrders": opts.small_orders, "acceptSeconds": opts.accept_secs, "clients": opts.clients,
                    "workers": opts.workers, "relayDelayMs": opts.relay_delay_ms, "scaleWorkers": opts.scale_workers, "scaleRecipients": opts.scale_recipients, "sizes": opts.sizes, "searchOrders": opts.search_orders,
                    "sendBatch": cfg.processing.send_batch, "sendConcurrency": cfg.processing.send_concurrency, "sendWindow": cfg.processing.send_window, "smtpPoolSize": cfg.email.smtp_pool_size},
        "figures": figures,
    });
    std::fs::write(&opts.json_out, serde_json::to_string_pretty(&doc)?)?;
    eprintln!("written to {}", opts.json_out.display());

    bench.stop_in_process().await;
    tokio::task::spawn_blocking(move || baseline_worker.stop()).await?;
    drop(bench);
    if let Some(name) = postgres {
        varsel_tests::drop_postgres_database(&opts.postgres_url, &name).await;
    }
    Ok(figures)
}

struct Bench {
    opts: BenchOptions,
    ctx: Arc<TaskCtx>,
    client: Client,
    store: Store,
    cfg: Config,
    sink: SmtpSink,
    /// The benchmark's own varsel (API, dispatcher and, without `--workers`, a worker) until
    /// stopped.
    in_process: tokio::sync::Mutex<Option<InProcess>>,
}

struct InProcess {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Bench {
    /// Stops the benchmark's own varsel, if it still runs.
    async fn stop_in_process(&self) {
        if let Some(app) = self.in_process.lock().await.take() {
            let _ = app.stop.send(());
            let _ = tokio::time::timeout(Duration::from_secs(20), app.task).await;
        }
    }
}

pub(crate) fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:32} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

/// Runs `op(n)` for every `n` in `0..total` from `workers` concurrent tasks; the outputs in `n`
/// order.
async fn fan_out<T, F, Fut>(workers: usize, total: u64, op: F) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..workers.max(1) {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return anyhow::Ok(out);
                }
                out.push((n, op(n).await?));
            }
        }));
    }
    let mut all = Vec::with_capacity(total as usize);
    for t in tasks {
        all.extend(t.await??);
    }
    all.sort_by_key(|(n, _)| *n);
    Ok(all.into_iter().map(|(_, t)| t).collect())
}

/// One baseline message to `to`, straight through lettre.
async fn baseline_send(mailer: &Mailer, to: String) -> anyhow::Result<()> {
    let mail = OutgoingEmail {
        notification_id: uuid::Uuid::new_v4().to_string(),
        from: None,
        to,
        subject: "Bench".into(),
        body: "A benchmark message.".into(),
        content_type: Default::default(),
        attachments: Vec::new(),
    };
    mailer.send(mail).await.map(drop).map_err(|e| anyhow::anyhow!("baseline send: {e:?}"))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

impl Bench {
    /// Runs `op` from `clients` tasks for `secs`; returns (operations, elapsed, latencies).
    async fn closed_loop<F, Fut>(
        &self,
        what: &str,
        secs: u64,
        op: F,
    ) -> anyhow::Result<(u64, Duration, Vec<Duration>)>
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
    {
        let op = Arc::new(op);
        let counter = Arc::new(AtomicU64::new(0));
        let pb = bar(secs, what);
        let start = Instant::now();
        let deadline = start + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for _ in 0..self.opts.clients {
            let (op, counter) = (op.clone(), counter.clone());
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                while Instant::now() < deadline {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    op(n).await?;
                    lat.push(t.elapsed());
                }
                anyhow::Ok(lat)
            }));
        }
        let ticker = {
            let pb = pb.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    pb.set_position(start.elapsed().as_secs().min(secs));
                }
            })
        };
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await??);
        }
        let elapsed = start.elapsed();
        ticker.abort();
        pb.finish_and_clear();
        lat.sort();
        Ok((lat.len() as u64, elapsed, lat))
    }

    /// Issues `op` at a fixed rate for `secs`, each in its own task; returns the latencies.
    async fn open_loop<F, Fut>(
        &self,
        what: &str,
        rate: f64,
        secs: u64,
        op: F,
    ) -> anyhow::Result<Vec<Duration>>
    where
        F: Fn(u64) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let total = (rate * secs as f64).max(1.0) as u64;
        let pb = bar(total, what);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = Vec::new();
        for n in 0..total {
            tick.tick().await;
            let fut = op(n);
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                fut.await?;
                anyhow::Ok(t.elapsed())
            }));
            pb.inc(1);
        }
        let mut lat = Vec::new();
        for t in tasks {
            lat.push(t.await??);
        }
        pb.finish_and_clear();
        lat.sort();
        Ok(lat)
    }

    async fn accept(&self) -> anyhow::Result<Vec<Figure>> {
        let secs = self.opts.accept_secs;
        // Baseline: a bare client starting a no-op workflow (run by the baseline worker, as an
        // order's first workflow task is run by the order worker).
        let client = self.client.clone();
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let (raw_n, raw_elapsed, _) = self
            .closed_loop("baseline: raw workflow starts", secs, move |n| {
                let client = client.clone();
                let id = format!("bench-noop-{run_id}-{n}");
                async move {
                    let opts = WorkflowStartOptions::new(BASELINE_QUEUE, id).build();
                    client
                        .start_workflow(NoopWorkflow::run, BenchInput { n: n as u32 }, opts)
                        .await?;
                    Ok(())
                }
            })
            .await?;
        let raw_rate = raw_n as f64 / raw_elapsed.as_secs_f64();

        self.drain().await?;

        // varsel: POST /orders (send time next week, so only acceptance is measured). The order
        // is stored and answered at once; its workflow starts in the background, so the
        // sustained rate is counted until every accepted order's workflow has started.
        let me = self.ctx.clone();
        let m = me.clone();
        let started = Instant::now();
        let (n, elapsed, lat) = self
            .closed_loop("accept: POST /orders", secs, move |n| {
                let m = m.clone();
                async move { m.post("/orders", &m.order_body(n, true)).await.map(|_| ()) }
            })
            .await?;
        let http_rate = n as f64 / elapsed.as_secs_f64();
        self.wait_started().await?;
        let rate = n as f64 / started.elapsed().as_secs_f64();
        self.drain().await?;
        let half = rate / 2.0;
        let m = me.clone();
        let half_lat = self
            .open_loop("accept: at half the highest rate", half, secs, move |n| {
                let m = m.clone();
                async move { m.post("/orders", &m.order_body(1_000_000 + n, true)).await.map(|_| ()) }
            })
            .await?;
        self.drain().await?;
        let p99_half = percentile(&half_lat, 0.99);
        Ok(vec![
            Figure::ratio(
                "accept: sustained orders/s (accepted and started)",
                rate,
                raw_rate,
                "orders/s vs starts/s",
                0.8,
            ),
            Figure::plain("accept: orders/s answered 202", http_rate, "orders/s", "", None),
            Figure::plain("accept: p50 at the highest rate", percentile(&lat, 0.5), "ms", "", None),
            Figure::plain(
                "accept: p99 at the highest rate",
                percentile(&lat, 0.99),
                "ms",
                "",
                None,
            ),
            Figure::plain(
                &format!("accept: p50 at half ({half:.0}/s)"),
                percentile(&half_lat, 0.5),
                "ms",
                "",
                None,
            ),
            Figure::plain(
                &format!("accept: p99 at half ({half:.0}/s)"),
                p99_half,
                "ms",
                "<= 50 ms",
                Some(p99_half <= 50.0),
            ),
        ])
    }

    /// The load run: finds the highest sustained accept rate (orders accepted and their
    /// workflows started), then offers 80% of it, open loop, for `load_secs` with orders sent at
    /// once, and waits until every accepted order has reached its final status. Every answer
    /// other than 202 counts as an error.
    async fn load(&self) -> anyhow::Result<Vec<Figure>> {
        let probe_secs = self.opts.accept_secs;
        let m = self.ctx.clone();
        let started = Instant::now();
        let (n, _, _) = self
            .closed_loop("load: probing the highest accept rate", probe_secs, move |n| {
                let m = m.clone();
                async move { m.post("/orders", &m.order_body(3_000_000 + n, true)).await.map(|_| ()) }
            })
            .await?;
        self.wait_started().await?;
        let highest = n as f64 / started.elapsed().as_secs_f64();
        self.drain().await?;

        let rate = highest * 0.8;
        let secs = self.opts.load_secs;
        let ids = Arc::new(std::sync::Mutex::new(Vec::new()));
        let errors = Arc::new(AtomicU64::new(0));
        let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
        let (m, ids2, errors2, first2) =
            (self.ctx.clone(), ids.clone(), errors.clone(), first_error.clone());
        let lat = self
            .open_loop(&format!("load: {rate:.0} orders/s for {secs} s"), rate, secs, move |n| {
                let (m, ids, errors, first) =
                    (m.clone(), ids2.clone(), errors2.clone(), first2.clone());
                async move {
                    match m.post("/orders", &m.order_body(4_000_000 + n, false)).await {
                        Ok(id) => ids.lock().expect("ids").push(id),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first.lock().expect("first error").get_or_insert(e.to_string());
                        }
                    }
                    Ok(())
                }
            })
            .await?;
        let offered_until = Instant::now();
        let ids = std::mem::take(&mut *ids.lock().expect("ids"));
        let errors = errors.load(Ordering::Relaxed);
        if let Some(e) = first_error.lock().expect("first error").take() {
            eprintln!("load: first error: {e}");
        }
        let pb = bar(ids.len() as u64, "load: orders reaching their final status");
        let all_final = !ids.is_empty()
            && self.wait_completed(&ids, &pb, Duration::from_secs(3600)).await.is_ok();
        pb.finish_and_clear();
        let drained = offered_until.elapsed().as_secs_f64();
        let done = queries::count_orders_with_status(&self.store, &ids, "Completed").await? as f64;
        Ok(vec![
            Figure::plain("load: highest sustained accept rate", highest, "orders/s", "", None),
            Figure::plain("load: offered (80% of it)", rate, "orders/s", "", None),
            Figure::plain("load: orders accepted", ids.len() as f64, "orders", "", None),
            Figure::plain(
                "load: errors (answers other than 202)",
                errors as f64,
                "answers",
                "0",
                Some(errors == 0),
            ),
            Figure::plain("load: p99 answer time", percentile(&lat, 0.99), "ms", "", None),
            Figure::plain(
                "load: accepted orders Completed",
                done,
                "orders",
                "all",
                Some(all_final && done as usize == ids.len()),
            ),
            Figure::plain("load: from the last POST until all Completed", drained, "s", "", None),
        ])
    }

    /// Waits until every accepted order's workflow has started.
    async fn wait_started(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !self.store.orders_pending_start(1).await?.is_empty() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "accepted orders' workflows did not start within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Waits until both workers have caught up with what the previous phase queued: a no-op
    /// baseline workflow and an order sent now are queued behind it, and awaited.
    async fn drain(&self) -> anyhow::Result<()> {
        let opts = WorkflowStartOptions::new(
            BASELINE_QUEUE,
            format!("bench-drain-{}", uuid::Uuid::new_v4().simple()),
        )
        .build();
        let handle =
            self.client.start_workflow(NoopWorkflow::run, BenchInput { n: 0 }, opts).await?;
        handle.get_result(WorkflowGetResultOptions::default()).await?;
        let id = self.ctx.post("/orders", &self.ctx.order_body(u64::MAX, false)).await?;
        let pb = ProgressBar::hidden();
        self.wait_completed(std::slice::from_ref(&id), &pb, Duration::from_secs(600)).await?;
        Ok(())
    }

    async fn small_orders(&self) -> anyhow::Result<Vec<Figure>> {
        let total = self.opts.small_orders as u64;
        let clients = self.opts.clients;
        // Baseline: the trivial one-activity workflow, started and awaited the same way.
        let pb = bar(total, "baseline: one-activity workflows");
        let run_id = uuid::Uuid::new_v4().simple().to_string();
        let start = Instant::now();
        let client = self.client.clone();
        let handles = fan_out(clients, total, move |n| {
            let (client, id) = (client.clone(), format!("bench-one-{run_id}-{n}"));
            async move {
                let opts = WorkflowStartOptions::new(BASELINE_QUEUE, id).build();
                Ok(client
                    .start_workflow(OneActivityWorkflow::run, BenchInput { n: n as u32 }, opts)
                    .await?)
            }
        })
        .await?;
        let handles = Arc::new(handles);
        let pb2 = pb.clone();
        fan_out(clients, total, move |n| {
            let (handles, pb) = (handles.clone(), pb2.clone());
            async move {
                handles[n as usize].get_result(WorkflowGetResultOptions::default()).await?;
                pb.inc(1);
                Ok(())
            }
        })
        .await?;
        let raw_rate = total as f64 / start.elapsed().as_secs_f64();
        pb.finish_and_clear();
        self.drain().await?;

        // varsel: single-recipient email orders, POST to Completed.
        let pb = bar(total, "small orders: POST to Completed");
        let me = self.ctx.clone();
        let ids = fan_out(clients, total, move |n| {
            let me = me.clone();
            async move { me.post("/orders", &me.order_body(2_000_000 + n, false)).await }
        })
        .await?;
        let elapsed = self.wait_completed(&ids, &pb, Duration::from_secs(600)).await?;
        pb.finish_and_clear();
        let rate = total as f64 / elapsed.as_secs_f64();
        Ok(vec![Figure::ratio(
            "small orders: POST to Completed, orders/s",
            rate,
            raw_rate,
            "orders/s vs workflows/s",
            0.5,
        )])
    }

    /// Waits until every order is `Completed`; returns the time since `start` of the wait's caller
    /// (measured from the first order's creation in the database).
    async fn wait_completed(
        &self,
        ids: &[String],
        pb: &ProgressBar,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + timeout;
        let first_created = self
            .store
            .order(&ids[0])
            .await?
            .map(|o| o.order.created)
            .unwrap_or_else(chrono::Utc::now);
        loop {
            let done = queries::count_orders_with_status(&self.store, ids, "Completed").await?;
            pb.set_position(done);
            if done as usize == ids.len() {
                let last = queries::last_status_change(&self.store, ids)
                    .await?
                    .unwrap_or_else(chrono::Utc::now);
                return Ok((last - first_created).to_std().unwrap_or_default());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} of {} orders completed in {timeout:?}",
                done,
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// lettre's pooled transport to the sink, as the worker's mailer is configured: the
    /// baseline of the bulk and instant phases.
    fn baseline_mailer(&self) -> anyhow::Result<Arc<Mailer>> {
        Ok(Arc::new(Mailer::new(&EmailSettings {
            smtp_url: Some(self.cfg.email.smtp_url.clone()),
            default_from: self.cfg.email.from.clone(),
            outbox_dir: self.cfg.data_dir.join("baseline-outbox"),
            pool_size: self.cfg.email.smtp_pool_size,
            timeout: Duration::from_secs(self.cfg.email.smtp_timeout_secs),
            bounces: None,
            dsn_notify: false,
            max_message_bytes: self.cfg.email.max_message_bytes,
        })?))
    }

    /// Instant emails (`POST /future/orders/instant/email`, answered once the relay took the
    /// message) against the same sends straight through lettre's pool to the same sink, from
    /// the same number of clients for the same time.
    async fn instant(&self) -> anyhow::Result<Vec<Figure>> {
        let secs = self.opts.accept_secs;
        let mailer = self.baseline_mailer()?;
        let (raw_n, raw_elapsed, raw_lat) = self
            .closed_loop("baseline: lettre sends to the sink", secs, move |n| {
                let mailer = mailer.clone();
                async move {
                    baseline_send(&mailer, format!("instant-base-{n}@bench.example")).await?;
                    Ok(())
                }
            })
            .await?;
        let run = uuid::Uuid::new_v4().simple().to_string();
        let me = self.ctx.clone();
        let (n, elapsed, lat) = self
            .closed_loop("instant: POST /future/orders/instant/email", secs, move |n| {
                let me = me.clone();
                let body = json!({
                    "idempotencyId": format!("bench-{run}-{n}"),
                    "recipientEmail": {"emailAddress": format!("instant-{n}@bench.example"), "emailSettings": {"subject": "Bench", "body": "A benchmark message."}},
                });
                async move {
                    let resp = me.http.post(format!("{}/future/orders/instant/email", me.base)).bearer_auth(&me.token).json(&body).send().await?;
                    anyhow::ensure!(resp.status() == 201, "instant email: {} {}", resp.status(), resp.text().await.unwrap_or_default());
                    Ok(())
                }
            })
            .await?;
        let raw_rate = raw_n as f64 / raw_elapsed.as_secs_f64();
        let rate = n as f64 / elapsed.as_secs_f64();
        Ok(vec![
            // No target yet: each answer holds two database transactions and a workflow start
            // besides the send, and this figure is the first measurement of them.
            Figure {
                target: "measured".into(),
                met: None,
                ..Figure::ratio(
                    "instant: emails/s answered 201 (sent and stored)",
                    rate,
                    raw_rate,
                    "messages/s",
                    0.0,
                )
            },
            Figure::plain(
                "instant: p50",
                percentile(&lat, 0.5),
                "ms",
                &format!("baseline p50 {:.1} ms", percentile(&raw_lat, 0.5)),
                None,
            ),
            Figure::plain(
                "instant: p99",
                percentile(&lat, 0.99),
                "ms",
                &format!("baseline p99 {:.1} ms", percentile(&raw_lat, 0.99)),
                None,
            ),
        ])
    }

    async fn bulk(&self) -> anyhow::Result<Vec<Figure>> {
        let n = self.opts.recipients as usize;
        // Baseline: lettre's pooled SMTP sending the same messages to the same sink, with as many
        // concurrent sends as the worker's pool allows.
        let mailer = self.baseline_mailer()?;
        let pb = bar(n as u64, "baseline: lettre to the sink");
        let before = self.sink.received();
        let start = Instant::now();
        let pb2 = pb.clone();
        fan_out(self.cfg.processing.send_concurrency.max(1), n as u64, move |i| {
            let (mailer, pb) = (mailer.clone(), pb2.clone());
            async move {
                baseline_send(&mailer, format!("bulk-{i}@bench.example")).await?;
                pb.inc(1);
                Ok(())
            }
        })
        .await?;
        let raw_rate = n as f64 / start.elapsed().as_secs_f64();
        pb.finish_and_clear();
        anyhow::ensure!(
            self.sink.received() - before == n as u64,
            "the sink did not receive every baseline message"
        );

        // varsel: one order, a tenth of its recipients persons and organisations from the
        // contact register, the rest plain addresses.
        let pb = bar(0, "bulk: seeding the contact register");
        let recipients = seed_bulk_recipients(&self.store, n).await?;
        pb.finish_and_clear();
        let body = json!({
            "notificationChannel": "Email",
            "emailTemplate": {"subject": "Bench $recipientName$", "body": "A benchmark message."},
            "recipients": recipients,
        });
        let pb = bar(n as u64, "bulk: POST to Completed");
        let before = self.sink.received();
        let start = Instant::now();
        let id = self.ctx.post("/orders", &body).await?;
        let accepted = start.elapsed();
        let deadline = Instant::now() + Duration::from_secs(3600);
        loop {
            pb.set_position(self.sink.received() - before);
            if queries::count_orders_with_status(
                &self.store,
                std::slice::from_ref(&id),
                "Completed",
            )
            .await?
                == 1
            {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the bulk order did not complete in an hour"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let elapsed = start.elapsed();
        pb.finish_and_clear();
        let sent = self.sink.received() - before;
        anyhow::ensure!(sent == n as u64, "the sink received {sent} of {n} bulk messages");
        let rate = n as f64 / elapsed.as_secs_f64();
        Ok(vec![
            Figure::plain(
                &format!("bulk: POST of {n} recipients accepted in"),
                accepted.as_secs_f64() * 1000.0,
                "ms",
                "",
                None,
            ),
            Figure::ratio(
                &format!("bulk: {n} recipients, POST to Completed, notifications/s"),
                rate,
                raw_rate,
                "notifications/s vs emails/s",
                0.5,
            ),
            Figure::plain(
                "bulk: notifications/s",
                rate,
                "notifications/s",
                ">= 2000",
                Some(rate >= 2000.0),
            ),
        ])
    }
}

/// What request tasks need.
pub(crate) struct TaskCtx {
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
}

impl TaskCtx {
    pub(crate) async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<String> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = resp.status();
        let v: serde_json::Value = resp.json().await?;
        if status != 202 {
            anyhow::bail!("POST {path}: {status} {v}");
        }
        Ok(v["orderId"].as_str().unwrap_or_default().to_owned())
    }

    fn order_body(&self, n: u64, send_later: bool) -> serde_json::Value {
        let mut body = json!({
            "notificationChannel": "Email",
            "emailTemplate": {"subject": "Bench", "body": "A benchmark message."},
            "recipients": [{"emailAddress": format!("small-{n}@bench.example")}],
        });
        if send_later {
            body["requestedSendTime"] =
                json!((chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339());
        }
        body
    }
}

/// Recipients of a large order: every tenth a person or an organisation seeded into the contact
/// register (a person with an email address, an organisation with one), the rest plain
/// addresses. The numbers are synthetic and never collide with real ones' test data.
pub async fn seed_bulk_recipients(
    store: &Store,
    n: usize,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut persons = Vec::new();
    let mut recipients = Vec::with_capacity(n);
    for i in 0..n {
        if i % 20 == 0 {
            let nin = format!("{:011}", 70_000_000_000u64 + i as u64);
            persons.push((
                nin.clone(),
                PersonContact {
                    name: Some(format!("Person {i}")),
                    email: Some(format!("person-{i}@bench.example")),
                    mobile: None,
                    reserved: false,
                    updated_at: None,
                },
            ));
            recipients.push(json!({"nationalIdentityNumber": nin}));
        } else if i % 20 == 10 {
            let org = format!("{:09}", 800_000_000u64 + i as u64);
            store
                .upsert_organization(
                    &org,
                    &OrgContact {
                        name: Some(format!("Org {i}")),
                        emails: vec![format!("org-{i}@bench.example")],
                        mobiles: vec![],
                    },
                )
                .await?;
            recipients.push(json!({"organizationNumber": org}));
        } else {
            recipients.push(json!({"emailAddress": format!("plain-{i}@bench.example")}));
        }
    }
    store.upsert_persons(&persons).await?;
    Ok(recipients)
}

fn print_table(figures: &[Figure]) {
    println!(
        "\n{:<58} {:>12} {:>12} {:>7}  {:<10} target",
        "figure", "varsel", "baseline", "ratio", "unit"
    );
    for f in figures {
        let baseline = f.baseline.map(|b| format!("{b:.1}")).unwrap_or_default();
        let ratio = f.ratio.map(|r| format!("{r:.2}")).unwrap_or_default();
        let met = match f.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        println!(
            "{:<58} {:>12.1} {:>12} {:>7}  {:<10} {} {}",
            f.name,
            f.value,
            baseline,
            ratio,
            f.unit.split(' ').next().unwrap_or(""),
            f.target,
            met
        );
    }
}

/// A worker for the baseline workflows, with the order worker's default settings.
struct BaselineWorker {
    shutdown: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BaselineWorker {
    fn spawn(cfg: Config) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let run = async {
                    let client = varsel_api::temporal::connect(&cfg).await?;
                    let runtime = Runtime::from_current_tokio(Default::default())?;
                    let opts = WorkerOptions::new(BASELINE_QUEUE)
                        .register_workflow::<NoopWorkflow>()?
                        .register_workflow::<OneActivityWorkflow>()?
                        .register_activities(BenchActivitiesImpl)
                        .build();
                    let mut worker = Worker::new(&runtime, client, opts)?;
                    let shutdown = worker.shutdown_handle();
                    let handle = tokio::runtime::Handle::current();
                    std::thread::spawn(move || {
                        let _ = rx.recv();
                        let _guard = handle.enter();
                        shutdown();
                    });
                    worker.run().await?;
                    anyhow::Ok(())
                };
                if let Err(e) = run.await {
                    eprintln!("baseline worker stopped: {e:#}");
                }
            });
        });
        Self { shutdown: tx, thread: Some(thread) }
    }

    fn stop(mut self) {
        let _ = self.shutdown.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An SMTP server that accepts every message and discards it, counting: the bulk phase's
/// destination for both varsel and the baseline. It runs on its own thread and runtime, as a
/// separate relay would.
pub struct SmtpSink {
    /// Its port on 127.0.0.1.
    pub port: u16,
    received: Arc<AtomicU64>,
}

impl SmtpSink {
    /// Starts the sink; it answers each message at once.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with_delay(Duration::ZERO)
    }

    /// Starts a sink that answers each message `delay` after it arrived, as a relay that
    /// stores a message before it answers does (sessions wait in parallel).
    pub fn start_with_delay(delay: Duration) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        std::thread::Builder::new().name("smtp-sink".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(sink_session(stream, counter.clone(), delay));
                }
            });
        })?;
        Ok(Self { port, received })
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

async fn sink_session(
    stream: tokio::net::TcpStream,
    counter: Arc<AtomicU64>,
    delay: Duration,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    stream.set_nodelay(true)?;
    let fd = stream.as_raw_fd();
    // lettre writes a message and its closing "\r\n.\r\n" in two writes; with Nagle on the
    // client and delayed ACKs here, each message would wait ~40 ms for an ACK. A relay that
    // acknowledges at once (as busy ones effectively do) is what the sink plays.
    let quickack = move || {
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd owned by this session; the option value outlives the call.
        #[allow(unsafe_code)]
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    };
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut line = String::new();
    let mut in_data = false;
    loop {
        line.clear();
        quickack();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if in_data {
            if line == ".\r\n" || line == ".\n" {
                in_data = false;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                counter.fetch_add(1, Ordering::Relaxed);
                w.write_all(b"250 2.0.0 queued\r\n").await?;
            }
            continue;
        }
        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 2.0.0 ok\r\n",
            "DATA" => {
                in_data = true;
                b"354 go ahead\r\n"
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 not implemented\r\n",
        };
        w.write_all(reply).await?;
    }
}
