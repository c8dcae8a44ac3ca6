//! Status webhooks to senders: the events a creator may subscribe to, the Standard Webhooks
//! signature (<https://www.standardwebhooks.com/>), and the HTTP delivery of one message.
//!
//! A message is posted as JSON `{"type", "timestamp", "data"}` with three headers:
//! `webhook-id` (the message id, the same on every attempt), `webhook-timestamp` (Unix seconds
//! of the attempt) and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}` under the endpoint's secret; during a rotation also under the
//! previous secret, space-separated). Delivery goes only to destinations the outbound policy
//! allows (as the send condition's), follows no redirect, and counts any 2xx as accepted.

use crate::providers::outbound::{OutboundPolicy, Refused, error_chain, refusal};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An event a webhook endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WebhookEvent {
    /// The order is completed: every notification has a final status.
    OrderCompleted,
    /// The send condition said no; nothing was sent.
    OrderSendConditionNotMet,
    /// The order was cancelled before processing.
    OrderCancelled,
    /// A notification reached a final status (delivered, failed, or sent to a provider that
    /// reports nothing more).
    NotificationFinal,
    /// Any status change of a notification: created, handed to the provider, answered,
    /// reported, expired, redriven.
    NotificationStatusChanged,
}

impl WebhookEvent {
    /// Every event, in the order documented.
    pub const ALL: [WebhookEvent; 5] = [
        Self::OrderCompleted,
        Self::OrderSendConditionNotMet,
        Self::OrderCancelled,
        Self::NotificationFinal,
        Self::NotificationStatusChanged,
    ];

    /// The event's name, the message's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrderCompleted => "order.completed",
            Self::OrderSendConditionNotMet => "order.send_condition_not_met",
            Self::OrderCancelled => "order.cancelled",
            Self::NotificationFinal => "notification.final",
            Self::NotificationStatusChanged => "notification.status_changed",
        }
    }

    /// The event of a name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// A stored list (comma-separated names); unknown names are skipped.
    pub fn parse_list(stored: &str) -> Vec<Self> {
        stored.split(',').filter_map(|n| Self::parse(n.trim())).collect()
    }

    /// A list as stored.
    pub fn join(events: &[Self]) -> String {
        events.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
    }
}

impl std::fmt::Display for WebhookEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The prefix of a signing secret, as Standard Webhooks writes them.
const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: 32 random bytes, `whsec_` and base64.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The key of a secret: the base64 after `whsec_` decoded (a secret that is not base64 is used
/// as its bytes).
fn secret_key(secret: &str) -> Vec<u8> {
    let bare = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    base64::engine::general_purpose::STANDARD.decode(bare).unwrap_or_else(|_| bare.into())
}

/// One signature, `v1,<base64>`, of a message at a timestamp.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(&secret_key(secret)).expect("any key length");
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body.as_bytes());
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: a signature under each secret, space-separated.
pub fn signature_header(secrets: &[&str], msg_id: &str, timestamp: i64, body: &str) -> String {
    secrets.iter().map(|s| sign(s, msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The HTTP status, when an answer came.
    pub status_code: Option<u16>,
    /// What went wrong; `None` when the endpoint accepted (2xx).
    pub error: Option<String>,
    /// How long it took.
    pub duration: Duration,
}

impl Attempt {
    /// Whether the endpoint accepted the message.
    pub fn accepted(&self) -> bool {
        self.error.is_none()
    }
}

/// One message as it is posted.
pub struct Outgoing<'a> {
    /// Where.
    pub url: &'a str,
    /// `webhook-id`.
    pub msg_id: &'a str,
    /// The body.
    pub payload: &'a str,
    /// The secrets to sign with (current first).
    pub secrets: Vec<&'a str>,
}

/// Posts webhook messages.
#[derive(Clone)]
pub struct WebhookSender {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

/// How much of an endpoint's answer is kept in an attempt's error.
const ANSWER_SHOWN: usize = 200;

impl WebhookSender {
    /// A sender with a per-attempt timeout (connect, answer and body together) that only
    /// reaches destinations `policy` allows.
    pub fn new(timeout: Duration, policy: OutboundPolicy) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let http = policy
            .client_builder(timeout)
            // A redirect is an answer like any other non-2xx: the endpoint must be registered
            // where it is.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("varsel-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, policy })
    }

    /// Whether a URL may be registered: http(s), a host, and (for an IP literal) allowed. A
    /// name is checked again at each delivery, against every address it resolves to.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, Refused> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Refused(format!("{url}: {e}")))?;
        self.policy.check_url(&parsed)?;
        Ok(parsed)
    }

    /// Resolves a name now, for registration: refused when none of its addresses is allowed.
    pub async fn check_resolves(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let Some(url::Host::Domain(host)) = url.host() else { return Ok(()) };
        if self.policy.name_allowed(host) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host((host, port)).await {
            Ok(a) => a.collect(),
            // A name that does not resolve yet may be set up later; each delivery checks again.
            Err(_) => return Ok(()),
        };
        if !addrs.is_empty() && !addrs.iter().any(|a| self.policy.ip_allowed(a.ip())) {
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            return Err(Refused(format!(
                "{host} resolves to {} and no public address",
                shown.join(", ")
            )));
        }
        Ok(())
    }

    /// One attempt: signed now, posted, answered.
    pub async fn post(&self, out: &Outgoing<'_>) -> Attempt {
        let started = Instant::now();
        let done = |status_code: Option<u16>, error: Option<String>| Attempt {
            status_code,
            error,
            duration: started.elapsed(),
        };
        let url = match self.check_url(out.url) {
            Ok(u) => u,
            Err(r) => return done(None, Some(format!("refused: {r}"))),
        };
        let timestamp = chrono::Utc::now().timestamp();
        let signature = signature_header(&out.secrets, out.msg_id, timestamp, out.payload);
        let sent = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", out.msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(out.payload.to_owned())
            .send()
            .await;
        match sent {
            Ok(resp) => {
                let status = resp.status();
                if status.is_success() {
                    return done(Some(status.as_u16()), None);
                }
                let answer = resp.text().await.unwrap_or_default();
                let answer: String = answer.chars().take(ANSWER_SHOWN).collect();
                let mut error = format!("HTTP {status}");
                if !answer.trim().is_empty() {
                    error.push_str(&format!(": {}", answer.trim()));
                }
                done(Some(status.as_u16()), Some(error))
            }
            Err(e) => done(None, Some(describe(&e))),
        }
    }
}

/// A transport error in words: the policy's refusal, a timeout, or the error and its causes.
fn describe(e: &reqwest::Error) -> String {
    if let Some(r) = refusal(e) {
        return format!("refused: {r}");
    }
    if e.is_timeout() { "timed out".into() } else { format!("unreachable: {}", error_chain(e)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let sig = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let header = signature_header(&["whsec_AAAA", "whsec_BBBB"], "msg_1", 1, "{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], sign("whsec_AAAA", "msg_1", 1, "{}"));
        assert_eq!(parts[1], sign("whsec_BBBB", "msg_1", 1, "{}"));
    }

    #[test]
    fn event_names_round_trip() {
        for e in WebhookEvent::ALL {
            assert_eq!(WebhookEvent::parse(e.as_str()), Some(e));
        }
        let stored =
            WebhookEvent::join(&[WebhookEvent::OrderCompleted, WebhookEvent::NotificationFinal]);
        assert_eq!(
            WebhookEvent::parse_list(&stored),
            vec![WebhookEvent::OrderCompleted, WebhookEvent::NotificationFinal]
        );
    }
}
