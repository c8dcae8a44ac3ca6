//! Request and response bodies of the newer order API (Altinn's "v2", `/future/...`), as Altinn clients send
//! and read them (reference §1.5, §1.8). Never stored as such.

use super::dto::{
    CanonicalNames, CaseInsensitive, EmailContentTypeDto, NotificationChannelDto, NullableItem,
    strict_string,
};
use poem_openapi::{Enum, Object};

/// When a message may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "SendingTimePolicyExt")]
pub enum SendingTimePolicyDto {
    /// Any hour.
    Anytime,
    /// Within the SMS sending window (the default for SMS).
    Daytime,
}

impl CanonicalNames for SendingTimePolicyDto {
    const NAMES: &'static [&'static str] = &["Anytime", "Daytime"];
    const FIRST: u64 = 1;
}

/// Email content and options.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "EmailSendingOptionsExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct EmailSettingsDto {
    /// Sender address; default: the configured sender.
    #[oai(deserialize_with = "strict_string")]
    pub sender_email_address: Option<String>,
    /// Subject (line breaks become spaces).
    #[oai(deserialize_with = "strict_string")]
    pub subject: Option<String>,
    /// Body.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
    /// `Plain` (default) or `Html`.
    pub content_type: Option<CaseInsensitive<EmailContentTypeDto>>,
    /// Must be `Anytime` (the default) for email.
    pub sending_time_policy: Option<CaseInsensitive<SendingTimePolicyDto>>,
}

/// SMS content and options.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "SmsSendingOptionsExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct SmsSettingsDto {
    /// Sender id; default: the configured sender.
    #[oai(deserialize_with = "strict_string")]
    pub sender: Option<String>,
    /// Text.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
    /// `Daytime` (default: within the sending window) or `Anytime`.
    pub sending_time_policy: Option<CaseInsensitive<SendingTimePolicyDto>>,
}

/// An email address.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "RecipientEmailExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct RecipientEmailDto {
    /// The address.
    #[oai(deserialize_with = "strict_string")]
    pub email_address: Option<String>,
    /// The email.
    pub email_settings: Option<EmailSettingsDto>,
}

/// A mobile number.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "RecipientSmsExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct RecipientSmsDto {
    /// International mobile number (`+47…`).
    #[oai(deserialize_with = "strict_string")]
    pub phone_number: Option<String>,
    /// The SMS.
    pub sms_settings: Option<SmsSettingsDto>,
}

/// A person, looked up in the contact register.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "RecipientPersonExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct RecipientPersonDto {
    /// National identity number (11 digits).
    #[oai(deserialize_with = "strict_string")]
    pub national_identity_number: Option<String>,
    /// Channel; default `EmailPreferred`.
    pub channel_schema: Option<CaseInsensitive<NotificationChannelDto>>,
    /// Send to a person reserved in KRR anyway.
    pub ignore_reservation: Option<bool>,
    /// Use contact details that were neither changed nor confirmed in the last 18 months
    /// (KRR's rule leaves them out otherwise); default false.
    pub use_stale_contact_information: Option<bool>,
    /// `urn:altinn:resource:…`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_id: Option<String>,
    /// XACML action used with `resourceId`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_action: Option<String>,
    /// The email, when the channel uses email.
    pub email_settings: Option<EmailSettingsDto>,
    /// The SMS, when the channel uses SMS.
    pub sms_settings: Option<SmsSettingsDto>,
}

/// An organisation, looked up in the contact register.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "RecipientOrganizationExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct RecipientOrganizationDto {
    /// Organisation number (9 digits).
    #[oai(deserialize_with = "strict_string")]
    pub org_number: Option<String>,
    /// Channel (required).
    pub channel_schema: Option<CaseInsensitive<NotificationChannelDto>>,
    /// `urn:altinn:resource:…`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_id: Option<String>,
    /// XACML action used with `resourceId`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_action: Option<String>,
    /// The email, when the channel uses email.
    pub email_settings: Option<EmailSettingsDto>,
    /// The SMS, when the channel uses SMS.
    pub sms_settings: Option<SmsSettingsDto>,
}

/// A self-identified user (no national identity number), looked up in Altinn Profile.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "RecipientExternalIdentityExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct RecipientExternalIdentityDto {
    /// `urn:altinn:person:idporten-email:<email>`, `urn:altinn:party:username:<name>`,
    /// `urn:altinn:username:<name>` or `urn:altinn:person:legacy-selfidentified:<name>`.
    #[oai(deserialize_with = "strict_string")]
    pub external_identity: Option<String>,
    /// Channel (required).
    pub channel_schema: Option<CaseInsensitive<NotificationChannelDto>>,
    /// `urn:altinn:resource:…`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_id: Option<String>,
    /// XACML action used with `resourceId`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_action: Option<String>,
    /// The email, when the channel uses email.
    pub email_settings: Option<EmailSettingsDto>,
    /// The SMS, when the channel uses SMS.
    pub sms_settings: Option<SmsSettingsDto>,
}

