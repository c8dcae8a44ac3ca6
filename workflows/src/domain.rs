//! Domain types that parse: identifiers, addresses, channels and statuses.
//!
//! Every type here is pure data with a `parse` (or `FromStr`) that either yields a valid value or
//! says why not, so the API layer maps user input into these once and the rest of varsel can rely
//! on them. Statuses are spelled exactly as Altinn spells them, because clients match on them.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::LazyLock;

/// The channel an order asks for (Altinn `NotificationChannelExt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationChannel {
    /// Email only.
    Email,
    /// SMS only.
    Sms,
    /// Email where the recipient has an address, SMS otherwise.
    EmailPreferred,
    /// SMS where the recipient has a mobile number, email otherwise.
    SmsPreferred,
    /// Both channels for every recipient.
    EmailAndSms,
}

impl NotificationChannel {
    /// The channels an order of this kind can send on.
    pub fn channels(self) -> Vec<Channel> {
        match self {
            Self::Email => vec![Channel::Email],
            Self::Sms => vec![Channel::Sms],
            Self::EmailPreferred | Self::SmsPreferred | Self::EmailAndSms => {
                vec![Channel::Email, Channel::Sms]
            }
        }
    }

    /// Every channel, in Altinn's numeric order (0..=4).
    pub const ALL: [NotificationChannel; 5] =
        [Self::Email, Self::Sms, Self::EmailPreferred, Self::SmsPreferred, Self::EmailAndSms];

    /// The canonical name, as stored and as answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "Email",
            Self::Sms => "Sms",
            Self::EmailPreferred => "EmailPreferred",
            Self::SmsPreferred => "SmsPreferred",
            Self::EmailAndSms => "EmailAndSms",
        }
    }

    /// Parses a stored or submitted name, ignoring case.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s))
    }

    /// Whether this channel needs an email template.
    pub fn needs_email_template(self) -> bool {
        !matches!(self, Self::Sms)
    }

    /// Whether this channel needs an SMS template.
    pub fn needs_sms_template(self) -> bool {
        !matches!(self, Self::Email)
    }
}

impl fmt::Display for NotificationChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Email body content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum EmailContentType {
    /// Plain text; never interpreted as HTML.
    #[default]
    Plain,
    /// HTML, passed unchanged.
    Html,
}

impl EmailContentType {
    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "Plain",
            Self::Html => "Html",
        }
    }
    /// Parses a name, ignoring case.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Plain, Self::Html].into_iter().find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// Order processing status (Altinn `OrderProcessingStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// Stored, waiting for its send time.
    Registered,
    /// The workflow is generating notifications.
    Processing,
    /// Notifications generated, some not yet final.
    Processed,
    /// Every notification has a final status.
    Completed,
    /// The send condition said no; nothing was sent.
    SendConditionNotMet,
    /// Cancelled before processing.
    Cancelled,
}

impl OrderStatus {
    /// Canonical name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "Registered",
            Self::Processing => "Processing",
            Self::Processed => "Processed",
            Self::Completed => "Completed",
            Self::SendConditionNotMet => "SendConditionNotMet",
            Self::Cancelled => "Cancelled",
        }
    }
    /// Altinn's description of the status (`GetOrderService`).
    pub fn description(self) -> &'static str {
        match self {
            Self::Registered => {
                "Order has been registered and is awaiting requested send time before processing."
            }
            Self::Processing => "Order processing is ongoing. Notifications are being generated.",
            Self::Processed => {
                "Order processing is done. Notifications have been successfully generated."
            }
            Self::Completed => {
                "Order processing is completed. All notifications have a final status."
            }
            Self::SendConditionNotMet => {
                "Order processing was stopped due to send condition not being met."
            }
            Self::Cancelled => "Order processing was stopped due to order being cancelled.",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Registered,
            Self::Processing,
            Self::Processed,
            Self::Completed,
            Self::SendConditionNotMet,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// The two delivery channels a single notification can travel on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// An email notification.
    Email,
    /// An SMS notification.
    Sms,
}

impl Channel {
    /// Lower-case name used in the database and in URLs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
        }
    }
    /// Parses the lower-case name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(Self::Email),
            "sms" => Some(Self::Sms),
            _ => None,
        }
    }
}

