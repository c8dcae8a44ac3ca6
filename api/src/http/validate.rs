//! Request validation with Altinn's exact messages (reference §2.1), keyed by FluentValidation
//! property paths so existing clients' error handling keeps working.
//!
//! Departures, on purpose: `EmailAndSms` orders are validated like preferred-channel orders and
//! need both templates (Altinn skips validation for them); `conditionEndpoint` must be a public
//! DNS name or an address the outbound policy allows (`condition_allowed_hosts`): an IP literal
//! in a loopback, private, link-local or metadata range is refused here already.

use super::dto::{
    EmailContentTypeDto, EmailOrderRequestDto, NotificationChannelDto, OrderBaseDto, OrderRequestDto, RecipientDto,
    SmsOrderRequestDto,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use varsel_activities::providers::outbound::OutboundPolicy;
use varsel_activities::store::NewRecipient;
use varsel_workflows::domain::{
    EmailAddress, EmailContentType, MobileNumber, NationalIdentityNumber, NotificationChannel,
    OrganizationNumber,
};

/// Validation messages keyed by property path.
pub type Errors = BTreeMap<String, Vec<String>>;

pub(crate) fn add(errors: &mut Errors, key: impl Into<String>, msg: &str) {
    let list = errors.entry(key.into()).or_default();
    if !list.iter().any(|m| m == msg) {
        list.push(msg.to_owned());
    }
}

/// The email part of a valid order.
#[derive(Debug, Clone)]
pub struct EmailTemplate {
    /// Sender; `None` = default.
    pub from: Option<String>,
    /// Subject, one line.
    pub subject: String,
    /// Body.
    pub body: String,
    /// Content type.
    pub content_type: EmailContentType,
}

/// The SMS part of a valid order.
#[derive(Debug, Clone)]
pub struct SmsTemplate {
    /// Sender id; `None` = default.
    pub sender: Option<String>,
    /// Text.
    pub body: String,
}

/// Which endpoint accepted the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// `POST /orders`.
    Orders,
    /// `POST /orders/email`.
    Email,
    /// `POST /orders/sms`.
    Sms,
    /// `POST /future/orders` (one order of a chain).
    Chain,
    /// `POST /future/orders/instant/sms` or `/instant/email`.
    Instant,
}

impl OrderKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Chain => "chain",
            Self::Instant => "instant",
        }
    }
}

/// A request that passed every rule.
#[derive(Debug, Clone)]
pub struct ValidOrder {
    /// Endpoint.
    pub kind: OrderKind,
    /// Channel.
    pub channel: NotificationChannel,
    /// Send time, UTC.
    pub requested_send_time: DateTime<Utc>,
    /// Recipients, normalised.
    pub recipients: Vec<NewRecipient>,
    /// Email template, when the channel uses email.
    pub email: Option<EmailTemplate>,
    /// SMS template, when the channel uses SMS.
    pub sms: Option<SmsTemplate>,
    /// Sender's reference.
    pub senders_reference: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Resource action.
    pub resource_action: Option<String>,
    /// Reservation override.
    pub ignore_reservation: bool,
    /// Condition endpoint.
    pub condition_endpoint: Option<String>,
}

/// What the rules need to know beyond the request.
pub struct Rules<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// Destinations accepted in `conditionEndpoint` besides public DNS names.
    pub outbound: &'a OutboundPolicy,
    /// Most recipients one order may have.
    pub max_recipients: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RecipientRule {
    Email,
    Sms,
    Preferred,
}