/// Exactly one recipient.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "NotificationRecipientExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct RecipientUnionDto {
    /// An email address.
    pub recipient_email: Option<RecipientEmailDto>,
    /// A mobile number.
    pub recipient_sms: Option<RecipientSmsDto>,
    /// A person.
    pub recipient_person: Option<RecipientPersonDto>,
    /// An organisation.
    pub recipient_organization: Option<RecipientOrganizationDto>,
    /// A self-identified user.
    pub recipient_external_identity: Option<RecipientExternalIdentityDto>,
}

/// The Dialogporten dialog an order belongs to.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "DialogportenIdentifiersExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct DialogportenDto {
    /// Dialog id.
    #[oai(deserialize_with = "strict_string")]
    pub dialog_id: Option<String>,
    /// Transmission id.
    #[oai(deserialize_with = "strict_string")]
    pub transmission_id: Option<String>,
}

/// A reminder: an order of its own, sent `delayDays` after the notification or at
/// `requestedSendTime`, with its own condition and recipient.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "NotificationReminderExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct ReminderDto {
    /// The sender's reference of the reminder.
    #[oai(deserialize_with = "strict_string")]
    pub senders_reference: Option<String>,
    /// URL answering `{"sendNotification": true|false}` when the reminder is due.
    #[oai(deserialize_with = "strict_string")]
    pub condition_endpoint: Option<String>,
    /// Days after the notification's send time (at least 1).
    pub delay_days: Option<i64>,
    /// Or an ISO-8601 time with offset.
    #[oai(deserialize_with = "strict_string")]
    pub requested_send_time: Option<String>,
    /// Who gets the reminder.
    pub recipient: Option<RecipientUnionDto>,
}

/// `POST /future/orders`: one notification and its reminders, created once per idempotency id.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "NotificationOrderChainRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct OrderChainRequestDto {
    /// The client's id of this request; a repeat with the same id gets the first answer.
    #[oai(deserialize_with = "strict_string")]
    pub idempotency_id: Option<String>,
    /// The sender's own reference.
    #[oai(deserialize_with = "strict_string")]
    pub senders_reference: Option<String>,
    /// ISO-8601 with offset; default now.
    #[oai(deserialize_with = "strict_string")]
    pub requested_send_time: Option<String>,
    /// URL answering `{"sendNotification": true|false}` at send time.
    #[oai(deserialize_with = "strict_string")]
    pub condition_endpoint: Option<String>,
    /// The Dialogporten dialog the order belongs to.
    pub dialogporten_association: Option<DialogportenDto>,
    /// Exactly one recipient.
    pub recipient: Option<RecipientUnionDto>,
    /// Reminders.
    pub reminders: Option<Vec<ReminderDto>>,
}

/// The text of an instant SMS.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "ShortMessageContentExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantSmsSettingsDto {
    /// Sender id; default: the configured sender.
    #[oai(deserialize_with = "strict_string")]
    pub sender: Option<String>,
    /// Text.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
}

/// Where an instant SMS goes, and for how long the network may try.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "ShortMessageDeliveryDetailsExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantSmsRecipientDto {
    /// International mobile number (`+47…`).
    #[oai(deserialize_with = "strict_string")]
    pub phone_number: Option<String>,
    /// 60 to 172,800 seconds (48 hours): after this the message is given up.
    pub time_to_live_in_seconds: Option<i64>,
    /// The SMS.
    pub sms_settings: Option<InstantSmsSettingsDto>,
}

/// `POST /future/orders/instant/sms`: one SMS, sent while the request waits.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "InstantSmsNotificationOrderRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantSmsRequestDto {
    /// The client's id of this request; a repeat with the same id gets the first answer.
    #[oai(deserialize_with = "strict_string")]
    pub idempotency_id: Option<String>,
    /// The sender's own reference.
    #[oai(deserialize_with = "strict_string")]
    pub senders_reference: Option<String>,
    /// The number and the SMS.
    pub recipient_sms: Option<InstantSmsRecipientDto>,
}

/// The recipient of the deprecated `POST /future/orders/instant`: an SMS only.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "InstantNotificationRecipientExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantRecipientDto {
    /// The number and the SMS.
    pub recipient_sms: Option<InstantSmsRecipientDto>,
}

