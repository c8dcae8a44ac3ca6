//! Request and response bodies of the order API, exactly as Altinn clients send and read them.
//! These are never stored: `validate` maps requests into store rows, `orders` maps rows back.

use poem_openapi::{
    Enum, Object,
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{Example, ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;
use std::borrow::Cow;

/// Names an enum's members in canonical spelling and Altinn's numeric order.
pub trait CanonicalNames {
    /// Member names, index = numeric value − `FIRST`.
    const NAMES: &'static [&'static str];
    /// The numeric value of the first member.
    const FIRST: u64 = 0;
}

/// An enum accepted case-insensitively (and by number), as System.Text.Json does for Altinn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseInsensitive<T>(pub T);

impl<T: Type + CanonicalNames> Type for CaseInsensitive<T> {
    const IS_REQUIRED: bool = T::IS_REQUIRED;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;
    fn name() -> Cow<'static, str> {
        T::name()
    }
    /// The member names, or their numbers (as System.Text.Json takes them); names are matched
    /// regardless of case, which JSON Schema cannot say, so the description does.
    fn schema_ref() -> MetaSchemaRef {
        let mut number = MetaSchema::new("integer");
        number.minimum = Some(T::FIRST as f64);
        number.maximum = Some((T::FIRST as usize + T::NAMES.len() - 1) as f64);
        number.description = Some("The member's number, in the order the names are listed.");
        let mut either = MetaSchema::ANY;
        either.one_of = vec![T::schema_ref(), MetaSchemaRef::Inline(Box::new(number))];
        either.description = Some("A member name (any letter case) or its number.");
        MetaSchemaRef::Inline(Box::new(either))
    }
    fn register(registry: &mut Registry) {
        T::register(registry)
    }
    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_raw_value()
    }
    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        self.0.raw_element_iter()
    }
}

impl<T: ParseFromJSON + CanonicalNames> ParseFromJSON for CaseInsensitive<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        let value = match value {
            Some(Value::String(s)) => Some(Value::String(
                T::NAMES
                    .iter()
                    .find(|n| n.eq_ignore_ascii_case(s.trim()))
                    .map(|n| n.to_string())
                    .unwrap_or(s),
            )),
            Some(Value::Number(n)) => match n
                .as_u64()
                .and_then(|i| i.checked_sub(T::FIRST))
                .and_then(|i| T::NAMES.get(i as usize))
            {
                Some(name) => Some(Value::String(name.to_string())),
                None => Some(Value::Number(n)),
            },
            other => other,
        };
        T::parse_from_json(value).map(CaseInsensitive).map_err(ParseError::propagate)
    }
}

impl<T: ToJSON + CanonicalNames> ToJSON for CaseInsensitive<T> {
    fn to_json(&self) -> Option<Value> {
        self.0.to_json()
    }
}

/// A list item that may be `null`, as System.Text.Json reads a list of objects: the validator,
/// not the parser, then refuses it, with Altinn's message and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NullableItem<T>(pub Option<T>);

impl<T: Type> Type for NullableItem<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;
    fn name() -> Cow<'static, str> {
        format!("nullable<{}>", T::name()).into()
    }
    fn schema_ref() -> MetaSchemaRef {
        let mut item = MetaSchema::ANY;
        item.all_of = vec![T::schema_ref()];
        item.nullable = true;
        MetaSchemaRef::Inline(Box::new(item))
    }
    fn register(registry: &mut Registry) {
        T::register(registry)
    }
    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }
    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(item) => item.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for NullableItem<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            None | Some(Value::Null) => Ok(Self(None)),
            value => {
                T::parse_from_json(value).map(|t| Self(Some(t))).map_err(ParseError::propagate)
            }
        }
    }
}

impl<T: ToJSON> ToJSON for NullableItem<T> {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.as_ref().and_then(ToJSON::to_json).unwrap_or(Value::Null))
    }
}

/// The notification channel of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "NotificationChannelExt")]
pub enum NotificationChannelDto {
    /// Email only.
    Email,
    /// SMS only.
    Sms,
    /// Email where an address exists, SMS otherwise.
    EmailPreferred,
    /// SMS where a mobile number exists, email otherwise.
    SmsPreferred,
    /// Both email and SMS.
    EmailAndSms,
}

impl CanonicalNames for NotificationChannelDto {
    const NAMES: &'static [&'static str] =
        &["Email", "Sms", "EmailPreferred", "SmsPreferred", "EmailAndSms"];
}

