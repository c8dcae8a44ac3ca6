//! Request validation with Altinn's exact messages (reference §2.1), keyed by FluentValidation
//! property paths so existing clients' error handling keeps working.
//!
//! Departures, on purpose: `EmailAndSms` orders are validated like preferred-channel orders and
//! need both templates (Altinn skips validation for them); `conditionEndpoint` must be a public
//! DNS name or an address the outbound policy allows (`condition_allowed_hosts`): an IP literal
//! in a loopback, private, link-local or metadata range is refused here already.

use super::dto::{
    EmailContentTypeDto, EmailOrderRequestDto, NotificationChannelDto, OrderBaseDto,
    OrderRequestDto, RecipientDto, SmsOrderRequestDto,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::BTreeMap;
use std::sync::LazyLock;
use varsel_activities::providers::outbound::OutboundPolicy;
use varsel_workflows::domain::{
    EmailAddress, EmailContentType, MobileNumber, NationalIdentityNumber, NotificationChannel,
    OrderStatus, OrganizationNumber,
};
pub use varsel_workflows::order::{EmailTemplate, OrderKind, Recipient, SmsTemplate};
use varsel_workflows::order::{NewOrder, Order};

/// Validation messages keyed by property path.
pub type Errors = BTreeMap<String, Vec<String>>;

pub(crate) fn add(errors: &mut Errors, key: impl Into<String>, msg: &str) {
    let list = errors.entry(key.into()).or_default();
    if !list.iter().any(|m| m == msg) {
        list.push(msg.to_owned());
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
    /// Recipients, normalised, each once.
    pub recipients: Vec<Recipient>,
    /// Positions (in the request) of recipients that repeated an earlier one.
    pub duplicates: Vec<usize>,
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

impl ValidOrder {
    /// The order this request asks for, as `creator`'s, accepted `now` under a new id:
    /// `Registered`, in no chain (the newer API places it in one).
    pub fn into_order(self, creator: &str, now: DateTime<Utc>) -> NewOrder {
        NewOrder {
            order: Order {
                id: uuid::Uuid::new_v4().to_string(),
                creator: creator.to_owned(),
                created: now,
                kind: self.kind,
                status: OrderStatus::Registered,
                channel: self.channel,
                requested_send_time: self.requested_send_time,
                senders_reference: self.senders_reference,
                resource_id: self.resource_id,
                resource_action: self.resource_action,
                ignore_reservation: self.ignore_reservation,
                condition_endpoint: self.condition_endpoint,
                email: self.email,
                sms: self.sms,
                chain: None,
            },
            recipients: self.recipients,
        }
    }
}

/// What the rules need to know beyond the request.
pub struct Rules<'a> {
    /// Now.
    pub now: DateTime<Utc>,
    /// Destinations accepted in `conditionEndpoint` besides public DNS names.
    pub outbound: &'a OutboundPolicy,
    /// How large each part of a request may be.
    pub limits: Limits,
}

/// How large each part of a request may be (the configuration's limits).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Recipients of one order.
    pub max_recipients: usize,
    /// Characters of an email subject.
    pub max_subject_chars: usize,
    /// Bytes of an email body.
    pub max_email_body_bytes: usize,
    /// Segments of an SMS text.
    pub max_sms_segments: u32,
    /// Characters of a reference or id the client chooses.
    pub max_reference_chars: usize,
    /// Reminders of one chain.
    pub max_reminders: usize,
    /// How far ahead a send time may be.
    pub max_send_ahead: chrono::Duration,
}

/// Longest `conditionEndpoint`, characters (the limit browsers and proxies keep to).
pub const MAX_URL_CHARS: usize = 2048;

impl Limits {
    /// From the configuration.
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            max_recipients: c.limits.max_recipients,
            max_subject_chars: c.limits.max_subject_chars,
            max_email_body_bytes: c.limits.max_email_body_bytes,
            max_sms_segments: c.limits.max_sms_segments.max(1),
            max_reference_chars: c.limits.max_reference_chars,
            max_reminders: c.limits.max_reminders,
            // At most a century: send times stay far inside what dates can hold.
            max_send_ahead: chrono::Duration::days(c.limits.max_send_ahead_days.min(36_500) as i64),
        }
    }
}

impl<'a> Rules<'a> {
    /// The rules as configured, now.
    pub fn new(config: &crate::config::Config, outbound: &'a OutboundPolicy) -> Self {
        Self { now: Utc::now(), outbound, limits: Limits::from_config(config) }
    }

