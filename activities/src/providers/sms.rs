//! SMS providers. The embedded default is a simulator that behaves like Altinn's test
//! environment: every valid number is accepted, and what it accepted is kept in the database
//! (`simulated_sms`) so that tests and developers can read it.

use chrono::Utc;
use sea_orm::{ActiveValue::Set, EntityTrait};

use super::SendError;
use crate::store::{Store, entities::simulated_sms};

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

/// The SMS gateway varsel sends through.
pub enum SmsProvider {
    /// Accepts everything and records it.
    Simulator(Store),
}

impl SmsProvider {
    /// Sends one SMS; `Ok` carries the gateway reference.
    pub async fn send(&self, sms: &OutgoingSms) -> Result<String, SendError> {
        match self {
            SmsProvider::Simulator(store) => {
                let id = uuid::Uuid::new_v4().to_string();
                simulated_sms::Entity::insert(simulated_sms::ActiveModel {
                    id: Set(id.clone()),
                    notification_id: Set(sms.notification_id.clone()),
                    recipient: Set(sms.to.clone()),
                    sender: Set(sms.sender.clone()),
                    body: Set(sms.body.clone()),
                    accepted_at: Set(Utc::now()),
                })
                .exec_without_returning(store.conn())
                .await
                .map_err(|e| SendError::Transient(format!("SMS simulator unavailable: {e}")))?;
                Ok(id)
            }
        }
    }
}