/// The content type of an email body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "EmailContentTypeExt")]
pub enum EmailContentTypeDto {
    /// Plain text.
    Plain,
    /// HTML.
    Html,
}

impl CanonicalNames for EmailContentTypeDto {
    const NAMES: &'static [&'static str] = &["Plain", "Html"];
}

/// One recipient: a national identity number, an organisation number, an email address and/or
/// a mobile number.
#[derive(Debug, Clone, Default, Object)]
#[oai(rename = "RecipientExt", rename_all = "camelCase", skip_serializing_if_is_none, nullable_all)]
pub struct RecipientDto {
    /// Email address of the recipient.
    #[oai(deserialize_with = "strict_string")]
    pub email_address: Option<String>,
    /// Mobile number with country code, e.g. `+4799999999`.
    #[oai(deserialize_with = "strict_string")]
    pub mobile_number: Option<String>,
    /// Organisation number (9 digits); contact points are looked up.
    #[oai(deserialize_with = "strict_string")]
    pub organization_number: Option<String>,
    /// National identity number (11 digits); contact points and reservation are looked up.
    #[oai(deserialize_with = "strict_string")]
    pub national_identity_number: Option<String>,
    /// Output only: whether the person is reserved against digital notifications.
    pub is_reserved: Option<bool>,
}

/// The email template of an order.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "EmailTemplateExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct EmailTemplateDto {
    /// Sender address; empty uses the service's default sender.
    #[oai(deserialize_with = "strict_string")]
    pub from_address: Option<String>,
    /// Subject; may contain `$recipientName$` and `$recipientNumber$`.
    #[oai(deserialize_with = "strict_string")]
    pub subject: Option<String>,
    /// Body; may contain `$recipientName$` and `$recipientNumber$`.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
    /// `Plain` (default) or `Html`.
    pub content_type: Option<CaseInsensitive<EmailContentTypeDto>>,
}

/// The SMS template of an order.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "SmsTemplateExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all
)]
pub struct SmsTemplateDto {
    /// Sender id shown on the handset; empty uses the default (`Altinn`).
    #[oai(deserialize_with = "strict_string")]
    pub sender_number: Option<String>,
    /// Text; may contain `$recipientName$` and `$recipientNumber$`.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
}

/// `POST /orders`: a notification order on a chosen channel.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "NotificationOrderRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all,
    example
)]
pub struct OrderRequestDto {
    /// The channel: `Email`, `Sms`, `EmailPreferred`, `SmsPreferred` or `EmailAndSms` (any case).
    pub notification_channel: Option<CaseInsensitive<NotificationChannelDto>>,
    /// Required for `Email`, `EmailPreferred`, `SmsPreferred` and `EmailAndSms`.
    pub email_template: Option<EmailTemplateDto>,
    /// Required for `Sms`, `EmailPreferred`, `SmsPreferred` and `EmailAndSms`.
    pub sms_template: Option<SmsTemplateDto>,
    /// Recipients, time, references and condition.
    #[oai(flatten)]
    pub base: OrderBaseDto,
}

/// The properties every order endpoint shares (Altinn `NotificationOrderRequestBaseExt`).
#[derive(Debug, Clone, Default, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none, nullable_all)]
pub struct OrderBaseDto {
    /// One or more recipients.
    pub recipients: Option<Vec<RecipientDto>>,
    /// ISO-8601 date and time with offset; default now.
    #[oai(deserialize_with = "strict_string")]
    pub requested_send_time: Option<String>,
    /// The sender's own reference, e.g. a case number.
    #[oai(deserialize_with = "strict_string")]
    pub senders_reference: Option<String>,
    /// Altinn resource id, e.g. `app_ttd_apps-test` or `urn:altinn:resource:x`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_id: Option<String>,
    /// XACML action used with `resourceId`.
    #[oai(deserialize_with = "strict_string")]
    pub resource_action: Option<String>,
    /// Send to persons reserved in KRR anyway (the content must qualify).
    pub ignore_reservation: Option<bool>,
    /// URL answering `{"sendNotification": true|false}` at send time.
    #[oai(deserialize_with = "strict_string")]
    pub condition_endpoint: Option<String>,
}

/// A JSON string or `null`, nothing else: poem-openapi's `String` would also take a number or a
/// boolean and turn it into text, which Altinn's API (System.Text.Json) refuses, and so does the
/// schema.
pub fn strict_string(value: Option<Value>) -> ParseResult<Option<String>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ParseError::expected_type(other)),
    }
}

