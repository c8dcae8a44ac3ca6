//! One typed configuration: defaults in code, an optional TOML file (`VARSEL_CONFIG`), then
//! `VARSEL_*` environment variables; Temporal's own `TEMPORAL_ADDRESS` / `TEMPORAL_NAMESPACE`
//! select an external Temporal. Every key is listed in docs/configuration.md.

use figment::value::{Dict, Map, Tag, Value};
use figment::{
    Figment, Metadata, Profile, Provider,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use varsel_activities::providers::bounce_address::BounceAddresses;
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

/// Where persons' contact details come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PersonsSource {
    /// The embedded contact register (`varsel contacts import`).
    #[default]
    Register,
    /// KRR's lookup service (`krr_url`), with a Maskinporten token.
    Krr,
    /// Altinn Profile's `users/contactpoint/lookup` (`profile_url`).
    Profile,
}

/// Where organisations' notification addresses come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrganizationsSource {
    /// The embedded contact register.
    #[default]
    Register,
    /// Altinn Profile's `organizations/notificationaddresses/lookup` (`profile_url`).
    Profile,
}

/// Where names for `$recipientName$` come from when the contact source gives none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NamesSource {
    /// The embedded contact register.
    #[default]
    Register,
    /// Altinn Register's `parties/nameslookup` (`altinn_register_url`).
    Altinn,
}

/// Where recipients' contact details come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ContactsConfig {
    /// `register` (default: the embedded contact register), `krr` (KRR's lookup service at
    /// `krr_url`, authenticated with Maskinporten) or `profile` (Altinn Profile at `profile_url`).
    #[serde(rename = "contacts_persons")]
    pub persons: PersonsSource,
    /// `register` (default) or `profile`.
    #[serde(rename = "contacts_organizations")]
    pub organizations: OrganizationsSource,
    /// `register` (default) or `altinn` (Altinn Register at `altinn_register_url`).
    #[serde(rename = "contacts_names")]
    pub names: NamesSource,
    /// Altinn Profile's API base, e.g. `https://platform.altinn.no/profile/api/v1/`. Also where
    /// self-identified users (`recipientExternalIdentity`) are looked up; empty: they are not
    /// identified.
    pub profile_url: String,
    /// Altinn Register's API base, e.g. `https://platform.altinn.no/register/api/v1/`.
    pub altinn_register_url: String,
    /// The RSA key (PEM) varsel signs the PlatformAccessTokens Register requires with.
    pub altinn_access_token_key_file: PathBuf,
    /// That key's id (`kid`); empty: none.
    pub altinn_access_token_kid: String,
    /// The PlatformAccessToken's issuer.
    pub altinn_access_token_issuer: String,
    /// The PlatformAccessToken's app (`urn:altinn:app`).
    pub altinn_access_token_app: String,
    /// KRR's base URL (`/rest/v1/personer` is appended), e.g. `https://kontaktregisteret.no`.
    pub krr_url: String,
    /// The Maskinporten scope KRR is called with.
    pub krr_scope: String,
    /// Numbers a lookup call (KRR takes at most 1,000).
    #[serde(rename = "contacts_batch")]
    pub batch: usize,
    /// Lookup calls at once.
    #[serde(rename = "contacts_concurrency")]
    pub concurrency: usize,
    /// Timeout of one lookup call, seconds.
    #[serde(rename = "contacts_timeout_secs")]
    pub timeout_secs: u64,
    /// How long an answer of KRR, Profile or Register is remembered, seconds; 0: not at all.
    #[serde(rename = "contacts_cache_secs")]
    pub cache_secs: u64,
    /// Answers remembered at most (least recently used first out).
    #[serde(rename = "contacts_cache_entries")]
    pub cache_entries: usize,
}

impl Default for ContactsConfig {
    fn default() -> Self {
        Self {
            persons: PersonsSource::Register,
            organizations: OrganizationsSource::Register,
            names: NamesSource::Register,
            profile_url: String::new(),
            altinn_register_url: String::new(),
            altinn_access_token_key_file: PathBuf::new(),
            altinn_access_token_kid: String::new(),
            altinn_access_token_issuer: "platform".into(),
            altinn_access_token_app: "notifications".into(),
            krr_url: String::new(),
            krr_scope: "krr:global/kontaktinformasjon.read".into(),
            batch: 1_000,
            concurrency: 4,
            timeout_secs: 10,
            cache_secs: 60,
            cache_entries: 200_000,
        }
    }
}

/// Maskinporten: who varsel is there, for the services it calls.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct MaskinportenConfig {
    /// The token endpoint, e.g. `https://maskinporten.no/token`; empty: no Maskinporten.
    pub maskinporten_token_url: String,
    /// The grant's audience, Maskinporten's issuer; empty: the token endpoint's origin and `/`
    /// (`https://maskinporten.no/`).
    pub maskinporten_audience: String,
    /// varsel's client id at Maskinporten.
    pub maskinporten_client_id: String,
    /// The RSA private key: PEM, or a PKCS#12 file (`.p12`, `.pfx`) with its certificate chain.
    pub maskinporten_key_file: PathBuf,
    /// The password of a PKCS#12 key file.
    pub maskinporten_key_password: Secret,
    /// The key's id as registered at Maskinporten; or else `maskinporten_certificate_file`.
    pub maskinporten_kid: String,
    /// The business certificate and its chain, PEM (sent as `x5c`) instead of a `kid`.
    pub maskinporten_certificate_file: PathBuf,
    /// A token is renewed this long before it expires, seconds.
    pub maskinporten_renew_before_secs: u64,
}

