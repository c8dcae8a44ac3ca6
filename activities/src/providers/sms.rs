//! SMS providers: Kannel's HTTP `sendsms` interface, and a simulator that behaves like Altinn's
//! test environment (every valid number is accepted and reported delivered after a delay;
//! documented test numbers produce each failure). Allow-listed numbers go to the gateway, the
//! rest to the simulator.

use chrono::Utc;
use hmac::{Hmac, Mac};
use sea_orm::{ActiveValue::Set, EntityTrait};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use varsel_workflows::domain::{Channel, NotificationStatus};

use super::SendError;
use crate::events::{OrderEvents, apply_and_notify};
use crate::metrics::Metrics;
use crate::store::{Report, ReportTarget, Store, entities::simulated_sms};

/// One SMS to send.
#[derive(Debug, Clone)]
pub struct OutgoingSms {
    /// Notification id.
    pub notification_id: String,
    /// E.164 destination.
    pub to: String,
    /// Sender id as shown on the handset.
    pub sender: String,
    /// Text.
    pub body: String,
    /// How long the network may keep trying to deliver it; `None`: the gateway's default.
    pub validity: Option<Duration>,
}

/// What a provider said when it took an SMS.
#[derive(Debug, Clone)]
pub struct SmsAccepted {
    /// The provider's reference, when it gives one at once.
    pub provider_ref: Option<String>,
}

/// The path of Kannel's delivery reports under the API's base URL.
pub const KANNEL_REPORT_PATH: &str = "/notifications/api/v1/reports/sms/kannel";

/// The query parameters Kannel fills in itself (`%d`, `%A`, `%F`), in the order they appear.
pub const KANNEL_REPORT_FIELDS: &[(&str, &str)] =
    &[("type", "%d"), ("answer", "%A"), ("fid", "%F")];

/// How long a report URL stays valid: longer than any network keeps trying (48 hours) and the
/// SMSC's report takes to come back.
pub const REPORT_URL_VALIDITY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Signs and checks delivery-report URLs. The signature covers everything varsel writes into
/// the URL: the report path, the notification id, the expiry and the names of the fields
/// Kannel fills in. Those values Kannel only knows when it reports, so they cannot be signed;
/// a report can therefore only be made for a notification varsel sent, through this endpoint,
/// until the URL expires, and a final status is never changed by a later report.
#[derive(Clone)]
pub struct ReportSigner {
    secret: Vec<u8>,
}

impl ReportSigner {
    /// With a secret.
    pub fn new(secret: &[u8]) -> Self {
        Self { secret: secret.to_vec() }
    }

    fn mac(&self, notification_id: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        let fields: Vec<&str> = KANNEL_REPORT_FIELDS.iter().map(|(k, _)| *k).collect();
        mac.update(
            format!(
                "varsel report url\n{KANNEL_REPORT_PATH}\nnid={notification_id}\nexp={expires}\n{}",
                fields.join(",")
            )
            .as_bytes(),
        );
        mac
    }

    /// The signature of the report URL of a notification, valid until `expires` (Unix seconds).
    pub fn sign(&self, notification_id: &str, expires: i64) -> String {
        hex::encode(self.mac(notification_id, expires).finalize().into_bytes())
    }

    /// Whether `sig` signs the report URL of `notification_id` with `expires` (constant time),
    /// and it has not expired at `now` (Unix seconds).
    pub fn verify(&self, notification_id: &str, expires: i64, sig: &str, now: i64) -> bool {
        let Ok(raw) = hex::decode(sig) else { return false };
        self.mac(notification_id, expires).verify_slice(&raw).is_ok() && now <= expires
    }

    /// The report URL Kannel calls for a notification, under `base_url`.
    pub fn report_url(&self, base_url: &str, notification_id: &str, now: i64) -> String {
        let expires = now + REPORT_URL_VALIDITY.as_secs() as i64;
        let kannel: Vec<String> =
            KANNEL_REPORT_FIELDS.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{}{KANNEL_REPORT_PATH}?nid={notification_id}&exp={expires}&sig={}&{}",
            base_url.trim_end_matches('/'),
            self.sign(notification_id, expires),
            kannel.join("&")
        )
    }
}

