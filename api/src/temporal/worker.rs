//! The worker: the order workflow and its activities on a thread of their own (the SDK's worker
//! is not `Send`), and the SDK's metrics for `/metrics`.

use super::connect;
use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use varsel_activities::order_activities::Draining;
use varsel_activities::{OrderActivitiesImpl, WebhookActivitiesImpl};
use varsel_workflows::{OrderWorkflow, WebhookWorkflow};

/// A running worker thread.
pub struct WorkerHandle {
    stop: tokio::sync::watch::Sender<bool>,
    /// Disconnected when the thread ends.
    done: std::sync::mpsc::Receiver<()>,
    draining: Draining,
    grace: Duration,
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
    /// Drains and stops the worker: running send batches start no further sends and record the
    /// ones in flight, the SDK stops polling, reports what finished and, at the end of the grace
    /// period, cancels what still runs (Temporal retries it on another worker). Returns within
    /// the grace period and a few seconds, whatever the worker does.
    pub fn stop(mut self) {
        self.draining.start();
        let _ = self.stop.send(true);
        match self.done.recv_timeout(self.grace + Duration::from_secs(5)) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => tracing::warn!(
                "the worker did not stop within its grace period; what it still runs is left to Temporal's retries"
            ),
            _ => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                tracing::info!("worker stopped");
            }
        }
    }
}

/// Runs the order worker on its own thread and runtime (`Worker::run` is not `Send`), until
/// stopped. Reconnects while Temporal is unreachable.
/// The SDK's worker metrics are exported through `sdk_metrics`.
pub fn spawn_worker(
    cfg: Arc<Config>,
    activities: OrderActivitiesImpl,
    webhooks: WebhookActivitiesImpl,
    exporter: SdkMetrics,
) -> WorkerHandle {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (done_tx, done) = std::sync::mpsc::channel::<()>();
    let draining = activities.draining.clone();
    let grace = cfg.shutdown_grace();
    let thread = std::thread::Builder::new()
        .name("varsel-worker".into())
        .spawn(move || {
            let _done = done_tx;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .thread_name("varsel-worker-rt")
                .build()
                .expect("worker runtime");
            let activities = Arc::new(activities);
            let webhooks = Arc::new(webhooks);
            rt.block_on(async move {
                let meter = exporter.start();
                let mut stop_seen = stopped.clone();
                loop {
                    if *stopped.borrow() {
                        break;
                    }
                    let both = (activities.clone(), webhooks.clone());
                    match run_worker_once(&cfg, both, stopped.clone(), meter.clone()).await {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(error = %e, "worker stopped; restarting in 2 s"),
                    }
                    tokio::select! {
                        _ = stop_seen.wait_for(|s| *s) => break,
                        () = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            });
            // Whatever a cancelled activity left running is not waited for.
            rt.shutdown_timeout(Duration::from_secs(1));
        })
        .expect("spawn worker thread");
    WorkerHandle { stop, done, draining, grace, thread: Some(thread) }
}

/// One worker lifetime. `Ok(true)` means it was asked to stop.
async fn run_worker_once(
    cfg: &Config,
    (activities, webhooks): (Arc<OrderActivitiesImpl>, Arc<WebhookActivitiesImpl>),
    mut stopped: tokio::sync::watch::Receiver<bool>,
    meter: Option<Arc<dyn temporalio_common::telemetry::metrics::CoreMeter>>,
) -> anyhow::Result<bool> {
    let client = tokio::select! {
        c = connect(cfg) => c?,
        _ = stopped.wait_for(|s| *s) => return Ok(true),
    };
    let telemetry =
        temporalio_common::telemetry::TelemetryOptions::builder().maybe_metrics(meter).build();
    let options = temporalio_sdk::runtime::RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(|e| anyhow::anyhow!(e))?;
    let runtime = Runtime::from_current_tokio(options)?;
    // The SDK cancels what still runs a little before the process's grace period ends, so the
    // cancellations are reported to Temporal before the process goes.
    let sdk_grace =
        cfg.shutdown_grace().saturating_sub(Duration::from_secs(3)).max(Duration::from_secs(1));
    let opts = WorkerOptions::new(cfg.temporal.task_queue.clone())
        .register_workflow::<OrderWorkflow>()?
        .register_workflow::<WebhookWorkflow>()?
        .register_activities(SharedActivities(activities.clone()))
        .register_activities(SharedWebhookActivities(webhooks))
        .graceful_shutdown_period(sdk_grace)
        .tuner(tuner(cfg.temporal.worker_max_activities))
        .build();
    // Composed emails (attachments fetched at send time) on a queue of their own, with their own
    // few activity slots: large mails wait for each other, never for or before the others.
    let composed = WorkerOptions::new(cfg.temporal.composed_task_queue())
        .register_workflow::<OrderWorkflow>()?
        .register_activities(SharedActivities(activities))
        .graceful_shutdown_period(sdk_grace)
        .tuner(tuner(cfg.temporal.composed_max_activities))
        .build();
    let mut worker = Worker::new(&runtime, client.clone(), opts)?;
    let mut composed = Worker::new(&runtime, client, composed)?;
    let stop_main = Arc::new(worker.shutdown_handle());
    let stop_composed = Arc::new(composed.shutdown_handle());
    let mut on_stop = stopped.clone();
    let watcher = tokio::spawn({
        let (stop_main, stop_composed) = (stop_main.clone(), stop_composed.clone());
        async move {
            if on_stop.wait_for(|s| *s).await.is_ok() {
                tracing::info!(
                    "worker draining: no more polls; running batches finish their sends"
                );
                stop_main();
                stop_composed();
            }
        }
    });
    tracing::info!(
        task_queue = cfg.temporal.task_queue,
        composed_task_queue = cfg.temporal.composed_task_queue(),
        "worker polling"
    );
    // One worker failing stops the other, and the lifetime ends (to be restarted).
    let (ran, ran_composed) = tokio::join!(
        async {
            let ran = worker.run().await;
            stop_composed();
            ran
        },
        async {
            let ran = composed.run().await;
            stop_main();
            ran
        }
    );
    watcher.abort();
    ran?;
    ran_composed?;
    Ok(*stopped.borrow())
}

/// A worker's task slots: the SDK's defaults, with `activities` activity slots
/// (`VARSEL_WORKER_MAX_ACTIVITIES`, `VARSEL_COMPOSED_MAX_ACTIVITIES`).
fn tuner(activities: usize) -> temporalio_sdk::runtime::worker_tuner::WorkerTuner {
    use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
    const SDK_DEFAULT: usize = 100;
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(SDK_DEFAULT))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities.max(1)))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(SDK_DEFAULT))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(SDK_DEFAULT))
        .build()
        .into()
}

/// Lets one activities instance (and its SMTP pool) serve successive worker lifetimes.
struct SharedActivities(Arc<OrderActivitiesImpl>);

impl temporalio_sdk::activities::ActivityImplementer for SharedActivities {
    fn register_all(self: Arc<Self>, defs: &mut temporalio_sdk::activities::ActivityDefinitions) {
        self.0.clone().register_all(defs)
    }
}

/// The webhook activities, shared across worker restarts.
struct SharedWebhookActivities(Arc<WebhookActivitiesImpl>);

impl temporalio_sdk::activities::ActivityImplementer for SharedWebhookActivities {
    fn register_all(self: Arc<Self>, defs: &mut temporalio_sdk::activities::ActivityDefinitions) {
        self.0.clone().register_all(defs)
    }
}