impl Default for MaskinportenConfig {
    fn default() -> Self {
        Self {
            maskinporten_token_url: String::new(),
            maskinporten_audience: String::new(),
            maskinporten_client_id: String::new(),
            maskinporten_key_file: PathBuf::new(),
            maskinporten_key_password: Secret::default(),
            maskinporten_kid: String::new(),
            maskinporten_certificate_file: PathBuf::new(),
            maskinporten_renew_before_secs: 60,
        }
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

/// The sections of [`Config`]: a flat key of the environment or the file belongs to the one
/// section that has it.
const SECTIONS: &[&str] = &[
    "database",
    "http",
    "temporal",
    "email",
    "sms",
    "reports",
    "auth",
    "conditions",
    "processing",
    "limits",
    "contacts",
    "maskinporten",
    "webhooks",
];

/// varsel's configuration, in sections. Each key keeps its one flat name, which is what an
/// operator writes: `VARSEL_SMTP_URL` in the environment, `smtp_url = ...` at the top of the
/// TOML file (or under its section, `[email]`); `load` files each flat key into its section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Config {
    /// Folder for local state: SQLite file, dev signing key, email outbox, Temporal dev database.
    pub data_dir: PathBuf,
    /// The database.
    pub database: DatabaseConfig,
    /// The HTTP API: where it listens, and how much a client may ask of it.
    pub http: HttpConfig,
    /// The Temporal service the workflows run on.
    pub temporal: TemporalConfig,
    /// Email: the SMTP relay and what it reports.
    pub email: EmailConfig,
    /// SMS: the gateway or simulator, the sending window and sender rules.
    pub sms: SmsConfig,
    /// The delivery-report endpoints: how providers prove who they are.
    pub reports: ReportsConfig,
    /// Who may call the API: the keys and issuers of bearer and platform tokens.
    pub auth: AuthConfig,
    /// Send-condition endpoints: where they may be, and how hard varsel tries.
    pub conditions: ConditionConfig,
    /// How orders are processed: batches, retries, time-to-live, cut-offs, send rates.
    pub processing: ProcessingConfig,
    /// How large an order may be (400 beyond each).
    pub limits: LimitsConfig,
    /// Where recipients' contact details come from.
    pub contacts: ContactsConfig,
    /// Maskinporten: tokens for the services varsel calls (KRR).
    pub maskinporten: MaskinportenConfig,
    /// Status webhooks to senders: where they may go, and how hard varsel tries.
    pub webhooks: WebhookConfig,
    /// Run the worker in this process (`serve` only; `dev` always does).
    pub run_worker: bool,
    /// Run the API in this process.
    pub run_api: bool,
    /// Run the inbound SMTP listener in this process when `bounce_listen` is set (`serve`;
    /// `varsel bounces` runs only it, `api` and `worker` never).
    pub run_bounces: bool,
    /// Where a worker-only process (`varsel worker`) serves `/metrics` and `/health`; empty: not
    /// at all. A process that runs the API serves them on `listen` instead.
    pub worker_metrics_listen: String,
    /// On SIGTERM or SIGINT, how long the process may take to stop, seconds: requests in flight
    /// finish, running send batches record the sends they started. What still runs then is
    /// cancelled (Temporal retries it elsewhere). Give the orchestrator a few seconds more
    /// (Kubernetes `terminationGracePeriodSeconds`, Compose `stop_grace_period`).
    pub shutdown_grace_secs: u64,
    /// Of that, how long the API keeps answering new requests with 503 and `Retry-After` (while
    /// a load balancer takes it out of rotation) before it stops accepting connections, seconds.
    pub shutdown_drain_secs: u64,
    /// Log format: `text` (readable) or `json` (one object per line, for log collectors).
    pub log_format: LogFormat,
}

/// A URL as it may be shown (printed, logged, in an error): its password, if any, replaced by
/// `***`. A URL that does not parse is not shown at all.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) if raw.is_empty() => String::new(),
        Err(_) => "[a URL that does not parse]".to_owned(),
    }
}

/// The database.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct DatabaseConfig {
    /// Database URL: `sqlite://path` or `postgres://...`. Empty means `<data_dir>/varsel.db`.
    #[serde(rename = "database_url")]
    pub url: String,
    /// Database connections at most.
    #[serde(rename = "database_max_connections")]
    pub max_connections: u32,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { url: String::new(), max_connections: 16 }
    }
}

