//! The overview: the last hour and day from varsel's own metrics, summed over every API and
//! worker process of the deployment, and what the database knows now. Counters only count up
//! from a process's start, so each process keeps a snapshot of its counters in the database a
//! minute apart by default ([`Sampler`], kept for a day and an hour). A process's share of a
//! window is its newest snapshot (the drawing process's live counters) less the one the window
//! starts from: the newest at or before the window's start, nothing for a process started
//! within the window, or its oldest kept (the page then says since when).

use crate::state::AppState;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use varsel_activities::Store;
use varsel_activities::metrics::Metrics;
use varsel_activities::store::{MetricSnapshot, ProcessWindow};
use varsel_workflows::domain::{Channel, NotificationStatus, OrderStatus};
use varsel_workflows::order::StoredOrder;

/// How long snapshots are kept: a day and an hour.
const KEEP: Duration = Duration::hours(25);

/// The counters the overview reads, summed over the labels it does not show.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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

    /// Each count of `self` plus `sign` times the same count of `other`; counts by label that
    /// come to nothing are left out.
    fn combined(&self, other: &Self, sign: f64) -> Self {
        let map = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            let mut out = a.clone();
            for (k, v) in b {
                *out.entry(k.clone()).or_default() += sign * v;
            }
            out.retain(|_, v| *v > 0.0);
            out
        };
        Self {
            accepted: self.accepted + sign * other.accepted,
            finished: map(&self.finished, &other.finished),
            sends: self.sends + sign * other.sends,
            provider_errors: self.provider_errors + sign * other.provider_errors,
            throttled: self.throttled + sign * other.throttled,
            reports: map(&self.reports, &other.reports),
            lag_sum: self.lag_sum + sign * other.lag_sum,
            lag_count: self.lag_count + sign * other.lag_count,
            webhooks: map(&self.webhooks, &other.webhooks),
            server_errors: self.server_errors + sign * other.server_errors,
        }
    }

    /// What was counted since `then` (an earlier snapshot of the same process).
    fn minus(&self, then: &Self) -> Self {
        self.combined(then, -1.0)
    }

    /// Adds another process's counts.
    fn add(&mut self, other: &Self) {
        *self = self.combined(other, 1.0);
    }

    /// A stored snapshot's counters; `None` (logged) when they cannot be read.
    fn stored(s: &MetricSnapshot) -> Option<Self> {
        serde_json::from_str(&s.counters)
            .inspect_err(|e| {
                tracing::warn!(process = s.process, taken = %s.taken, error = %e, "a metric snapshot cannot be read");
            })
            .ok()
    }
}

/// A process as its metric snapshots name it: an id made up when it started, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessId {
    pub id: String,
    pub started: DateTime<Utc>,
}

impl Default for ProcessId {
    /// This process, starting now.
    fn default() -> Self {
        Self { id: uuid::Uuid::now_v7().to_string(), started: Utc::now() }
    }
}

/// Keeps a process's counters in the database, a snapshot every `every`
/// (`VARSEL_METRIC_SNAPSHOT_SECS`), and forgets snapshots older than a day and an hour (of
/// every process: any process may).
#[derive(Clone)]
pub struct Sampler {
    pub store: Store,
    pub metrics: Metrics,
    pub process: ProcessId,
    pub every: std::time::Duration,
}

impl Sampler {
    /// Keeps one snapshot of the counters as they are now, and forgets those older than a day
    /// and an hour; a failure is logged (the next interval tries again).
    pub async fn keep(&self) {
        let now = self.keep_last().await;
        if let Err(e) = self.store.prune_metric_snapshots(now - KEEP).await {
            tracing::warn!(error = %e, "old metric snapshots were not pruned");
        }
    }

    /// Keeps one snapshot of the counters as they are now (a stopping process's last); when.
    pub async fn keep_last(&self) -> DateTime<Utc> {
        let now = Utc::now();
        let snapshot = MetricSnapshot {
            process: self.process.id.clone(),
            started: self.process.started,
            taken: now,
            counters: serde_json::to_string(&Snapshot::take(&self.metrics))
                .expect("counters serialize"),
        };
        if let Err(e) = self.store.keep_metric_snapshot(&snapshot).await {
            tracing::warn!(error = %e, "the metric snapshot for the console's overview was not kept");
        }
        now
    }