pub(crate) fn present(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Whether a condition endpoint may be used: http(s), and a public DNS name or a destination the
/// outbound policy allows (an IP literal in a non-public range only when allow-listed). A name
/// that resolves to a private address is refused later, when the check runs.
pub(crate) fn condition_destination_allowed(u: &reqwest::Url, rules: &Rules<'_>) -> bool {
    rules.outbound.check_url(u).is_ok()
        && match u.host() {
            Some(url::Host::Domain(name)) => HOST_RE.is_match(name) || rules.outbound.name_allowed(name),
            Some(_) => true,
            None => false,
        }
}

static HOST_RE: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$").expect("host pattern"));

fn parse_send_time(raw: &str, errors: &mut Errors) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f"] {
        if NaiveDateTime::parse_from_str(raw, fmt).is_ok() {
            add(errors, "RequestedSendTime", "The requested send time value must have specified a time zone.");
            return None;
        }
    }
    add(errors, "RequestedSendTime", "The requested send time must be a valid ISO-8601 date and time.");
    None
}

fn validate_base(base: &OrderBaseDto, rule: RecipientRule, rules: &Rules<'_>, errors: &mut Errors) -> (DateTime<Utc>, Vec<NewRecipient>) {
    let mut send_time = rules.now;
    if let Some(raw) = present(&base.requested_send_time)
        && let Some(t) = parse_send_time(raw, errors)
    {
        if t < rules.now - chrono::Duration::minutes(5) {
            add(errors, "RequestedSendTime", "Send time must be in the future. Leave blank to send immediately.");
        }
        send_time = t.max(rules.now);
    }

    if let Some(url) = present(&base.condition_endpoint) {
        let ok = reqwest::Url::parse(url).ok().is_some_and(|u| condition_destination_allowed(&u, rules));
        if !ok {
            add(errors, "ConditionEndpoint", "The condition endpoint must be a valid URL.");
        }
    }

    if let Some(action) = &base.resource_action {
        if present(&base.resource_id).is_none() {
            add(errors, "ResourceAction", "ResourceAction cannot be specified without a ResourceId.");
        } else if action.trim().is_empty() {
            add(errors, "ResourceAction", "ResourceAction cannot be blank or whitespace.");
        }
    }

    if let Some(list) = &base.recipients
        && list.len() > rules.max_recipients
    {
        // Checked before the recipients themselves: a too-large order is not worth validating.
        add(errors, "Recipients", &format!("An order can have at most {} recipients; this one has {}.", rules.max_recipients, list.len()));
        return (send_time, vec![]);
    }
    let recipients = validate_recipients(&base.recipients, rule, errors);
    (send_time, recipients)
}