/// The HTTP API: where it listens, and how much a client may ask of it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct HttpConfig {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Public base URL used in `Location` headers; empty means `http://<listen>`.
    pub public_base_url: String,
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
    /// Largest request body accepted, bytes.
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_base_url: String::new(),
            max_connections: 1024,
            header_read_timeout_secs: 30,
            body_read_timeout_secs: 60,
            max_header_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The Temporal service the workflows run on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TemporalConfig {
    /// Temporal frontend address (`TEMPORAL_ADDRESS`).
    #[serde(rename = "temporal_address")]
    pub address: String,
    /// Temporal namespace (`TEMPORAL_NAMESPACE`).
    #[serde(rename = "temporal_namespace")]
    pub namespace: String,
    /// Base URL of the Temporal web UI, for links to an order's workflow.
    #[serde(rename = "temporal_ui_url")]
    pub ui_url: String,
    /// Task queue for order workflows and activities.
    pub task_queue: String,
    /// Activities one worker runs at once (its activity task slots): batches beyond it wait in
    /// Temporal for another worker.
    pub worker_max_activities: usize,
    /// Activities one worker runs at once for composed emails, which have a task queue of their
    /// own (`<task_queue>-composed`), so that large mails never take the slots of others.
    pub composed_max_activities: usize,
}

impl TemporalConfig {
    /// The task queue of composed emails' workflows and activities.
    pub fn composed_task_queue(&self) -> String {
        format!("{}-composed", self.task_queue)
    }

    /// The task queue an order's workflow runs on.
    pub fn task_queue_for(&self, order: &varsel_workflows::order::Order) -> String {
        match order.chain.as_ref().map(|c| c.order_type) {
            Some(varsel_workflows::order::OrderType::Composed) => self.composed_task_queue(),
            _ => self.task_queue.clone(),
        }
    }
}

impl Default for TemporalConfig {
    fn default() -> Self {
        Self {
            address: "http://127.0.0.1:7233".into(),
            namespace: "default".into(),
            ui_url: "http://127.0.0.1:8233".into(),
            task_queue: "varsel-orders".into(),
            worker_max_activities: 100,
            composed_max_activities: 5,
        }
    }
}

/// Email: the SMTP relay and what it reports.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EmailConfig {
    /// SMTP relay URL; empty writes emails to `<data_dir>/outbox`.
    pub smtp_url: String,
    /// Default email sender address.
    #[serde(rename = "email_from")]
    pub from: String,
    /// Pooled SMTP connections at most.
    pub smtp_pool_size: u32,
    /// SMTP timeout, seconds: of connecting, and of one message's whole exchange with the relay.
    pub smtp_timeout_secs: u64,
    /// Whether the SMTP relay posts delivery reports (then `Email_Succeeded` waits for one).
    #[serde(rename = "email_delivery_reports")]
    pub delivery_reports: bool,
    /// The domain of bounce addresses, e.g. `bounces.example.org`: each email's envelope sender
    /// is an address of its own under it, signed, so that the relay's delivery status
    /// notifications come back to varsel's inbound SMTP listener (`bounce_listen`). Its MX must
    /// point at the listener (see docs/delivery.md). Empty: the envelope sender is `email_from`.
    #[serde(rename = "email_bounce_domain")]
    pub bounce_domain: String,
    /// Where the inbound SMTP listener for bounces and complaint reports listens, e.g.
    /// `0.0.0.0:25`; empty: no listener in this process. Runs in `serve`, `dev` and `bounces`.
    pub bounce_listen: String,
    /// The largest report mail the listener takes, bytes (larger ones are refused with 552).
    pub bounce_max_bytes: usize,
    /// Ask the relay for delivery status notifications of successes too (`NOTIFY=SUCCESS,
    /// FAILURE,DELAY`, RFC 3461, on relays that announce DSN): `Email_Succeeded` then waits for
    /// `Email_Delivered` or a failure. Needs `email_bounce_domain`.
    #[serde(rename = "email_dsn_notify")]
    pub dsn_notify: bool,
    /// The largest email handed to the relay, bytes, attachments included (base64 makes a file
    /// a third larger); a larger one fails with `Email_Failed_PayloadTooLarge`, and so does one
    /// the relay refuses as too large. Also the bound of a composed email's downloads together.
    #[serde(rename = "email_max_message_bytes")]
    pub max_message_bytes: u64,
    /// Attachment downloads of composed emails at once in one worker.
    pub attachment_concurrency: usize,
    /// Timeout of one attachment download (connecting, the answer and the whole file), seconds.
    pub attachment_timeout_secs: u64,
    /// Destinations attachment URLs may be at although they are not public, as
    /// `condition_allowed_hosts` (host names, addresses, networks). Everything else that is not
    /// public is refused when the order is made and again when the file is fetched.
    pub attachment_allowed_hosts: Vec<String>,
}

impl std::fmt::Debug for EmailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailConfig")
            .field("smtp_url", &redact_url(&self.smtp_url))
            .field("from", &self.from)
            .field("smtp_pool_size", &self.smtp_pool_size)
            .field("smtp_timeout_secs", &self.smtp_timeout_secs)
            .field("delivery_reports", &self.delivery_reports)
            .field("bounce_domain", &self.bounce_domain)
            .field("bounce_listen", &self.bounce_listen)
            .field("bounce_max_bytes", &self.bounce_max_bytes)
            .field("dsn_notify", &self.dsn_notify)
            .finish()
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        Self {
            smtp_url: String::new(),
            from: "noreply@varsel.local".into(),
            smtp_pool_size: 16,
            smtp_timeout_secs: 30,
            delivery_reports: false,
            bounce_domain: String::new(),
            bounce_listen: String::new(),
            bounce_max_bytes: 1024 * 1024,
            dsn_notify: false,
            max_message_bytes: 10 * 1024 * 1024,
            attachment_concurrency: 5,
            attachment_timeout_secs: 30,
            attachment_allowed_hosts: vec![],
        }
    }
}