/// The result of one notification, spelled as Altinn's unified lifecycle (`Email_*` / `SMS_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotificationStatus {
    /// Email created, not yet sent.
    EmailNew,
    /// Email handed to the sender; the provider call may be under way.
    EmailSending,
    /// The SMTP relay accepted the email.
    EmailSucceeded,
    /// The provider reported the email delivered.
    EmailDelivered,
    /// Email failed for an unspecified reason.
    EmailFailed,
    /// The person is reserved against digital notifications.
    EmailFailedRecipientReserved,
    /// No email address could be found for the recipient.
    EmailFailedRecipientNotIdentified,
    /// The address is not a valid email address.
    EmailFailedInvalidFormat,
    /// The relay refused the recipient permanently.
    EmailFailedSuppressedRecipient,
    /// The email bounced.
    EmailFailedBounced,
    /// Filtered as spam.
    EmailFailedFilteredSpam,
    /// Quarantined by the recipient's system.
    EmailFailedQuarantined,
    /// No final report arrived within the time-to-live.
    EmailFailedTtl,
    /// SMS created, not yet sent.
    SmsNew,
    /// SMS handed to the gateway; the provider call may be under way.
    SmsSending,
    /// The gateway accepted the SMS.
    SmsAccepted,
    /// The SMS was delivered to the handset.
    SmsDelivered,
    /// SMS failed for an unspecified reason.
    SmsFailed,
    /// The gateway refused the number.
    SmsFailedInvalidRecipient,
    /// The person is reserved against digital notifications.
    SmsFailedRecipientReserved,
    /// The subscription is barred.
    SmsFailedBarredReceiver,
    /// The message was deleted by the network.
    SmsFailedDeleted,
    /// The message expired in the network.
    SmsFailedExpired,
    /// The network could not deliver the message.
    SmsFailedUndelivered,
    /// No mobile number could be found for the recipient.
    SmsFailedRecipientNotIdentified,
    /// The gateway or network rejected the message.
    SmsFailedRejected,
    /// No final report arrived within the time-to-live.
    SmsFailedTtl,
}

macro_rules! statuses {
    ($($v:ident => $s:literal),* $(,)?) => {
        impl NotificationStatus {
            /// Every status.
            pub const ALL: &'static [NotificationStatus] = &[$(Self::$v),*];
            /// Altinn's unified-lifecycle name, e.g. `Email_Failed_RecipientReserved`.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),* }
            }
        }
    };
}

statuses! {
    EmailNew => "Email_New",
    EmailSending => "Email_Sending",
    EmailSucceeded => "Email_Succeeded",
    EmailDelivered => "Email_Delivered",
    EmailFailed => "Email_Failed",
    EmailFailedRecipientReserved => "Email_Failed_RecipientReserved",
    EmailFailedRecipientNotIdentified => "Email_Failed_RecipientNotIdentified",
    EmailFailedInvalidFormat => "Email_Failed_InvalidFormat",
    EmailFailedSuppressedRecipient => "Email_Failed_SuppressedRecipient",
    EmailFailedBounced => "Email_Failed_Bounced",
    EmailFailedFilteredSpam => "Email_Failed_FilteredSpam",
    EmailFailedQuarantined => "Email_Failed_Quarantined",
    EmailFailedTtl => "Email_Failed_TTL",
    SmsNew => "SMS_New",
    SmsSending => "SMS_Sending",
    SmsAccepted => "SMS_Accepted",
    SmsDelivered => "SMS_Delivered",
    SmsFailed => "SMS_Failed",
    SmsFailedInvalidRecipient => "SMS_Failed_InvalidRecipient",
    SmsFailedRecipientReserved => "SMS_Failed_RecipientReserved",
    SmsFailedBarredReceiver => "SMS_Failed_BarredReceiver",
    SmsFailedDeleted => "SMS_Failed_Deleted",
    SmsFailedExpired => "SMS_Failed_Expired",
    SmsFailedUndelivered => "SMS_Failed_Undelivered",
    SmsFailedRecipientNotIdentified => "SMS_Failed_RecipientNotIdentified",
    SmsFailedRejected => "SMS_Failed_Rejected",
    SmsFailedTtl => "SMS_Failed_TTL",
}