fn validate_recipients(list: &Option<Vec<RecipientDto>>, rule: RecipientRule, errors: &mut Errors) -> Vec<NewRecipient> {
    let list = match list {
        Some(l) if !l.is_empty() => l,
        _ => {
            add(errors, "Recipients", "One or more recipient is required.");
            return vec![];
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let key = format!("Recipients[{i}]");
        let email = present(&r.email_address);
        let mobile = present(&r.mobile_number);
        let org = present(&r.organization_number);
        let nin = present(&r.national_identity_number);
        let mut rec = NewRecipient::default();

        let identified = match rule {
            RecipientRule::Email => email.is_some() || org.is_some() || nin.is_some(),
            RecipientRule::Sms => mobile.is_some() || org.is_some() || nin.is_some(),
            RecipientRule::Preferred => email.is_some() || mobile.is_some() || org.is_some() || nin.is_some(),
        };
        if !identified {
            add(errors, &key, match rule {
                RecipientRule::Email => "Either a valid email address, organization number, or national identity number must be provided for each recipient.",
                RecipientRule::Sms => "Either a valid mobile number starting with country code, organization number, or national identity number must be provided for each recipient.",
                RecipientRule::Preferred => "Either a valid email address, mobile number starting with country code, organization number, or national identity number must be provided for each recipient.",
            });
        }
        if let Some(e) = email {
            match EmailAddress::parse(e) {
                Ok(e) if rule != RecipientRule::Sms => rec.email = Some(e.as_str().to_owned()),
                Ok(_) => {}
                Err(err) => add(errors, &key, err.0),
            }
        }
        if let Some(m) = mobile {
            // An email order ignores mobile numbers (as Altinn), so it does not judge them either.
            if rule != RecipientRule::Email {
                match MobileNumber::parse(m) {
                    Ok(m) => rec.mobile = Some(m.as_str().to_owned()),
                    Err(err) => add(errors, &key, err.0),
                }
            }
        }
        if let Some(n) = nin {
            match NationalIdentityNumber::parse(n) {
                Ok(n) => rec.nin = Some(n.as_str().to_owned()),
                Err(err) => add(errors, &key, err.0),
            }
            if email.is_some() || mobile.is_some() || org.is_some() {
                add(errors, &key, "National identity number cannot be combined with email address, mobile number, or organization number.");
            }
        }
        if let Some(o) = org {
            match OrganizationNumber::parse(o) {
                Ok(o) => rec.org_no = Some(o.as_str().to_owned()),
                Err(err) => add(errors, &key, err.0),
            }
            if email.is_some() || mobile.is_some() || nin.is_some() {
                add(errors, &key, "Organization number cannot be combined with email address, mobile number, or national identity number.");
            }
        }
        out.push(rec);
    }
    out
}

/// Alphanumeric sender ids are cut at 11 characters by the networks; refuse them up front.
pub(crate) fn check_sender(sender: Option<&str>, key: &str, errors: &mut Errors) {
    if let Some(s) = sender
        && s.chars().any(|c| c.is_alphabetic())
        && s.chars().count() > 11
    {
        add(errors, key, "An alphanumeric sender id can be at most 11 characters long.");
    }
}

fn content_type(ct: Option<EmailContentTypeDto>) -> EmailContentType {
    match ct {
        Some(EmailContentTypeDto::Html) => EmailContentType::Html,
        _ => EmailContentType::Plain,
    }
}

pub(crate) fn one_line(s: &str) -> String {
    // Altinn replaces line breaks in subjects with a single space.
    s.replace("\r\n", " ").replace(['\r', '\n'], " ")
}

/// The parts of a valid order that differ between the endpoints.
struct Parts {
    kind: OrderKind,
    channel: NotificationChannel,
    email: Option<EmailTemplate>,
    sms: Option<SmsTemplate>,
}

fn finish(
    errors: Errors,
    base: &OrderBaseDto,
    requested_send_time: DateTime<Utc>,
    recipients: Vec<NewRecipient>,
    parts: Parts,
) -> Result<ValidOrder, Errors> {
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidOrder {
        kind: parts.kind,
        channel: parts.channel,
        requested_send_time,
        recipients,
        email: parts.email,
        sms: parts.sms,
        senders_reference: base.senders_reference.clone(),
        resource_id: present(&base.resource_id).map(str::to_owned),
        resource_action: base.resource_action.clone(),
        ignore_reservation: base.ignore_reservation.unwrap_or(false),
        condition_endpoint: present(&base.condition_endpoint).map(str::to_owned),
    })
}