/// SMS: the gateway or simulator, the sending window and sender rules.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct SmsConfig {
    /// `simulator` (default: numbers on `sms_allow_list` go to Kannel when it is configured, all
    /// others to the simulator) or `kannel` (every number to Kannel).
    #[serde(rename = "sms_provider")]
    pub provider: SmsProvider,
    /// Numbers or prefixes sent through the real gateway while `sms_provider` is `simulator`.
    #[serde(rename = "sms_allow_list")]
    pub allow_list: Vec<String>,
    /// Kannel smsbox `sendsms` URL, e.g. `http://127.0.0.1:13013/cgi-bin/sendsms`; empty: no gateway.
    pub kannel_sendsms_url: String,
    /// Timeout of one request to the SMS gateway, seconds.
    #[serde(rename = "sms_gateway_timeout_secs")]
    pub gateway_timeout_secs: u64,
    /// Kannel `sendsms-user` name.
    pub kannel_username: String,
    /// Kannel `sendsms-user` password.
    pub kannel_password: Secret,
    /// Delay before the simulator reports a message delivered, milliseconds.
    pub simulator_report_delay_ms: u64,
    /// Daily window for SMS, `HH:MM-HH:MM` in `sms_sending_window_zone`; empty: any time.
    #[serde(rename = "sms_sending_window")]
    pub sending_window: String,
    /// Time zone of the SMS window.
    #[serde(rename = "sms_sending_window_zone")]
    pub sending_window_zone: String,
    /// Per-country handling of unregistered alphanumeric sender ids.
    #[serde(rename = "sms_sender_policies")]
    pub sender_policies: Vec<varsel_workflows::sms::SenderPolicy>,
    /// SMS sender id when an order gives none.
    #[serde(rename = "sms_default_sender")]
    pub default_sender: String,
}

impl Default for SmsConfig {
    fn default() -> Self {
        Self {
            provider: SmsProvider::Simulator,
            allow_list: vec![],
            kannel_sendsms_url: String::new(),
            gateway_timeout_secs: 30,
            kannel_username: "varsel".into(),
            kannel_password: Secret::default(),
            simulator_report_delay_ms: 2_000,
            sending_window: "09:00-17:00".into(),
            sending_window_zone: "Europe/Oslo".into(),
            sender_policies: varsel_workflows::sms::default_sender_policies(),
            default_sender: "Altinn".into(),
        }
    }
}

/// The delivery-report endpoints: how providers prove who they are.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ReportsConfig {
    /// Secret that signs Kannel report URLs and is the password of the email report endpoint;
    /// empty: `<data_dir>/report-secret` (created on first start).
    #[serde(rename = "report_secret")]
    pub secret: Secret,
    /// User name of the email report endpoint (HTTP Basic).
    #[serde(rename = "report_username")]
    pub username: String,
    /// The key an Azure Event Grid subscription carries in its endpoint URL
    /// (`…/reports/email/eventgrid?key=<this>`); empty: the Event Grid endpoint refuses every
    /// delivery.
    #[serde(rename = "eventgrid_key")]
    pub eventgrid_key: Secret,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            secret: Secret::default(),
            username: "reports".into(),
            eventgrid_key: Secret::default(),
        }
    }
}

/// Who may call the API: the keys and issuers of bearer and platform tokens (none by default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct AuthConfig {
    /// HMAC (HS256) secrets accepted for tokens, base64. Empty with no public keys: the dev key
    /// in `<data_dir>/dev-signing-key` (created on first start).
    #[serde(rename = "auth_hmac_secrets")]
    pub hmac_secrets: Vec<Secret>,
    /// PEM files with RSA or EC public keys accepted for tokens (RS256 / ES256).
    #[serde(rename = "auth_public_key_files")]
    pub public_key_files: Vec<PathBuf>,
    /// JWK sets whose RSA and P-256 keys verify bearer tokens (RS256 / ES256), e.g.
    /// `https://maskinporten.no/jwk`: fetched at start, every `jwks_refresh_secs`, and when a
    /// token names a key id they lack.
    #[serde(rename = "auth_jwks_urls")]
    pub jwks_urls: Vec<String>,
    /// How often the JWK sets are fetched again, seconds.
    #[serde(rename = "auth_jwks_refresh_secs")]
    pub jwks_refresh_secs: u64,
    /// Issuers (`iss`) accepted for bearer tokens, e.g. `https://maskinporten.no/`. Empty: any
    /// issuer signed by a configured key (warned at start); with the dev key: `varsel-dev`.
    #[serde(rename = "auth_issuers")]
    pub issuers: Vec<String>,
    /// PlatformAccessToken issuers and the keys that verify their tokens, by issuer (the
    /// token's `iss`, which becomes the creator): `[platform_issuers.ttd]` with `hmac_secrets`
    /// and/or `public_key_files`, or `VARSEL_PLATFORM_ISSUERS__TTD__PUBLIC_KEY_FILES=[...]`
    /// (issuer names are lowercase, as Altinn's org codes). A platform token is verified only
    /// with its own issuer's keys; none of them may also be a bearer key. Empty, with no bearer
    /// keys either: the dev key set of the data dir.
    pub platform_issuers: BTreeMap<String, IssuerKeys>,
    /// Whether a process may make up its own token keys and report secret in its data dir when
    /// none are configured: for `varsel dev` and single-host trials only (each host would make
    /// different ones). Without it such a process refuses to start.
    #[serde(rename = "allow_data_dir_keys")]
    pub allow_data_dir_keys: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            hmac_secrets: Vec::new(),
            public_key_files: Vec::new(),
            jwks_urls: Vec::new(),
            jwks_refresh_secs: 3600,
            issuers: Vec::new(),
            platform_issuers: BTreeMap::new(),
            allow_data_dir_keys: false,
        }
    }
}

