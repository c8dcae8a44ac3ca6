//! A new order as varsel accepts it: the domain type between a validated request and the rows
//! the store writes. The HTTP layer builds it (from a request that passed every rule); the store
//! turns it into rows; nothing here knows about either.

use crate::domain::{EmailContentType, NotificationChannel, OrderStatus, stored_enum};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One recipient as submitted, validated and normalised: an explicit address or number, or a
/// person or organisation whose contact points are looked up when the order is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipient {
    /// Explicit email address.
    pub email: Option<String>,
    /// Explicit mobile number, normalised.
    pub mobile: Option<String>,
    /// Organisation number.
    pub org_no: Option<String>,
    /// National identity number.
    pub nin: Option<String>,
    /// Use the person's contact details even when they were neither changed nor confirmed for
    /// 18 months (`useStaleContactInformation`).
    pub allow_stale: bool,
    /// A self-identified user's external identity (`urn:altinn:person:idporten-email:…`).
    pub external_identity: Option<String>,
}

/// The email part of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailTemplate {
    /// Sender; `None` = the configured default.
    pub from: Option<String>,
    /// Subject, one line.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Content type.
    pub content_type: EmailContentType,
    /// Files fetched from their URLs when the email is sent (composed emails); empty for others.
    pub attachments: Vec<Attachment>,
}

/// A file of a composed email: referenced by URL (an Azure Blob SAS URL in Altinn's use), and
/// fetched when the email is sent, not when it is ordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// The file's name in the email.
    pub filename: String,
    /// Its declared media type (`application/pdf`); what the URL serves must agree.
    pub mime_type: String,
    /// Where it is fetched from.
    pub url: String,
}

/// The SMS part of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsTemplate {
    /// Sender id; `None` = the configured default.
    pub sender: Option<String>,
    /// Text.
    pub body: String,
}

stored_enum! {
    /// Which endpoint accepted the order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum OrderKind {
        /// `POST /orders`.
        Orders => "orders",
        /// `POST /orders/email`.
        Email => "email",
        /// `POST /orders/sms`.
        Sms => "sms",
        /// `POST /future/orders` (one order of a chain).
        Chain => "chain",
        /// `POST /future/orders/instant/sms` or `/instant/email`.
        Instant => "instant",
        /// `POST /future/orders/composed-email`.
        Composed => "composed",
    }
}

stored_enum! {
    /// An order's role in its chain (the newer API's `type` / `shipmentType`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum OrderType {
        /// The chain's main notification.
        Notification => "Notification",
        /// A reminder of the chain, with its own send time and condition.
        Reminder => "Reminder",
        /// An instant message, sent by its request (`/future/orders/instant/*`).
        Instant => "Instant",
        /// An email with attachments (`/future/orders/composed-email`), sent on a task queue of
        /// its own so that large mails never hold up the others.
        Composed => "Composed",
    }
}

/// Where an order of the newer API sits in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainPlacement {
    /// The chain (its notification order id).
    pub chain_id: String,
    /// Its role in the chain.
    pub order_type: OrderType,
    /// SMS may go at any hour (`sendingTimePolicy: Anytime`), not only in the sending window.
    pub sms_anytime: bool,
    /// Dialogporten dialog the order belongs to.
    pub dialog_id: Option<String>,
    /// Dialogporten transmission the order belongs to.
    pub transmission_id: Option<String>,
}

/// An order: what was asked for and where it stands, without its recipients (which can be many
/// thousands, and are read only where they are needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Order id (UUID); also the workflow id.
    pub id: String,
    /// The creator org (tenant).
    pub creator: String,
    /// When it was accepted.
    pub created: DateTime<Utc>,
    /// Which endpoint accepted it.
    pub kind: OrderKind,
    /// Its status: for a new order `Registered`, or `Processed` for an instant message that is
    /// sent in the request.
    pub status: OrderStatus,
    /// The channel or channel preference.
    pub channel: NotificationChannel,
    /// When to send.
    pub requested_send_time: DateTime<Utc>,
    /// The sender's own reference.
    pub senders_reference: Option<String>,
    /// Altinn resource id.
    pub resource_id: Option<String>,
    /// XACML action used with `resource_id`.
    pub resource_action: Option<String>,
    /// Whether KRR reservations are overridden.
    pub ignore_reservation: bool,
    /// URL answering `{"sendNotification": bool}`.
    pub condition_endpoint: Option<String>,
    /// The email part, when the channel uses email.
    pub email: Option<EmailTemplate>,
    /// The SMS part, when the channel uses SMS.
    pub sms: Option<SmsTemplate>,
    /// Its place in an order chain (newer API); `None` for orders of the v1 API.
    pub chain: Option<ChainPlacement>,
}

/// A new order, ready to be stored: the order and its recipients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// The order.
    pub order: Order,
    /// The recipients, in submitted order, each once.
    pub recipients: Vec<Recipient>,
}

/// An order as stored, read back: the order and what the store keeps about its progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOrder {
    /// The order, its status as of the read.
    pub order: Order,
    /// When the status last changed.
    pub status_changed: DateTime<Utc>,
    /// How many recipients it has.
    pub recipient_count: u32,
    /// Whether its workflow has been started (the transactional outbox flag).
    pub workflow_started: bool,
}
