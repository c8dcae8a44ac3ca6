//! Channel choice and fan-out (Altinn §4.5-4.6): which notifications a recipient gets.

use crate::domain::{Channel, NotificationChannel, NotificationStatus};

/// A recipient's usable addresses after lookup (explicit ones included), already normalised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactPoints {
    /// Email addresses, de-duplicated.
    pub emails: Vec<String>,
    /// Mobile numbers (E.164), de-duplicated.
    pub mobiles: Vec<String>,
    /// Reserved in KRR (persons only).
    pub reserved: bool,
}

impl ContactPoints {
    fn list(&self, channel: Channel) -> &[String] {
        match channel {
            Channel::Email => &self.emails,
            Channel::Sms => &self.mobiles,
        }
    }
}

/// One notification to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// Channel.
    pub channel: Channel,
    /// Address; empty for failed placeholders.
    pub address: String,
    /// Initial status: `New`, or a final `Failed_*`.
    pub status: NotificationStatus,
}

fn for_channel(channel: Channel, cp: &ContactPoints) -> Vec<Planned> {
    let list = cp.list(channel);
    if list.is_empty() {
        return vec![Planned {
            channel,
            address: String::new(),
            status: NotificationStatus::not_identified_for(channel),
        }];
    }
    list.iter()
        .map(|a| Planned {
            channel,
            address: a.clone(),
            status: NotificationStatus::new_for(channel),
        })
        .collect()
}

fn reserved(channel: Channel) -> Planned {
    Planned { channel, address: String::new(), status: NotificationStatus::reserved_for(channel) }
}

/// The notifications for one recipient.
///
/// Departures from Altinn, on purpose: a preferred channel sends only the preferred channel even
/// when the order itself gave both an email and a mobile (Altinn sends both); `EmailAndSms`
/// behaves like two single-channel orders.
pub fn plan(
    order_channel: NotificationChannel,
    cp: &ContactPoints,
    ignore_reservation: bool,
) -> Vec<Planned> {
    let is_reserved = cp.reserved && !ignore_reservation;
    let preferred = |first: Channel, second: Channel| {
        if is_reserved {
            vec![reserved(first)]
        } else if !cp.list(first).is_empty() {
            for_channel(first, cp)
        } else if !cp.list(second).is_empty() {
            for_channel(second, cp)
        } else {
            for_channel(first, cp)
        }
    };
    match order_channel {
        NotificationChannel::Email | NotificationChannel::Sms => {
            let ch = if order_channel == NotificationChannel::Email {
                Channel::Email
            } else {
                Channel::Sms
            };
            if is_reserved { vec![reserved(ch)] } else { for_channel(ch, cp) }
        }
        NotificationChannel::EmailPreferred => preferred(Channel::Email, Channel::Sms),
        NotificationChannel::SmsPreferred => preferred(Channel::Sms, Channel::Email),
        NotificationChannel::EmailAndSms => {
            if is_reserved {
                vec![reserved(Channel::Email), reserved(Channel::Sms)]
            } else {
                let mut v = for_channel(Channel::Email, cp);
                v.extend(for_channel(Channel::Sms, cp));
                v
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(e: &[&str], m: &[&str], reserved: bool) -> ContactPoints {
        ContactPoints {
            emails: e.iter().map(|s| s.to_string()).collect(),
            mobiles: m.iter().map(|s| s.to_string()).collect(),
            reserved,
        }
    }

    #[test]
    fn preferred_falls_back() {
        let p = plan(NotificationChannel::EmailPreferred, &cp(&[], &["+4790000000"], false), false);
        assert_eq!(
            p,
            vec![Planned {
                channel: Channel::Sms,
                address: "+4790000000".into(),
                status: NotificationStatus::SmsNew
            }]
        );
        let p = plan(NotificationChannel::SmsPreferred, &cp(&["a@b.no"], &[], false), false);
        assert_eq!(p[0].channel, Channel::Email);
        let p = plan(NotificationChannel::SmsPreferred, &cp(&[], &[], false), false);
        assert_eq!(p[0].status, NotificationStatus::SmsFailedRecipientNotIdentified);
    }

    #[test]
    fn reservation_is_honoured_unless_ignored() {
        let c = cp(&["a@b.no"], &[], true);
        assert_eq!(
            plan(NotificationChannel::Email, &c, false)[0].status,
            NotificationStatus::EmailFailedRecipientReserved
        );
        assert_eq!(
            plan(NotificationChannel::Email, &c, true)[0].status,
            NotificationStatus::EmailNew
        );
        assert_eq!(plan(NotificationChannel::EmailAndSms, &c, false).len(), 2);
    }

    #[test]
    fn one_notification_per_address() {
        let p = plan(NotificationChannel::Email, &cp(&["a@b.no", "c@d.no"], &[], false), false);
        assert_eq!(p.len(), 2);
    }
}