impl AuthConfig {
    /// Whether any token verification key is configured.
    pub fn has_keys(&self) -> bool {
        !self.hmac_secrets.is_empty()
            || !self.public_key_files.is_empty()
            || !self.jwks_urls.is_empty()
            || !self.platform_issuers.is_empty()
    }
}

/// Send-condition endpoints: where they may be, and how hard varsel tries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ConditionConfig {
    /// Destinations `conditionEndpoint` may reach although they are not public: host names
    /// (`localhost`), addresses (`127.0.0.1`, `::1`) or networks (`10.20.0.0/16`). Everything
    /// else in loopback, private, link-local (metadata) or other non-public ranges is refused,
    /// whether named directly, resolved from a name or reached by a redirect.
    #[serde(rename = "condition_allowed_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Timeout of one condition check, seconds.
    #[serde(rename = "condition_timeout_secs")]
    pub timeout_secs: u64,
    /// Attempts at a condition endpoint before the order is sent anyway.
    #[serde(rename = "condition_attempts")]
    pub attempts: u32,
    /// First retry delay of a condition check, milliseconds.
    #[serde(rename = "condition_retry_ms")]
    pub retry_ms: u64,
    /// How varsel proves itself to condition endpoints: `none`, `token` (`condition_token` as a
    /// bearer token) or `maskinporten` (a token for `condition_scope`).
    #[serde(rename = "condition_auth")]
    pub auth: ConditionAuthKind,
    /// The bearer token of `condition_auth = token`.
    #[serde(rename = "condition_token")]
    pub token: Secret,
    /// The Maskinporten scope of `condition_auth = maskinporten`.
    #[serde(rename = "condition_scope")]
    pub scope: String,
}

/// How varsel proves itself to condition endpoints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionAuthKind {
    /// No `Authorization` header.
    #[default]
    None,
    /// `condition_token`, as a bearer token.
    Token,
    /// A Maskinporten token for `condition_scope`.
    Maskinporten,
}

impl Default for ConditionConfig {
    fn default() -> Self {
        // The workflow's tunables: one set of defaults, the workflow's own.
        let policy = WorkflowPolicy::default();
        Self {
            allowed_hosts: vec![],
            timeout_secs: 10,
            attempts: policy.condition_attempts,
            retry_ms: policy.condition_retry_ms,
            auth: ConditionAuthKind::None,
            token: Secret::default(),
            scope: "altinn:system/notifications.condition.check".into(),
        }
    }
}

/// Status webhooks to senders: where they may go, and how hard varsel tries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct WebhookConfig {
    /// Destinations webhook endpoints may be at although they are not public, as
    /// `condition_allowed_hosts` (host names, addresses, networks). Everything else that is not
    /// public is refused at registration and again at each delivery.
    #[serde(rename = "webhook_allowed_hosts")]
    pub allowed_hosts: Vec<String>,
    /// Timeout of one delivery attempt, seconds (at most 25).
    #[serde(rename = "webhook_timeout_secs")]
    pub timeout_secs: u64,
    /// First retry delay after a failed delivery, milliseconds (doubling each attempt).
    #[serde(rename = "webhook_retry_initial_ms")]
    pub retry_initial_ms: u64,
    /// Longest retry delay, milliseconds.
    #[serde(rename = "webhook_retry_max_ms")]
    pub retry_max_ms: u64,
    /// How long a failing delivery is retried before its endpoint is disabled, seconds (at
    /// least a day in production).
    #[serde(rename = "webhook_retry_for_secs")]
    pub retry_for_secs: u64,
    /// How long a delivered (endpoint, order) pair's workflow waits for more events before it
    /// ends, seconds (a later event starts it again).
    #[serde(rename = "webhook_idle_secs")]
    pub idle_secs: u64,
    /// After a secret rotation, how long the previous secret still signs (beside the new one),
    /// seconds.
    #[serde(rename = "webhook_secret_overlap_secs")]
    pub secret_overlap_secs: u64,
    /// Endpoints one creator may register.
    #[serde(rename = "webhook_max_endpoints")]
    pub max_endpoints: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        // The workflow's own defaults.
        let policy = varsel_workflows::webhook::WebhookPolicy::default();
        Self {
            allowed_hosts: vec![],
            timeout_secs: 10,
            retry_initial_ms: policy.retry_initial_ms,
            retry_max_ms: policy.retry_max_ms,
            retry_for_secs: policy.retry_for_secs,
            idle_secs: policy.idle_secs,
            secret_overlap_secs: 24 * 3600,
            max_endpoints: 20,
        }
    }
}

