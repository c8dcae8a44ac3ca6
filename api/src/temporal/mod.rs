//! The bridge to Temporal, a file a job: the client connection and workflow policy (here), the
//! dispatcher that starts order workflows as a transactional outbox (`dispatcher`), what the
//! API asks of a running workflow (`control`: redrive, cancel, signals), the worker thread and
//! its SDK metrics (`worker`), and housekeeping that runs beside the API (`housekeeping`).

mod control;
mod dispatcher;
mod housekeeping;
mod worker;

pub use control::{RedriveRefusal, SignalEvents};
pub use dispatcher::Dispatcher;
pub use housekeeping::prune_status_feed;
pub use worker::{SdkMetrics, WorkerHandle, spawn_worker};

use crate::config::Config;
use std::str::FromStr;
use std::time::Duration;
use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
use varsel_workflows::WorkflowPolicy;

/// Connects a Temporal client.
pub async fn connect(cfg: &Config) -> anyhow::Result<Client> {
    let url = Url::from_str(&cfg.temporal.address)?;
    let connection = tokio::time::timeout(
        Duration::from_secs(5),
        Connection::connect(ConnectionOptions::new(url).build()),
    )
    .await
    .map_err(|_| {
        anyhow::anyhow!("timed out connecting to Temporal at {}", cfg.temporal.address)
    })??;
    Ok(Client::new(connection, ClientOptions::new(cfg.temporal.namespace.clone()).build())?)
}

/// The workflow tunables derived from configuration.
pub fn policy(cfg: &Config) -> WorkflowPolicy {
    WorkflowPolicy {
        generate_batch: cfg.processing.generate_batch,
        send_batch: cfg.processing.send_batch,
        condition_attempts: cfg.conditions.attempts,
        condition_retry_ms: cfg.conditions.retry_ms,
        max_retry_interval_ms: cfg.processing.max_retry_interval_ms,
        max_batches_per_run: cfg.processing.max_batches_per_run,
        // Validated at start-up (Application::build).
        sms_window: cfg.sms_window().ok().flatten(),
    }
}
