//! Prometheus metrics that varsel counts as things happen. Gauges that describe the database
//! (orders and notifications by status, queue depth) are read at scrape time by the API.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// The counters and histograms, registered in their own registry (no global state).
#[derive(Clone)]
pub struct Metrics {
    /// The registry the API renders.
    pub registry: Registry,
    /// Orders accepted, by endpoint (`orders`, `email`, `sms`).
    pub orders_accepted: IntCounterVec,
    /// Orders finished by the workflow, by final status.
    pub orders_finished: IntCounterVec,
    /// Time one provider call took, by provider (`smtp`, `outbox`, `kannel`, `simulator`).
    pub send_seconds: HistogramVec,
    /// Provider errors, by provider and kind (`transient`, `permanent`).
    pub provider_errors: IntCounterVec,
    /// Delivery reports, by channel and outcome (`applied`, `unchanged`, `dead`).
    pub reports: IntCounterVec,
    /// Time from handing a notification to its provider to the report that moved it.
    pub report_lag_seconds: HistogramVec,
    /// Mail the inbound SMTP listener answered, by outcome (`applied`, `refused` recipients,
    /// `not_a_report`, `too_big`, `failed` to store).
    pub bounce_mails: IntCounterVec,
    /// Status-webhook delivery attempts, by outcome (`delivered`, `failed`), and endpoints
    /// disabled after their retries ran out (`gave_up`).
    pub webhook_attempts: IntCounterVec,
    /// HTTP requests the API answered, by method, route (ids replaced by `:id`) and status.
    pub http_requests: IntCounterVec,
    /// Time the API took to answer, by method and route.
    pub http_seconds: HistogramVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let metrics = Self {
            orders_accepted: counter(
                "varsel_orders_accepted_total",
                "Orders accepted by the API, by endpoint.",
                &["endpoint"],
            ),
            orders_finished: counter(
                "varsel_orders_finished_total",
                "Orders that reached a final status, by status.",
                &["status"],
            ),
            send_seconds: histogram(
                "varsel_send_seconds",
                "Time one provider call took, by provider.",
                &["provider"],
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            provider_errors: counter(
                "varsel_provider_errors_total",
                "Provider errors, by provider and kind (transient, permanent).",
                &["provider", "kind"],
            ),
            reports: counter(
                "varsel_delivery_reports_total",
                "Delivery reports received, by channel and outcome (applied, unchanged, dead).",
                &["channel", "outcome"],
            ),
            bounce_mails: counter(
                "varsel_bounce_mails_total",
                "Mail the inbound SMTP listener answered, by outcome (applied, refused, not_a_report, too_big, failed).",
                &["outcome"],
            ),
            webhook_attempts: counter(
                "varsel_webhook_attempts_total",
                "Status-webhook delivery attempts by outcome (delivered, failed), and endpoints disabled when retries ran out (gave_up).",
                &["outcome"],
            ),
            report_lag_seconds: histogram(
                "varsel_delivery_report_lag_seconds",
                "Time from handing a notification to its provider to the report that moved it.",
                &["channel"],
                vec![
                    0.1,
                    0.5,
                    1.0,
                    5.0,
                    15.0,
                    60.0,
                    300.0,
                    900.0,
                    3600.0,
                    4.0 * 3600.0,
                    24.0 * 3600.0,
                    48.0 * 3600.0,
                ],
            ),
            http_requests: counter(
                "varsel_http_requests_total",
                "HTTP requests answered, by method, route (ids as :id) and status.",
                &["method", "route", "status"],
            ),
            http_seconds: histogram(
                "varsel_http_request_duration_seconds",
                "Time to answer an HTTP request, by method and route (ids as :id).",
                &["method", "route"],
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
            ),
            registry,
        };
        let build_info = prometheus::IntGaugeVec::new(
            Opts::new("varsel_build_info", "The running build: always 1, its version a label."),
            &["version"],
        )
        .expect("valid metric");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics.registry.register(Box::new(build_info)).expect("unique metric");
        metrics
    }
}
