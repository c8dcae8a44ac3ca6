//! What a mail to a bounce address says: a delivery status notification (RFC 3464, from any
//! relay or destination server) or a complaint report (ARF, RFC 5965, from a mailbox provider's
//! feedback loop), read as the status of the one notification the address names.
//!
//! | report | status |
//! |---|---|
//! | DSN `Action: failed`, `Status: 5.x.x` (a permanent failure: no such mailbox, refused) | `Email_Failed_Bounced` |
//! | DSN `Action: failed`, any other status (given up after retrying: 4.x.x) | `Email_Failed` |
//! | DSN `Action: delayed` | none: still `Email_Succeeded`, the notice kept for operators |
//! | DSN `Action: delivered`, `relayed` or `expanded` | `Email_Delivered` |
//! | ARF complaint (`Feedback-Type: abuse`, …) | `Email_Delivered`: it arrived, and the recipient complained |
//!
//! The reason keeps the relay's words (status, diagnostic code, who reported it) for operators.

use mail_parser::{MessageParser, MimeHeaders};
use varsel_workflows::domain::NotificationStatus;

/// The longest reason kept, in characters.
const MAX_REASON: usize = 500;
/// The most of a report's machine-readable part kept as the raw report, in bytes.
const MAX_RAW: usize = 8 * 1024;

/// A report mail read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BounceReport {
    /// The status it reports (`Email_Succeeded` for a delay: no change).
    pub status: NotificationStatus,
    /// The relay's words.
    pub reason: String,
    /// The machine-readable part as received (`message/delivery-status` or
    /// `message/feedback-report`), without the copy of the original email.
    pub raw: String,
}

/// Why a mail is not a report varsel can apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotAReport {
    /// Not MIME at all.
    #[error("not a MIME message")]
    Unparsable,
    /// No `message/delivery-status` or `message/feedback-report` part.
    #[error("neither a delivery status notification (RFC 3464) nor a complaint report (RFC 5965)")]
    NoReportPart,
    /// A DSN without a recipient with a known `Action`.
    #[error("the delivery status notification names no recipient with a known action")]
    NoRecipient,
}

/// Reads a report mail (the whole message as received by SMTP).
pub fn read_report(message: &[u8]) -> Result<BounceReport, NotAReport> {
    let parsed = MessageParser::default().parse(message).ok_or(NotAReport::Unparsable)?;
    for part in &parsed.parts {
        let Some(ct) = part.content_type() else { continue };
        if !ct.ctype().eq_ignore_ascii_case("message") {
            continue;
        }
        let subtype = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        let text = String::from_utf8_lossy(part.contents());
        match subtype.as_str() {
            "delivery-status" | "global-delivery-status" => return delivery_status(&text),
            "feedback-report" => return Ok(complaint(&text)),
            _ => {}
        }
    }
    Err(NotAReport::NoReportPart)
}

/// A DSN's `message/delivery-status` body: the per-message fields, then a group of fields for
/// each recipient. varsel sends each email to one recipient; should a report name several, the
/// most decisive answer counts (failed over delivered over delayed).
fn delivery_status(text: &str) -> Result<BounceReport, NotAReport> {
    let groups = field_groups(text);
    let reporter = groups.first().and_then(|g| field(g, "reporting-mta"));
    let (action, group) = groups
        .iter()
        .skip(1)
        .filter_map(|g| {
            let action = field(g, "action")?.to_ascii_lowercase();
            let weight = match action.as_str() {
                "failed" => 3,
                "delivered" | "relayed" | "expanded" => 2,
                "delayed" => 1,
                _ => return None,
            };
            Some((weight, action, g))
        })
        .max_by_key(|(weight, _, _)| *weight)
        .map(|(_, action, g)| (action, g))
        .ok_or(NotAReport::NoRecipient)?;
    let code = field(group, "status").unwrap_or_default();
    let status = match action.as_str() {
        "failed" if code.starts_with('5') => NotificationStatus::EmailFailedBounced,
        "failed" => NotificationStatus::EmailFailed,
        "delayed" => NotificationStatus::EmailSucceeded,
        _ => NotificationStatus::EmailDelivered,
    };
    let mut reason = format!("{action} {code}").trim_end().to_owned();
    if let Some(diagnostic) = field(group, "diagnostic-code") {
        reason.push_str(&format!(": {diagnostic}"));
    }
    if let Some(mta) = field(group, "remote-mta") {
        reason.push_str(&format!(" (remote {mta})"));
    }
    if let Some(r) = reporter {
        reason.push_str(&format!(", reported by {r}"));
    }
    Ok(BounceReport { status, reason: bounded(&reason, MAX_REASON), raw: bounded(text, MAX_RAW) })
}

/// An ARF report's `message/feedback-report` body.
fn complaint(text: &str) -> BounceReport {
    let fields: Vec<(String, String)> = field_groups(text).into_iter().flatten().collect();
    let kind = field(&fields, "feedback-type").unwrap_or("abuse");
    let mut reason = format!("the recipient complained (ARF feedback type {kind})");
    if let Some(agent) = field(&fields, "user-agent") {
        reason.push_str(&format!(", reported by {agent}"));
    }
    BounceReport {
        status: NotificationStatus::EmailDelivered,
        reason: bounded(&reason, MAX_REASON),
        raw: bounded(text, MAX_RAW),
    }
}

