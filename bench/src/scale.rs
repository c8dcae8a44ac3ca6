//! The phases that run varsel as separate processes (see `fleet.rs`):
//!
//! - `scale`: one order sent through a relay that answers each message after
//!   `--relay-delay-ms` (as a real relay does), by 1, 2 and 4 worker processes; each count's
//!   notifications/s against one worker's;
//! - `sizes`: orders of 10,000, 100,000 and 1,000,000 recipients on the instant sink, each by a
//!   fresh worker process: notifications/s of the largest against the next (the cost of a
//!   notification must not grow with the order) and each worker's peak memory.

use crate::fleet::Fleet;
use crate::{Bench, Figure, SmtpSink, TaskCtx, bar, queries, seed_bulk_recipients};
use serde_json::json;
use std::time::{Duration, Instant};
use varsel_api::config::Config;

/// One order's run on a fleet.
struct Sent {
    /// Notifications per second, POST to `Completed`.
    rate: f64,
    /// The peak memory of each worker process, MiB.
    peak_mib: Vec<f64>,
    /// Messages the relay received more than once.
    duplicates: u64,
    /// From the order's history: the worker processes that ran its slices, and the most slices
    /// that ran at the same time.
    spread: (usize, usize),
}

/// The workers in `runs`, and the most runs that overlapped at one moment.
fn spread(runs: &[(String, i64, i64)]) -> (usize, usize) {
    let workers: std::collections::BTreeSet<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    let mut edges: Vec<(i64, i32)> = runs.iter().flat_map(|r| [(r.1, 1), (r.2, -1)]).collect();
    // An end sorts before a start at the same time.
    edges.sort();
    let (mut now, mut most) = (0, 0);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    (workers.len(), most as usize)
}

impl Bench {
    /// `scale`: see the module's documentation.
    pub(crate) async fn scale(&self) -> anyhow::Result<Vec<Figure>> {
        let delay = Duration::from_millis(self.opts.relay_delay_ms);
        let relay = SmtpSink::start_with_delay(delay)?;
        let n = self.opts.scale_recipients as usize;
        let recipients: Vec<serde_json::Value> =
            (0..n).map(|i| json!({"emailAddress": format!("scale-{i}@bench.example")})).collect();
        let mut figures = Vec::new();
        let mut one = None;
        for &workers in &self.opts.scale_workers {
            let mut cfg = self.fleet_config(&relay);
            // Enough slices in flight that every worker has some whichever it is given, and
            // small enough that the last ones leave little of the order to one worker.
            cfg.processing.send_window = (4 * workers as u32).clamp(4, 64);
            cfg.processing.generate_batch = 250;
            let what = format!("scale: {workers} worker(s), relay {} ms", delay.as_millis());
            let sent = self.send_on_fleet(&cfg, workers, &recipients, &relay, &what).await?;
            let name = format!(
                "scale: one order of {n}, {workers} worker(s), relay {} ms, notifications/s",
                delay.as_millis()
            );
            let base = *one.get_or_insert(sent.rate);
            // The targets: 2 workers 1.8 times one worker's rate, 4 workers 3.5 times.
            let target = match workers {
                0 | 1 => 1.0,
                2 => 1.8,
                w => 0.875 * w as f64,
            };
            let mut f =
                Figure::ratio(&name, sent.rate, base, "notifications/s vs 1 worker", target);
            if workers <= 1 {
                f.met = None;
                f.target = format!(
                    "the baseline (its send slots allow {:.0}/s)",
                    cfg.processing.send_concurrency as f64 / delay.as_secs_f64().max(1e-3)
                );
            }
            figures.push(f);
            figures.push(peak_figure(&format!("scale: {workers} worker(s)"), &sent.peak_mib));
            figures
                .push(duplicates_figure(&format!("scale: {workers} worker(s)"), sent.duplicates));
            let (ran_on, at_once) = sent.spread;
            figures.push(Figure::plain(
                &format!("scale: {workers} worker(s): slices at once (on {ran_on} workers)"),
                at_once as f64,
                "slices",
                "",
                None,
            ));
        }
        Ok(figures)
    }