    /// Refuses a send time further ahead than the limit.
    pub(crate) fn check_horizon(&self, t: DateTime<Utc>, key: &str, errors: &mut Errors) {
        if t > self.now + self.limits.max_send_ahead {
            add(
                errors,
                key,
                &format!(
                    "The send time can be at most {} days ahead.",
                    self.limits.max_send_ahead.num_days()
                ),
            );
        }
    }

    /// Refuses a reference or id longer than the limit.
    pub(crate) fn check_reference(&self, value: Option<&str>, key: &str, errors: &mut Errors) {
        check_chars(value, self.limits.max_reference_chars, key, errors);
    }

    /// Refuses a subject with control characters (line breaks fold into spaces) or longer than
    /// the limit.
    pub(crate) fn check_subject(&self, subject: Option<&str>, key: &str, errors: &mut Errors) {
        let Some(s) = subject else { return };
        if s.chars().any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t')) {
            add(errors, key, "The email subject must not contain control characters.");
        }
        check_chars(Some(s), self.limits.max_subject_chars, key, errors);
    }

    /// Refuses an email body larger than the limit.
    pub(crate) fn check_email_body(&self, body: Option<&str>, key: &str, errors: &mut Errors) {
        if let Some(b) = body
            && b.len() > self.limits.max_email_body_bytes
        {
            add(
                errors,
                key,
                &format!(
                    "The email body can be at most {} bytes long; it is {}.",
                    self.limits.max_email_body_bytes,
                    b.len()
                ),
            );
        }
    }

    /// Refuses an SMS text longer than the segments a message may take (counted as Altinn
    /// counts them: 160 URL-encoded characters in one, 134 a segment beyond).
    pub(crate) fn check_sms_body(&self, body: Option<&str>, key: &str, errors: &mut Errors) {
        let Some(b) = body else { return };
        let len = varsel_workflows::sms::url_encoded_len(b);
        let max = self.limits.max_sms_segments as usize * 134;
        if len > max.max(160) {
            add(
                errors,
                key,
                &format!(
                    "The SMS body is too long: it takes {} segments and at most {} are sent (each letter outside A-Z, a-z and 0-9 counts as several characters).",
                    len.div_ceil(134),
                    self.limits.max_sms_segments
                ),
            );
        }
    }
}

fn check_chars(value: Option<&str>, max: usize, key: &str, errors: &mut Errors) {
    if let Some(v) = value {
        let n = v.chars().count();
        if n > max {
            add(
                errors,
                key,
                &format!("The value can be at most {max} characters long; it is {n}."),
            );
        }
    }
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
/// outbound policy allows (an IP literal in a non-public range only when allow-listed); why not
/// otherwise. A name that resolves to a private address is refused later, when the check runs.
pub(crate) fn condition_destination(u: &reqwest::Url, rules: &Rules<'_>) -> Result<(), String> {
    const WHY: &str =
        "varsel calls only public hosts, and others that VARSEL_CONDITION_ALLOWED_HOSTS lists";
    if let Err(refused) = rules.outbound.check_url(u) {
        return Err(format!(
            "The condition endpoint is not reachable for varsel: {refused}; {WHY}."
        ));
    }
    match u.host() {
        Some(url::Host::Domain(name))
            if !(HOST_RE.is_match(name) || rules.outbound.name_allowed(name)) =>
        {
            Err(format!(
                "The condition endpoint's host {name} is not a public DNS name (one with a top-level domain); {WHY}."
            ))
        }
        Some(_) => Ok(()),
        None => Err("The condition endpoint must be a valid URL.".into()),
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
            add(
                errors,
                "RequestedSendTime",
                "The requested send time value must have specified a time zone.",
            );
            return None;
        }
    }
    add(
        errors,
        "RequestedSendTime",
        "The requested send time must be a valid ISO-8601 date and time.",
    );
    None
}

