//! The overview: the last hour and day from varsel's own metrics, and what the database knows
//! now. Counters only count up from a process's start, so a sampler keeps a snapshot of them a
//! minute apart for a day; a window is the live value less the snapshot from its start (or the
//! oldest kept, when the process is younger than the window: the page says since when).

use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use varsel_activities::metrics::Metrics;
use varsel_workflows::domain::{Channel, NotificationStatus, OrderStatus};
use varsel_workflows::order::StoredOrder;

/// How often the sampler keeps a snapshot.
pub const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// How many snapshots are kept: a day and an hour.
const KEEP: usize = 25 * 60;

/// The counters the overview reads, summed over the labels it does not show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    accepted: f64,
    finished: BTreeMap<String, f64>,
    sends: f64,
    provider_errors: f64,
    throttled: f64,
    reports: BTreeMap<String, f64>,
    lag_sum: f64,
    lag_count: f64,
    webhooks: BTreeMap<String, f64>,
    server_errors: f64,
}

impl Snapshot {
    /// The counters as they are now.
    pub fn take(metrics: &Metrics) -> Self {
        let mut s = Self::default();
        for family in metrics.registry.gather() {
            for m in family.get_metric() {
                let label = |name: &str| {
                    m.get_label()
                        .iter()
                        .find(|l| l.name() == name)
                        .map(|l| l.value().to_owned())
                        .unwrap_or_default()
                };
                let value = m.get_counter().get_value();
                match family.name() {
                    "varsel_orders_accepted_total" => s.accepted += value,
                    "varsel_orders_finished_total" => {
                        *s.finished.entry(label("status")).or_default() += value
                    }
                    "varsel_send_seconds" => s.sends += m.get_histogram().get_sample_count() as f64,
                    "varsel_provider_errors_total" if label("kind") == "throttled" => {
                        s.throttled += value
                    }
                    "varsel_provider_errors_total" => s.provider_errors += value,
                    "varsel_delivery_reports_total" => {
                        *s.reports.entry(label("outcome")).or_default() += value
                    }
                    "varsel_delivery_report_lag_seconds" => {
                        s.lag_sum += m.get_histogram().get_sample_sum();
                        s.lag_count += m.get_histogram().get_sample_count() as f64;
                    }
                    "varsel_webhook_attempts_total" => {
                        *s.webhooks.entry(label("outcome")).or_default() += value
                    }
                    "varsel_http_requests_total" if label("status").starts_with('5') => {
                        s.server_errors += value
                    }
                    _ => {}
                }
            }
        }
        s
    }

    fn minus(&self, then: &Self) -> Window {
        let diff = |now: &BTreeMap<String, f64>, then: &BTreeMap<String, f64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0.0)))
                .filter(|(_, v)| *v > 0.0)
                .collect::<BTreeMap<_, _>>()
        };
        let lag_count = self.lag_count - then.lag_count;
        Window {
            label: String::new(),
            accepted: self.accepted - then.accepted,
            finished: diff(&self.finished, &then.finished),
            sends: self.sends - then.sends,
            provider_errors: self.provider_errors - then.provider_errors,
            throttled: self.throttled - then.throttled,
            reports: diff(&self.reports, &then.reports),
            report_lag: (lag_count > 0.0).then(|| (self.lag_sum - then.lag_sum) / lag_count),
            webhooks: diff(&self.webhooks, &then.webhooks),
            server_errors: self.server_errors - then.server_errors,
        }
    }
}

/// Snapshots a minute apart, the oldest first.
#[derive(Default)]
pub struct MetricSamples(Mutex<VecDeque<(DateTime<Utc>, Snapshot)>>);

impl MetricSamples {
    /// Keeps a snapshot taken at `at`.
    pub fn keep(&self, at: DateTime<Utc>, snapshot: Snapshot) {
        let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back((at, snapshot));
        while q.len() > KEEP {
            q.pop_front();
        }
    }

    /// The snapshot a window of `length` ending at `now` starts from: the newest taken at or
    /// before its start, else the oldest kept; with when it was taken.
    fn start_of(&self, now: DateTime<Utc>, length: Duration) -> Option<(DateTime<Utc>, Snapshot)> {
        let q = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let start = now - length;
        q.iter().rev().find(|(at, _)| *at <= start).or(q.front()).cloned()
    }

    /// When the oldest snapshot was taken.
    fn since(&self) -> Option<DateTime<Utc>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).front().map(|(at, _)| *at)
    }
}

/// Keeps a snapshot every [`SAMPLE_EVERY`], for ever (the caller aborts it).
pub async fn sample(state: std::sync::Arc<AppState>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tick.tick().await;
        state.console.samples.keep(Utc::now(), Snapshot::take(&state.metrics));
    }
}

/// What happened in one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    /// "Last hour", "Last day", or since when.
    pub label: String,
    pub accepted: f64,
    pub finished: BTreeMap<String, f64>,
    pub sends: f64,
    pub provider_errors: f64,
    pub throttled: f64,
    pub reports: BTreeMap<String, f64>,
    /// Mean seconds from handing to a provider to the report that moved it.
    pub report_lag: Option<f64>,
    pub webhooks: BTreeMap<String, f64>,
    pub server_errors: f64,
}