/// `POST /orders/email`: an email order.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "EmailNotificationOrderRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all,
    example
)]
pub struct EmailOrderRequestDto {
    /// Subject; may contain `$recipientName$` and `$recipientNumber$`.
    #[oai(deserialize_with = "strict_string")]
    pub subject: Option<String>,
    /// Body; may contain `$recipientName$` and `$recipientNumber$`.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
    /// `Plain` (default) or `Html`.
    pub content_type: Option<CaseInsensitive<EmailContentTypeDto>>,
    /// Recipients (email address, organisation or national identity number), time, references
    /// and condition.
    #[oai(flatten)]
    pub base: OrderBaseDto,
}

/// `POST /orders/sms`: an SMS order.
#[derive(Debug, Clone, Default, Object)]
#[oai(
    rename = "SmsNotificationOrderRequestExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none,
    nullable_all,
    example
)]
pub struct SmsOrderRequestDto {
    /// Sender id; default `Altinn`.
    #[oai(deserialize_with = "strict_string")]
    pub sender_number: Option<String>,
    /// Text; may contain `$recipientName$` and `$recipientNumber$`.
    #[oai(deserialize_with = "strict_string")]
    pub body: Option<String>,
    /// Recipients (mobile number, organisation or national identity number), time, references
    /// and condition.
    #[oai(flatten)]
    pub base: OrderBaseDto,
}

/// Result of the registration-time recipient lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "RecipientLookupStatusExt")]
pub enum RecipientLookupStatusDto {
    /// Every looked-up recipient is reachable.
    Success,
    /// Some looked-up recipients are reachable.
    PartialSuccess,
    /// No looked-up recipient is reachable.
    Failed,
}

/// What the lookup at registration found.
#[derive(Debug, Clone, Object)]
#[oai(rename = "RecipientLookupResultExt", rename_all = "camelCase")]
pub struct RecipientLookupDto {
    /// Overall result.
    pub status: RecipientLookupStatusDto,
    /// National identity numbers of reserved persons.
    pub is_reserved: Vec<String>,
    /// Identifiers with no contact point for the channel.
    pub missing_contact: Vec<String>,
}

/// The answer to a new order.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "NotificationOrderRequestResponseExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct OrderCreatedDto {
    /// The new order's id.
    pub order_id: String,
    /// Present when some recipient needed a lookup.
    pub recipient_lookup: Option<RecipientLookupDto>,
    /// Present when recipients repeated an earlier one (the same person, organisation, mobile
    /// number, or email address in any letter case): their positions in `recipients`, counted
    /// from 0. Each recipient is notified once; the repeats were left out of the order.
    pub duplicate_recipients: Option<Vec<u64>>,
}

/// Links of an order.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderResourceLinksExt", rename_all = "camelCase")]
pub struct OrderLinksDto {
    /// This order.
    #[oai(rename = "self")]
    pub self_link: String,
    /// The order's status.
    pub status: String,
}

/// The properties every order read answers (Altinn `BaseNotificationOrderExt`).
#[derive(Debug, Clone, Object)]
#[oai(rename = "BaseNotificationOrderExt", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct OrderInfoDto {
    /// Order id.
    pub id: String,
    /// The sender's own reference.
    pub senders_reference: Option<String>,
    /// When the notifications are sent (UTC).
    pub requested_send_time: String,
    /// The creator org.
    pub creator: String,
    /// When the order was accepted (UTC).
    pub created: String,
    /// The channel.
    pub notification_channel: NotificationChannelDto,
    /// Whether KRR reservations are overridden.
    pub ignore_reservation: Option<bool>,
    /// Altinn resource id.
    pub resource_id: Option<String>,
    /// XACML action.
    pub resource_action: Option<String>,
    /// Condition endpoint.
    pub condition_endpoint: Option<String>,
}

/// A stored order, as submitted.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NotificationOrderExt", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct OrderDto {
    /// Id, times, creator, channel and options.
    #[oai(flatten)]
    pub info: OrderInfoDto,
    /// Recipients as submitted.
    pub recipients: Vec<RecipientDto>,
    /// Email template, when the order has one.
    pub email_template: Option<EmailTemplateDto>,
    /// SMS template, when the order has one.
    pub sms_template: Option<SmsTemplateDto>,
    /// Links.
    pub links: OrderLinksDto,
}

/// Orders with a given sender's reference.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NotificationOrderListExt", rename_all = "camelCase")]
pub struct OrderListDto {
    /// How many orders matched.
    pub count: u64,
    /// The orders, oldest first.
    pub orders: Vec<OrderDto>,
}