/// `Name: value` fields in groups separated by blank lines, names lowercased, folded lines
/// joined (RFC 3464 §2.1 uses RFC 822 header syntax).
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = Vec::new();
    let mut group: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !group.is_empty() {
                groups.push(std::mem::take(&mut group));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn bounded(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    // PostgreSQL's text holds no NUL.
    s[..end].replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(per_recipient: &str) -> Vec<u8> {
        format!(
            "From: MAILER-DAEMON@relay.test (Mail Delivery System)\r\n\
             To: b-x@bounces.test\r\n\
             Subject: Undelivered Mail Returned to Sender\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status;\r\n\
             \tboundary=\"B1\"\r\n\
             \r\n\
             --B1\r\n\
             Content-Type: text/plain; charset=us-ascii\r\n\
             \r\n\
             I'm sorry to have to inform you that your message could not be delivered.\r\n\
             \r\n\
             --B1\r\n\
             Content-Type: message/delivery-status\r\n\
             \r\n\
             Reporting-MTA: dns; relay.test\r\n\
             Arrival-Date: Wed,  2 Dec 2026 10:00:00 +0000 (UTC)\r\n\
             \r\n\
             {per_recipient}\
             \r\n\
             --B1\r\n\
             Content-Type: text/rfc822-headers\r\n\
             \r\n\
             Message-ID: <8c1f@varsel>\r\n\
             Subject: Hello\r\n\
             \r\n\
             --B1--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn a_permanent_failure_is_a_bounce_with_the_relays_words() {
        let r = read_report(&dsn("Final-Recipient: rfc822; ola@refuse.test\r\n\
             Original-Recipient: rfc822;ola@refuse.test\r\n\
             Action: failed\r\n\
             Status: 5.1.1\r\n\
             Remote-MTA: dns; 127.0.0.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 <ola@refuse.test>: Recipient address\r\n\
             \x20   rejected: no such user\r\n"))
        .unwrap();
        assert_eq!(r.status, NotificationStatus::EmailFailedBounced);
        assert_eq!(
            r.reason,
            "failed 5.1.1: smtp; 550 5.1.1 <ola@refuse.test>: Recipient address rejected: no \
             such user (remote dns; 127.0.0.1), reported by dns; relay.test"
        );
        assert!(r.raw.starts_with("Reporting-MTA: dns; relay.test"), "{}", r.raw);
        assert!(!r.raw.contains("Message-ID"), "the original's copy is not kept: {}", r.raw);
    }

    #[test]
    fn each_action_has_its_status() {
        let cases = [
            ("failed", "4.4.1", NotificationStatus::EmailFailed),
            ("delayed", "4.4.1", NotificationStatus::EmailSucceeded),
            ("delivered", "2.0.0", NotificationStatus::EmailDelivered),
            ("Relayed", "2.0.0", NotificationStatus::EmailDelivered),
            ("expanded", "2.0.0", NotificationStatus::EmailDelivered),
        ];
        for (action, status, expected) in cases {
            let body = format!(
                "Final-Recipient: rfc822; a@b.test\r\nAction: {action}\r\nStatus: {status}\r\n"
            );
            assert_eq!(read_report(&dsn(&body)).unwrap().status, expected, "{action}");
        }
        let unknown = dsn("Final-Recipient: rfc822; a@b.test\r\nAction: exploded\r\n");
        assert_eq!(read_report(&unknown), Err(NotAReport::NoRecipient));
        let two =
            dsn("Final-Recipient: rfc822; a@b.test\r\nAction: delayed\r\nStatus: 4.0.0\r\n\r\n\
                       Final-Recipient: rfc822; c@b.test\r\nAction: failed\r\nStatus: 5.0.0\r\n");
        assert_eq!(read_report(&two).unwrap().status, NotificationStatus::EmailFailedBounced);
    }

    #[test]
    fn a_complaint_report_says_it_arrived_and_who_complained() {
        let arf = b"From: fbl@isp.test\r\n\
            MIME-Version: 1.0\r\n\
            Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\
            \r\n\
            --A\r\n\
            Content-Type: text/plain\r\n\
            \r\n\
            This is an email abuse report.\r\n\
            --A\r\n\
            Content-Type: message/feedback-report\r\n\
            \r\n\
            Feedback-Type: abuse\r\n\
            User-Agent: SomeISP-FBL/1.0\r\n\
            Version: 1\r\n\
            --A\r\n\
            Content-Type: message/rfc822\r\n\
            \r\n\
            Message-ID: <8c1f@varsel>\r\n\
            Subject: Hello\r\n\
            \r\n\
            Hello\r\n\
            --A--\r\n";
        let r = read_report(arf).unwrap();
        assert_eq!(r.status, NotificationStatus::EmailDelivered);
        assert_eq!(
            r.reason,
            "the recipient complained (ARF feedback type abuse), reported by SomeISP-FBL/1.0"
        );
    }

    #[test]
    fn other_mail_is_not_a_report() {
        let plain = b"From: someone@x.test\r\nSubject: out of office\r\n\r\nI am away.\r\n";
        assert_eq!(read_report(plain), Err(NotAReport::NoReportPart));
    }
}
