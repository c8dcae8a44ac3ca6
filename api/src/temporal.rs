//! The bridge to Temporal: client connection, the workflow dispatcher (a transactional outbox:
//! every stored order gets its workflow, even when Temporal was down when it arrived), and the
//! worker thread.

use crate::config::Config;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowCancelOptions,
    WorkflowIdReusePolicy, WorkflowSignalOptions, WorkflowStartOptions, errors::WorkflowStartError,
};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio::sync::Mutex;
use varsel_activities::store::ORDER_TYPE_INSTANT;
use varsel_activities::{OrderActivitiesImpl, Store};
use varsel_workflows::domain::{Channel, NotificationChannel};
use varsel_workflows::workflow::Resume;
use varsel_workflows::{OrderWorkflow, OrderWorkflowInput, WorkflowPolicy};

/// Connects a Temporal client.
pub async fn connect(cfg: &Config) -> anyhow::Result<Client> {
    let url = Url::from_str(&cfg.temporal_address)?;
    let connection = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(ConnectionOptions::new(url).build()),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("timed out connecting to Temporal at {}", cfg.temporal_address)
    })??;
    Ok(Client::new(connection, ClientOptions::new(cfg.temporal_namespace.clone()).build())?)
}

/// The workflow tunables derived from configuration.
pub fn policy(cfg: &Config) -> WorkflowPolicy {
    WorkflowPolicy {
        generate_batch: cfg.generate_batch,
        send_batch: cfg.send_batch,
        condition_attempts: cfg.condition_attempts,
        condition_retry_ms: cfg.condition_retry_ms,
        max_retry_interval_ms: cfg.max_retry_interval_ms,
        max_batches_per_run: cfg.max_batches_per_run,
        // Validated at start-up (Application::build).
        sms_window: cfg.sms_window().ok().flatten(),
    }
}

/// Starts order workflows, now or, when Temporal is unreachable, later.
pub struct Dispatcher {
    cfg: Arc<Config>,
    store: Store,
    client: Mutex<Option<Client>>,
    /// Starts in flight from accepted requests; beyond this the outbox loop takes over.
    starting: Arc<tokio::sync::Semaphore>,
}

/// Workflow starts in flight at once from accepted requests.
const STARTS_IN_FLIGHT: usize = 64;

impl Dispatcher {
    /// A dispatcher that connects on first use.
    pub fn new(cfg: Arc<Config>, store: Store) -> Self {
        Self {
            cfg,
            store,
            client: Mutex::new(None),
            starting: Arc::new(tokio::sync::Semaphore::new(STARTS_IN_FLIGHT)),
        }
    }