impl WebhookConfig {
    /// The workflow's policy.
    pub fn policy(&self) -> varsel_workflows::webhook::WebhookPolicy {
        varsel_workflows::webhook::WebhookPolicy {
            retry_initial_ms: self.retry_initial_ms,
            retry_max_ms: self.retry_max_ms,
            retry_for_secs: self.retry_for_secs,
            idle_secs: self.idle_secs,
        }
    }
}

/// How orders are processed: batches, retries, time-to-live, cut-offs, send rates.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ProcessingConfig {
    /// How long a notification may wait for a final status before it fails with `*_Failed_TTL`,
    /// seconds.
    pub notification_ttl_secs: u64,
    /// Upper bound of activity retry delays, milliseconds.
    pub max_retry_interval_ms: u64,
    /// Recipients per generate activity.
    pub generate_batch: u32,
    /// Notifications per send activity.
    pub send_batch: u32,
    /// Batches one workflow run executes before continuing as new.
    pub max_batches_per_run: u32,
    /// Concurrent sends of one worker, over all the batches it runs.
    pub send_concurrency: usize,
    /// Slices of one order in flight at once (each generated and sent by its own activities,
    /// on whichever workers poll), recorded in each order's policy.
    pub send_window: u32,
    /// How long one send activity keeps starting sends, seconds (1 to 100, below the activity's
    /// 120 s timeout): the rest is left to the next batch.
    pub send_budget_secs: u64,
    /// How often orders whose workflow could not be started are retried, milliseconds.
    pub dispatch_interval_ms: u64,
    /// An order can be cancelled only while its send time is more than this far away, seconds.
    pub cancel_cutoff_secs: u64,
    /// Length of the "day" of a reminder's `delayDays`, seconds (shortened in tests).
    pub reminder_day_secs: u64,
    /// Days a status-feed entry is kept.
    pub status_feed_retention_days: u64,
    /// How often each process keeps a snapshot of its counters in the database, for the
    /// console's overview (the last hour and day over every process), seconds.
    pub metric_snapshot_secs: u64,
    /// Send-rate limits, messages per second, by provider (`smtp`, `outbox`, `kannel`,
    /// `simulator`), held across all workers sharing the database
    /// (`VARSEL_SEND_RATE_LIMITS__SMTP=100`). None by default.
    pub send_rate_limits: std::collections::BTreeMap<String, u32>,
}

impl Default for ProcessingConfig {
    fn default() -> Self {
        // The workflow's tunables: one set of defaults, the workflow's own.
        let policy = WorkflowPolicy::default();
        Self {
            notification_ttl_secs: 48 * 3600,
            max_retry_interval_ms: policy.max_retry_interval_ms,
            generate_batch: policy.generate_batch,
            send_batch: policy.send_batch,
            max_batches_per_run: policy.max_batches_per_run,
            send_concurrency: 16,
            send_window: policy.send_window,
            send_budget_secs: 60,
            dispatch_interval_ms: 2_000,
            cancel_cutoff_secs: 300,
            reminder_day_secs: 86_400,
            status_feed_retention_days: 90,
            metric_snapshot_secs: 60,
            send_rate_limits: Default::default(),
        }
    }
}

/// How large an order may be (400 beyond each).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct LimitsConfig {
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
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_recipients: 500_000,
            max_subject_chars: 500,
            max_email_body_bytes: 1024 * 1024,
            max_sms_segments: varsel_workflows::sms::MAX_SEGMENTS,
            max_reference_chars: 255,
            max_reminders: 20,
            max_send_ahead_days: 3650,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            database: DatabaseConfig::default(),
            http: HttpConfig::default(),
            temporal: TemporalConfig::default(),
            email: EmailConfig::default(),
            sms: SmsConfig::default(),
            reports: ReportsConfig::default(),
            auth: AuthConfig::default(),
            conditions: ConditionConfig::default(),
            processing: ProcessingConfig::default(),
            limits: LimitsConfig::default(),
            contacts: ContactsConfig::default(),
            maskinporten: MaskinportenConfig::default(),
            webhooks: WebhookConfig::default(),
            run_worker: true,
            run_api: true,
            run_bounces: true,
            worker_metrics_listen: "127.0.0.1:9464".into(),
            shutdown_grace_secs: 30,
            shutdown_drain_secs: 5,
            log_format: LogFormat::Text,
        }
    }
}

/// A provider whose flat keys are filed into their sections: `smtp_url` at the top becomes
/// `email.smtp_url`. Keys already under a section, and keys of no section, stay where they are.
struct Sectioned<P>(P);

