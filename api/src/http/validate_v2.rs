//! Validation of `POST /future/orders` with Altinn's exact messages (reference §2.2), keyed by
//! FluentValidation property paths (`Recipient.RecipientEmail.EmailAddress`,
//! `Reminders[0].DelayDays`, …).

use super::dto::{EmailContentTypeDto, NotificationChannelDto};
use super::v2_dto::*;
use super::validate::{
    EmailTemplate, Errors, MAX_URL_CHARS, OrderKind, Rules, SmsTemplate, ValidOrder, add,
    check_sender, condition_destination, one_line, present,
};
use chrono::{DateTime, NaiveDateTime, Utc};
use varsel_workflows::domain::{
    EmailAddress, EmailContentType, MobileNumber, NationalIdentityNumber, NotificationChannel,
    OrganizationNumber,
};
use varsel_workflows::order::{OrderType, Recipient as OrderRecipient};

/// One order of a valid chain: the notification or a reminder. Its `order` has one recipient.
#[derive(Debug, Clone)]
pub struct ValidChainOrder {
    /// `Notification` or `Reminder`.
    pub order_type: OrderType,
    /// SMS may go at any hour.
    pub sms_anytime: bool,
    /// The order as the v1 API would hold it.
    pub order: ValidOrder,
}

/// A request that passed every rule.
#[derive(Debug, Clone)]
pub struct ValidChain {
    /// The client's idempotency id.
    pub idempotency_id: String,
    /// The notification.
    pub main: ValidChainOrder,
    /// Its reminders.
    pub reminders: Vec<ValidChainOrder>,
    /// Dialogporten dialog id.
    pub dialog_id: Option<String>,
    /// Dialogporten transmission id.
    pub transmission_id: Option<String>,
}

pub(super) fn send_time(
    raw: &str,
    key: &str,
    zone_msg: &str,
    past_msg: &str,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    let now = rules.now;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(t) => {
            let t = t.with_timezone(&Utc);
            // A few seconds of grace for the client's clock and the trip here.
            if t < now - chrono::Duration::seconds(5) {
                add(errors, key, past_msg);
            }
            rules.check_horizon(t, key, errors);
            Some(t.max(now))
        }
        Err(_) => {
            let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .any(|f| NaiveDateTime::parse_from_str(raw, f).is_ok());
            add(
                errors,
                key,
                if naive {
                    zone_msg
                } else {
                    "The requested send time must be a valid ISO-8601 date and time."
                },
            );
            None
        }
    }
}