    /// The Temporal client, connecting on first use.
    pub async fn client(&self) -> anyhow::Result<Client> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = connect(&self.cfg).await?;
        *guard = Some(c.clone());
        Ok(c)
    }

    /// Starts one order's workflow. "Already started" is success: the workflow id is the order
    /// id and duplicates are rejected, so a retry can never run an order twice.
    pub async fn start(&self, order_id: &str, send_time_ms: i64) -> anyhow::Result<()> {
        let client = self.client().await?;
        // Cancelled before its workflow started (the start is asynchronous): nothing to run.
        let order = self.store.order(order_id).await?;
        if let Some(o) = &order
            && o.status == varsel_workflows::domain::OrderStatus::Cancelled.as_str()
        {
            self.store.mark_workflow_started(order_id).await?;
            return Ok(());
        }
        let mut policy = policy(&self.cfg);
        // `sendingTimePolicy: Anytime` (newer API): no waiting for the SMS window.
        if order.as_ref().is_some_and(|o| o.sms_anytime) {
            policy.sms_window = None;
        }
        // An instant message was sent by its request: its run only settles it (reports and
        // time-to-live), starting where a continued run's sending would.
        let resume = order
            .as_ref()
            .filter(|o| o.order_type.as_deref() == Some(ORDER_TYPE_INSTANT))
            .map(|o| Resume::Send {
                channel: if o.notification_channel == NotificationChannel::Sms.as_str() {
                    Channel::Sms
                } else {
                    Channel::Email
                },
            });
        let input = OrderWorkflowInput {
            order_id: order_id.to_owned(),
            requested_send_time_ms: send_time_ms,
            policy,
            resume,
            condition_inconclusive: false,
        };
        let opts = WorkflowStartOptions::new(self.cfg.task_queue.clone(), order_id.to_owned())
            .id_reuse_policy(WorkflowIdReusePolicy::RejectDuplicate)
            .build();
        let started = tokio::time::timeout(
            Duration::from_secs(10),
            client.start_workflow(OrderWorkflow::run, input, opts),
        )
        .await;
        match started {
            Ok(Ok(_)) | Ok(Err(WorkflowStartError::AlreadyStarted { .. })) => {}
            Ok(Err(e)) => {
                // Drop the cached connection so the next attempt reconnects.
                *self.client.lock().await = None;
                return Err(e.into());
            }
            Err(_) => {
                *self.client.lock().await = None;
                anyhow::bail!("timed out starting the workflow");
            }
        }
        self.store.mark_workflow_started(order_id).await?;
        Ok(())
    }

    /// Starts a redrive run of a finished order: its notifications that failed without reaching
    /// a provider are sent again; nothing sent or delivered is. Refused while the order's
    /// workflow runs, when the order is not completed, or when nothing qualifies.
    pub async fn redrive(&self, order_id: &str) -> Result<u64, RedriveRefusal> {
        let order = self
            .store
            .order(order_id)
            .await
            .map_err(|e| RedriveRefusal::Unavailable(e.to_string()))?
            .ok_or(RedriveRefusal::NotFound)?;
        let client = self.client().await.map_err(|e| RedriveRefusal::Unavailable(e.to_string()))?;
        let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
        let is_running = || async {
            handle
                .describe(Default::default())
                .await
                .map(|d| d.status() == temporalio_client::WorkflowExecutionStatus::Running)
                .unwrap_or(false)
        };
        let mut running = is_running().await;
        if running && order.status == varsel_workflows::domain::OrderStatus::Completed.as_str() {
            // The order is completed and its workflow is returning: give it a moment to close.
            let _ =
                tokio::time::timeout(Duration::from_secs(5), handle.get_result(Default::default()))
                    .await;
            running = is_running().await;
        }
        if running || order.status != varsel_workflows::domain::OrderStatus::Completed.as_str() {
            return Err(RedriveRefusal::Conflict(format!(
                "The order is {} and its workflow is {}: only completed orders can be redriven.",
                order.status,
                if running { "still running" } else { "closed" }
            )));
        }
        let n = self
            .store
            .count_redrivable(order_id)
            .await
            .map_err(|e| RedriveRefusal::Unavailable(e.to_string()))?;
        if n == 0 {
            return Err(RedriveRefusal::Conflict("No notification of the order failed before reaching a provider; nothing to redrive.".into()));
        }
        let input = OrderWorkflowInput {
            order_id: order_id.to_owned(),
            requested_send_time_ms: order.requested_send_time.timestamp_millis(),
            policy: policy(&self.cfg),
            resume: Some(varsel_workflows::workflow::Resume::Redrive),
            condition_inconclusive: false,
        };
        // The same workflow id, as a new run: the order's timeline shows it after the first.
        let opts = WorkflowStartOptions::new(self.cfg.task_queue.clone(), order_id.to_owned())
            .id_reuse_policy(WorkflowIdReusePolicy::AllowDuplicate)
            .build();
        match client.start_workflow(OrderWorkflow::run, input, opts).await {
            Ok(_) => {
                tracing::info!(order_id, notifications = n, "redrive started");
                Ok(n)
            }
            Err(WorkflowStartError::AlreadyStarted { .. }) => {
                Err(RedriveRefusal::Conflict("A run of the order started meanwhile.".into()))
            }
            Err(e) => Err(RedriveRefusal::Unavailable(e.to_string())),
        }
    }

    /// Asks an order's workflow to stop (best effort: a workflow that misses this finds its
    /// order cancelled in the store and sends nothing).
    pub async fn cancel(&self, order_id: &str) {
        let result = async {
            let client = self.client().await?;
            let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
            tokio::time::timeout(
                Duration::from_secs(10),
                handle.cancel(
                    WorkflowCancelOptions::builder()
                        .reason("order cancelled by its creator")
                        .build(),
                ),
            )
            .await??;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(order_id, error = %e, "could not cancel the order's workflow now; it will stop at its send time");
        }
    }

    /// Tells an order's workflow that every notification may be final (best effort: the
    /// time-to-live timer settles the order if this is lost).
    pub async fn signal_reports_final(&self, order_id: &str) {
        let result = async {
            let client = self.client().await?;
            let handle = client.get_workflow_handle::<OrderWorkflow>(order_id);
            tokio::time::timeout(
                Duration::from_secs(10),
                handle.signal(OrderWorkflow::reports_final, (), WorkflowSignalOptions::default()),
            )
            .await??;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(order_id, error = %e, "could not signal the order's workflow; it settles at the next time-to-live");
        }
    }

    /// Starts the workflow of a just-stored order; on failure the order waits for the loop.
    /// Starts a just-accepted order's workflow in the background: the order is stored, so the
    /// request need not wait for Temporal (the accept latency is the database's). Beyond
    /// `STARTS_IN_FLIGHT` concurrent starts, or when the start fails, the outbox loop starts it.
    pub fn start_soon(self: &Arc<Self>, order_id: String, send_time_ms: i64) {
        let Ok(permit) = self.starting.clone().try_acquire_owned() else {
            tracing::debug!(
                order_id,
                "many starts in flight; the dispatcher loop will start this order's workflow"
            );
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.start(&order_id, send_time_ms).await {
                tracing::warn!(order_id, error = %e, "could not start the order's workflow now; it is stored and will be started when Temporal is reachable");
            }
            drop(permit);
        });
    }

    /// Retries orders whose workflow has not been started, until the process stops.
    pub async fn run(self: Arc<Self>) {
        let interval = Duration::from_millis(self.cfg.dispatch_interval_ms.max(100));
        let mut backlog = false;
        let mut next_prune = std::time::Instant::now();
        loop {
            // Status-feed retention, once an hour.
            if std::time::Instant::now() >= next_prune {
                next_prune = std::time::Instant::now() + Duration::from_secs(3600);
                let before = chrono::Utc::now()
                    - chrono::Duration::days(self.cfg.status_feed_retention_days as i64);
                match self.store.prune_status_feed(before).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        entries = n,
                        "status feed entries past their retention deleted"
                    ),
                    Err(e) => tracing::warn!(error = %e, "status feed retention could not run"),
                }
            }
            // A full page means a backlog: go on at once; otherwise wait for the next round.
            if !backlog {
                tokio::time::sleep(interval).await;
            }
            let pending = match self.store.orders_pending_start(200).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "dispatcher cannot read pending orders");
                    continue;
                }
            };
            // Skip orders accepted a moment ago: their request is still starting them.
            let cutoff =
                chrono::Utc::now() - chrono::Duration::milliseconds(interval.as_millis() as i64);
            // An instant message's request starts it once the provider answered; only when that
            // request is gone (the process died mid-send) does the loop take over.
            let instant_cutoff = chrono::Utc::now() - self.cfg.instant_grace();
            let due: Vec<_> = pending
                .into_iter()
                .filter(|o| o.created < cutoff)
                .filter(|o| {
                    o.order_type.as_deref() != Some(ORDER_TYPE_INSTANT)
                        || o.created < instant_cutoff
                })
                .collect();
            backlog = due.len() == 200;
            // A backlog (a burst beyond the in-flight starts, or Temporal back after an outage)
            // is started several at a time; the first failure ends this round.
            use futures::StreamExt;
            let mut starts =
                futures::stream::iter(due.into_iter().map(|o| {
                    let this = self.clone();
                    async move {
                        (this.start(&o.id, o.requested_send_time.timestamp_millis()).await, o.id)
                    }
                }))
                .buffer_unordered(16);
            while let Some((result, order_id)) = starts.next().await {
                match result {
                    Ok(()) => tracing::info!(order_id, "started a deferred order workflow"),
                    Err(e) => {
                        tracing::debug!(order_id, error = %e, "Temporal still unreachable");
                        backlog = false;
                        break;
                    }
                }
            }
        }
    }
}

