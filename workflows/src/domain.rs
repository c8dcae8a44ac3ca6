//! Domain types that parse: identifiers, addresses, channels and statuses.
//!
//! Every type here is pure data with a `parse` (or `FromStr`) that either yields a valid value or
//! says why not, so the API layer maps user input into these once and the rest of varsel can rely
//! on them. Statuses are spelled exactly as Altinn spells them, because clients match on them.

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Defines a closed set that is stored and answered as text: the enum, `ALL` (every variant, in
/// declaration order) and `as_str`, the one spelling of each variant. With the `store` feature the
/// same spellings make it a sea-orm column type (`DeriveActiveEnum`), so the store reads and
/// writes the enum itself and a row can never hold a name that does not parse.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident => $text:tt,)*
        }
    ) => {
        $(#[$meta])*
        #[cfg_attr(feature = "store", derive(sea_orm::EnumIter, sea_orm::DeriveActiveEnum))]
        #[cfg_attr(feature = "store", sea_orm(rs_type = "String", db_type = "Text"))]
        pub enum $name {
            $($(#[$vmeta])* #[cfg_attr(feature = "store", sea_orm(string_value = $text))] $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$(Self::$variant),*];

            /// The one spelling of this value: stored, answered and matched.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use stored_enum;

stored_enum! {
    /// The channel an order asks for (Altinn `NotificationChannelExt`), in Altinn's numeric order
    /// (0..=4).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum NotificationChannel {
        /// Email only.
        Email => "Email",
        /// SMS only.
        Sms => "Sms",
        /// Email where the recipient has an address, SMS otherwise.
        EmailPreferred => "EmailPreferred",
        /// SMS where the recipient has a mobile number, email otherwise.
        SmsPreferred => "SmsPreferred",
        /// Both channels for every recipient.
        EmailAndSms => "EmailAndSms",
    }
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

    /// Whether this channel needs an email template.
    pub fn needs_email_template(self) -> bool {
        !matches!(self, Self::Sms)
    }

    /// Whether this channel needs an SMS template.
    pub fn needs_sms_template(self) -> bool {
        !matches!(self, Self::Email)
    }
}

stored_enum! {
    /// Email body content type.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
    pub enum EmailContentType {
        /// Plain text; never interpreted as HTML.
        #[default]
        Plain => "Plain",
        /// HTML, passed unchanged.
        Html => "Html",
    }
}

stored_enum! {
    /// Order processing status (Altinn `OrderProcessingStatus`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    pub enum OrderStatus {
        /// Stored, waiting for its send time.
        Registered => "Registered",
        /// The workflow is generating notifications.
        Processing => "Processing",
        /// Notifications generated, some not yet final.
        Processed => "Processed",
        /// Every notification has a final status.
        Completed => "Completed",
        /// The send condition said no; nothing was sent.
        SendConditionNotMet => "SendConditionNotMet",
        /// Cancelled before processing.
        Cancelled => "Cancelled",
    }
}

impl OrderStatus {
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
}

stored_enum! {
    /// The two delivery channels a single notification can travel on; the lower-case name is
    /// used in the database and in URLs.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum Channel {
        /// An email notification.
        Email => "email",
        /// An SMS notification.
        Sms => "sms",
    }
}

stored_enum! {
    /// The result of one notification, spelled as Altinn's unified lifecycle (`Email_*` /
    /// `SMS_*`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    pub enum NotificationStatus {
        /// Email created, not yet sent.
        EmailNew => "Email_New",
        /// Email handed to the sender; the provider call may be under way.
        EmailSending => "Email_Sending",
        /// The SMTP relay accepted the email.
        EmailSucceeded => "Email_Succeeded",
        /// The provider reported the email delivered.
        EmailDelivered => "Email_Delivered",
        /// Email failed for an unspecified reason.
        EmailFailed => "Email_Failed",
        /// The person is reserved against digital notifications.
        EmailFailedRecipientReserved => "Email_Failed_RecipientReserved",
        /// No email address could be found for the recipient.
        EmailFailedRecipientNotIdentified => "Email_Failed_RecipientNotIdentified",
        /// The address is not a valid email address.
        EmailFailedInvalidFormat => "Email_Failed_InvalidFormat",
        /// The relay refused the recipient permanently.
        EmailFailedSuppressedRecipient => "Email_Failed_SuppressedRecipient",
        /// The email bounced.
        EmailFailedBounced => "Email_Failed_Bounced",
        /// Filtered as spam.
        EmailFailedFilteredSpam => "Email_Failed_FilteredSpam",
        /// Quarantined by the recipient's system.
        EmailFailedQuarantined => "Email_Failed_Quarantined",
        /// No final report arrived within the time-to-live.
        EmailFailedTtl => "Email_Failed_TTL",
        /// An attachment of a composed email could not be fetched from its URL.
        EmailFailedInvalidSasUrl => "Email_Failed_InvalidSasUrl",
        /// The composed email with its attachments is larger than the relay or the configured
        /// limit takes.
        EmailFailedPayloadTooLarge => "Email_Failed_PayloadTooLarge",
        /// SMS created, not yet sent.
        SmsNew => "SMS_New",
        /// SMS handed to the gateway; the provider call may be under way.
        SmsSending => "SMS_Sending",
        /// The gateway accepted the SMS.
        SmsAccepted => "SMS_Accepted",
        /// The SMS was delivered to the handset.
        SmsDelivered => "SMS_Delivered",
        /// SMS failed for an unspecified reason.
        SmsFailed => "SMS_Failed",
        /// The gateway refused the number.
        SmsFailedInvalidRecipient => "SMS_Failed_InvalidRecipient",
        /// The person is reserved against digital notifications.
        SmsFailedRecipientReserved => "SMS_Failed_RecipientReserved",
        /// The subscription is barred.
        SmsFailedBarredReceiver => "SMS_Failed_BarredReceiver",
        /// The message was deleted by the network.
        SmsFailedDeleted => "SMS_Failed_Deleted",
        /// The message expired in the network.
        SmsFailedExpired => "SMS_Failed_Expired",
        /// The network could not deliver the message.
        SmsFailedUndelivered => "SMS_Failed_Undelivered",
        /// No mobile number could be found for the recipient.
        SmsFailedRecipientNotIdentified => "SMS_Failed_RecipientNotIdentified",
        /// The gateway or network rejected the message.
        SmsFailedRejected => "SMS_Failed_Rejected",
        /// No final report arrived within the time-to-live.
        SmsFailedTtl => "SMS_Failed_TTL",
    }
}

impl NotificationStatus {
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

    /// Whether the notification ended without reaching its recipient: final, and not a success.
    pub fn is_failure(self) -> bool {
        self.rank() == 3 && !self.is_success()
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
            Self::EmailFailedInvalidSasUrl => {
                "The email was not sent because one or more attachment SAS URLs are invalid, expired, or inaccessible."
            }
            Self::EmailFailedPayloadTooLarge => {
                "The email was not sent because the total size of the attachments exceeds the allowed limit."
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
    fn every_status_has_its_own_name_and_channel() {
        let names: std::collections::HashSet<String> =
            NotificationStatus::ALL.iter().map(|s| s.as_str().to_lowercase()).collect();
        assert_eq!(names.len(), NotificationStatus::ALL.len(), "names differ, ignoring case");
        for s in NotificationStatus::ALL {
            let prefix = match s.channel() {
                Channel::Email => "Email_",
                Channel::Sms => "SMS_",
            };
            assert!(s.as_str().starts_with(prefix), "{s}");
        }
    }
}
