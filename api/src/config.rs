//! One typed configuration: defaults in code, an optional TOML file (`VARSEL_CONFIG`), then
//! `VARSEL_*` environment variables; Temporal's own `TEMPORAL_ADDRESS` / `TEMPORAL_NAMESPACE`
//! select an external Temporal. Every key is listed in docs/configuration.md.

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use varsel_workflows::workflow::WorkflowPolicy;

/// A secret from the configuration (a password, an HMAC key): `Debug` prints `[redacted]`, so a
/// logged or printed configuration never shows it; `expose` gives the value to the one place that
/// uses it. (The `secrecy` crate's strings cannot be serialised, which figment's defaults need.)
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "[redacted]" })
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Where SMS go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmsProvider {
    /// The built-in simulator (table `simulated_sms`), with delivery reports after
    /// `simulator_report_delay_ms`; numbers on `sms_allow_list` still go to Kannel.
    #[default]
    Simulator,
    /// Kannel's `sendsms` (needs `kannel_sendsms_url`).
    Kannel,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    #[default]
    #[serde(alias = "Text", alias = "TEXT")]
    Text,
    /// One JSON object per line, for log collectors.
    #[serde(alias = "Json", alias = "JSON")]
    Json,
}

/// `VARSEL_*` variables that are not configuration keys: the config file's path, the log
/// filter, and the tools' own (the Temporal CLI to start, the tests' Python, history recording).
const NOT_CONFIG_KEYS: &[&str] =
    &["CONFIG", "LOG", "TEMPORAL_BIN", "TEST_PYTHON", "RECORD_HISTORIES"];

/// The keys of one PlatformAccessToken issuer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct IssuerKeys {
    /// HMAC (HS256) secrets, base64, at least 32 bytes each.
    pub hmac_secrets: Vec<Secret>,
    /// PEM files with RSA or EC public keys (RS256 / ES256).
    pub public_key_files: Vec<PathBuf>,
}

