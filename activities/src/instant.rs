//! Instant messages (one-time codes and the like): the one send that happens in the request
//! rather than in a workflow. Reserved in the store as `Sending`, handed to the provider, the
//! provider's answer recorded; a provider that cannot take it now leaves nothing stored, so the
//! same request can be repeated.

use crate::order_activities::OrderActivitiesImpl;
use crate::providers::SendError;
use crate::store::{Chain, ChainInsert, InstantWriter, Notification};
use sea_orm::DbErr;
use std::sync::Arc;
use std::time::Duration;
use varsel_workflows::domain::{Channel, NotificationStatus};
use varsel_workflows::order::NewOrder;

/// An instant message ready to send: its chain (idempotency id and stored answer), and its
/// order (`Processed`, in the chain as `Instant`) with its one recipient.
#[derive(Debug, Clone)]
pub struct InstantMessage {
    /// The chain, holding the idempotency id and the answer a repeat gets.
    pub chain: Chain,
    /// The order and its one recipient.
    pub order: NewOrder,
    /// How long the provider may try to deliver it before it fails with `*_Failed_TTL`.
    pub time_to_live: chrono::Duration,
}

impl InstantMessage {
    /// The one notification, already `Sending` (its one attempt is the request's).
    fn notification(&self) -> Notification {
        let (order, recipients) = (&self.order.order, &self.order.recipients);
        // An instant message has one channel: `Email` or `Sms`.
        let channel = order.channel.channels().first().copied().unwrap_or(Channel::Email);
        let recipient = recipients.first().cloned().unwrap_or_default();
        Notification {
            id: uuid::Uuid::new_v4().to_string(),
            order_id: order.id.clone(),
            channel,
            recipient_idx: 0,
            org_no: None,
            nin: None,
            address: recipient.email.or(recipient.mobile).unwrap_or_default(),
            subject: None,
            body: None,
            status: NotificationStatus::sending_for(channel),
            status_changed: order.created,
            status_reason: None,
            provider_ref: None,
            attempts: 1,
            expiry: order.created + self.time_to_live,
            segments: order.sms.as_ref().map(|s| varsel_workflows::sms::segments(&s.body) as u32),
            delivery_report: None,
            awaits_report: false,
        }
    }
}

/// What sending an instant message came to.
#[derive(Debug)]
pub enum InstantOutcome {
    /// The provider answered and the answer is stored (a success, or a permanent failure such
    /// as an address the provider refuses).
    Sent(NotificationStatus),
    /// The creator used this idempotency id before; nothing was stored or sent now.
    Exists(Chain),
    /// The provider could not take the message now. Nothing is stored, unless removing the
    /// reservation failed too: then the dispatcher sends it after the grace period.
    NotTaken(SendError),
}

/// What an API process sends instant messages with: the providers of the activities, and
/// nothing else of them, and one writer that commits concurrent requests' writes together.
#[derive(Clone)]
pub struct InstantSender {
    activities: Arc<OrderActivitiesImpl>,
    writer: InstantWriter,
}

impl InstantSender {
    /// Sends through these activities' providers and store (in a Tokio runtime: the writer
    /// is a task of it).
    pub fn new(activities: OrderActivitiesImpl) -> Self {
        let writer = InstantWriter::start(activities.store.clone());
        Self { activities: Arc::new(activities), writer }
    }

    /// Reserves, sends and records one instant message (see [`OrderActivitiesImpl::send_instant`]).
    pub async fn send(&self, msg: InstantMessage) -> Result<InstantOutcome, DbErr> {
        self.activities.send_instant(&self.writer, msg).await
    }
}

/// Attempts at storing the provider's answer before the request fails: the message is out, so
/// its answer must be stored, or a later run would send it again.
const RECORD_ATTEMPTS: u32 = 4;
const RECORD_RETRY: Duration = Duration::from_millis(500);

impl OrderActivitiesImpl {
    /// Reserves, sends and records one instant message. `Err` only when the store failed: before
    /// sending (nothing sent) or after it (sent, but its answer could not be stored).
    pub async fn send_instant(
        &self,
        writer: &InstantWriter,
        msg: InstantMessage,
    ) -> Result<InstantOutcome, DbErr> {
        let notification = msg.notification();
        let InstantMessage { chain, order, .. } = msg;
        let chain_id = chain.id.clone();
        let order_row = order.order.clone();
        if let ChainInsert::Exists(existing) =
            writer.reserve(chain, order, notification.clone()).await?
        {
            return Ok(InstantOutcome::Exists(existing));
        }
        match self.deliver(&order_row, &notification).await {
            Ok(result) => {
                let mut attempt = 1;
                loop {
                    match writer.record(result.clone()).await {
                        Ok(()) => break,
                        Err(e) if attempt >= RECORD_ATTEMPTS => {
                            tracing::error!(order_id = order_row.id, error = %e, "an instant message was sent but its answer could not be stored");
                            return Err(e);
                        }
                        Err(_) => {
                            attempt += 1;
                            tokio::time::sleep(RECORD_RETRY).await;
                        }
                    }
                }
                tracing::info!(
                    order_id = order_row.id,
                    notification_id = notification.id,
                    status = result.status.as_str(),
                    "instant message sent"
                );
                Ok(InstantOutcome::Sent(result.status))
            }
            Err(e) => {
                if let Err(db) = self.store.discard_instant(&chain_id, &order_row.id).await {
                    // Left `Sending`: the dispatcher takes the order over after the grace period
                    // and sends it then.
                    tracing::error!(order_id = order_row.id, error = %db, "an instant message the provider did not take could not be removed");
                }
                tracing::warn!(order_id = order_row.id, error = %e, "instant message not sent: the provider could not take it");
                Ok(InstantOutcome::NotTaken(e))
            }
        }
    }
}