impl NotificationStatus {
    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|st| st.as_str() == s)
    }

    /// The channel this status belongs to.
    pub fn channel(self) -> Channel {
        if self.as_str().starts_with("Email_") { Channel::Email } else { Channel::Sms }
    }

    /// The status a fresh notification on `channel` starts in.
    pub fn new_for(channel: Channel) -> Self {
        match channel {
            Channel::Email => Self::EmailNew,
            Channel::Sms => Self::SmsNew,
        }
    }

    /// `Sending` on `channel`.
    pub fn sending_for(channel: Channel) -> Self {
        match channel {
            Channel::Email => Self::EmailSending,
            Channel::Sms => Self::SmsSending,
        }
    }

    /// `Failed_RecipientReserved` on `channel`.
    pub fn reserved_for(channel: Channel) -> Self {
        match channel {
            Channel::Email => Self::EmailFailedRecipientReserved,
            Channel::Sms => Self::SmsFailedRecipientReserved,
        }
    }

    /// `Failed_RecipientNotIdentified` on `channel`.
    pub fn not_identified_for(channel: Channel) -> Self {
        match channel {
            Channel::Email => Self::EmailFailedRecipientNotIdentified,
            Channel::Sms => Self::SmsFailedRecipientNotIdentified,
        }
    }

    /// Whether the notification still has work ahead of it (not yet handed to a provider).
    pub fn is_pending(self) -> bool {
        matches!(self, Self::EmailNew | Self::EmailSending | Self::SmsNew | Self::SmsSending)
    }

    /// Whether the notification still waits for something: sending (`New`, `Sending`) or a
    /// delivery report (`Email_Succeeded`, `SMS_Accepted`). The order completes when none is open.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::EmailNew
                | Self::EmailSending
                | Self::EmailSucceeded
                | Self::SmsNew
                | Self::SmsSending
                | Self::SmsAccepted
        )
    }

    /// Every open status.
    pub fn open_statuses() -> impl Iterator<Item = NotificationStatus> {
        Self::ALL.iter().copied().filter(|s| s.is_open())
    }

    /// `Failed_TTL` on `channel`.
    pub fn ttl_for(channel: Channel) -> Self {
        match channel {
            Channel::Email => Self::EmailFailedTtl,
            Channel::Sms => Self::SmsFailedTtl,
        }
    }

    /// How far along the lifecycle a status is: a report may only move a notification forward
    /// (a late "accepted" never undoes "delivered").
    pub fn rank(self) -> u8 {
        match self {
            Self::EmailNew | Self::SmsNew => 0,
            Self::EmailSending | Self::SmsSending => 1,
            Self::EmailSucceeded | Self::SmsAccepted => 2,
            _ => 3,
        }
    }

    /// Whether this counts as a success for the order's summaries (Altinn counts
    /// `Succeeded`/`Delivered` for email and `Accepted`/`Delivered` for SMS).
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Self::EmailSucceeded | Self::EmailDelivered | Self::SmsAccepted | Self::SmsDelivered
        )
    }

    /// The name Altinn's v1 summary endpoints answer: the result without its channel prefix, in
    /// Altinn's spelling (`Failed_InvalidEmailFormat`, `Failed_SupressedRecipient` sic), with the
    /// time-to-live failures reported as `Failed`.
    pub fn v1_name(self) -> &'static str {
        match self {
            Self::EmailFailedInvalidFormat => "Failed_InvalidEmailFormat",
            Self::EmailFailedSuppressedRecipient => "Failed_SupressedRecipient",
            Self::EmailFailedTtl | Self::SmsFailedTtl => "Failed",
            other => {
                let name = other.as_str();
                name.strip_prefix("Email_").or_else(|| name.strip_prefix("SMS_")).unwrap_or(name)
            }
        }
    }

    /// A sentence an operator or API consumer can read.
    pub fn description(self) -> &'static str {
        match self {
            Self::EmailNew => {
                "The email has been created, but has not been picked up for processing yet."
            }
            Self::EmailSending => {
                "The email is being processed and will be attempted sent shortly."
            }
            Self::EmailSucceeded => {
                "The email has been accepted by the third party email service and will be sent shortly."
            }
            Self::EmailDelivered => {
                "The email was delivered to the recipient. No errors reported, making it likely it was received by the recipient."
            }
            Self::EmailFailed => "The email was not sent due to an unspecified failure.",
            Self::EmailFailedRecipientReserved => {
                "The email was not sent because the recipient has reserved themselves from electronic communication."
            }
            Self::EmailFailedRecipientNotIdentified => {
                "The email was not sent because the recipient's email address was not found."
            }
            Self::EmailFailedInvalidFormat => {
                "The email was not sent because the recipient’s email address is in an invalid format."
            }
            Self::EmailFailedSuppressedRecipient => {
                "The email was not sent because the recipient’s email address is suppressed by the third party email service."
            }
            Self::EmailFailedBounced => {
                "The email hard bounced, which may have happened because the email address does not exist or the domain is invalid."
            }
            Self::EmailFailedFilteredSpam => {
                "The email was identified as spam, and was rejected or blocked (not quarantined)."
            }
            Self::EmailFailedQuarantined => {
                "The email was quarantined (as spam, bulk mail, or phising)."
            }
            Self::EmailFailedTtl => {
                "The email delivery status was not confirmed within the time-to-live."
            }
            Self::SmsNew => {
                "The SMS has been created, but has not been picked up for processing yet."
            }
            Self::SmsSending => "The SMS is being processed and will be sent shortly.",
            Self::SmsAccepted => {
                "The SMS has been accepted by the gateway service and will be sent shortly."
            }
            Self::SmsDelivered => "The SMS was successfully delivered to its destination.",
            Self::SmsFailed => "The SMS was not delivered due to an unspecified failure.",
            Self::SmsFailedInvalidRecipient => {
                "The SMS was not sent because the recipient's mobile number is invalid."
            }
            Self::SmsFailedRecipientReserved => {
                "The SMS was not sent because the recipient has reserved themselves from electronic communication."
            }
            Self::SmsFailedBarredReceiver => {
                "The SMS was not delivered because the recipient's mobile number is barred, blocked or not in use."
            }
            Self::SmsFailedDeleted => {
                "The SMS was not delivered because the message has been deleted."
            }
            Self::SmsFailedExpired => "The SMS was not delivered because it has expired.",
            Self::SmsFailedUndelivered => {
                "The SMS was not delivered due to invalid mobile number or no available route to destination."
            }
            Self::SmsFailedRecipientNotIdentified => {
                "The SMS was not sent because the recipient's mobile number was not found."
            }
            Self::SmsFailedRejected => "The SMS was not delivered because it was rejected.",
            Self::SmsFailedTtl => {
                "The SMS delivery status was not confirmed within the time-to-live."
            }
        }
    }
}