/// varsel's configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// Folder for local state: SQLite file, dev signing key, email outbox, Temporal dev database.
    pub data_dir: PathBuf,
    /// Database URL: `sqlite://path` or `postgres://...`. Empty means `<data_dir>/varsel.db`.
    pub database_url: String,
    /// Database connections at most.
    pub database_max_connections: u32,
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Public base URL used in `Location` headers; empty means `http://<listen>`.
    pub public_base_url: String,
    /// Temporal frontend address (`TEMPORAL_ADDRESS`).
    pub temporal_address: String,
    /// Temporal namespace (`TEMPORAL_NAMESPACE`).
    pub temporal_namespace: String,
    /// Base URL of the Temporal web UI, for links to an order's workflow.
    pub temporal_ui_url: String,
    /// Task queue for order workflows and activities.
    pub task_queue: String,
    /// SMTP relay URL; empty writes emails to `<data_dir>/outbox`.
    pub smtp_url: String,
    /// Default email sender address.
    pub email_from: String,
    /// Pooled SMTP connections at most.
    pub smtp_pool_size: u32,
    /// SMTP timeout, seconds: of connecting, and of one message's whole exchange with the relay.
    pub smtp_timeout_secs: u64,
    /// `simulator` (default: numbers on `sms_allow_list` go to Kannel when it is configured, all
    /// others to the simulator) or `kannel` (every number to Kannel).
    pub sms_provider: SmsProvider,
    /// Numbers or prefixes sent through the real gateway while `sms_provider` is `simulator`.
    pub sms_allow_list: Vec<String>,
    /// Kannel smsbox `sendsms` URL, e.g. `http://127.0.0.1:13013/cgi-bin/sendsms`; empty: no gateway.
    pub kannel_sendsms_url: String,
    /// Timeout of one request to the SMS gateway, seconds.
    pub sms_gateway_timeout_secs: u64,
    /// Kannel `sendsms-user` name.
    pub kannel_username: String,
    /// Kannel `sendsms-user` password.
    pub kannel_password: Secret,
    /// Delay before the simulator reports a message delivered, milliseconds.
    pub simulator_report_delay_ms: u64,
    /// Daily window for SMS, `HH:MM-HH:MM` in `sms_sending_window_zone`; empty: any time.
    pub sms_sending_window: String,
    /// Time zone of the SMS window.
    pub sms_sending_window_zone: String,
    /// Per-country handling of unregistered alphanumeric sender ids.
    pub sms_sender_policies: Vec<varsel_workflows::sms::SenderPolicy>,
    /// Whether the SMTP relay posts delivery reports (then `Email_Succeeded` waits for one).
    pub email_delivery_reports: bool,
    /// How long a notification may wait for a final status before it fails with `*_Failed_TTL`,
    /// seconds.
    pub notification_ttl_secs: u64,
    /// Secret that signs Kannel report URLs and is the password of the email report endpoint;
    /// empty: `<data_dir>/report-secret` (created on first start).
    pub report_secret: Secret,
    /// User name of the email report endpoint (HTTP Basic).
    pub report_username: String,
    /// SMS sender id when an order gives none.
    pub sms_default_sender: String,
    /// HMAC (HS256) secrets accepted for tokens, base64. Empty with no public keys: the dev key
    /// in `<data_dir>/dev-signing-key` (created on first start).
    pub auth_hmac_secrets: Vec<Secret>,
    /// PEM files with RSA or EC public keys accepted for tokens (RS256 / ES256).
    pub auth_public_key_files: Vec<PathBuf>,
    /// Issuers (`iss`) accepted for bearer tokens, e.g. `https://maskinporten.no/`. Empty: any
    /// issuer signed by a configured key (warned at start); with the dev key: `varsel-dev`.
    pub auth_issuers: Vec<String>,
    /// PlatformAccessToken issuers and the keys that verify their tokens, by issuer (the
    /// token's `iss`, which becomes the creator): `[platform_issuers.ttd]` with `hmac_secrets`
    /// and/or `public_key_files`, or `VARSEL_PLATFORM_ISSUERS__TTD__PUBLIC_KEY_FILES=[...]`
    /// (issuer names are lowercase, as Altinn's org codes). A platform token is verified only
    /// with its own issuer's keys; none of them may also be a bearer key. Empty, with no bearer
    /// keys either: the dev key set of the data dir.
    pub platform_issuers: BTreeMap<String, IssuerKeys>,
    /// Destinations `conditionEndpoint` may reach although they are not public: host names
    /// (`localhost`), addresses (`127.0.0.1`, `::1`) or networks (`10.20.0.0/16`). Everything
    /// else in loopback, private, link-local (metadata) or other non-public ranges is refused,
    /// whether named directly, resolved from a name or reached by a redirect.
    pub condition_allowed_hosts: Vec<String>,
    /// Timeout of one condition check, seconds.
    pub condition_timeout_secs: u64,
    /// Attempts at a condition endpoint before the order is sent anyway.
    pub condition_attempts: u32,
    /// First retry delay of a condition check, milliseconds.
    pub condition_retry_ms: u64,
    /// Upper bound of activity retry delays, milliseconds.
    pub max_retry_interval_ms: u64,
    /// Recipients per generate activity.
    pub generate_batch: u32,
    /// Notifications per send activity.
    pub send_batch: u32,
    /// Batches one workflow run executes before continuing as new.
    pub max_batches_per_run: u32,
    /// Concurrent sends within one send activity.
    pub send_concurrency: usize,
    /// How often orders whose workflow could not be started are retried, milliseconds.
    pub dispatch_interval_ms: u64,
    /// An order can be cancelled only while its send time is more than this far away, seconds.
    pub cancel_cutoff_secs: u64,
    /// Length of the "day" of a reminder's `delayDays`, seconds (shortened in tests).
    pub reminder_day_secs: u64,
    /// Days a status-feed entry is kept.
    pub status_feed_retention_days: u64,
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
    /// Most recipients one order may have (400 above).
    pub max_recipients: usize,
    /// Longest email subject, characters (400 above). Emails' header lines stay within SMTP's
    /// 998 characters whatever the subject.
    pub max_subject_chars: usize,
    /// Largest email body, bytes of UTF-8 (400 above).
    pub max_email_body_bytes: usize,
    /// Most SMS segments a text may take (400 above; Altinn's gateway cuts at 16). Counted as
    /// Altinn counts them: 134 URL-encoded characters a segment.
    pub max_sms_segments: u32,
    /// Longest reference or id a client chooses (`sendersReference`, `idempotencyId`,
    /// `resourceId`, `resourceAction`, Dialogporten ids), characters (400 above).
    pub max_reference_chars: usize,
    /// Most reminders one order chain may have (400 above).
    pub max_reminders: usize,
    /// How far ahead a send time (or a reminder's) may be, days (400 beyond).
    pub max_send_ahead_days: u32,
    /// Open connections the API holds at most; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send a request's header, seconds; also how long an idle
    /// keep-alive connection stays open. Slower clients are disconnected.
    pub header_read_timeout_secs: u64,
    /// Time a client has to send a request's body once its header arrived, seconds (408 after);
    /// also how long an answer may wait for the client to take any of it.
    pub body_read_timeout_secs: u64,
    /// Largest request header block, bytes (431 above).
    pub max_header_bytes: usize,
    /// Send-rate limits, messages per second, by provider (`smtp`, `outbox`, `kannel`,
    /// `simulator`), held across all workers sharing the database
    /// (`VARSEL_SEND_RATE_LIMITS__SMTP=100`). None by default.
    pub send_rate_limits: std::collections::BTreeMap<String, u32>,
    /// Run the worker in this process (`serve` only; `dev` always does).
    pub run_worker: bool,
    /// Run the API in this process.
    pub run_api: bool,
    /// Where a worker-only process (`varsel worker`) serves `/metrics` and `/health`; empty: not
    /// at all. A process that runs the API serves them on `listen` instead.
    pub worker_metrics_listen: String,
    /// Log format: `text` (readable) or `json` (one object per line, for log collectors).
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        let policy = WorkflowPolicy::default();
        Self {
            data_dir: PathBuf::from("./data"),
            database_url: String::new(),
            database_max_connections: 16,
            listen: "127.0.0.1:8080".into(),
            public_base_url: String::new(),
            temporal_address: "http://127.0.0.1:7233".into(),
            temporal_namespace: "default".into(),
            temporal_ui_url: "http://127.0.0.1:8233".into(),
            task_queue: "varsel-orders".into(),
            smtp_url: String::new(),
            email_from: "noreply@varsel.local".into(),
            smtp_pool_size: 16,
            smtp_timeout_secs: 30,
            sms_provider: SmsProvider::Simulator,
            sms_allow_list: vec![],
            kannel_sendsms_url: String::new(),
            sms_gateway_timeout_secs: 30,
            kannel_username: "varsel".into(),
            kannel_password: Secret::default(),
            simulator_report_delay_ms: 2_000,
            email_delivery_reports: false,
            sms_sending_window: "09:00-17:00".into(),
            sms_sending_window_zone: "Europe/Oslo".into(),
            sms_sender_policies: varsel_workflows::sms::default_sender_policies(),
            notification_ttl_secs: 48 * 3600,
            report_secret: Secret::default(),
            report_username: "reports".into(),
            sms_default_sender: "Altinn".into(),
            auth_hmac_secrets: vec![],
            auth_public_key_files: vec![],
            auth_issuers: vec![],
            platform_issuers: BTreeMap::new(),
            condition_allowed_hosts: vec![],
            condition_timeout_secs: 10,
            // The workflow's tunables: one set of defaults, the workflow's own.
            condition_attempts: policy.condition_attempts,
            condition_retry_ms: policy.condition_retry_ms,
            max_retry_interval_ms: policy.max_retry_interval_ms,
            generate_batch: policy.generate_batch,
            send_batch: policy.send_batch,
            max_batches_per_run: policy.max_batches_per_run,
            send_concurrency: 16,
            dispatch_interval_ms: 2_000,
            cancel_cutoff_secs: 300,
            reminder_day_secs: 86_400,
            status_feed_retention_days: 90,
            max_body_bytes: 64 * 1024 * 1024,
            max_recipients: 500_000,
            max_subject_chars: 500,
            max_email_body_bytes: 1024 * 1024,
            max_sms_segments: varsel_workflows::sms::MAX_SEGMENTS,
            max_reference_chars: 255,
            max_reminders: 20,
            max_send_ahead_days: 3650,
            max_connections: 1024,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 60,
            max_header_bytes: 64 * 1024,
            send_rate_limits: Default::default(),
            run_worker: true,
            run_api: true,
            worker_metrics_listen: "127.0.0.1:9464".into(),
            log_format: LogFormat::Text,
        }
    }
}

