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
}

/// What a provider said when it took an SMS.
#[derive(Debug, Clone)]
pub struct SmsAccepted {
    /// The provider's reference, when it gives one at once.
    pub provider_ref: Option<String>,
}

/// Signs and checks delivery-report URLs: `sig = hex(HMAC-SHA256(secret, notification id))`, so
/// a report can only be made for a notification varsel sent.
#[derive(Clone)]
pub struct ReportSigner {
    secret: Vec<u8>,
}

impl ReportSigner {
    /// With a secret.
    pub fn new(secret: &[u8]) -> Self {
        Self { secret: secret.to_vec() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    /// The signature of a notification id.
    pub fn sign(&self, notification_id: &str) -> String {
        let mut mac = self.mac();
        mac.update(notification_id.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `sig` is the signature of `notification_id` (constant time).
    pub fn verify(&self, notification_id: &str, sig: &str) -> bool {
        let Ok(raw) = hex::decode(sig) else { return false };
        let mut mac = self.mac();
        mac.update(notification_id.as_bytes());
        mac.verify_slice(&raw).is_ok()
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
    /// A Kannel client.
    pub fn new(sendsms_url: String, username: String, password: String, report_base_url: String, signer: ReportSigner) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        Ok(Self { http, sendsms_url, username, password, report_base_url, signer })
    }

    async fn send(&self, sms: &OutgoingSms) -> Result<SmsAccepted, SendError> {
        // %d: report type, %A: SMSC answer, %F: the SMSC's message id (Kannel's placeholders).
        let dlr_url = format!(
            "{}/notifications/api/v1/reports/sms/kannel?nid={}&sig={}&type=%d&answer=%A&fid=%F",
            self.report_base_url.trim_end_matches('/'),
            sms.notification_id,
            self.signer.sign(&sms.notification_id)
        );
        let resp = self
            .http
            .get(&self.sendsms_url)
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
            .map_err(|e| SendError::Transient(format!("Kannel unreachable: {e}")))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        // 202 "0: Accepted for delivery" / "3: Queued for later delivery"; 403 "Not routable.
        // Do not try again."; anything else (auth, overload, 5xx) is retried.
        if status.is_success() {
            Ok(SmsAccepted { provider_ref: None })
        } else if status.as_u16() == 403 && text.contains("Not routable") {
            Err(SendError::Permanent { status: NotificationStatus::SmsFailedUndelivered, reason: format!("Kannel: {}", text.trim()) })
        } else {
            Err(SendError::Transient(format!("Kannel answered HTTP {status}: {}", text.trim())))
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
    pub fn new(store: Store, events: Arc<dyn OrderEvents>, metrics: Metrics, report_delay: Duration) -> Self {
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
            let (store, events, metrics, delay) = (self.store.clone(), self.events.clone(), self.metrics.clone(), self.report_delay);
            let report = Report {
                target: ReportTarget::ProviderRef(format!("sim:{id}")),
                status,
                reason: (status != NotificationStatus::SmsDelivered).then(|| "Simulator: test number.".to_owned()),
                provider_ref: None,
                raw: format!("simulator status={}", status.as_str()),
            };
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Err(e) = apply_and_notify(&store, &events, &metrics, &report, Channel::Sms, false).await {
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
