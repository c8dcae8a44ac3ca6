//! What request handlers share: one `AppState` per API process, built by
//! `startup::Application::build` and handed to each API's handlers.

use crate::auth::Verifier;
use crate::config::Config;
use crate::temporal::{Dispatcher, SdkMetrics};
use std::sync::Arc;
use varsel_activities::Store;
use varsel_activities::events::OrderEvents;
use varsel_activities::instant::InstantSender;
use varsel_activities::metrics::Metrics;
use varsel_activities::providers::outbound::OutboundPolicy;

/// What request handlers share.
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// The database.
    pub store: Store,
    /// Where recipients are looked up (the `recipientLookup` answer).
    pub contacts: varsel_activities::contacts::ContactSources,
    /// Token checks.
    pub verifier: Arc<Verifier>,
    /// Which non-public `conditionEndpoint` destinations are allowed.
    pub outbound: OutboundPolicy,
    /// What status webhooks are posted with (its policy checks an endpoint's URL).
    pub webhook_sender: varsel_activities::webhooks::WebhookSender,
    /// Workflow starts.
    pub dispatcher: Arc<Dispatcher>,
    /// Base URL for links.
    pub base_url: String,
    /// Order events (signals to workflows).
    pub events: Arc<dyn OrderEvents>,
    /// Counters and histograms.
    pub metrics: Metrics,
    /// The in-process worker's Temporal SDK metrics, appended to `/metrics`.
    pub sdk_metrics: SdkMetrics,
    /// What instant messages are sent with (in the request); `None` where no providers are
    /// configured (the document generator).
    pub sender: Option<InstantSender>,
    /// The database gauges of `/metrics`, recounted at most every [`GAUGE_TTL`].
    pub gauges: GaugeCache,
    /// The operator console's one-time sign-in links and metric snapshots.
    pub console: crate::console::ConsoleState,
}

impl AppState {
    /// The Temporal client, or the 503 a request answers when Temporal cannot be reached.
    pub async fn temporal(&self) -> Result<temporalio_client::Client, crate::error::ApiError> {
        self.dispatcher.client().await.map_err(|e| {
            crate::error::ApiError::unavailable(format!("Temporal is unreachable: {e}"))
        })
    }
}

/// How old the database gauges of `/metrics` may be.
pub const GAUGE_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The counts behind `/metrics`' database gauges (orders and notifications by status, unsent,
/// dead reports), recounted at most every [`GAUGE_TTL`]: a count over every notification is not
/// made for each scrape of each API process, and concurrent scrapes share one count.
#[derive(Default)]
pub struct GaugeCache(
    tokio::sync::Mutex<Option<(std::time::Instant, varsel_activities::store::StatusCounts)>>,
);

impl GaugeCache {
    /// The counts, recounted when older than [`GAUGE_TTL`].
    pub async fn get(
        &self,
        store: &Store,
    ) -> Result<varsel_activities::store::StatusCounts, sea_orm::DbErr> {
        let mut cached = self.0.lock().await;
        if let Some((at, counts)) = &*cached
            && at.elapsed() < GAUGE_TTL
        {
            return Ok(counts.clone());
        }
        let counts = store.status_counts().await?;
        *cached = Some((std::time::Instant::now(), counts.clone()));
        Ok(counts)
    }
}