pub(super) fn condition(
    url: &Option<String>,
    key: &str,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> Option<String> {
    let raw = present(url)?;
    if raw.chars().count() > MAX_URL_CHARS {
        add(
            errors,
            key,
            &format!("ConditionEndpoint can be at most {MAX_URL_CHARS} characters long."),
        );
        return None;
    }
    let Ok(u) = reqwest::Url::parse(raw) else {
        add(errors, key, "ConditionEndpoint must be a valid absolute URI or null.");
        return None;
    };
    if !matches!(u.scheme(), "http" | "https") {
        add(errors, key, "ConditionEndpoint must use http or https scheme.");
        return None;
    }
    if let Err(why) = condition_destination(&u, rules) {
        add(errors, key, &why);
        return None;
    }
    Some(raw.to_owned())
}

pub(super) fn email_settings(
    s: &Option<EmailSettingsDto>,
    key: &str,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> Option<EmailTemplate> {
    let Some(s) = s else {
        add(errors, key, "Email sending options cannot be null.");
        return None;
    };
    if let Some(from) = present(&s.sender_email_address)
        && EmailAddress::parse(from).is_err()
    {
        add(errors, format!("{key}.SenderEmailAddress"), "The sender email address is not valid.");
    }
    let subject = present(&s.subject);
    let body = present(&s.body);
    if subject.is_none() {
        add(errors, format!("{key}.Subject"), "The email subject must not be empty.");
    }
    if body.is_none() {
        add(errors, format!("{key}.Body"), "The email body must not be empty.");
    }
    rules.check_subject(subject, &format!("{key}.Subject"), errors);
    rules.check_email_body(body, &format!("{key}.Body"), errors);
    if s.sending_time_policy.is_some_and(|p| p.0 != SendingTimePolicyDto::Anytime) {
        add(errors, format!("{key}.SendingTimePolicy"), "Email only supports send time anytime");
    }
    Some(EmailTemplate {
        from: present(&s.sender_email_address).map(str::to_owned),
        subject: one_line(subject.unwrap_or_default()),
        body: s.body.clone().unwrap_or_default(),
        content_type: match s.content_type.map(|c| c.0) {
            Some(EmailContentTypeDto::Html) => EmailContentType::Html,
            _ => EmailContentType::Plain,
        },
        attachments: vec![],
    })
}

/// The SMS and whether it may go at any hour (`Daytime` is the default).
fn sms_settings(
    s: &Option<SmsSettingsDto>,
    key: &str,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> Option<(SmsTemplate, bool)> {
    let Some(s) = s else {
        add(errors, key, "SMS sending options cannot be null.");
        return None;
    };
    let body = present(&s.body);
    if body.is_none() {
        add(errors, format!("{key}.Body"), "SMS body cannot be null or empty.");
    }
    rules.check_sms_body(body, &format!("{key}.Body"), errors);
    let sender = s.sender.as_deref().map(str::trim).filter(|s| !s.is_empty());
    check_sender(sender, &format!("{key}.Sender"), errors);
    let anytime = s.sending_time_policy.is_some_and(|p| p.0 == SendingTimePolicyDto::Anytime);
    Some((
        SmsTemplate { sender: sender.map(str::to_owned), body: s.body.clone().unwrap_or_default() },
        anytime,
    ))
}

fn resource(
    id: &Option<String>,
    action: &Option<String>,
    key: &str,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> (Option<String>, Option<String>) {
    rules.check_reference(id.as_deref(), &format!("{key}.ResourceId"), errors);
    rules.check_reference(action.as_deref(), &format!("{key}.ResourceAction"), errors);
    let id = present(id);
    if let Some(r) = id
        && !(r.starts_with("urn:altinn:resource:") && r.len() > "urn:altinn:resource:".len())
    {
        add(errors, format!("{key}.ResourceId"), "ResourceId must have a valid syntax.");
    }
    if let Some(a) = action {
        if id.is_none() {
            add(
                errors,
                format!("{key}.ResourceAction"),
                "ResourceAction cannot be specified without a ResourceId.",
            );
        } else if a.trim().is_empty() {
            add(
                errors,
                format!("{key}.ResourceAction"),
                "ResourceAction cannot be blank or whitespace.",
            );
        }
    }
    (
        id.map(str::to_owned),
        action.as_deref().map(str::trim).filter(|a| !a.is_empty()).map(str::to_owned),
    )
}

/// A recipient looked up in the register: its channel's settings must be there.
fn channel_settings(
    channel: NotificationChannelDto,
    email: &Option<EmailSettingsDto>,
    sms: &Option<SmsSettingsDto>,
    key: &str,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> (Option<EmailTemplate>, Option<(SmsTemplate, bool)>) {
    let (needs_email, needs_sms, email_msg, sms_msg) = match channel {
        NotificationChannelDto::Email => {
            (true, false, "EmailSettings must be set when ChannelSchema is Email", "")
        }
        NotificationChannelDto::Sms => {
            (false, true, "", "SmsSettings must be set when ChannelSchema is Sms")
        }
        NotificationChannelDto::EmailPreferred | NotificationChannelDto::SmsPreferred => (
            true,
            true,
            "EmailSettings must be set when ChannelSchema is SmsPreferred or EmailPreferred",
            "SmsSettings must be set when ChannelSchema is SmsPreferred or EmailPreferred",
        ),
        NotificationChannelDto::EmailAndSms => (
            true,
            true,
            "EmailSettings must be set when ChannelSchema is EmailAndSms",
            "SmsSettings must be set when ChannelSchema is EmailAndSms",
        ),
    };
    let e = if needs_email {
        if email.is_none() {
            add(errors, format!("{key}.EmailSettings"), email_msg);
            None
        } else {
            email_settings(email, &format!("{key}.EmailSettings"), rules, errors)
        }
    } else {
        None
    };
    let s = if needs_sms {
        if sms.is_none() {
            add(errors, format!("{key}.SmsSettings"), sms_msg);
            None
        } else {
            sms_settings(sms, &format!("{key}.SmsSettings"), rules, errors)
        }
    } else {
        None
    };
    (e, s)
}

fn channel_of(dto: NotificationChannelDto) -> NotificationChannel {
    match dto {
        NotificationChannelDto::Email => NotificationChannel::Email,
        NotificationChannelDto::Sms => NotificationChannel::Sms,
        NotificationChannelDto::EmailPreferred => NotificationChannel::EmailPreferred,
        NotificationChannelDto::SmsPreferred => NotificationChannel::SmsPreferred,
        NotificationChannelDto::EmailAndSms => NotificationChannel::EmailAndSms,
    }
}

/// What a recipient union comes to.
struct Recipient {
    channel: NotificationChannel,
    recipient: OrderRecipient,
    email: Option<EmailTemplate>,
    sms: Option<(SmsTemplate, bool)>,
    ignore_reservation: bool,
    resource_id: Option<String>,
    resource_action: Option<String>,
}

/// What an organisation and a self-identified user share: a required channel with its
/// settings, and the resource the notification is about.
struct RecipientParts<'a> {
    channel_schema: Option<NotificationChannelDto>,
    email_settings: &'a Option<EmailSettingsDto>,
    sms_settings: &'a Option<SmsSettingsDto>,
    resource_id: &'a Option<String>,
    resource_action: &'a Option<String>,
}

impl RecipientParts<'_> {
    fn apply(&self, out: &mut Recipient, k: &str, rules: &Rules<'_>, errors: &mut Errors) {
        match self.channel_schema {
            None => add(errors, format!("{k}.ChannelSchema"), "Invalid channel scheme value."),
            Some(channel) => {
                out.channel = channel_of(channel);
                (out.email, out.sms) = channel_settings(
                    channel,
                    self.email_settings,
                    self.sms_settings,
                    k,
                    rules,
                    errors,
                );
            }
        }
        (out.resource_id, out.resource_action) =
            resource(self.resource_id, self.resource_action, k, rules, errors);
    }
}

fn recipient(
    r: &Option<RecipientUnionDto>,
    key: &str,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> Option<Recipient> {
    let Some(r) = r else {
        add(errors, key, "Recipient specification cannot be null.");
        return None;
    };
    let given = [
        r.recipient_email.is_some(),
        r.recipient_sms.is_some(),
        r.recipient_person.is_some(),
        r.recipient_organization.is_some(),
        r.recipient_external_identity.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        add(errors, key, "Must have exactly one recipient.");
        return None;
    }
    let mut out = Recipient {
        channel: NotificationChannel::Email,
        recipient: OrderRecipient::default(),
        email: None,
        sms: None,
        ignore_reservation: false,
        resource_id: None,
        resource_action: None,
    };
    if let Some(e) = &r.recipient_email {
        let k = format!("{key}.RecipientEmail");
        match present(&e.email_address).map(EmailAddress::parse) {
            Some(Ok(a)) => out.recipient.email = Some(a.as_str().to_owned()),
            _ => add(errors, format!("{k}.EmailAddress"), "Invalid email address format."),
        }
        if e.email_settings.is_none() {
            add(errors, format!("{k}.EmailSettings"), "Recipient email settings cannot be null.");
        } else {
            out.email =
                email_settings(&e.email_settings, &format!("{k}.EmailSettings"), rules, errors);
        }
    } else if let Some(s) = &r.recipient_sms {
        let k = format!("{key}.RecipientSms");
        out.channel = NotificationChannel::Sms;
        match present(&s.phone_number) {
            None => add(
                errors,
                format!("{k}.PhoneNumber"),
                "Recipient phone number cannot be null or empty.",
            ),
            Some(p) => match MobileNumber::parse(p) {
                Ok(m) => out.recipient.mobile = Some(m.as_str().to_owned()),
                Err(_) => add(
                    errors,
                    format!("{k}.PhoneNumber"),
                    "Recipient phone number is not a valid mobile number.",
                ),
            },
        }
        out.sms = sms_settings(&s.sms_settings, &format!("{k}.SmsSettings"), rules, errors);
    } else if let Some(p) = &r.recipient_person {
        let k = format!("{key}.RecipientPerson");
        match present(&p.national_identity_number).map(NationalIdentityNumber::parse) {
            Some(Ok(n)) => out.recipient.nin = Some(n.as_str().to_owned()),
            _ => add(
                errors,
                format!("{k}.NationalIdentityNumber"),
                "National identity number must be 11 digits long.",
            ),
        }
        let channel =
            p.channel_schema.map(|c| c.0).unwrap_or(NotificationChannelDto::EmailPreferred);
        out.channel = channel_of(channel);
        (out.email, out.sms) =
            channel_settings(channel, &p.email_settings, &p.sms_settings, &k, rules, errors);
        out.ignore_reservation = p.ignore_reservation.unwrap_or(false);
        out.recipient.allow_stale = p.use_stale_contact_information.unwrap_or(false);
        (out.resource_id, out.resource_action) =
            resource(&p.resource_id, &p.resource_action, &k, rules, errors);
    } else if let Some(o) = &r.recipient_organization {
        let k = format!("{key}.RecipientOrganization");
        match present(&o.org_number) {
            None => add(errors, format!("{k}.OrgNumber"), "OrgNumber cannot be null or empty."),
            Some(n) => match OrganizationNumber::parse(n) {
                Ok(n) => out.recipient.org_no = Some(n.as_str().to_owned()),
                Err(_) => add(
                    errors,
                    format!("{k}.OrgNumber"),
                    "Organization number must be 9 digits long.",
                ),
            },
        }
        let parts = RecipientParts {
            channel_schema: o.channel_schema.map(|c| c.0),
            email_settings: &o.email_settings,
            sms_settings: &o.sms_settings,
            resource_id: &o.resource_id,
            resource_action: &o.resource_action,
        };
        parts.apply(&mut out, &k, rules, errors);
    } else if let Some(x) = &r.recipient_external_identity {
        let k = format!("{key}.RecipientExternalIdentity");
        match present(&x.external_identity) {
            None => add(
                errors,
                format!("{k}.ExternalIdentity"),
                "ExternalIdentity cannot be null or empty.",
            ),
            Some(urn) if external_identity_urn(urn) => {
                out.recipient.external_identity = Some(urn.to_owned())
            }
            Some(_) => add(
                errors,
                format!("{k}.ExternalIdentity"),
                "Invalid external identity URN format.",
            ),
        }
        let parts = RecipientParts {
            channel_schema: x.channel_schema.map(|c| c.0),
            email_settings: &x.email_settings,
            sms_settings: &x.sms_settings,
            resource_id: &x.resource_id,
            resource_action: &x.resource_action,
        };
        parts.apply(&mut out, &k, rules, errors);
    }
    Some(out)
}

/// Altinn's external identities of self-identified users: an ID-porten email login
/// (`urn:altinn:person:idporten-email:<a valid email>`) or a user name
/// (`urn:altinn:party:username:`, `urn:altinn:username:`,
/// `urn:altinn:person:legacy-selfidentified:`, then something that is not blank).
fn external_identity_urn(urn: &str) -> bool {
    if let Some(email) = urn.strip_prefix("urn:altinn:person:idporten-email:") {
        return EmailAddress::parse(email).is_ok();
    }
    [
        "urn:altinn:party:username:",
        "urn:altinn:username:",
        "urn:altinn:person:legacy-selfidentified:",
    ]
    .iter()
    .find_map(|p| urn.strip_prefix(p))
    .is_some_and(|name| !name.trim().is_empty())
}

fn chain_order(
    order_type: OrderType,
    r: Recipient,
    requested_send_time: DateTime<Utc>,
    senders_reference: Option<String>,
    condition_endpoint: Option<String>,
) -> ValidChainOrder {
    let (sms, sms_anytime) = match r.sms {
        Some((t, anytime)) => (Some(t), anytime),
        None => (None, false),
    };
    ValidChainOrder {
        order_type,
        sms_anytime,
        order: ValidOrder {
            kind: OrderKind::Chain,
            channel: r.channel,
            requested_send_time,
            recipients: vec![r.recipient],
            duplicates: vec![],
            email: r.email,
            sms,
            senders_reference,
            resource_id: r.resource_id,
            resource_action: r.resource_action,
            ignore_reservation: r.ignore_reservation,
            condition_endpoint,
        },
    }
}

/// The top-level fields a chain and a composed email share.
pub(super) struct ChainHeadFields<'a> {
    pub idempotency_id: &'a Option<String>,
    pub senders_reference: &'a Option<String>,
    pub dialogporten: &'a Option<DialogportenDto>,
    pub requested_send_time: &'a Option<String>,
    pub condition_endpoint: &'a Option<String>,
}

/// Those fields validated: the idempotency id, the send time (now when absent or wrong) and the
/// condition endpoint; the references are checked for their limits.
pub(super) struct ChainHead {
    pub idempotency_id: Option<String>,
    pub send_at: DateTime<Utc>,
    pub condition_endpoint: Option<String>,
}

pub(super) fn chain_head(
    fields: ChainHeadFields<'_>,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> ChainHead {
    let idempotency_id = idempotency(fields.idempotency_id, rules, errors);
    rules.check_reference(fields.senders_reference.as_deref(), "SendersReference", errors);
    if let Some(d) = fields.dialogporten {
        rules.check_reference(d.dialog_id.as_deref(), "DialogportenAssociation.DialogId", errors);
        rules.check_reference(
            d.transmission_id.as_deref(),
            "DialogportenAssociation.TransmissionId",
            errors,
        );
    }
    let send_at = match present(fields.requested_send_time) {
        Some(raw) => send_time(
            raw,
            "RequestedSendTime",
            "The requested send time value must have specified a time zone.",
            "RequestedSendTime must be greater than or equal to now.",
            rules,
            errors,
        )
        .unwrap_or(rules.now),
        None => rules.now,
    };
    let condition_endpoint =
        condition(fields.condition_endpoint, "ConditionEndpoint", rules, errors);
    ChainHead { idempotency_id, send_at, condition_endpoint }
}

/// Validates a chain; a reminder's `delayDays` counts in days of `day` length (a day, unless
/// configured shorter for tests).
pub fn validate_chain(
    dto: &OrderChainRequestDto,
    rules: &Rules<'_>,
    day: chrono::Duration,
) -> Result<ValidChain, Errors> {
    let mut errors = Errors::new();
    let ChainHead { idempotency_id, send_at: main_time, condition_endpoint: main_condition } =
        chain_head(
            ChainHeadFields {
                idempotency_id: &dto.idempotency_id,
                senders_reference: &dto.senders_reference,
                dialogporten: &dto.dialogporten_association,
                requested_send_time: &dto.requested_send_time,
                condition_endpoint: &dto.condition_endpoint,
            },
            rules,
            &mut errors,
        );
    let main = recipient(&dto.recipient, "Recipient", rules, &mut errors);

    let given = dto.reminders.as_ref().map_or(0, Vec::len);
    if given > rules.limits.max_reminders {
        add(
            &mut errors,
            "Reminders",
            &format!(
                "An order can have at most {} reminders; this one has {given}.",
                rules.limits.max_reminders
            ),
        );
        return Err(errors);
    }
    let max_days = rules.limits.max_send_ahead.num_days();
    let mut reminders = Vec::new();
    for (i, r) in dto.reminders.iter().flatten().enumerate() {
        let key = format!("Reminders[{i}]");
        let time = match (r.delay_days, present(&r.requested_send_time)) {
            (Some(_), Some(_)) | (None, None) => {
                add(
                    &mut errors,
                    &key,
                    "Either DelayDays or RequestedSendTime must be defined, but not both.",
                );
                None
            }
            (Some(d), None) if d < 1 => {
                add(
                    &mut errors,
                    format!("{key}.DelayDays"),
                    "DelayDays must be greater than or equal to 1 day.",
                );
                None
            }
            (Some(d), None) if d > max_days => {
                add(
                    &mut errors,
                    format!("{key}.DelayDays"),
                    &format!("DelayDays can be at most {max_days} days."),
                );
                None
            }
            (Some(d), None) => {
                let t = main_time + day * d as i32;
                rules.check_horizon(t, &format!("{key}.DelayDays"), &mut errors);
                Some(t)
            }
            (None, Some(raw)) => send_time(
                raw,
                &format!("{key}.RequestedSendTime"),
                "The RequestedSendTime must have specified a time zone.",
                "RequestedSendTime must be greater than or equal to the current UTC time.",
                rules,
                &mut errors,
            ),
        };
        rules.check_reference(
            r.senders_reference.as_deref(),
            &format!("{key}.SendersReference"),
            &mut errors,
        );
        let cond = condition(
            &r.condition_endpoint,
            &format!("{key}.ConditionEndpoint"),
            rules,
            &mut errors,
        );
        let rec = recipient(&r.recipient, &format!("{key}.Recipient"), rules, &mut errors);
        if let (Some(time), Some(rec)) = (time, rec) {
            reminders.push(chain_order(
                OrderType::Reminder,
                rec,
                time,
                present(&r.senders_reference).map(str::to_owned),
                cond,
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(idempotency_id), Some(main)) = (idempotency_id, main) else {
        return Err(errors);
    };
    let dialog = dto.dialogporten_association.as_ref();
    Ok(ValidChain {
        idempotency_id,
        main: chain_order(
            OrderType::Notification,
            main,
            main_time,
            present(&dto.senders_reference).map(str::to_owned),
            main_condition,
        ),
        reminders,
        dialog_id: dialog.and_then(|d| present(&d.dialog_id)).map(str::to_owned),
        transmission_id: dialog.and_then(|d| present(&d.transmission_id)).map(str::to_owned),
    })
}

/// A valid instant message: one address, sent at once.
#[derive(Debug, Clone)]
pub struct ValidInstant {
    /// The client's idempotency id.
    pub idempotency_id: String,
    /// The order as the v1 API would hold it (one recipient, sent now).
    pub order: ValidOrder,
    /// How long the message may take to arrive: the SMS's time-to-live, 48 hours for email.
    pub time_to_live: chrono::Duration,
}

/// How long an instant email stays open for a delivery report (Altinn: 48 hours).
pub const INSTANT_EMAIL_TTL_SECS: i64 = 48 * 3600;

fn instant_order(
    recipient: OrderRecipient,
    channel: NotificationChannel,
    email: Option<EmailTemplate>,
    sms: Option<SmsTemplate>,
    senders_reference: &Option<String>,
    now: DateTime<Utc>,
) -> ValidOrder {
    ValidOrder {
        kind: OrderKind::Instant,
        channel,
        requested_send_time: now,
        recipients: vec![recipient],
        duplicates: vec![],
        email,
        sms,
        senders_reference: present(senders_reference).map(str::to_owned),
        resource_id: None,
        resource_action: None,
        ignore_reservation: false,
        condition_endpoint: None,
    }
}

pub(super) fn idempotency(
    id: &Option<String>,
    rules: &Rules<'_>,
    errors: &mut Errors,
) -> Option<String> {
    let id = present(id).map(str::to_owned);
    if id.is_none() {
        add(errors, "IdempotencyId", "IdempotencyId cannot be null or empty.");
    }
    rules.check_reference(id.as_deref(), "IdempotencyId", errors);
    id
}

/// Validates `POST /future/orders/instant/sms` with Altinn's messages (reference §2.3).
pub fn validate_instant_sms(
    dto: &InstantSmsRequestDto,
    rules: &Rules<'_>,
) -> Result<ValidInstant, Errors> {
    let mut errors = Errors::new();
    let now = rules.now;
    let idempotency_id = idempotency(&dto.idempotency_id, rules, &mut errors);
    rules.check_reference(dto.senders_reference.as_deref(), "SendersReference", &mut errors);
    let Some(r) = &dto.recipient_sms else {
        add(&mut errors, "RecipientSms", "SMS details cannot be null.");
        return Err(errors);
    };
    let mobile = match present(&r.phone_number).map(MobileNumber::parse) {
        Some(Ok(m)) => Some(m.as_str().to_owned()),
        _ => {
            add(
                &mut errors,
                "RecipientSms.PhoneNumber",
                "Recipient phone number is not a valid mobile number.",
            );
            None
        }
    };
    let ttl = r.time_to_live_in_seconds.filter(|t| (60..=172_800).contains(t));
    if ttl.is_none() {
        add(
            &mut errors,
            "RecipientSms.TimeToLiveInSeconds",
            "Time-to-live must be between 60 and 172800 seconds (48 hours).",
        );
    }
    let sms = match &r.sms_settings {
        None => {
            add(&mut errors, "RecipientSms.SmsSettings", "SMS settings cannot be null.");
            None
        }
        Some(s) => {
            if present(&s.body).is_none() {
                add(&mut errors, "RecipientSms.SmsSettings.Body", "The Body field is required.");
            }
            rules.check_sms_body(present(&s.body), "RecipientSms.SmsSettings.Body", &mut errors);
            let sender = s.sender.as_deref().map(str::trim).filter(|s| !s.is_empty());
            check_sender(sender, "RecipientSms.SmsSettings.Sender", &mut errors);
            Some(SmsTemplate {
                sender: sender.map(str::to_owned),
                body: s.body.clone().unwrap_or_default(),
            })
        }
    };
    match (idempotency_id, mobile, ttl, sms) {
        (Some(idempotency_id), Some(mobile), Some(ttl), Some(sms)) if errors.is_empty() => {
            Ok(ValidInstant {
                idempotency_id,
                order: instant_order(
                    OrderRecipient { mobile: Some(mobile), ..Default::default() },
                    NotificationChannel::Sms,
                    None,
                    Some(sms),
                    &dto.senders_reference,
                    now,
                ),
                time_to_live: chrono::Duration::seconds(ttl),
            })
        }
        _ => Err(errors),
    }
}

/// Validates the deprecated `POST /future/orders/instant` (Altinn's older shape of an instant
/// SMS) as the current SMS endpoint does, with the paths and messages of the older shape.
pub fn validate_instant(
    dto: &InstantRequestDto,
    rules: &Rules<'_>,
) -> Result<ValidInstant, Errors> {
    let current = dto.to_sms_request();
    let missing = match &dto.recipient {
        None => Some(("Recipient", "Recipient information cannot be null.")),
        Some(r) if r.recipient_sms.is_none() => {
            Some(("Recipient.RecipientSms", "SMS delivery details cannot be null."))
        }
        Some(_) => None,
    };
    if let Some((key, message)) = missing {
        let mut errors = Errors::new();
        idempotency(&current.idempotency_id, rules, &mut errors);
        rules.check_reference(
            current.senders_reference.as_deref(),
            "SendersReference",
            &mut errors,
        );
        add(&mut errors, key, message);
        return Err(errors);
    }
    validate_instant_sms(&current, rules).map_err(|errors| {
        errors
            .into_iter()
            .map(|(key, messages)| match key.strip_prefix("RecipientSms") {
                Some(rest) => (format!("Recipient.RecipientSms{rest}"), messages),
                None => (key, messages),
            })
            .collect()
    })
}

/// Validates `POST /future/orders/instant/email` with Altinn's messages (reference §2.3).
pub fn validate_instant_email(
    dto: &InstantEmailRequestDto,
    rules: &Rules<'_>,
) -> Result<ValidInstant, Errors> {
    let mut errors = Errors::new();
    let now = rules.now;
    let idempotency_id = idempotency(&dto.idempotency_id, rules, &mut errors);
    rules.check_reference(dto.senders_reference.as_deref(), "SendersReference", &mut errors);
    let Some(r) = &dto.recipient_email else {
        add(&mut errors, "RecipientEmail", "Email details cannot be null.");
        return Err(errors);
    };
    let address = match present(&r.email_address).map(EmailAddress::parse) {
        Some(Ok(a)) => Some(a.as_str().to_owned()),
        _ => {
            add(&mut errors, "RecipientEmail.EmailAddress", "Invalid email address format.");
            None
        }
    };
    let email = match &r.email_settings {
        None => {
            add(&mut errors, "RecipientEmail.EmailSettings", "Email settings cannot be null.");
            None
        }
        Some(s) => {
            let key = "RecipientEmail.EmailSettings";
            if let Some(from) = present(&s.sender_email_address)
                && EmailAddress::parse(from).is_err()
            {
                add(
                    &mut errors,
                    format!("{key}.SenderEmailAddress"),
                    "Invalid email address format.",
                );
            }
            let subject = present(&s.subject);
            if subject.is_none() {
                add(&mut errors, format!("{key}.Subject"), "The email subject cannot be empty.");
            }
            if present(&s.body).is_none() {
                add(&mut errors, format!("{key}.Body"), "The email body cannot be empty.");
            }
            rules.check_subject(subject, &format!("{key}.Subject"), &mut errors);
            rules.check_email_body(present(&s.body), &format!("{key}.Body"), &mut errors);
            Some(EmailTemplate {
                from: present(&s.sender_email_address).map(str::to_owned),
                subject: one_line(subject.unwrap_or_default()),
                body: s.body.clone().unwrap_or_default(),
                content_type: match s.content_type.map(|c| c.0) {
                    Some(EmailContentTypeDto::Html) => EmailContentType::Html,
                    _ => EmailContentType::Plain,
                },
                attachments: vec![],
            })
        }
    };
    match (idempotency_id, address, email) {
        (Some(idempotency_id), Some(address), Some(email)) if errors.is_empty() => {
            Ok(ValidInstant {
                idempotency_id,
                order: instant_order(
                    OrderRecipient { email: Some(address), ..Default::default() },
                    NotificationChannel::Email,
                    Some(email),
                    None,
                    &dto.senders_reference,
                    now,
                ),
                time_to_live: chrono::Duration::seconds(INSTANT_EMAIL_TTL_SECS),
            })
        }
        _ => Err(errors),
    }
}