/// Kannel's smsbox.
pub struct Kannel {
    http: reqwest::Client,
    /// `http://host:13013/cgi-bin/sendsms`.
    pub sendsms_url: String,
    /// sendsms-user name.
    pub username: String,
    /// sendsms-user password.
    pub password: String,
    /// Base URL of varsel's API as Kannel reaches it, for `dlr-url`.
    pub report_base_url: String,
    /// Signs the report URLs.
    pub signer: ReportSigner,
}

impl Kannel {
    /// A Kannel client; `timeout` bounds one `sendsms` request (connect, answer, body).
    pub fn new(
        sendsms_url: String,
        username: String,
        password: String,
        report_base_url: String,
        signer: ReportSigner,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(timeout).connect_timeout(timeout).build()?;
        Ok(Self { http, sendsms_url, username, password, report_base_url, signer })
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<SmsAccepted, SendError> {
        // %d: report type, %A: SMSC answer, %F: the SMSC's message id (Kannel's placeholders).
        let dlr_url = self.signer.report_url(
            &self.report_base_url,
            &sms.notification_id,
            chrono::Utc::now().timestamp(),
        );
        // Kannel's `validity` is in minutes; a part minute counts as one.
        let validity = sms.validity.map(|v| v.as_secs().div_ceil(60).max(1).to_string());
        let mut request = self.http.get(&self.sendsms_url);
        if let Some(v) = &validity {
            request = request.query(&[("validity", v.as_str())]);
        }
        let resp = request
            .query(&[
                ("username", self.username.as_str()),
                ("password", self.password.as_str()),
                ("from", sms.sender.as_str()),
                ("to", sms.to.as_str()),
                ("text", sms.body.as_str()),
                ("charset", "UTF-8"),
                ("dlr-mask", "31"),
                ("dlr-url", dlr_url.as_str()),
            ])
            .send()
            .await
            // Without the URL: its query holds the sendsms password and signed report links,
            // which belong in neither logs nor workflow histories.
            .map_err(|e| {
                let e = e.without_url();
                let what = if e.is_timeout() { "did not answer in time" } else { "unreachable" };
                SendError::Transient(format!("Kannel {what}: {e}"))
            })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::parse_retry_after(v, std::time::SystemTime::now()));
        // The answer is a short status line; a gateway (or something in front of it) that sends
        // more is not read further.
        let text = match resp.bytes().await {
            Ok(b) => String::from_utf8_lossy(&b[..b.len().min(512)]).trim().to_owned(),
            Err(e) if status.is_success() => {
                return Err(SendError::Transient(format!(
                    "Kannel answered HTTP {status} but the answer was cut off: {e}"
                )));
            }
            Err(_) => String::new(),
        };
        // 202 "0: Accepted for delivery" / "3: Queued for later delivery"; 403 "Not routable.
        // Do not try again."; 429, or 503 with Retry-After: slow down as asked; anything else
        // (auth, overload, 5xx) is retried with backoff.
        if status.is_success() {
            Ok(SmsAccepted { provider_ref: None })
        } else if status.as_u16() == 403 && text.contains("Not routable") {
            Err(SendError::Permanent {
                status: NotificationStatus::SmsFailedUndelivered,
                reason: format!("Kannel: {text}"),
            })
        } else if status.as_u16() == 429 || (status.as_u16() == 503 && retry_after.is_some()) {
            let retry_after = retry_after.unwrap_or(Duration::from_secs(1));
            Err(SendError::Throttled {
                reason: format!(
                    "SMS gateway answered HTTP {status} (retry after {retry_after:?}): {text}"
                ),
                retry_after,
            })
        } else {
            Err(SendError::Transient(format!("Kannel answered HTTP {status}: {text}")))
        }
    }
}

/// The simulator's documented test numbers and what each produces.
pub const SIMULATOR_TEST_NUMBERS: &[(&str, NotificationStatus)] = &[
    ("+4740000091", NotificationStatus::SmsFailedInvalidRecipient),
    ("+4740000092", NotificationStatus::SmsFailedBarredReceiver),
    ("+4740000093", NotificationStatus::SmsFailedDeleted),
    ("+4740000094", NotificationStatus::SmsFailedExpired),
    ("+4740000095", NotificationStatus::SmsFailedUndelivered),
    ("+4740000096", NotificationStatus::SmsFailedRejected),
    ("+4740000097", NotificationStatus::SmsFailed),
];