fn validate_base(
    base: &OrderBaseDto,
    rule: RecipientRule,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> (DateTime<Utc>, Recipients) {
    let mut send_time = rules.now;
    if let Some(raw) = present(&base.requested_send_time)
        && let Some(t) = parse_send_time(raw, errors)
    {
        if t < rules.now - chrono::Duration::minutes(5) {
            add(
                errors,
                "RequestedSendTime",
                "Send time must be in the future. Leave blank to send immediately.",
            );
        }
        rules.check_horizon(t, "RequestedSendTime", errors);
        send_time = t.max(rules.now);
    }

    if let Some(url) = present(&base.condition_endpoint) {
        match reqwest::Url::parse(url) {
            _ if url.chars().count() > MAX_URL_CHARS => add(
                errors,
                "ConditionEndpoint",
                &format!("The condition endpoint can be at most {MAX_URL_CHARS} characters long."),
            ),
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                if let Err(why) = condition_destination(&u, rules) {
                    add(errors, "ConditionEndpoint", &why);
                }
            }
            _ => add(errors, "ConditionEndpoint", "The condition endpoint must be a valid URL."),
        }
    }
    rules.check_reference(base.senders_reference.as_deref(), "SendersReference", errors);
    rules.check_reference(base.resource_id.as_deref(), "ResourceId", errors);
    rules.check_reference(base.resource_action.as_deref(), "ResourceAction", errors);

    if let Some(action) = &base.resource_action {
        if present(&base.resource_id).is_none() {
            add(
                errors,
                "ResourceAction",
                "ResourceAction cannot be specified without a ResourceId.",
            );
        } else if action.trim().is_empty() {
            add(errors, "ResourceAction", "ResourceAction cannot be blank or whitespace.");
        }
    }

    if let Some(list) = &base.recipients
        && list.len() > rules.limits.max_recipients
    {
        // Checked before the recipients themselves: a too-large order is not worth validating.
        add(
            errors,
            "Recipients",
            &format!(
                "An order can have at most {} recipients; this one has {}.",
                rules.limits.max_recipients,
                list.len()
            ),
        );
        return (send_time, Recipients::default());
    }
    let recipients = validate_recipients(&base.recipients, rule, errors);
    (send_time, recipients)
}

/// An order's valid recipients, each once, and which of the given ones repeated another.
#[derive(Debug, Clone, Default)]
pub struct Recipients {
    /// The recipients, normalised, in the order given, each once.
    pub unique: Vec<Recipient>,
    /// Positions (in the request's `recipients`) of those that repeated an earlier one.
    pub duplicates: Vec<usize>,
}

/// What makes two recipients the same: the same person, organisation, mobile number, or
/// email address in any letter case.
fn identity(r: &Recipient) -> (Option<String>, Option<String>, Option<String>, Option<String>) {
    (r.email.as_ref().map(|e| e.to_lowercase()), r.mobile.clone(), r.org_no.clone(), r.nin.clone())
}

fn validate_recipients(
    list: &Option<Vec<RecipientDto>>,
    rule: RecipientRule,
    errors: &mut Errors,
) -> Recipients {
    let list = match list {
        Some(l) if !l.is_empty() => l,
        _ => {
            add(errors, "Recipients", "One or more recipient is required.");
            return Recipients::default();
        }
    };
    let mut out = Recipients { unique: Vec::with_capacity(list.len()), duplicates: vec![] };
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let key = format!("Recipients[{i}]");
        let email = present(&r.email_address);
        let mobile = present(&r.mobile_number);
        let org = present(&r.organization_number);
        let nin = present(&r.national_identity_number);
        let mut rec = Recipient::default();

        let identified = match rule {
            RecipientRule::Email => email.is_some() || org.is_some() || nin.is_some(),
            RecipientRule::Sms => mobile.is_some() || org.is_some() || nin.is_some(),
            RecipientRule::Preferred => {
                email.is_some() || mobile.is_some() || org.is_some() || nin.is_some()
            }
        };
        if !identified {
            add(
                errors,
                &key,
                match rule {
                    RecipientRule::Email => {
                        "Either a valid email address, organization number, or national identity number must be provided for each recipient."
                    }
                    RecipientRule::Sms => {
                        "Either a valid mobile number starting with country code, organization number, or national identity number must be provided for each recipient."
                    }
                    RecipientRule::Preferred => {
                        "Either a valid email address, mobile number starting with country code, organization number, or national identity number must be provided for each recipient."
                    }
                },
            );
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
                add(
                    errors,
                    &key,
                    "National identity number cannot be combined with email address, mobile number, or organization number.",
                );
            }
        }
        if let Some(o) = org {
            match OrganizationNumber::parse(o) {
                Ok(o) => rec.org_no = Some(o.as_str().to_owned()),
                Err(err) => add(errors, &key, err.0),
            }
            if email.is_some() || mobile.is_some() || nin.is_some() {
                add(
                    errors,
                    &key,
                    "Organization number cannot be combined with email address, mobile number, or national identity number.",
                );
            }
        }
        if seen.insert(identity(&rec)) {
            out.unique.push(rec);
        } else {
            out.duplicates.push(i);
        }
    }
    out
}

