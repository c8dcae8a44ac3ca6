//! The outside parties varsel talks to: SMTP, SMS gateways, condition endpoints, Maskinporten.

pub mod attachments;
pub mod bounce_address;
pub mod condition;
pub mod dsn_smtp;
pub mod email;
pub mod maskinporten;
pub mod outbound;
pub mod rate;
pub mod sms;

use varsel_workflows::domain::NotificationStatus;

/// The HTTP client of a service varsel calls (Maskinporten, KRR, Altinn Profile and Register):
/// every request bounded by `timeout`, and saying it is varsel.
pub fn service_client(timeout: std::time::Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("varsel/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Why a provider did not take a message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Final: retrying cannot help; the notification ends in `status`.
    #[error("{reason}")]
    Permanent {
        /// The failure status to record.
        status: NotificationStatus,
        /// The provider's words.
        reason: String,
    },
    /// Retry later (4xx SMTP replies, connection loss, timeouts).
    #[error("{0}")]
    Transient(String),
    /// The provider asked to slow down (HTTP 429 or 503 with `Retry-After`): retry no sooner
    /// than `retry_after`, and send nothing more to it until then.
    #[error("{reason}")]
    Throttled {
        /// The provider's words.
        reason: String,
        /// How long it asked to wait.
        retry_after: std::time::Duration,
    },
}

/// Longest `Retry-After` honoured; a provider asking for more is retried after this anyway (the
/// notification's time-to-live still bounds the whole).
pub const MAX_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// A `Retry-After` header value: delay-seconds or an HTTP date (RFC 9110 §10.2.3), capped at
/// [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<std::time::Duration> {
    let value = value.trim();
    let delay = match value.parse::<u64>() {
        Ok(secs) => std::time::Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value).ok()?.duration_since(now).unwrap_or_default(),
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