/// A number the simulator accepts but never reports on (the notification ends `SMS_Failed_TTL`).
pub const SIMULATOR_SILENT_NUMBER: &str = "+4740000098";

/// The simulator.
pub struct Simulator {
    store: Store,
    events: Arc<dyn OrderEvents>,
    metrics: Metrics,
    /// How long after acceptance the simulated delivery report arrives.
    pub report_delay: Duration,
}

impl Simulator {
    /// A simulator recording into `store`.
    pub fn new(
        store: Store,
        events: Arc<dyn OrderEvents>,
        metrics: Metrics,
        report_delay: Duration,
    ) -> Self {
        Self { store, events, metrics, report_delay }
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<SmsAccepted, SendError> {
        let outcome = SIMULATOR_TEST_NUMBERS.iter().find(|(n, _)| *n == sms.to).map(|(_, s)| *s);
        if outcome == Some(NotificationStatus::SmsFailedInvalidRecipient) {
            return Err(SendError::Permanent {
                status: NotificationStatus::SmsFailedInvalidRecipient,
                reason: "Simulator: test number for an invalid recipient.".into(),
            });
        }
        let id = uuid::Uuid::new_v4().to_string();
        simulated_sms::Entity::insert(simulated_sms::ActiveModel {
            id: Set(id.clone()),
            notification_id: Set(sms.notification_id.clone()),
            recipient: Set(sms.to.clone()),
            sender: Set(sms.sender.clone()),
            body: Set(sms.body.clone()),
            accepted_at: Set(Utc::now()),
        })
        .exec_without_returning(self.store.conn())
        .await
        .map_err(|e| SendError::Transient(format!("SMS simulator unavailable: {e}")))?;
        if sms.to != SIMULATOR_SILENT_NUMBER {
            // The report arrives later, through the same path as a gateway's. If the worker
            // stops first, the notification's time-to-live settles it.
            let status = outcome.unwrap_or(NotificationStatus::SmsDelivered);
            let (store, events, metrics, delay) =
                (self.store.clone(), self.events.clone(), self.metrics.clone(), self.report_delay);
            let report = Report {
                target: ReportTarget::ProviderRef(format!("sim:{id}")),
                status,
                reason: (status != NotificationStatus::SmsDelivered)
                    .then(|| "Simulator: test number.".to_owned()),
                provider_ref: None,
                raw: format!("simulator status={}", status.as_str()),
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Err(e) =
                    apply_and_notify(&store, &events, &metrics, &report, Channel::Sms, false).await
                {
                    tracing::warn!(error = %e, "simulator could not record its delivery report");
                }
            });
        }
        Ok(SmsAccepted { provider_ref: Some(format!("sim:{id}")) })
    }
}

/// Where SMS go.
pub struct SmsRouter {
    /// The simulator, for numbers not on the allow-list.
    pub simulator: Option<Simulator>,
    /// The gateway.
    pub gateway: Option<Kannel>,
    /// With both: numbers (or prefixes) that go to the gateway.
    pub allow_list: Vec<String>,
}

impl SmsRouter {
    fn use_gateway(&self, to: &str) -> bool {
        match (&self.gateway, &self.simulator) {
            (Some(_), None) => true,
            (Some(_), Some(_)) => self.allow_list.iter().any(|p| to.starts_with(p.as_str())),
            _ => false,
        }
    }

    /// Which provider an SMS to `to` goes to (`kannel` or `simulator`), for metrics and logs.
    pub fn provider_for(&self, to: &str) -> &'static str {
        if self.use_gateway(to) { "kannel" } else { "simulator" }
    }

    /// Sends one SMS through the gateway or the simulator.
    pub async fn send(&self, sms: &OutgoingSms) -> Result<SmsAccepted, SendError> {
        match (&self.gateway, &self.simulator) {
            (Some(g), _) if self.use_gateway(&sms.to) => g.send(sms).await,
            (_, Some(s)) => s.send(sms).await,
            _ => Err(SendError::Transient("no SMS provider configured".into())),
        }
    }
}