    /// Keeps a snapshot now and every `every`, for ever (the caller aborts it, then keeps a
    /// last one).
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.every.max(std::time::Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.keep().await;
        }
    }
}

/// One window, `length` up to `now`, summed over the processes that lived in it: `processes`
/// as the database keeps them; the drawing process `me` counted from its `live` counters. When
/// the snapshots kept (the oldest of any process taken at `kept_since`) do not reach back to the
/// window's start, the label says since when it counts.
fn window(
    label: &str,
    length: Duration,
    now: DateTime<Utc>,
    me: &ProcessId,
    live: &Snapshot,
    processes: &[ProcessWindow],
    kept_since: Option<DateTime<Utc>>,
) -> Window {
    let start = now - length;
    let mut total = Snapshot::default();
    // The latest moment from which a process that lived before the window is counted, when
    // its snapshots do not reach back to the window's start; the oldest snapshot kept at all.
    let mut since = kept_since.filter(|k| *k > start);
    let mut counted_me = false;
    for p in processes {
        let mine = p.newest.process == me.id;
        let newest = if mine { Some(live.clone()) } else { Snapshot::stored(&p.newest) };
        let base = if p.newest.started >= start {
            // Started within the window: everything it counted is in it.
            Some(Snapshot::default())
        } else {
            if p.from.taken > start {
                since = since.max(Some(p.from.taken));
            }
            Snapshot::stored(&p.from)
        };
        if let (Some(newest), Some(base)) = (newest, base) {
            total.add(&newest.minus(&base));
            counted_me |= mine;
        }
    }
    // This process has no snapshot kept yet (it just started, or the database refused it).
    if !counted_me && me.started >= start {
        total.add(live);
    }
    let mut w = Window::of(&total);
    w.label = match since {
        Some(since) if since > start + Duration::seconds(90) => {
            format!("{label} (since {})", since.format("%H:%M UTC"))
        }
        _ => label.to_owned(),
    };
    w
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
    /// The window of what a snapshot's difference counted.
    fn of(d: &Snapshot) -> Self {
        Window {
            label: String::new(),
            accepted: d.accepted,
            finished: d.finished.clone(),
            sends: d.sends,
            provider_errors: d.provider_errors,
            throttled: d.throttled,
            reports: d.reports.clone(),
            report_lag: (d.lag_count > 0.0).then(|| d.lag_sum / d.lag_count),
            webhooks: d.webhooks.clone(),
            server_errors: d.server_errors,
        }
    }

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
    /// How many processes kept counters in the last day (this one included).
    pub processes: usize,
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
        let me = &state.console.process;
        let mut windows = Vec::new();
        let mut processes = 0;
        let kept_since = state.store.oldest_metric_snapshot().await?;
        for (label, length) in [("Last hour", Duration::hours(1)), ("Last day", Duration::days(1))]
        {
            let kept = state.store.metric_window(now - length).await?;
            processes = kept.len().max(1);
            windows.push(window(label, length, now, me, &live, &kept, kept_since));
        }
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
            processes,
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

    /// A process whose counters are `metrics`, keeping snapshots at chosen times.
    struct Process {
        sampler: Sampler,
    }

    impl Process {
        fn new(store: &Store, started: DateTime<Utc>) -> Self {
            let process = ProcessId { id: uuid::Uuid::now_v7().to_string(), started };
            let every = std::time::Duration::from_secs(60);
            Self {
                sampler: Sampler { store: store.clone(), metrics: Metrics::new(), process, every },
            }
        }
        async fn keep_at(&self, taken: DateTime<Utc>) {
            let s = MetricSnapshot {
                process: self.sampler.process.id.clone(),
                started: self.sampler.process.started,
                taken,
                counters: serde_json::to_string(&Snapshot::take(&self.sampler.metrics)).unwrap(),
            };
            self.sampler.store.keep_metric_snapshot(&s).await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_window_sums_every_process_from_its_start() {
        let store = Store::connect("sqlite::memory:", 1).await.unwrap();
        store.migrate().await.unwrap();
        // Whole seconds: the database keeps what the test compares exactly.
        let now = chrono::SubsecRound::trunc_subsecs(Utc::now(), 0);
        let ago = |minutes| now - Duration::minutes(minutes);
        // A worker up for two hours: 2 sends before the last hour, 3 within it.
        let worker = Process::new(&store, ago(120));
        worker.keep_at(ago(120)).await;
        worker.sampler.metrics.orders_accepted.with_label_values(&["email"]).inc_by(2);
        worker.keep_at(ago(61)).await;
        worker.sampler.metrics.orders_accepted.with_label_values(&["email"]).inc_by(3);
        worker.sampler.metrics.provider_errors.with_label_values(&["smtp", "throttled"]).inc();
        worker.keep_at(ago(1)).await;
        // A process that ran from 3 h ago until 90 minutes ago: in the day, not in the hour.
        let gone = Process::new(&store, ago(180));
        gone.keep_at(ago(180)).await;
        gone.sampler.metrics.orders_accepted.with_label_values(&["sms"]).inc_by(7);
        gone.keep_at(ago(90)).await;
        // The API process drawing the page, started 10 minutes ago: counted live, from zero.
        let me = Process::new(&store, ago(10));
        me.keep_at(ago(10)).await;
        me.sampler.metrics.orders_accepted.with_label_values(&["sms"]).inc_by(4);
        let live = Snapshot::take(&me.sampler.metrics);
        let me_id = me.sampler.process.clone();

        let kept_since = store.oldest_metric_snapshot().await.unwrap();
        assert_eq!(kept_since, Some(ago(180)));
        let hour = store.metric_window(ago(60)).await.unwrap();
        assert_eq!(hour.len(), 2, "the worker and this process lived in the last hour");
        let w = window("Last hour", Duration::hours(1), now, &me_id, &live, &hour, kept_since);
        assert_eq!((w.accepted, w.throttled, w.label.as_str()), (7.0, 1.0, "Last hour"));

        let day = store.metric_window(ago(24 * 60)).await.unwrap();
        let w = window("Last day", Duration::days(1), now, &me_id, &live, &day, kept_since);
        assert_eq!(w.accepted, 2.0 + 3.0 + 7.0 + 4.0, "every process from its start");
        assert_eq!(
            w.label,
            format!("Last day (since {})", ago(180).format("%H:%M UTC")),
            "nothing is kept from before the oldest snapshot: the day counts since then"
        );
        let w = window("Last day", Duration::days(1), now, &me_id, &live, &day, Some(ago(1500)));
        assert_eq!(w.label, "Last day", "snapshots kept from before the day");

        // A process started before the window whose snapshots do not reach back (pruned, or
        // kept only since an upgrade): counted from its oldest, and the page says since when.
        let old = Process::new(&store, now - Duration::days(3));
        old.keep_at(ago(30)).await;
        old.sampler.metrics.orders_accepted.with_label_values(&["email"]).inc_by(5);
        old.keep_at(ago(2)).await;
        let hour = store.metric_window(ago(60)).await.unwrap();
        let w = window("Last hour", Duration::hours(1), now, &me_id, &live, &hour, kept_since);
        assert_eq!(w.accepted, 7.0 + 5.0);
        assert_eq!(w.label, format!("Last hour (since {})", ago(30).format("%H:%M UTC")));

        // Pruning forgets what is older than a day and an hour.
        worker.sampler.keep().await;
        let left = store.metric_window(now - Duration::days(30)).await.unwrap();
        assert_eq!(left.len(), 4);
        let oldest = left.iter().map(|p| p.from.taken).min().unwrap();
        assert_eq!(oldest, ago(180), "nothing was a day old yet");
        store.prune_metric_snapshots(ago(85)).await.unwrap();
        let left = store.metric_window(now - Duration::days(30)).await.unwrap();
        assert_eq!(left.len(), 3, "the process gone 90 minutes ago is forgotten");
    }
}