fn listed(m: &BTreeMap<String, f64>) -> String {
    if m.is_empty() {
        return "0".to_owned();
    }
    let total: f64 = m.values().sum();
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!("{total} ({})", parts.join(", "))
}

impl Window {
    pub fn finished_text(&self) -> String {
        listed(&self.finished)
    }
    pub fn provider_errors_text(&self) -> String {
        self.provider_errors.to_string()
    }
    pub fn reports_text(&self) -> String {
        listed(&self.reports)
    }
    pub fn webhooks_text(&self) -> String {
        listed(&self.webhooks)
    }
    pub fn report_lag_text(&self) -> String {
        match self.report_lag {
            Some(s) if s >= 120.0 => format!("{:.1} min on average", s / 60.0),
            Some(s) => format!("{s:.1} s on average"),
            None => "no reports".to_owned(),
        }
    }
}

/// Everything the overview shows.
#[derive(Debug, Clone)]
pub struct Overview {
    pub now: DateTime<Utc>,
    pub windows: Vec<Window>,
    pub metrics_since: Option<DateTime<Utc>>,
    pub oldest_open: Option<StoredOrder>,
    pub dead_reports: u64,
    pub orders: Vec<(OrderStatus, i64)>,
    pub notifications: Vec<(Channel, NotificationStatus, i64)>,
    /// Whether this process runs a worker, and what it can take.
    pub worker: String,
    /// Orders accepted but whose workflow has not started.
    pub dispatch: String,
    /// The task queues as Temporal sees them, or why it could not be asked.
    pub queues: Result<Vec<crate::temporal::queues::QueueHealth>, String>,
}

impl Overview {
    /// Reads the overview.
    pub async fn load(state: &AppState) -> Result<Self, sea_orm::DbErr> {
        let now = Utc::now();
        let live = Snapshot::take(&state.metrics);
        let samples = &state.console.samples;
        let windows = [("Last hour", Duration::hours(1)), ("Last day", Duration::days(1))]
            .into_iter()
            .map(|(label, length)| {
                let (from, then) = samples.start_of(now, length).unwrap_or((now, live.clone()));
                let mut w = live.minus(&then);
                w.label = if now - from + Duration::seconds(90) < length {
                    format!("{label} (since {})", from.format("%H:%M UTC"))
                } else {
                    label.to_owned()
                };
                w
            })
            .collect();
        let counts = state.gauges.get(&state.store).await?;
        let oldest_open = state.store.oldest_unfinished_order().await?;
        let waiting = state.store.count_pending_start(1000).await?;
        let c = &state.config;
        let names = [c.temporal.task_queue.clone(), c.temporal.composed_task_queue()];
        let queues = match state.dispatcher.client().await {
            Err(e) => Err(format!("{e}")),
            Ok(client) => tokio::time::timeout(
                std::time::Duration::from_secs(3),
                crate::temporal::queues::queue_health(&client, &names),
            )
            .await
            .map_err(|_| "Temporal did not answer within 3 s".to_owned())
            .and_then(|r| r.map_err(|e| format!("{e:#}"))),
        };
        Ok(Self {
            now,
            windows,
            metrics_since: samples.since(),
            oldest_open,
            dead_reports: counts.dead_reports,
            orders: counts.orders,
            notifications: counts.notifications,
            worker: if c.run_worker {
                format!(
                    "runs in this process on task queue {} ({} sends at once)",
                    c.temporal.task_queue, c.processing.send_concurrency
                )
            } else {
                "not in this process (an API-only process)".to_owned()
            },
            dispatch: match waiting {
                0 => "every accepted order's workflow has started".to_owned(),
                n if n >= 1000 => "1000 or more orders wait for their workflow to start".to_owned(),
                n => format!("{n} orders wait for their workflow to start"),
            },
            queues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_the_live_count_less_its_start() {
        let metrics = Metrics::new();
        let samples = MetricSamples::default();
        let t0 = Utc::now() - Duration::hours(2);
        metrics.orders_accepted.with_label_values(&["email"]).inc();
        samples.keep(t0, Snapshot::take(&metrics));
        metrics.orders_accepted.with_label_values(&["sms"]).inc_by(3);
        metrics.provider_errors.with_label_values(&["smtp", "throttled"]).inc();
        samples.keep(t0 + Duration::minutes(50), Snapshot::take(&metrics));
        metrics.orders_accepted.with_label_values(&["email"]).inc_by(5);
        let live = Snapshot::take(&metrics);
        let now = t0 + Duration::hours(2);
        let (_, hour) = samples.start_of(now, Duration::hours(1)).unwrap();
        assert_eq!(live.minus(&hour).accepted, 5.0);
        let (from, day) = samples.start_of(now, Duration::days(1)).unwrap();
        assert_eq!(from, t0, "a young process counts from its first snapshot");
        let w = live.minus(&day);
        assert_eq!((w.accepted, w.throttled, w.provider_errors), (8.0, 1.0, 0.0));
    }
}
