//! Email through lettre: pooled SMTP to a relay, or `.eml` files in an outbox folder when no
//! relay is configured.

use lettre::address::{Address, Envelope};
use lettre::message::header::ContentTransferEncoding;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Body, Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::path::PathBuf;
use std::time::Duration;
use varsel_workflows::domain::{EmailContentType, NotificationStatus};

use super::SendError;
use super::attachments::FetchedFile;
use super::bounce_address::BounceAddresses;
use super::dsn_smtp::DsnRelay;

/// How email leaves varsel.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `smtp://host:port` (plain), `smtp://host:port?tls=required` (STARTTLS), `smtps://host:port`
    /// (TLS), with optional `user:password@`. `None` writes to `outbox_dir`.
    pub smtp_url: Option<String>,
    /// Default sender address.
    pub default_from: String,
    /// Folder for the file transport.
    pub outbox_dir: PathBuf,
    /// Pooled SMTP connections at most.
    pub pool_size: u32,
    /// Timeout of connecting, and of one message's whole SMTP exchange.
    pub timeout: Duration,
    /// Bounce addresses (`VARSEL_EMAIL_BOUNCE_DOMAIN`): each email's envelope sender, so that
    /// its delivery status notifications come back to varsel; `None`: the sender address.
    pub bounces: Option<BounceAddresses>,
    /// Ask the relay for delivery status notifications (`VARSEL_EMAIL_DSN_NOTIFY`): successes
    /// as well as failures, through [`DsnRelay`].
    pub dsn_notify: bool,
    /// The largest message handed to the relay, bytes, attachments included; a larger one fails
    /// with `Email_Failed_PayloadTooLarge`, as one the relay refuses as too large (552).
    pub max_message_bytes: u64,
}

/// The longest run of text without a space a header line may hold: lettre folds at spaces,
/// and SMTP allows 998 characters a line (RFC 5322 §2.1.1), less the header's name.
const MAX_HEADER_WORD: usize = 900;

/// A subject as a header can carry it: control characters (a rendered keyword may bring
/// them, whatever the API refused) become spaces, and a run of text too long for one header
/// line is broken with a space, so that the header can be folded.
pub fn header_safe(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut run = 0;
    for c in subject.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' {
            run = 0;
        } else {
            run += c.len_utf8();
            if run > MAX_HEADER_WORD {
                out.push(' ');
                run = c.len_utf8();
            }
        }
        out.push(c);
    }
    out
}

/// One email to send.
#[derive(Debug, Clone)]
pub struct OutgoingEmail {
    /// Notification id; becomes the Message-ID, so a duplicate is recognisable downstream.
    pub notification_id: String,
    /// Sender address; `None` uses the default.
    pub from: Option<String>,
    /// Recipient address.
    pub to: String,
    /// Subject (single line).
    pub subject: String,
    /// Body.
    pub body: String,
    /// Plain or HTML.
    pub content_type: EmailContentType,
    /// Files to attach (a composed email's, fetched); with any, the message is
    /// `multipart/mixed`: the body, then each file as an attachment part.
    pub attachments: Vec<FetchedFile>,
}

/// SMTP's reply to a message over the relay's size limit (RFC 5321 §4.5.3.1.10).
const TOO_LARGE: &str = "552";

fn too_large(reason: String) -> SendError {
    SendError::Permanent { status: NotificationStatus::EmailFailedPayloadTooLarge, reason }
}

enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dsn(Box<DsnRelay>),
    File(AsyncFileTransport<Tokio1Executor>),
}

/// The email sender.
pub struct Mailer {
    transport: Transport,
    default_from: String,
    /// Bound of one message's whole SMTP exchange.
    timeout: Duration,
    bounces: Option<BounceAddresses>,
    max_message_bytes: u64,
}

