//! SMS arithmetic and rules (Altinn §4.9).

/// Length of `text` URL-encoded the way Altinn measures it (.NET `WebUtility.UrlEncode`: space
/// is `+`, `A-Z a-z 0-9 - _ . ! * ( )` stay, every other UTF-8 byte is `%XX`).
pub fn url_encoded_len(text: &str) -> usize {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'*'
            | b'('
            | b')'
            | b' ' => 1,
            _ => 3,
        })
        .sum()
}

/// Most segments one SMS may take; longer texts are cut by the gateway.
pub const MAX_SEGMENTS: u32 = 16;

/// How many SMS segments `text` takes: one up to 160 URL-encoded characters, otherwise one per
/// 134, at most 16.
pub fn segments(text: &str) -> u32 {
    let len = url_encoded_len(text);
    if len <= 160 { 1 } else { (len.div_ceil(134) as u32).min(MAX_SEGMENTS) }
}

/// The characters of the GSM 03.38 default alphabet (basic set) that may appear in an
/// alphanumeric sender id: printable ones, so no line breaks and no escape.
const GSM_PRINTABLE: &str = "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";

/// Longest alphanumeric sender id networks show (GSM 03.40 TP-OA: 11 characters).
pub const MAX_ALPHANUMERIC_SENDER: usize = 11;
/// Longest numeric sender id (an E.164 number: 15 digits).
pub const MAX_NUMERIC_SENDER: usize = 15;

/// Whether `sender` is a sender id networks accept: a number (optionally with a leading `+`,
/// at most 15 digits), or up to 11 characters of the GSM alphabet with at least one letter.
/// The reason when it is not.
pub fn check_sender_id(sender: &str) -> Result<(), &'static str> {
    let digits = sender.strip_prefix('+').unwrap_or(sender);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return if digits.len() <= MAX_NUMERIC_SENDER {
            Ok(())
        } else {
            Err("A numeric sender id can be at most 15 digits long.")
        };
    }
    if !sender.chars().all(|c| GSM_PRINTABLE.contains(c)) {
        return Err(
            "A sender id can only hold letters, digits and punctuation of the GSM alphabet (no line breaks, emoji or invisible characters).",
        );
    }
    if !sender.chars().any(char::is_alphabetic) {
        return Err(
            "An alphanumeric sender id must contain at least one letter; a numeric one only digits.",
        );
    }
    if sender.chars().count() > MAX_ALPHANUMERIC_SENDER {
        return Err("An alphanumeric sender id can be at most 11 characters long.");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_follow_altinn() {
        assert_eq!(segments(""), 1);
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(268)), 2);
        assert_eq!(segments(&"a".repeat(269)), 3);
        // "ø" is two UTF-8 bytes, six URL-encoded characters.
        assert_eq!(url_encoded_len("ø"), 6);
        assert_eq!(segments(&"ø".repeat(27)), 2);
        assert_eq!(segments(&"a".repeat(10_000)), 16);
    }

    #[test]
    fn sender_ids_are_what_networks_accept() {
        for ok in
            ["Altinn", "Skatteetat", "NAV", "+4799999999", "26000", "Ål & Co.", "123456789012345"]
        {
            assert!(check_sender_id(ok).is_ok(), "{ok}");
        }
        let emoji = "😀".repeat(20);
        let bangs = "!".repeat(40);
        let digits = "1".repeat(30);
        for bad in [
            emoji.as_str(),
            bangs.as_str(),
            digits.as_str(),
            "Alt\ninn",
            "Alt\u{200b}inn",
            "!!!",
            "Skatteetaten",
            "Alt\u{1b}inn",
        ] {
            assert!(check_sender_id(bad).is_err(), "{bad:?}");
        }
    }
}

/// The daily window SMS may be sent in, local time of a zone (Altinn: 09:00-17:00
/// Europe/Oslo). Carried in the workflow input, so waiting for it is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendingWindow {
    /// IANA zone name, e.g. `Europe/Oslo`.
    pub zone: String,
    /// Window start, seconds after local midnight.
    pub start_secs: u32,
    /// Window end, seconds after local midnight (before `start_secs` for a window over midnight).
    pub end_secs: u32,
}

impl SendingWindow {
    /// Parses `HH:MM[:SS]-HH:MM[:SS]` in `zone`.
    pub fn parse(spec: &str, zone: &str) -> Result<Self, String> {
        zone.parse::<chrono_tz::Tz>().map_err(|_| format!("unknown time zone {zone:?}"))?;
        let (a, b) = spec
            .split_once('-')
            .ok_or_else(|| format!("sending window {spec:?} is not HH:MM-HH:MM"))?;
        let secs = |t: &str| -> Result<u32, String> {
            let parts: Vec<u32> = t
                .trim()
                .split(':')
                .map(|p| p.parse::<u32>().map_err(|_| format!("bad time {t:?}")))
                .collect::<Result<_, _>>()?;
            match parts.as_slice() {
                [h, m] if *h < 24 && *m < 60 => Ok(h * 3600 + m * 60),
                [h, m, s] if *h < 24 && *m < 60 && *s < 60 => Ok(h * 3600 + m * 60 + s),
                _ => Err(format!("bad time {t:?}")),
            }
        };
        Ok(Self { zone: zone.to_owned(), start_secs: secs(a)?, end_secs: secs(b)? })
    }