/// Why a redrive did not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedriveRefusal {
    /// No such order.
    #[error("no such order")]
    NotFound,
    /// The order is running, not completed, or has nothing to redrive.
    #[error("{0}")]
    Conflict(String),
    /// The database or Temporal is unreachable.
    #[error("{0}")]
    Unavailable(String),
}

/// A running worker thread.
pub struct WorkerHandle {
    shutdown: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The Temporal SDK's worker metrics (task slots, poll latency, workflow and activity task
/// outcomes, sticky cache), exported by the SDK's Prometheus exporter on a private loopback port
/// and appended by varsel's own `/metrics`, so that operators scrape one endpoint per process.
#[derive(Clone, Default)]
pub struct SdkMetrics {
    addr: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
    http: reqwest::Client,
}

impl SdkMetrics {
    /// The SDK's metrics in Prometheus text format; empty when the exporter is not (yet) up.
    pub async fn text(&self) -> String {
        let Some(addr) = self.addr.get() else { return String::new() };
        let fetch = async {
            let resp = self
                .http
                .get(format!("http://{addr}/metrics"))
                .timeout(Duration::from_secs(2))
                .send()
                .await?;
            resp.error_for_status()?.text().await
        };
        match fetch.await {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, "Temporal SDK metrics unavailable for this scrape");
                String::new()
            }
        }
    }

    /// Starts the SDK's exporter on a loopback port (on the current Tokio runtime) and returns the
    /// meter to give the worker's runtime.
    fn start(&self) -> Option<Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>> {
        use temporalio_common::telemetry::{
            PrometheusExporterOptions, start_prometheus_metric_exporter,
        };
        let opts = PrometheusExporterOptions::builder()
            .socket_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
            .use_seconds_for_durations(true)
            .counters_total_suffix(true)
            .build();
        match start_prometheus_metric_exporter(opts) {
            Ok(started) => {
                let _ = self.addr.set(started.bound_addr);
                Some(started.meter)
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not start the Temporal SDK metrics exporter; /metrics will lack the worker's SDK metrics");
                None
            }
        }
    }
}