impl<P: Provider> Provider for Sectioned<P> {
    fn metadata(&self) -> Metadata {
        self.0.metadata()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let sections: Vec<(String, &str)> =
            Config::keys().into_iter().filter_map(|(k, s)| Some((k, s?))).collect();
        let mut data = self.0.data()?;
        for dict in data.values_mut() {
            for (key, section) in &sections {
                let Some(value) = dict.remove(key) else { continue };
                let entry = dict
                    .entry((*section).to_owned())
                    .or_insert_with(|| Value::Dict(Tag::Default, Dict::new()));
                match entry {
                    Value::Dict(_, fields) => {
                        fields.insert(key.clone(), value);
                    }
                    // `[email] = 5`: let the extraction say what is wrong with it.
                    _ => {
                        dict.insert(key.clone(), value);
                    }
                }
            }
        }
        Ok(data)
    }
}

/// A configuration error as an operator can act on it: the variable (or file key) at fault, and
/// what is wrong with its value.
fn explain(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            // The path inside a section is the flat key: the section is not part of the name.
            let path: Vec<&str> = match e.path.split_first() {
                Some((first, rest)) if SECTIONS.contains(&first.as_str()) && !rest.is_empty() => {
                    rest.iter().map(String::as_str).collect()
                }
                _ => e.path.iter().map(String::as_str).collect(),
            };
            let source = e.metadata.as_ref().map(|m| format!(" (from {})", m.name));
            if path.is_empty() {
                format!("configuration: {}{}", e.kind, source.unwrap_or_default())
            } else {
                format!(
                    "VARSEL_{} (`{}` in the file): {}{}",
                    path.join("__").to_uppercase(),
                    path.join("."),
                    e.kind,
                    source.unwrap_or_default()
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl Config {
    /// Defaults, then the file named by `VARSEL_CONFIG` (if any), then the environment; checked
    /// once, here: a value that does not fit its key fails the start with a message naming the
    /// variable (`VARSEL_SMTP_POOL_SIZE: invalid type: …`).
    pub fn load() -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Ok(path) = std::env::var("VARSEL_CONFIG") {
            fig = fig.merge(Sectioned(Toml::file(path)));
        }
        fig = fig
            .merge(Sectioned(
                Env::prefixed("VARSEL_")
                    .ignore(&["CONFIG"])
                    .split("__")
                    .map(|k| k.as_str().to_lowercase().into()),
            ))
            .merge(Sectioned(
                Env::raw()
                    .only(&["TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"])
                    .map(|k| k.as_str().to_lowercase().into()),
            ));
        let mut cfg: Config = fig.extract().map_err(|e| anyhow::anyhow!(explain(e)))?;
        cfg.normalise();
        Ok(cfg)
    }

    /// Every flat key (as written in the environment or the file) and the section holding it;
    /// `None` for the keys at the top.
    fn keys() -> Vec<(String, Option<&'static str>)> {
        let Ok(serde_json::Value::Object(top)) = serde_json::to_value(Config::default()) else {
            return Vec::new();
        };
        let mut keys = Vec::new();
        for (key, value) in top {
            match SECTIONS.iter().find(|s| **s == key) {
                Some(section) => {
                    if let serde_json::Value::Object(fields) = value {
                        keys.extend(fields.into_iter().map(|(k, _)| (k, Some(*section))));
                    }
                }
                None => keys.push((key, None)),
            }
        }
        keys
    }

    /// `VARSEL_*` variables in the environment that name no configuration key (a typo, or a
    /// key of another version), for a warning at start. Not an error: Kubernetes sets
    /// `VARSEL_PORT`, `VARSEL_SERVICE_HOST`, … for a service named `varsel`.
    pub fn unknown_variables() -> Vec<String> {
        let known: Vec<String> = Self::keys().into_iter().map(|(k, _)| k).collect();
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
        let database = &mut self.database;
        if database.url.is_empty() {
            database.url = format!("sqlite://{}", self.data_dir.join("varsel.db").display());
        }
        let temporal = &mut self.temporal;
        if !temporal.address.contains("://") {
            temporal.address = format!("http://{}", temporal.address);
        }
    }

    /// The bounce addresses of `email_bounce_domain`, signed with a key derived from the report
    /// secret; `None` without a bounce domain.
    pub fn bounce_addresses(&self, report_secret: &str) -> Option<BounceAddresses> {
        let domain = self.email.bounce_domain.trim();
        (!domain.is_empty()).then(|| BounceAddresses::new(domain, report_secret.as_bytes()))
    }

    /// How long a signalled process may take to stop.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// How long a signalled API answers 503 before it stops accepting (within the grace).
    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_secs.min(self.shutdown_grace_secs))
    }

    /// The order's page in the Temporal web UI.
    pub fn temporal_ui_link(&self, order_id: &str) -> String {
        format!(
            "{}/namespaces/{}/workflows/{order_id}",
            self.temporal.ui_url.trim_end_matches('/'),
            self.temporal.namespace
        )
    }

    /// The SMS sending window, if one is configured.
    pub fn sms_window(&self) -> anyhow::Result<Option<varsel_workflows::sms::SendingWindow>> {
        let sms = &self.sms;
        if sms.sending_window.trim().is_empty() {
            return Ok(None);
        }
        varsel_workflows::sms::SendingWindow::parse(&sms.sending_window, &sms.sending_window_zone)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("VARSEL_SMS_SENDING_WINDOW: {e}"))
    }

    /// How long an instant message may be in its provider's hands before the request that sent
    /// it counts as gone: the longer provider timeout and half a minute. Until then a repeat of
    /// the request is told to wait, and the dispatcher leaves the order to the request.
    pub fn instant_grace(&self) -> chrono::Duration {
        chrono::Duration::seconds(
            self.email.smtp_timeout_secs.max(self.sms.gateway_timeout_secs) as i64 + 30,
        )
    }

    /// The base URL for links.
    pub fn base_url(&self, bound: &str) -> String {
        if self.http.public_base_url.is_empty() {
            format!("http://{bound}")
        } else {
            self.http.public_base_url.trim_end_matches('/').to_owned()
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
                cfg.auth.platform_issuers["ttd"].public_key_files,
                vec![PathBuf::from("/keys/ttd.pem")]
            );
            assert_eq!(
                cfg.auth.platform_issuers["digdir"].hmac_secrets,
                vec![Secret::from("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")]
            );
            assert_eq!(
                cfg.auth.hmac_secrets,
                vec![Secret::from("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWZ4eQ==")]
            );
            assert_eq!(cfg.limits.max_reminders, 5);
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn secrets_never_show_in_debug() {
        let mut cfg = Config::default();
        cfg.sms.kannel_password = "kannel-pass".into();
        cfg.reports.secret = "report-secret".into();
        cfg.auth.hmac_secrets = vec!["hmac-secret".into()];
        cfg.database.url = "postgres://varsel:db-pass@db:5432/varsel".into();
        cfg.email.smtp_url = "smtps://user:smtp-pass@relay.example:465".into();
        let printed = format!("{cfg:?}");
        for secret in ["kannel-pass", "report-secret", "hmac-secret", "db-pass", "smtp-pass"] {
            assert!(!printed.contains(secret), "{secret} in {printed}");
        }
        assert!(printed.contains("kannel_password: [redacted]"), "{printed}");
        assert!(printed.contains("username: \"reports\""), "the rest still shows");
        assert!(printed.contains("postgres://varsel:***@db:5432/varsel"), "{printed}");
        assert!(printed.contains("smtps://user:***@relay.example:465"), "{printed}");
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn closed_sets_are_enums_and_a_wrong_value_names_its_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("VARSEL_SMS_PROVIDER", "kannel");
            jail.set_env("VARSEL_LOG_FORMAT", "JSON");
            let cfg = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(cfg.sms.provider, SmsProvider::Kannel);
            assert_eq!(cfg.log_format, LogFormat::Json);
            jail.set_env("VARSEL_SMS_PROVIDER", "twilio");
            let err = Config::load().expect_err("an unknown provider").to_string();
            assert!(err.starts_with("VARSEL_SMS_PROVIDER (`sms_provider` in the file): "), "{err}");
            assert!(err.contains("twilio"), "{err}");
            assert!(err.contains("simulator") && err.contains("kannel"), "{err}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn every_key_keeps_its_flat_name_and_lands_in_its_section() {
        figment::Jail::expect_with(|jail| {
            // A file with keys at the top (as before sections) and under a section.
            jail.create_file(
                "varsel.toml",
                concat!(
                    "smtp_url = \"smtp://relay:2525\"\nmax_recipients = 7\n\n",
                    "[sms]\nsms_default_sender = \"Kommune\"\n\n",
                    "[platform_issuers.ttd]\npublic_key_files = [\"/keys/ttd.pem\"]\n",
                ),
            )?;
            jail.set_env("VARSEL_CONFIG", "varsel.toml");
            jail.set_env("VARSEL_SMTP_POOL_SIZE", "4");
            jail.set_env("VARSEL_NOTIFICATION_TTL_SECS", "60");
            jail.set_env("VARSEL_SEND_RATE_LIMITS__SMTP", "10");
            jail.set_env("TEMPORAL_ADDRESS", "temporal.internal:7233");
            let cfg = Config::load().map_err(|e| e.to_string())?;
            assert_eq!(cfg.email.smtp_url, "smtp://relay:2525");
            assert_eq!(cfg.limits.max_recipients, 7);
            assert_eq!(cfg.sms.default_sender, "Kommune");
            let ttd = &cfg.auth.platform_issuers["ttd"];
            assert_eq!(ttd.public_key_files, [PathBuf::from("/keys/ttd.pem")]);
            assert_eq!(cfg.email.smtp_pool_size, 4, "a number from the environment");
            assert_eq!(cfg.processing.notification_ttl_secs, 60);
            assert_eq!(cfg.processing.send_rate_limits.get("smtp"), Some(&10));
            assert_eq!(cfg.temporal.address, "http://temporal.internal:7233");
            assert_eq!(cfg.email.from, Config::default().email.from, "the rest keeps defaults");

            jail.set_env("VARSEL_SMTP_POOL_SIZE", "many");
            let err = Config::load().expect_err("not a number").to_string();
            assert!(
                err.starts_with("VARSEL_SMTP_POOL_SIZE (`smtp_pool_size` in the file): "),
                "{err}"
            );
            assert!(err.contains("many"), "{err}");
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