    /// Milliseconds from `now_ms` (Unix) until the window is open; 0 when it is open now.
    pub fn wait_ms(&self, now_ms: i64) -> i64 {
        use chrono::{TimeZone, Timelike};
        let Ok(tz) = self.zone.parse::<chrono_tz::Tz>() else { return 0 };
        let Some(now) = tz.timestamp_millis_opt(now_ms).single() else { return 0 };
        let t = now.num_seconds_from_midnight();
        let open = if self.start_secs <= self.end_secs {
            t >= self.start_secs && t < self.end_secs
        } else {
            t >= self.start_secs || t < self.end_secs
        };
        if open {
            return 0;
        }
        // The next start, today or tomorrow, resolved in the zone: a start the clocks pass twice
        // (the night they go back) opens at its first pass; a start that does not exist (in the
        // hour skipped the night they go forward) opens when the clocks jump past it.
        let midnight = now.date_naive();
        for day in 0..3 {
            let date = midnight + chrono::Duration::days(day);
            let start = date.and_hms_opt(0, 0, 0).unwrap()
                + chrono::Duration::seconds(self.start_secs as i64);
            let opens = tz.from_local_datetime(&start).earliest().or_else(|| {
                (1..=16).find_map(|quarter| {
                    let later = start + chrono::Duration::minutes(15 * quarter);
                    tz.from_local_datetime(&later).earliest()
                })
            });
            if let Some(opens) = opens
                && opens.timestamp_millis() > now_ms
            {
                return opens.timestamp_millis() - now_ms;
            }
        }
        0
    }
}

/// What a country's networks do with sender ids that are not registered there.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderRule {
    /// The network shows the sender as this text (Finland: "tuntematon"); sent, with a note.
    ShownAs(String),
    /// Replace the sender with this numeric sender (Spain).
    ReplaceWithNumeric(String),
    /// Refuse texts that contain a URL (Thailand).
    RefuseUrls,
}

/// A per-country sender policy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SenderPolicy {
    /// Destination prefix, e.g. `+358`.
    pub prefix: String,
    /// What happens to an unregistered alphanumeric sender.
    pub rule: SenderRule,
    /// Sender ids registered in that country (these pass unchanged).
    #[serde(default)]
    pub registered: Vec<String>,
}

/// The seed's three cases.
pub fn default_sender_policies() -> Vec<SenderPolicy> {
    vec![
        SenderPolicy {
            prefix: "+358".into(),
            rule: SenderRule::ShownAs("tuntematon".into()),
            registered: vec![],
        },
        SenderPolicy {
            prefix: "+34".into(),
            rule: SenderRule::ReplaceWithNumeric("+4759440000".into()),
            registered: vec![],
        },
        SenderPolicy { prefix: "+66".into(), rule: SenderRule::RefuseUrls, registered: vec![] },
    ]
}

/// What to do with one SMS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderDecision {
    /// Send with this sender; the note goes into the notification's status description.
    Send {
        /// The sender to use.
        sender: String,
        /// What the recipient will see differently, if anything.
        note: Option<String>,
    },
    /// Do not send: `SMS_Failed_Rejected` with this reason.
    Refuse(String),
}

fn is_alphanumeric_sender(sender: &str) -> bool {
    sender.chars().any(|c| c.is_alphabetic())
}

fn has_url(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("http://") || lower.contains("https://") || lower.contains("www.")
}