impl WorkerHandle {
    /// Asks the worker to stop and waits for it.
    pub fn stop(mut self) {
        let _ = self.shutdown.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs the order worker on its own thread and runtime (`Worker::run` is not `Send`), until
/// stopped. Reconnects while Temporal is unreachable.
/// The SDK's worker metrics are exported through `sdk_metrics`.
pub fn spawn_worker(
    cfg: Arc<Config>,
    activities: OrderActivitiesImpl,
    exporter: SdkMetrics,
) -> WorkerHandle {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("varsel-worker".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("varsel-worker-rt")
                .build()
                .expect("worker runtime");
            let activities = Arc::new(activities);
            rt.block_on(async move {
                let rx = Arc::new(std::sync::Mutex::new(rx));
                let meter = exporter.start();
                loop {
                    match run_worker_once(&cfg, activities.clone(), rx.clone(), meter.clone()).await
                    {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "worker stopped; restarting in 2 s"),
                    }
                    if rx.lock().map(|r| r.try_recv().is_ok()).unwrap_or(true) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
        })
        .expect("spawn worker thread");
    WorkerHandle { shutdown: tx, thread: Some(thread) }
}

/// One worker lifetime. `Ok(true)` means it was asked to stop.
async fn run_worker_once(
    cfg: &Config,
    activities: Arc<OrderActivitiesImpl>,
    rx: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
    meter: Option<Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>>,
) -> anyhow::Result<bool> {
    let client = connect(cfg).await?;
    let telemetry =
        temporalio_common::telemetry::TelemetryOptions::builder().maybe_metrics(meter).build();
    let options = temporalio_sdk::runtime::RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(|e| anyhow::anyhow!(e))?;
    let runtime = Runtime::from_current_tokio(options)?;
    let opts = WorkerOptions::new(cfg.task_queue.clone())
        .register_workflow::<OrderWorkflow>()?
        .register_activities(SharedActivities(activities))
        .build();
    let mut worker = Worker::new(&runtime, client, opts)?;
    let shutdown = worker.shutdown_handle();
    let stop_requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop_requested.clone();
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        if let Ok(rx) = rx.lock()
            && rx.recv().is_ok()
        {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            let _guard = handle.enter();
            shutdown();
        }
    });
    tracing::info!(task_queue = cfg.task_queue, "worker polling");
    worker.run().await?;
    Ok(stop_requested.load(std::sync::atomic::Ordering::SeqCst))
}

/// Lets one activities instance (and its SMTP pool) serve successive worker lifetimes.
struct SharedActivities(Arc<OrderActivitiesImpl>);

impl temporalio_sdk::activities::ActivityImplementer for SharedActivities {
    fn register_all(self: Arc<Self>, defs: &mut temporalio_sdk::activities::ActivityDefinitions) {
        self.0.clone().register_all(defs)
    }
}

/// Order events delivered as workflow signals.
pub struct SignalEvents(pub Arc<Dispatcher>);

#[async_trait::async_trait]
impl varsel_activities::events::OrderEvents for SignalEvents {
    async fn reports_final(&self, order_id: &str) {
        self.0.signal_reports_final(order_id).await;
    }
}