impl Config {
    /// Defaults, then the file named by `VARSEL_CONFIG` (if any), then the environment.
    pub fn load() -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Ok(path) = std::env::var("VARSEL_CONFIG") {
            fig = fig.merge(Toml::file(path));
        }
        fig = fig
            .merge(
                Env::prefixed("VARSEL_")
                    .ignore(&["CONFIG"])
                    .split("__")
                    .map(|k| k.as_str().to_lowercase().into()),
            )
            .merge(
                Env::raw()
                    .only(&["TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"])
                    .map(|k| k.as_str().to_lowercase().into()),
            );
        let mut cfg: Config = fig.extract()?;
        cfg.normalise();
        Ok(cfg)
    }

    /// `VARSEL_*` variables in the environment that name no configuration key (a typo, or a
    /// key of another version), for a warning at start. Not an error: Kubernetes sets
    /// `VARSEL_PORT`, `VARSEL_SERVICE_HOST`, … for a service named `varsel`.
    pub fn unknown_variables() -> Vec<String> {
        let known: Vec<String> = match serde_json::to_value(Config::default()) {
            Ok(serde_json::Value::Object(keys)) => keys.into_iter().map(|(k, _)| k).collect(),
            _ => Vec::new(),
        };
        let mut unknown: Vec<String> = std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| {
                let Some(key) = k.strip_prefix("VARSEL_") else { return false };
                let top = key.split("__").next().unwrap_or_default();
                !NOT_CONFIG_KEYS.contains(&key)
                    && !known.iter().any(|n| n.eq_ignore_ascii_case(top))
            })
            .collect();
        unknown.sort();
        unknown
    }

    /// Fills derived defaults.
    pub fn normalise(&mut self) {
        if self.database_url.is_empty() {
            self.database_url = format!("sqlite://{}", self.data_dir.join("varsel.db").display());
        }
        if !self.temporal_address.contains("://") {
            self.temporal_address = format!("http://{}", self.temporal_address);
        }
    }

    /// The order's page in the Temporal web UI.
    pub fn temporal_ui_link(&self, order_id: &str) -> String {
        format!(
            "{}/namespaces/{}/workflows/{order_id}",
            self.temporal_ui_url.trim_end_matches('/'),
            self.temporal_namespace
        )
    }

    /// The SMS sending window, if one is configured.
    pub fn sms_window(&self) -> anyhow::Result<Option<varsel_workflows::sms::SendingWindow>> {
        if self.sms_sending_window.trim().is_empty() {
            return Ok(None);
        }
        varsel_workflows::sms::SendingWindow::parse(
            &self.sms_sending_window,
            &self.sms_sending_window_zone,
        )
        .map(Some)
        .map_err(|e| anyhow::anyhow!("VARSEL_SMS_SENDING_WINDOW: {e}"))
    }

    /// How long an instant message may be in its provider's hands before the request that sent
    /// it counts as gone: the longer provider timeout and half a minute. Until then a repeat of
    /// the request is told to wait, and the dispatcher leaves the order to the request.
    pub fn instant_grace(&self) -> chrono::Duration {
        chrono::Duration::seconds(
            self.smtp_timeout_secs.max(self.sms_gateway_timeout_secs) as i64 + 30,
        )
    }

    /// The base URL for links.
    pub fn base_url(&self, bound: &str) -> String {
        if self.public_base_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.public_base_url.trim_end_matches('/').to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail closure returns figment's own error type
    fn platform_issuers_and_limits_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VARSEL_PLATFORM_ISSUERS__TTD__PUBLIC_KEY_FILES", "[/keys/ttd.pem]");
            jail.set_env(
                "VARSEL_PLATFORM_ISSUERS__DIGDIR__HMAC_SECRETS",
                "[MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]",
            );
            jail.set_env(
                "VARSEL_AUTH_HMAC_SECRETS",
                "[MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWZ4eQ==]",
            );
            jail.set_env("VARSEL_MAX_REMINDERS", "5");
            let cfg = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(
                cfg.platform_issuers["ttd"].public_key_files,
                vec![PathBuf::from("/keys/ttd.pem")]
            );
            assert_eq!(
                cfg.platform_issuers["digdir"].hmac_secrets,
                vec![Secret::from("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")]
            );
            assert_eq!(
                cfg.auth_hmac_secrets,
                vec![Secret::from("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWZ4eQ==")]
            );
            assert_eq!(cfg.max_reminders, 5);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn secrets_never_show_in_debug() {
        let cfg = Config {
            kannel_password: "kannel-pass".into(),
            report_secret: "report-secret".into(),
            auth_hmac_secrets: vec!["hmac-secret".into()],
            ..Config::default()
        };
        let printed = format!("{cfg:?}");
        for secret in ["kannel-pass", "report-secret", "hmac-secret"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("kannel_password: [redacted]"), "{printed}");
        assert!(printed.contains("report_username: \"reports\""), "the rest still shows");
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn closed_sets_are_enums_and_a_wrong_value_names_its_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VARSEL_SMS_PROVIDER", "kannel");
            jail.set_env("VARSEL_LOG_FORMAT", "JSON");
            let cfg = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(cfg.sms_provider, SmsProvider::Kannel);
            assert_eq!(cfg.log_format, LogFormat::Json);
            jail.set_env("VARSEL_SMS_PROVIDER", "twilio");
            let err = Config::load().expect_err("an unknown provider").to_string();
            assert!(
                err.contains("twilio") && err.contains("\"SMS_PROVIDER\" in `VARSEL_`"),
                "{err}"
            );
            assert!(err.contains("simulator") && err.contains("kannel"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn unknown_variables_are_reported_and_known_ones_are_not() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VARSEL_SMPT_URL", "smtp://relay:25");
            jail.set_env("VARSEL_SMTP_URL", "smtp://relay:25");
            jail.set_env("VARSEL_SEND_RATE_LIMITS__SMTP", "10");
            jail.set_env("VARSEL_PLATFORM_ISSUERS__TTD__PUBLIC_KEY_FILES", "[/k.pem]");
            jail.set_env("VARSEL_LOG", "debug");
            jail.set_env("VARSEL_PORT_8080_TCP", "tcp://10.0.0.1:8080");
            let unknown = Config::unknown_variables();
            assert!(unknown.contains(&"VARSEL_SMPT_URL".to_owned()), "{unknown:?}");
            assert!(unknown.contains(&"VARSEL_PORT_8080_TCP".to_owned()), "{unknown:?}");
            for known in ["VARSEL_SMTP_URL", "VARSEL_SEND_RATE_LIMITS__SMTP", "VARSEL_LOG"] {
                assert!(!unknown.contains(&known.to_owned()), "{known} in {unknown:?}");
            }
            assert!(!unknown.iter().any(|u| u.starts_with("VARSEL_PLATFORM")), "{unknown:?}");
            Ok(())
        });
    }
}