/// `POST /future/orders/instant` (deprecated): Altinn's older shape of an instant SMS.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "InstantNotificationOrderRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantRequestDto {
    /// The client's id of this request; a repeat with the same id gets the first answer.
    #[oai(deserialize_with = "strict_string")]
    pub idempotency_id: Option<String>,
    /// The sender's own reference.
    #[oai(deserialize_with = "strict_string")]
    pub senders_reference: Option<String>,
    /// The recipient and the SMS.
    pub recipient: Option<InstantRecipientDto>,
}

impl InstantRequestDto {
    /// The same message in the current shape (`/future/orders/instant/sms`): one request
    /// whichever endpoint it came to, so an idempotency id means the same on both.
    pub fn to_sms_request(&self) -> InstantSmsRequestDto {
        InstantSmsRequestDto {
            idempotency_id: self.idempotency_id.clone(),
            senders_reference: self.senders_reference.clone(),
            recipient_sms: self.recipient.as_ref().and_then(|r| r.recipient_sms.clone()),
        }
    }
}

/// The content of an instant email.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "InstantEmailContentExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantEmailSettingsDto {
    /// Sender address; default: the configured sender.
    #[oai(deserialize_with = "strict_string")]
    pub sender_email_address: Option<String>,
    /// Subject (line breaks become spaces).
    #[oai(deserialize_with = "strict_string")]
    pub subject: Option<String>,
    /// Body.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
    /// `Plain` (default) or `Html`.
    pub content_type: Option<CaseInsensitive<EmailContentTypeDto>>,
}

/// Where an instant email goes.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "InstantEmailDetailsExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantEmailRecipientDto {
    /// The address.
    #[oai(deserialize_with = "strict_string")]
    pub email_address: Option<String>,
    /// The email.
    pub email_settings: Option<InstantEmailSettingsDto>,
}

/// `POST /future/orders/instant/email`: one email, sent while the request waits.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "InstantEmailNotificationOrderRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct InstantEmailRequestDto {
    /// The client's id of this request; a repeat with the same id gets the first answer.
    #[oai(deserialize_with = "strict_string")]
    pub idempotency_id: Option<String>,
    /// The sender's own reference.
    #[oai(deserialize_with = "strict_string")]
    pub senders_reference: Option<String>,
    /// The address and the email.
    pub recipient_email: Option<InstantEmailRecipientDto>,
}

/// A file of a composed email, fetched from its URL when the email is sent.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "SasFileReferenceExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct FileReferenceDto {
    /// The file's name in the email, with an extension and without path separators.
    #[oai(deserialize_with = "strict_string")]
    pub filename: Option<String>,
    /// Its media type, one of those Azure Communication Services accepts (`application/pdf`,
    /// `image/png`, `text/plain`, …); what the URL serves must agree (or be
    /// `application/octet-stream`).
    #[oai(deserialize_with = "strict_string")]
    pub mime_type: Option<String>,
    /// Where it is fetched from when the email is sent: an `https` URL of a public host (an
    /// Azure Blob SAS URL in Altinn's use; its `se` expiry must be at least 15 minutes after
    /// `requestedSendTime`), or of a host `VARSEL_ATTACHMENT_ALLOWED_HOSTS` lists.
    #[oai(deserialize_with = "strict_string")]
    pub sas_url: Option<String>,
}

/// A composed email's content and files.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "ComposedEmailSendingOptionsExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct ComposedEmailSettingsDto {
    /// Sender address; default: the configured sender.
    #[oai(deserialize_with = "strict_string")]
    pub sender_email_address: Option<String>,
    /// Subject (line breaks become spaces).
    #[oai(deserialize_with = "strict_string")]
    pub subject: Option<String>,
    /// Body.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
    /// `Plain` (default) or `Html`.
    pub content_type: Option<CaseInsensitive<EmailContentTypeDto>>,
    /// Must be `Anytime` (the default) for email.
    pub sending_time_policy: Option<CaseInsensitive<SendingTimePolicyDto>>,
    /// The files, fetched and attached when the email is sent; none when absent or empty.
    pub attachments: Option<Vec<NullableItem<FileReferenceDto>>>,
}

impl ComposedEmailSettingsDto {
    /// The content without the files: what an ordinary email's settings hold.
    pub fn content(&self) -> EmailSettingsDto {
        EmailSettingsDto {
            sender_email_address: self.sender_email_address.clone(),
            subject: self.subject.clone(),
            body: self.body.clone(),
            content_type: self.content_type,
            sending_time_policy: self.sending_time_policy,
        }
    }
}