/// Refuses sender ids the networks do not show as sent (see `sms::check_sender_id`).
pub(crate) fn check_sender(sender: Option<&str>, key: &str, errors: &mut Errors) {
    if let Some(s) = sender
        && let Err(why) = varsel_workflows::sms::check_sender_id(s)
    {
        add(errors, key, why);
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
    recipients: Recipients,
    parts: Parts,
) -> Result<ValidOrder, Errors> {
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ValidOrder {
        kind: parts.kind,
        channel: parts.channel,
        requested_send_time,
        recipients: recipients.unique,
        duplicates: recipients.duplicates,
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
                None => add(
                    &mut errors,
                    "EmailTemplate",
                    "An email template is required for the selected notification channel.",
                ),
                Some(t) => {
                    let body = present(&t.body);
                    let subject = present(&t.subject);
                    if body.is_none() {
                        add(
                            &mut errors,
                            "EmailTemplate.Body",
                            "The email template body must not be empty.",
                        );
                    }
                    if subject.is_none() {
                        add(
                            &mut errors,
                            "EmailTemplate.Subject",
                            "The email template subject must not be empty.",
                        );
                    }
                    if let Some(from) = present(&t.from_address)
                        && EmailAddress::parse(from).is_err()
                    {
                        add(
                            &mut errors,
                            "EmailTemplate.FromAddress",
                            "Invalid email address format.",
                        );
                    }
                    rules.check_subject(subject, "EmailTemplate.Subject", &mut errors);
                    rules.check_email_body(body, "EmailTemplate.Body", &mut errors);
                    email = Some(EmailTemplate {
                        from: present(&t.from_address).map(str::to_owned),
                        subject: one_line(subject.unwrap_or_default()),
                        body: t.body.clone().unwrap_or_default(),
                        content_type: content_type(t.content_type.map(|c| c.0)),
                        attachments: vec![],
                    });
                }
            }
        }
        if ch.needs_sms_template() {
            match &req.sms_template {
                None => add(
                    &mut errors,
                    "SmsTemplate",
                    "An SMS template is required for the selected the notification channel.",
                ),
                Some(t) => {
                    if present(&t.body).is_none() {
                        add(
                            &mut errors,
                            "SmsTemplate.Body",
                            "The SMS template body must not be empty.",
                        );
                    }
                    rules.check_sms_body(present(&t.body), "SmsTemplate.Body", &mut errors);
                    check_sender(
                        present(&t.sender_number),
                        "SmsTemplate.SenderNumber",
                        &mut errors,
                    );
                    sms = Some(SmsTemplate {
                        sender: present(&t.sender_number).map(str::to_owned),
                        body: t.body.clone().unwrap_or_default(),
                    });
                }
            }
        }
    }
    finish(
        errors,
        &req.base,
        send_time,
        recipients,
        Parts {
            kind: OrderKind::Orders,
            channel: channel.unwrap_or(NotificationChannel::Email),
            email,
            sms,
        },
    )
}

/// `POST /orders/email`.
pub fn email_request(req: &EmailOrderRequestDto, rules: &Rules<'_>) -> Result<ValidOrder, Errors> {
    let mut errors = Errors::new();
    let (send_time, recipients) =
        validate_base(&req.base, RecipientRule::Email, rules, &mut errors);
    if present(&req.body).is_none() {
        add(&mut errors, "Body", "The email template body must not be empty.");
    }
    if present(&req.subject).is_none() {
        add(&mut errors, "Subject", "The email template subject must not be empty.");
    }
    rules.check_subject(present(&req.subject), "Subject", &mut errors);
    rules.check_email_body(present(&req.body), "Body", &mut errors);
    finish(
        errors,
        &req.base,
        send_time,
        recipients,
        Parts {
            kind: OrderKind::Email,
            channel: NotificationChannel::Email,
            email: Some(EmailTemplate {
                from: None,
                subject: one_line(present(&req.subject).unwrap_or_default()),
                body: req.body.clone().unwrap_or_default(),
                content_type: content_type(req.content_type.map(|c| c.0)),
                attachments: vec![],
            }),
            sms: None,
        },
    )
}

/// `POST /orders/sms`.
pub fn sms_request(req: &SmsOrderRequestDto, rules: &Rules<'_>) -> Result<ValidOrder, Errors> {
    let mut errors = Errors::new();
    let (send_time, recipients) = validate_base(&req.base, RecipientRule::Sms, rules, &mut errors);
    if present(&req.body).is_none() {
        add(&mut errors, "Body", "The SMS template body must not be empty.");
    }
    rules.check_sms_body(present(&req.body), "Body", &mut errors);
    check_sender(present(&req.sender_number), "SenderNumber", &mut errors);
    finish(
        errors,
        &req.base,
        send_time,
        recipients,
        Parts {
            kind: OrderKind::Sms,
            channel: NotificationChannel::Sms,
            email: None,
            sms: Some(SmsTemplate {
                sender: present(&req.sender_number).map(str::to_owned),
                body: req.body.clone().unwrap_or_default(),
            }),
        },
    )
}