    /// `sizes`: see the module's documentation.
    pub(crate) async fn sizes(&self) -> anyhow::Result<Vec<Figure>> {
        let sink = SmtpSink::start()?;
        let mut cfg = self.fleet_config(&sink);
        let largest = self.opts.sizes.iter().copied().max().unwrap_or(0) as usize;
        cfg.limits.max_recipients = cfg.limits.max_recipients.max(largest);
        let mut figures = Vec::new();
        let mut rates: Vec<(u32, f64, f64)> = Vec::new();
        for &n in &self.opts.sizes {
            let pb = bar(0, &format!("sizes: seeding {n} recipients"));
            let recipients = seed_bulk_recipients(&self.store, n as usize).await?;
            pb.finish_and_clear();
            let sent =
                self.send_on_fleet(&cfg, 1, &recipients, &sink, &format!("sizes: {n}")).await?;
            let peak = sent.peak_mib.iter().copied().fold(0.0, f64::max);
            figures.push(Figure::plain(
                &format!("sizes: one order of {n}, notifications/s"),
                sent.rate,
                "notifications/s",
                "",
                None,
            ));
            figures.push(peak_figure(&format!("sizes: {n}"), &sent.peak_mib));
            figures.push(duplicates_figure(&format!("sizes: {n}"), sent.duplicates));
            rates.push((n, sent.rate, peak));
        }
        rates.sort_by_key(|(n, _, _)| *n);
        if let [.., (n1, r1, m1), (n2, r2, m2)] = rates[..] {
            figures.push(Figure::ratio(
                &format!("sizes: notifications/s at {n2} vs at {n1}"),
                r2,
                r1,
                "notifications/s",
                0.9,
            ));
            let mut memory = Figure::ratio(
                &format!("sizes: worker peak memory at {n2} vs at {n1}"),
                m2,
                m1,
                "MiB",
                0.0,
            );
            memory.target = "ratio <= 1.25 (flat in the order's size)".into();
            memory.met = memory.ratio.map(|r| r <= 1.25);
            figures.push(memory);
        }
        Ok(figures)
    }

    /// The benchmark's configuration for a fleet sending to `relay`, on a task queue of its own.
    fn fleet_config(&self, relay: &SmtpSink) -> Config {
        let mut cfg = self.cfg.clone();
        cfg.email.smtp_url = format!("smtp://127.0.0.1:{}", relay.port);
        cfg.temporal.task_queue = format!("varsel-bench-fleet-{}", uuid::Uuid::new_v4().simple());
        cfg
    }

    /// Starts an API and `workers` worker processes configured as `cfg`, sends one order to
    /// `recipients` through them and waits until it is `Completed`; stops them.
    async fn send_on_fleet(
        &self,
        cfg: &Config,
        workers: usize,
        recipients: &[serde_json::Value],
        relay: &SmtpSink,
        what: &str,
    ) -> anyhow::Result<Sent> {
        let fleet = Fleet::start(cfg, true, workers, &self.cfg.data_dir).await?;
        let ctx = TaskCtx {
            base: format!("{}/notifications/api/v1", fleet.api.as_deref().unwrap_or_default()),
            token: self.ctx.token.clone(),
            http: reqwest::Client::new(),
        };
        let n = recipients.len() as u64;
        let body = json!({
            "notificationChannel": "Email",
            "emailTemplate": {"subject": "Bench $recipientName$", "body": "A benchmark message."},
            "recipients": recipients,
        });
        let pb = bar(n, what);
        let before = relay.received();
        let start = Instant::now();
        let id = ctx.post("/orders", &body).await?;
        let deadline = Instant::now() + Duration::from_secs(3 * 3600);
        loop {
            pb.set_position(relay.received() - before);
            let ids = std::slice::from_ref(&id);
            if queries::count_orders_with_status(&self.store, ids, "Completed").await? == 1 {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "{what}: the order did not complete");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let elapsed = start.elapsed();
        pb.finish_and_clear();
        let received = relay.received() - before;
        // Delivery is at least once: a message short is a loss, one over is a duplicate (counted).
        anyhow::ensure!(received >= n, "{what}: the relay received {received} of {n} messages");
        let history = varsel_api::replay::fetch_history_json(&self.client, &id).await?;
        let runs = crate::fleet::slice_runs(&serde_json::from_slice(&history)?);
        Ok(Sent {
            rate: n as f64 / elapsed.as_secs_f64(),
            peak_mib: fleet.worker_peak_rss_mib(),
            duplicates: received - n,
            spread: spread(&runs),
        })
    }
}

/// The largest peak memory of a fleet's workers.
fn peak_figure(what: &str, peaks: &[f64]) -> Figure {
    let peak = peaks.iter().copied().fold(0.0, f64::max);
    Figure::plain(&format!("{what}: worker peak memory"), peak, "MiB", "", None)
}

/// Messages the relay received twice (at-least-once delivery; none expected without faults).
fn duplicates_figure(what: &str, duplicates: u64) -> Figure {
    Figure::plain(
        &format!("{what}: duplicates at the relay"),
        duplicates as f64,
        "messages",
        "",
        None,
    )
}