/// Where an order is in its processing.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderStatusExt", rename_all = "camelCase")]
pub struct ProcessingStatusDto {
    /// `Registered`, `Processing`, `Completed`, `SendConditionNotMet` or `Cancelled` (an order
    /// whose notifications are generated but not all final is reported `Completed`, as in Altinn v1).
    pub status: String,
    /// What the status means.
    pub description: String,
    /// When the status last changed (UTC).
    pub last_update: String,
}

/// A link to this resource.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SelfLinkExt")]
pub struct SelfLinkDto {
    /// The resource's URL.
    #[oai(rename = "self")]
    pub self_link: String,
}

/// Counts of one channel's notifications.
#[derive(Debug, Clone, Object)]
#[oai(rename = "NotificationsStatusSummaryChannelExt", rename_all = "camelCase")]
pub struct ChannelSummaryDto {
    /// The channel's notification list.
    pub links: SelfLinkDto,
    /// Notifications generated.
    pub generated: u64,
    /// Notifications sent successfully (email: succeeded or delivered; SMS: accepted or delivered).
    pub succeeded: u64,
}

/// Counts per channel; a channel without notifications is omitted.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "NotificationsStatusSummaryExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct NotificationsSummaryDto {
    /// Email notifications.
    pub email: Option<ChannelSummaryDto>,
    /// SMS notifications.
    pub sms: Option<ChannelSummaryDto>,
}

/// An order with its processing status.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "NotificationOrderWithStatusExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct OrderWithStatusDto {
    /// Id, times, creator, channel and options.
    #[oai(flatten)]
    pub info: OrderInfoDto,
    /// The order's processing status.
    pub processing_status: ProcessingStatusDto,
    /// Notification counts per channel, once notifications exist.
    pub notifications_status_summary: Option<NotificationsSummaryDto>,
}

/// The status of one notification.
#[derive(Debug, Clone, Object)]
#[oai(rename = "StatusExt", rename_all = "camelCase")]
pub struct SendStatusDto {
    /// The result without its channel prefix, in Altinn's v1 spelling (e.g. `Succeeded`,
    /// `Failed_RecipientReserved`, `Failed_InvalidEmailFormat`).
    pub status: String,
    /// What the status means.
    pub description: String,
    /// When the status last changed (UTC).
    pub last_update: String,
}

/// The recipient of an email notification.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "EmailNotificationRecipientExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct EmailRecipientDto {
    /// The address the email went to (absent when none was found).
    pub email_address: Option<String>,
    /// The organisation it was for.
    pub organization_number: Option<String>,
    /// The person it was for.
    pub national_identity_number: Option<String>,
}

/// One email notification.
#[derive(Debug, Clone, Object)]
#[oai(rename = "EmailNotificationWithResultExt", rename_all = "camelCase")]
pub struct EmailNotificationDto {
    /// Notification id.
    pub id: String,
    /// Whether it was sent successfully.
    pub succeeded: bool,
    /// Who it was for.
    pub recipient: EmailRecipientDto,
    /// Its status.
    pub send_status: SendStatusDto,
}

/// The email notifications of an order.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "EmailNotificationSummaryExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct EmailSummaryDto {
    /// The order.
    pub order_id: String,
    /// The order's sender's reference.
    pub senders_reference: Option<String>,
    /// Notifications generated.
    pub generated: u64,
    /// Notifications sent successfully.
    pub succeeded: u64,
    /// The notifications.
    pub notifications: Vec<EmailNotificationDto>,
}

/// The recipient of an SMS notification.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "SmsNotificationRecipientExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct SmsRecipientDto {
    /// The number the SMS went to (absent when none was found).
    pub mobile_number: Option<String>,
    /// The organisation it was for.
    pub organization_number: Option<String>,
    /// The person it was for.
    pub national_identity_number: Option<String>,
}

/// One SMS notification.
#[derive(Debug, Clone, Object)]
#[oai(
    rename = "SmsNotificationWithResultExt",
    rename_all = "camelCase",
    skip_serializing_if_is_none
)]
pub struct SmsNotificationDto {
    /// Notification id.
    pub id: String,
    /// How many SMS segments the text takes (one up to 160 URL-encoded characters, then one per
    /// 134, at most 16); a varsel addition.
    pub segments: Option<u32>,
    /// Whether it was sent successfully.
    pub succeeded: bool,
    /// Who it was for.
    pub recipient: SmsRecipientDto,
    /// Its status.
    pub send_status: SendStatusDto,
}

