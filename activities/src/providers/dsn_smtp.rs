//! SMTP that asks the relay for delivery status notifications (RFC 3461), for
//! `VARSEL_EMAIL_DSN_NOTIFY`: `NOTIFY=SUCCESS,FAILURE,DELAY` on the recipient, so that the relay
//! (or the last server that knows DSN) reports a delivery as well as a failure, and `RET=HDRS`, so
//! that a report carries the email's headers, not the whole email. lettre's pooled transport
//! cannot put parameters on `MAIL` and `RCPT`, so these are lettre's own connections (TLS, AUTH,
//! the commands), pooled here. A relay that does not announce `DSN` gets the plain commands.

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt};
use lettre::transport::smtp::extension::{
    ClientId, Extension, MailBodyParameter, MailParameter, RcptParameter,
};
use std::time::Duration;

/// Why a message could not be handed over.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The relay answered with an error, or the connection failed.
    #[error("{0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The relay cannot be used as configured (STARTTLS required but not offered).
    #[error("{0}")]
    Setup(String),
}

impl RelayError {
    /// Whether retrying cannot help (a 5xx answer).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::Smtp(e) if e.is_permanent())
    }

    /// The relay's reply code, when it answered with one.
    pub fn code(&self) -> Option<String> {
        match self {
            Self::Smtp(e) => e.status().map(|c| c.to_string()),
            Self::Setup(_) => None,
        }
    }
}

enum Security {
    Plain,
    StartTls { required: bool, params: TlsParameters },
    Wrapper(TlsParameters),
}

/// A connection, and whether its relay announced DSN.
struct Pooled {
    conn: AsyncSmtpConnection,
    dsn: bool,
}

/// Connections to one relay, at most `pool_size` in use at once.
pub struct DsnRelay {
    host: String,
    port: u16,
    security: Security,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
    idle: std::sync::Mutex<Vec<Pooled>>,
    slots: tokio::sync::Semaphore,
}

impl DsnRelay {
    /// A relay from the same URL as `VARSEL_SMTP_URL` (lettre's forms: `smtp://host:port`,
    /// `smtp://…?tls=required`, `smtp://…?tls=opportunistic`, `smtps://host:port`, with
    /// optional `user:password@`).
    pub fn from_url(url: &str, pool_size: u32, timeout: Duration) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url)?;
        let host = parsed
            .host_str()
            .ok_or_else(|| anyhow::anyhow!("the SMTP URL names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = parsed.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let (security, default_port) = match (parsed.scheme(), tls.as_deref()) {
            ("smtps", _) => (Security::Wrapper(TlsParameters::new(host.clone())?), 465),
            ("smtp", Some("required")) => (
                Security::StartTls { required: true, params: TlsParameters::new(host.clone())? },
                587,
            ),
            ("smtp", Some("opportunistic")) => (
                Security::StartTls { required: false, params: TlsParameters::new(host.clone())? },
                587,
            ),
            ("smtp", None) => (Security::Plain, 587),
            (scheme, tls) => anyhow::bail!("unsupported SMTP URL: scheme {scheme}, tls {tls:?}"),
        };
        let decode = |s: &str| -> anyhow::Result<String> {
            Ok(percent_encoding::percent_decode_str(s).decode_utf8()?.into_owned())
        };
        let credentials = if parsed.username().is_empty() {
            None
        } else {
            Some(Credentials::new(
                decode(parsed.username())?,
                decode(parsed.password().unwrap_or_default())?,
            ))
        };
        Ok(Self {
            port: parsed.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello: ClientId::default(),
            timeout,
            idle: std::sync::Mutex::new(Vec::new()),
            slots: tokio::sync::Semaphore::new(pool_size.max(1) as usize),
        })
    }

    async fn connect(&self) -> Result<Pooled, RelayError> {
        let wrapper = match &self.security {
            Security::Wrapper(params) => Some(params.clone()),
            _ => None,
        };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            wrapper,
            None,
        )
        .await?;
        if let Security::StartTls { required, params } = &self.security {
            if conn.can_starttls() {
                conn.starttls(params.clone(), &self.hello).await?;
            } else if *required {
                conn.abort().await;
                return Err(RelayError::Setup("the relay does not offer STARTTLS".into()));
            }
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials).await?;
        }
        // lettre's server information knows no DSN: ask again, and read it from the answer.
        let ehlo = conn.command(Ehlo::new(self.hello.clone())).await?;
        let dsn = ehlo.message().any(|line| {
            line.split_whitespace().next().is_some_and(|word| word.eq_ignore_ascii_case("DSN"))
        });
        Ok(Pooled { conn, dsn })
    }

    /// Hands `email` over for `envelope`'s recipients, asking for notifications when the relay
    /// knows DSN.
    pub async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), RelayError> {
        let _slot = self.slots.acquire().await.expect("the semaphore is never closed");
        let reused = self.idle.lock().expect("pool lock").pop();
        let mut pooled = match reused {
            Some(mut p) => {
                if p.conn.test_connected().await {
                    p
                } else {
                    self.connect().await?
                }
            }
            None => self.connect().await?,
        };
        match transaction(&mut pooled, envelope, email).await {
            Ok(()) => {
                self.idle.lock().expect("pool lock").push(pooled);
                Ok(())
            }
            Err(e) => {
                // Mid-transaction after an error: this connection is not used again.
                pooled.conn.abort().await;
                Err(e.into())
            }
        }
    }
}

async fn transaction(
    p: &mut Pooled,
    envelope: &Envelope,
    email: &[u8],
) -> Result<(), lettre::transport::smtp::Error> {
    let mut mail = Vec::new();
    if !email.is_ascii() && p.conn.server_info().supports_feature(Extension::EightBitMime) {
        mail.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mut rcpt = Vec::new();
    if p.dsn {
        mail.push(MailParameter::Other { keyword: "RET".into(), value: Some("HDRS".into()) });
        rcpt.push(RcptParameter::Other {
            keyword: "NOTIFY".into(),
            value: Some("SUCCESS,FAILURE,DELAY".into()),
        });
    }
    p.conn.command(Mail::new(envelope.from().cloned(), mail)).await?;
    for to in envelope.to() {
        p.conn.command(Rcpt::new(to.clone(), rcpt.clone())).await?;
    }
    p.conn.command(Data).await?;
    p.conn.message(email).await?;
    Ok(())
}