impl fmt::Display for NotificationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a value did not parse; the text is the exact Altinn validation message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub &'static str);

/// A Norwegian national identity number: exactly 11 ASCII digits (no checksum, as Altinn).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NationalIdentityNumber(String);

impl NationalIdentityNumber {
    /// Parses 11 digits.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() == 11 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError("National identity number must be 11 digits long."))
        }
    }
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A Norwegian organisation number: exactly 9 ASCII digits (no checksum, as Altinn).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrganizationNumber(String);

impl OrganizationNumber {
    /// Parses 9 digits.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() == 9 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError("Organization number must be 9 digits long."))
        }
    }
    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An E.164 mobile number, normalised to `+<digits>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MobileNumber(String);

impl MobileNumber {
    /// Parses a number that starts with `+` or `00` and is valid per libphonenumber's metadata.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        const MSG: &str = "Mobile number can contain only '+' and numeric characters, and it must adhere to the E.164 standard.";
        let s = s.trim();
        let normalised =
            if let Some(rest) = s.strip_prefix("00") { format!("+{rest}") } else { s.to_owned() };
        let Some(digits) = normalised.strip_prefix('+') else {
            return Err(ParseError(MSG));
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError(MSG));
        }
        match phonenumber::parse(None, &normalised) {
            Ok(n) if phonenumber::is_valid(&n) => Ok(Self(normalised)),
            _ => Err(ParseError(MSG)),
        }
    }

    /// Normalises a number from the contact register: 8 digits starting with 4 or 9 are
    /// Norwegian mobiles and get `+47`; anything invalid yields `None`, as Altinn drops it.
    pub fn from_register(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.len() == 8
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s.starts_with('4') || s.starts_with('9'))
        {
            return Self::parse(&format!("+47{s}")).ok();
        }
        Self::parse(s).ok()
    }

    /// The normalised `+<digits>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

static EMAIL_RE: LazyLock<regex::Regex> = LazyLock::new(|| {
    // The Altinn 2 pattern (RecipientRules.IsValidEmail), with its HTML-entity typo fixed so a
    // quoted local part means a real `"`.
    let atom = r"[a-zA-Z0-9æøåÆØÅ!#$%&'*+\-=?^_`{|}~]+";
    let label = r"[a-zA-Z0-9æøåÆØÅ](?:[a-zA-Z0-9æøåÆØÅ\-]{0,61}[a-zA-Z0-9æøåÆØÅ])?";
    let pattern = format!(
        r#"^(?:{atom}(?:\.{atom})*|"(?:[^"\\\r\n]|\\.)+")@(?:(?:{label}\.){{1,9}}[a-zA-Z]{{2,14}}|\[?\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}\.\d{{1,3}}\]?)$"#
    );
    regex::Regex::new(&pattern).expect("email pattern compiles")
});

/// An email address that passed Altinn's address rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses one address (trimmed); lists and control characters are refused.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.len() <= 254 && EMAIL_RE.is_match(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError("Invalid email address format."))
        }
    }
    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobile_numbers_follow_altinn_cases() {
        for ok in ["+4740000001", "004740000000", "+4790000000", "+233242426224"] {
            assert!(MobileNumber::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "40000001",
            "+4750000004",
            "+47900000001",
            "+14790000000",
            "111100000",
            "+47abc",
            "++4740000001",
        ] {
            assert!(MobileNumber::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MobileNumber::from_register("40000001").unwrap().as_str(), "+4740000001");
    }

    #[test]
    fn email_addresses() {
        for ok in ["a@b.no", "ola.nordmann@digdir.no", "æøå@østfold.no", "x+y@sub.example.com"]
        {
            assert!(EmailAddress::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["a@b", "a;b@c.no", "a@b.no;c@d.no", "noat", "a@b.no\r\nBcc: x@y.no", ""] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in NotificationStatus::ALL {
            assert_eq!(NotificationStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(
            NotificationChannel::parse("emailPreferred"),
            Some(NotificationChannel::EmailPreferred)
        );
    }
}