/// Applies the first policy whose prefix matches `to`.
pub fn decide_sender(
    to: &str,
    sender: &str,
    body: &str,
    policies: &[SenderPolicy],
) -> SenderDecision {
    let keep = SenderDecision::Send { sender: sender.to_owned(), note: None };
    let Some(p) = policies.iter().find(|p| to.starts_with(p.prefix.as_str())) else { return keep };
    if !is_alphanumeric_sender(sender)
        || p.registered.iter().any(|r| r.eq_ignore_ascii_case(sender))
    {
        return keep;
    }
    match &p.rule {
        SenderRule::ShownAs(label) => SenderDecision::Send {
            sender: sender.to_owned(),
            note: Some(format!(
                "The sender id '{sender}' is not registered for {} numbers; the recipient's network shows it as '{label}'.",
                p.prefix
            )),
        },
        SenderRule::ReplaceWithNumeric(numeric) => SenderDecision::Send {
            sender: numeric.clone(),
            note: Some(format!(
                "The sender id '{sender}' is not registered for {} numbers; sent from {numeric} instead.",
                p.prefix
            )),
        },
        SenderRule::RefuseUrls if has_url(body) => SenderDecision::Refuse(format!(
            "Refused before sending: {} networks reject texts with a URL from the unregistered sender id '{sender}'.",
            p.prefix
        )),
        SenderRule::RefuseUrls => keep,
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn the_three_country_cases() {
        let p = default_sender_policies();
        assert!(
            matches!(decide_sender("+358401234567", "Altinn", "hei", &p), SenderDecision::Send { note: Some(n), .. } if n.contains("tuntematon"))
        );
        assert_eq!(
            decide_sender("+34612345678", "Altinn", "hola", &p),
            SenderDecision::Send { sender: "+4759440000".into(), note: Some("The sender id 'Altinn' is not registered for +34 numbers; sent from +4759440000 instead.".into()) }
        );
        assert!(matches!(
            decide_sender("+66812345678", "Altinn", "see https://x.no", &p),
            SenderDecision::Refuse(_)
        ));
        assert_eq!(
            decide_sender("+66812345678", "Altinn", "no link", &p),
            SenderDecision::Send { sender: "Altinn".into(), note: None }
        );
        assert_eq!(
            decide_sender("+4799999999", "Altinn", "https://x", &p),
            SenderDecision::Send { sender: "Altinn".into(), note: None }
        );
        assert_eq!(
            decide_sender("+34612345678", "+4712345678", "x", &p),
            SenderDecision::Send { sender: "+4712345678".into(), note: None }
        );
    }

    #[test]
    fn window_waits_until_it_opens() {
        let w = SendingWindow::parse("09:00-17:00", "Europe/Oslo").unwrap();
        // 2026-01-15 07:00 UTC = 08:00 Oslo: one hour to go.
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-15T07:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(w.wait_ms(t), 3_600_000);
        // 12:00 Oslo: open.
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-15T11:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(w.wait_ms(t), 0);
        // 18:00 Oslo: next morning 09:00, 15 hours.
        let t = chrono::DateTime::parse_from_rfc3339("2026-01-15T17:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(w.wait_ms(t), 15 * 3_600_000);
    }

    fn at(utc: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(utc).unwrap().timestamp_millis()
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn a_window_over_midnight_is_open_on_both_sides_of_it() {
        let w = SendingWindow::parse("22:00-06:00", "Europe/Oslo").unwrap();
        // Oslo is UTC+1 in January.
        assert_eq!(w.wait_ms(at("2026-01-15T22:00:00Z")), 0, "23:00: open");
        assert_eq!(w.wait_ms(at("2026-01-16T02:00:00Z")), 0, "03:00 the next day: open");
        assert_eq!(w.wait_ms(at("2026-01-16T04:59:59Z")), 0, "05:59:59: open");
        assert_eq!(w.wait_ms(at("2026-01-16T05:00:00Z")), 16 * HOUR, "06:00, the end: closed");
        assert_eq!(w.wait_ms(at("2026-01-16T06:00:00Z")), 15 * HOUR, "07:00: until 22:00");
        assert_eq!(w.wait_ms(at("2026-01-16T20:30:00Z")), HOUR / 2, "21:30");
    }

    #[test]
    fn the_window_follows_the_clocks_across_daylight_saving_changes() {
        let w = SendingWindow::parse("09:00-17:00", "Europe/Oslo").unwrap();
        // 2026-03-29 02:00 CET the clocks go forward: 18:00 on the 28th to 09:00 CEST on the
        // 29th is 14 hours, not 15.
        assert_eq!(w.wait_ms(at("2026-03-28T17:00:00Z")), 14 * HOUR);
        // 2026-10-25 03:00 CEST the clocks go back: 18:00 on the 24th to 09:00 CET is 16 hours.
        assert_eq!(w.wait_ms(at("2026-10-24T16:00:00Z")), 16 * HOUR);

        // A window that starts in the skipped hour opens when the clocks jump past its start
        // (03:00 CEST, 01:00 UTC), not a day later.
        let night = SendingWindow::parse("02:30-05:00", "Europe/Oslo").unwrap();
        assert_eq!(night.wait_ms(at("2026-03-28T23:00:00Z")), 2 * HOUR, "from 00:00 CET");
        assert_eq!(night.wait_ms(at("2026-03-29T01:30:00Z")), 0, "03:30 CEST: open");
        // A start the clocks pass twice opens at the first pass (02:30 CEST, 00:30 UTC).
        assert_eq!(night.wait_ms(at("2026-10-24T22:00:00Z")), 2 * HOUR + HOUR / 2, "00:00 CEST");
    }
}