impl Mailer {
    /// Builds the transport; with no relay configured, says so loudly.
    pub fn new(s: &EmailSettings) -> anyhow::Result<Self> {
        let transport = match &s.smtp_url {
            Some(url) if s.dsn_notify => {
                Transport::Dsn(Box::new(DsnRelay::from_url(url, s.pool_size, s.timeout)?))
            }
            Some(url) => Transport::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?
                    .pool_config(PoolConfig::new().max_size(s.pool_size.max(1)))
                    .timeout(Some(s.timeout))
                    .build(),
            ),
            None => {
                std::fs::create_dir_all(&s.outbox_dir)?;
                tracing::warn!(
                    outbox = %s.outbox_dir.display(),
                    "no SMTP relay configured (VARSEL_SMTP_URL): emails are written as .eml files to the outbox folder, not sent"
                );
                Transport::File(AsyncFileTransport::<Tokio1Executor>::new(&s.outbox_dir))
            }
        };
        Ok(Self {
            transport,
            default_from: s.default_from.clone(),
            timeout: s.timeout,
            bounces: s.bounces.clone(),
            max_message_bytes: s.max_message_bytes,
        })
    }

    /// `smtp` or `outbox`, for metrics and logs.
    pub fn provider(&self) -> &'static str {
        match self.transport {
            Transport::Smtp(_) | Transport::Dsn(_) => "smtp",
            Transport::File(_) => "outbox",
        }
    }

    /// Sends one email. `Ok` carries the provider reference (the Message-ID).
    pub async fn send(&self, mail: OutgoingEmail) -> Result<String, SendError> {
        let from: Mailbox =
            mail.from.as_deref().unwrap_or(&self.default_from).parse().map_err(|e| {
                SendError::Permanent {
                    status: NotificationStatus::EmailFailed,
                    reason: format!("invalid sender address: {e}"),
                }
            })?;
        let to: Mailbox = mail.to.parse().map_err(|e| SendError::Permanent {
            status: NotificationStatus::EmailFailedInvalidFormat,
            reason: format!("invalid recipient address: {e}"),
        })?;
        let message_id = format!("<{}@varsel>", mail.notification_id);
        let content_type = match mail.content_type {
            EmailContentType::Plain => ContentType::TEXT_PLAIN,
            EmailContentType::Html => ContentType::TEXT_HTML,
        };
        // With a bounce domain, the envelope sender (SMTP `MAIL FROM`, the `Return-Path` the
        // destination writes) is the notification's signed bounce address; the From header stays.
        let envelope =
            match self.bounces.as_ref().and_then(|b| b.address_for(&mail.notification_id)) {
                Some(bounce) => {
                    let bounce: Address = bounce.parse().map_err(|e| SendError::Permanent {
                        status: NotificationStatus::EmailFailed,
                        reason: format!("invalid bounce address: {e}"),
                    })?;
                    Some(Envelope::new(Some(bounce), vec![to.email.clone()]).map_err(|e| {
                        SendError::Permanent {
                            status: NotificationStatus::EmailFailed,
                            reason: e.to_string(),
                        }
                    })?)
                }
                None => None,
            };
        // Header injection is impossible by construction: lettre encodes header values, and the
        // subject is made one line of printable text here.
        let mut builder = Message::builder();
        if let Some(envelope) = envelope {
            builder = builder.envelope(envelope);
        }
        let builder = builder
            .from(from)
            .to(to)
            .subject(header_safe(&mail.subject))
            .message_id(Some(message_id.clone()));
        let built = if mail.attachments.is_empty() {
            builder.header(content_type).body(mail.body)
        } else {
            let mut parts = MultiPart::mixed()
                .singlepart(SinglePart::builder().header(content_type).body(mail.body));
            for file in mail.attachments {
                let kind =
                    ContentType::parse(&file.mime_type).map_err(|e| SendError::Permanent {
                        status: NotificationStatus::EmailFailedInvalidSasUrl,
                        reason: format!(
                            "attachment '{}': media type {}: {e}",
                            file.filename, file.mime_type
                        ),
                    })?;
                // Base64 always: a file arrives byte for byte (a text file's line endings too,
                // which 7bit and quoted-printable would rewrite as CRLF).
                let body = Body::new_with_encoding(file.bytes, ContentTransferEncoding::Base64)
                    .expect("base64 encodes any bytes");
                parts = parts.singlepart(Attachment::new(file.filename).body(body, kind));
            }
            builder.multipart(parts)
        };
        let message = built.map_err(|e| SendError::Permanent {
            status: NotificationStatus::EmailFailed,
            reason: e.to_string(),
        })?;
        // Formatted once, and measured as it goes on the wire, encodings included (base64
        // makes files a third larger).
        let bytes = message.formatted();
        let envelope = message.envelope().clone();
        drop(message);
        let size = bytes.len() as u64;
        if size > self.max_message_bytes {
            return Err(too_large(format!(
                "the message is {size} bytes with its attachments; the limit is {} (VARSEL_EMAIL_MAX_MESSAGE_BYTES)",
                self.max_message_bytes
            )));
        }
        // lettre's timeout bounds connecting; a relay that stops answering mid-exchange is
        // cut off here, so one attempt never outlasts the configured timeout. Either SMTP path
        // answers the same way: whether the relay refused for good, and its words.
        let handed = match &self.transport {
            Transport::Smtp(t) => {
                let sent = t.send_raw(&envelope, &bytes);
                tokio::time::timeout(self.timeout, async {
                    sent.await.map(drop).map_err(|e| {
                        (e.is_permanent(), e.status().map(|c| c.to_string()), e.to_string())
                    })
                })
                .await
            }
            Transport::Dsn(relay) => {
                let sent = relay.send(&envelope, &bytes);
                tokio::time::timeout(self.timeout, async {
                    sent.await.map_err(|e| (e.is_permanent(), e.code(), e.to_string()))
                })
                .await
            }
            Transport::File(t) => {
                return t.send_raw(&envelope, &bytes).await.map(|_| message_id).map_err(|e| {
                    SendError::Transient(format!("writing to the outbox failed: {e}"))
                });
            }
        };
        match handed {
            Err(_) => Err(SendError::Transient(format!(
                "SMTP relay did not answer within {:?}",
                self.timeout
            ))),
            Ok(Ok(())) => Ok(message_id),
            Ok(Err((true, Some(code), e))) if code == TOO_LARGE => {
                Err(too_large(format!("SMTP relay refused the message as too large: {e}")))
            }
            Ok(Err((true, _, e))) => Err(SendError::Permanent {
                status: NotificationStatus::EmailFailed,
                reason: format!("SMTP relay refused the message: {e}"),
            }),
            Ok(Err((false, _, e))) => {
                Err(SendError::Transient(format!("SMTP relay unavailable: {e}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::header_safe;

    #[test]
    fn subjects_become_printable_foldable_header_text() {
        assert_eq!(header_safe("a\u{b}b\u{1b}c\r\nd"), "a b c  d");
        let long = header_safe(&"x".repeat(2000));
        assert!(long.split(' ').all(|w| w.len() <= 900), "{}", long.len());
        assert_eq!(long.replace(' ', ""), "x".repeat(2000));
    }
}