/// The SMS notifications of an order.
#[derive(Debug, Clone, Object)]
#[oai(rename = "SmsNotificationSummaryExt", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct SmsSummaryDto {
    /// The order.
    pub order_id: String,
    /// The order's sender's reference.
    pub senders_reference: Option<String>,
    /// Notifications generated.
    pub generated: u64,
    /// Notifications sent successfully.
    pub succeeded: u64,
    /// The notifications.
    pub notifications: Vec<SmsNotificationDto>,
}

fn recipient(
    org: Option<&str>,
    nin: Option<&str>,
    email: Option<&str>,
    mobile: Option<&str>,
) -> RecipientDto {
    RecipientDto {
        organization_number: org.map(str::to_owned),
        national_identity_number: nin.map(str::to_owned),
        email_address: email.map(str::to_owned),
        mobile_number: mobile.map(str::to_owned),
        is_reserved: None,
    }
}

/// The first example of Altinn's "Send notifications" page: email preferred, SMS as fallback.
impl Example for OrderRequestDto {
    fn example() -> Self {
        Self {
            notification_channel: Some(CaseInsensitive(NotificationChannelDto::EmailPreferred)),
            email_template: Some(EmailTemplateDto {
                from_address: None,
                subject: Some("A test email from Altinn Notifications".into()),
                body: Some("A message to be sent immediately from an org.".into()),
                content_type: Some(CaseInsensitive(EmailContentTypeDto::Plain)),
            }),
            sms_template: Some(SmsTemplateDto {
                sender_number: None,
                body: Some("Demo SMS content".into()),
            }),
            base: OrderBaseDto {
                recipients: Some(vec![
                    recipient(Some("311000179"), None, None, None),
                    recipient(None, Some("11876995923"), None, None),
                ]),
                senders_reference: Some("9A547448-FDF4-4E60-87AC-C2F652C8353C".into()),
                resource_id: Some("app_ttd_apps-test".into()),
                ..Default::default()
            },
        }
    }
}

/// The keyword example of Altinn's "Send email notifications" page.
impl Example for EmailOrderRequestDto {
    fn example() -> Self {
        Self {
            subject: Some("Important notification regarding your organization, $recipientName$".into()),
            body: Some("Dear $recipientName$, this is an official notification regarding your organization, identified by the organization number $recipientNumber$. Please take the necessary actions.".into()),
            content_type: Some(CaseInsensitive(EmailContentTypeDto::Plain)),
            base: OrderBaseDto {
                recipients: Some(vec![recipient(Some("311000179"), None, None, None)]),
                senders_reference: Some("ref-2023-12-02".into()),
                ..Default::default()
            },
        }
    }
}

/// The example of Altinn's "Send sms notifications" page.
impl Example for SmsOrderRequestDto {
    fn example() -> Self {
        Self {
            sender_number: None,
            body: Some("A text message to be sent immediately from an org.".into()),
            base: OrderBaseDto {
                recipients: Some(vec![
                    recipient(None, None, None, Some("+4799999999")),
                    recipient(None, Some("11876995923"), None, None),
                ]),
                senders_reference: Some("ref-2024-01-01".into()),
                ..Default::default()
            },
        }
    }
}

/// One line of an order's timeline.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderHistoryEntry", rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct HistoryEntryDto {
    /// When it happened (UTC).
    pub time: String,
    /// `workflow` (the order's workflow history), `order` (the order's record in the database,
    /// shown once the workflow's history has expired), `action` (a cancel or redrive, and who
    /// did it), `notification` (a notification's status) or `webhook` (an attempt at delivering
    /// a status webhook).
    pub source: String,
    /// What happened, in words.
    pub text: String,
    /// The notification it is about.
    pub notification_id: Option<String>,
}

/// An order's timeline.
#[derive(Debug, Clone, Object)]
#[oai(rename = "OrderHistory", rename_all = "camelCase")]
pub struct OrderHistoryDto {
    /// The order.
    pub order_id: String,
    /// The order's workflow in the Temporal web UI.
    pub temporal_ui: String,
    /// Temporal no longer keeps the workflow's history (its retention period passed): the
    /// entries are what varsel's database kept (the order's record, its notifications' events,
    /// its webhook deliveries).
    pub workflow_history_expired: bool,
    /// What happened, oldest first.
    pub entries: Vec<HistoryEntryDto>,
}
