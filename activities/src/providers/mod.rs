//! The outside parties varsel talks to: SMTP, SMS gateways, condition endpoints.

pub mod condition;
pub mod email;
pub mod rate;
pub mod sms;

use varsel_workflows::domain::NotificationStatus;

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
}
