//! The worker: the order workflow and its activities on a thread of their own (the SDK's worker
//! is not `Send`), and the SDK's metrics for `/metrics`.

use super::connect;
use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use varsel_activities::OrderActivitiesImpl;
use varsel_workflows::OrderWorkflow;

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
    let opts = WorkerOptions::new(cfg.temporal.task_queue.clone())
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
    tracing::info!(task_queue = cfg.temporal.task_queue, "worker polling");
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