/// The recipient of a composed email.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "RecipientComposedEmailExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct ComposedRecipientDto {
    /// The address.
    #[oai(deserialize_with = "strict_string")]
    pub email_address: Option<String>,
    /// The email and its files.
    pub email_settings: Option<ComposedEmailSettingsDto>,
}

/// `POST /future/orders/composed-email`: one email with files, sent at its time.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "ComposedEmailRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct ComposedEmailRequestDto {
    /// The client's id of this request; a repeat with the same id gets the first answer.
    #[oai(deserialize_with = "strict_string")]
    pub idempotency_id: Option<String>,
    /// The sender's own reference.
    #[oai(deserialize_with = "strict_string")]
    pub senders_reference: Option<String>,
    /// When to send (ISO 8601 with an offset); default: now.
    #[oai(deserialize_with = "strict_string")]
    pub requested_send_time: Option<String>,
    /// URL answering `{"sendNotification": bool}` at send time.
    #[oai(deserialize_with = "strict_string")]
    pub condition_endpoint: Option<String>,
    /// The Dialogporten dialog or transmission the email belongs to.
    pub dialogporten_association: Option<DialogportenDto>,
    /// The address, the email and its files.
    pub recipient: Option<ComposedRecipientDto>,
}

/// One order of a chain.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(
    rename = "NotificationOrderChainShipmentExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
#[serde(rename_all = "camelCase")]
pub struct ShipmentRefDto {
    /// The order's id: read it at `/future/shipment/{shipmentId}`.
    pub shipment_id: String,
    /// Its sender's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders_reference: Option<String>,
}

/// The notification and its reminders.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(
    rename = "NotificationOrderChainReceiptExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
#[serde(rename_all = "camelCase")]
pub struct ChainReceiptDto {
    /// The notification's order id.
    pub shipment_id: String,
    /// Its sender's reference.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub senders_reference: Option<String>,
    /// The reminders, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminders: Option<Vec<ShipmentRefDto>>,
}

/// The answer to a new (201) or repeated (200) chain.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "NotificationOrderChainResponseExt", rename_all = "camelCase")]
#[serde(rename_all = "camelCase")]
pub struct ChainResponseDto {
    /// The chain's id.
    pub notification_order_id: String,
    /// Its orders.
    pub notification: ChainReceiptDto,
}

/// One address of a shipment.
#[derive(Debug, Clone, Object)]
#[oai(rename = "DeliveryManifestRecipientExt", rename_all = "camelCase")]
pub struct ManifestRecipientDto {
    /// `Email` or `SMS`.
    #[oai(rename = "type")]
    pub kind: String,
    /// The address or number.
    pub destination: String,
    /// `Email_*` or `SMS_*` status.
    pub status: String,
    /// When it last changed.
    pub last_update: String,
}

/// `GET /future/shipment/{id}`: an order and where each of its messages is.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "NotificationDeliveryManifestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct DeliveryManifestDto {
    /// The order's id.
    pub shipment_id: String,
    /// Its sender's reference.
    pub senders_reference: Option<String>,
    /// `Notification`, `Reminder`, or `Notification` for orders of the v1 API.
    #[oai(rename = "type")]
    pub kind: String,
    /// `Order_*` status.
    pub status: String,
    /// When the order last changed.
    pub last_update: String,
    /// One entry per message.
    pub recipients: Vec<ManifestRecipientDto>,
}

/// One address of a status-feed entry.
#[derive(Debug, Clone, Object)]
#[oai(rename = "StatusFeedRecipientExt", rename_all = "camelCase")]
pub struct FeedRecipientDto {
    /// The address or number.
    pub destination: String,
    /// `Email_*` or `SMS_*` status.
    pub status: String,
    /// When it last changed.
    pub last_update: String,
}

/// One finished order in the status feed.
#[derive(Debug, Clone, Object)]
#[oai(rename = "StatusFeedExt", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct FeedEntryDto {
    /// The cursor: pass the last one seen as `seq` to read on.
    pub sequence_number: i64,
    /// The order's id.
    pub shipment_id: String,
    /// Its sender's reference.
    pub senders_reference: Option<String>,
    /// `Notification`, `Reminder`, `Instant` or `Composed`. Nullable as Altinn's (always
    /// present in varsel's answers).
    pub shipment_type: Option<String>,
    /// `Order_Completed` or `Order_SendConditionNotMet`.
    pub status: String,
    /// When the order last changed.
    pub last_update: String,
    /// One entry per message.
    pub recipients: Vec<FeedRecipientDto>,
}