/// `POST /orders`.
pub fn order_request(req: &OrderRequestDto, rules: &Rules<'_>) -> Result<ValidOrder, Errors> {
    let mut errors = Errors::new();
    let channel = req.notification_channel.map(|c| match c.0 {
        NotificationChannelDto::Email => NotificationChannel::Email,
        NotificationChannelDto::Sms => NotificationChannel::Sms,
        NotificationChannelDto::EmailPreferred => NotificationChannel::EmailPreferred,
        NotificationChannelDto::SmsPreferred => NotificationChannel::SmsPreferred,
        NotificationChannelDto::EmailAndSms => NotificationChannel::EmailAndSms,
    });
    if channel.is_none() {
        add(&mut errors, "NotificationChannel", "A notification channel must be defined.");
    }
    let rule = match channel {
        Some(NotificationChannel::Email) => RecipientRule::Email,
        Some(NotificationChannel::Sms) => RecipientRule::Sms,
        _ => RecipientRule::Preferred,
    };
    let (send_time, recipients) = validate_base(&req.base, rule, rules, &mut errors);

    let mut email = None;
    let mut sms = None;
    if let Some(ch) = channel {
        if ch.needs_email_template() {
            match &req.email_template {
                None => add(&mut errors, "EmailTemplate", "An email template is required for the selected notification channel."),
                Some(t) => {
                    let body = present(&t.body);
                    let subject = present(&t.subject);
                    if body.is_none() {
                        add(&mut errors, "EmailTemplate.Body", "The email template body must not be empty.");
                    }
                    if subject.is_none() {
                        add(&mut errors, "EmailTemplate.Subject", "The email template subject must not be empty.");
                    }
                    if let Some(from) = present(&t.from_address)
                        && EmailAddress::parse(from).is_err()
                    {
                        add(&mut errors, "EmailTemplate.FromAddress", "Invalid email address format.");
                    }
                    email = Some(EmailTemplate {
                        from: present(&t.from_address).map(str::to_owned),
                        subject: one_line(subject.unwrap_or_default()),
                        body: t.body.clone().unwrap_or_default(),
                        content_type: content_type(t.content_type.map(|c| c.0)),
                    });
                }
            }
        }
        if ch.needs_sms_template() {
            match &req.sms_template {
                None => add(&mut errors, "SmsTemplate", "An SMS template is required for the selected the notification channel."),
                Some(t) => {
                    if present(&t.body).is_none() {
                        add(&mut errors, "SmsTemplate.Body", "The SMS template body must not be empty.");
                    }
                    check_sender(present(&t.sender_number), "SmsTemplate.SenderNumber", &mut errors);
                    sms = Some(SmsTemplate {
                        sender: present(&t.sender_number).map(str::to_owned),
                        body: t.body.clone().unwrap_or_default(),
                    });
                }
            }
        }
    }
    finish(errors, &req.base, send_time, recipients, Parts {
        kind: OrderKind::Orders,
        channel: channel.unwrap_or(NotificationChannel::Email),
        email,
        sms,
    })
}

/// `POST /orders/email`.
pub fn email_request(req: &EmailOrderRequestDto, rules: &Rules<'_>) -> Result<ValidOrder, Errors> {
    let mut errors = Errors::new();
    let (send_time, recipients) = validate_base(&req.base, RecipientRule::Email, rules, &mut errors);
    if present(&req.body).is_none() {
        add(&mut errors, "Body", "The email template body must not be empty.");
    }
    if present(&req.subject).is_none() {
        add(&mut errors, "Subject", "The email template subject must not be empty.");
    }
    finish(errors, &req.base, send_time, recipients, Parts {
        kind: OrderKind::Email,
        channel: NotificationChannel::Email,
        email: Some(EmailTemplate {
            from: None,
            subject: one_line(present(&req.subject).unwrap_or_default()),
            body: req.body.clone().unwrap_or_default(),
            content_type: content_type(req.content_type.map(|c| c.0)),
        }),
        sms: None,
    })
}

/// `POST /orders/sms`.
pub fn sms_request(req: &SmsOrderRequestDto, rules: &Rules<'_>) -> Result<ValidOrder, Errors> {
    let mut errors = Errors::new();
    let (send_time, recipients) = validate_base(&req.base, RecipientRule::Sms, rules, &mut errors);
    if present(&req.body).is_none() {
        add(&mut errors, "Body", "The SMS template body must not be empty.");
    }
    check_sender(present(&req.sender_number), "SenderNumber", &mut errors);
    finish(errors, &req.base, send_time, recipients, Parts {
        kind: OrderKind::Sms,
        channel: NotificationChannel::Sms,
        email: None,
        sms: Some(SmsTemplate { sender: present(&req.sender_number).map(str::to_owned), body: req.body.clone().unwrap_or_default() }),
    })
}
