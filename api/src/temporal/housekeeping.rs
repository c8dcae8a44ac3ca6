//! Housekeeping beside the API: the status feed's retention.

use std::time::Duration;
use varsel_activities::Store;

/// Deletes status-feed entries older than `retention_days`, now and then once an hour, until the
/// process stops.
pub async fn prune_status_feed(store: Store, retention_days: u64) {
    let mut hourly = tokio::time::interval(Duration::from_secs(3600));
    loop {
        hourly.tick().await;
        let before = chrono::Utc::now() - chrono::Duration::days(retention_days as i64);
        match store.prune_status_feed(before).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(entries = n, "status feed entries past their retention deleted")
            }
            Err(e) => tracing::warn!(error = %e, "status feed retention could not run"),
        }
    }
}
