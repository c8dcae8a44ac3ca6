//! The inbound SMTP listener (`bounce_listen`; in `serve`, `dev`, and alone as `varsel bounces`):
//! the mail exchanger of the bounce domain. It takes mail only for valid bounce addresses
//! (`providers::bounce_address`: anything else, forged or guessed, is refused at `RCPT` with 550),
//! reads each message as a delivery status notification or a complaint report
//! (`varsel_activities::bounces`) and applies it as a delivery report to the notification its
//! address names, through the same path as every other report. It answers 250 only once the
//! report is stored: a database that is down gets 451, and the relay tries again later.
//!
//! smtp-proto parses the commands; the session (which command may come when, the size limit,
//! timeouts) is here. No TLS and no AUTH: it receives only what any MX receives from the
//! internet, and it trusts nothing but the signature in the address.

use smtp_proto::request::receiver::{DataReceiver, DummyDataReceiver, RequestReceiver};
use smtp_proto::{Error as SmtpError, Request};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use varsel_activities::events::{OrderEvents, apply_and_notify};
use varsel_activities::metrics::Metrics;
use varsel_activities::providers::bounce_address::BounceAddresses;
use varsel_activities::store::{Report, ReportTarget};
use varsel_activities::{Store, bounces};
use varsel_workflows::domain::Channel;

/// Sessions served at once; more are answered 421 and closed.
const MAX_SESSIONS: usize = 256;
/// How long a client may stay silent.
const IDLE: Duration = Duration::from_secs(120);
/// How long one session may last, whatever it does.
const SESSION_LIMIT: Duration = Duration::from_secs(600);
/// Recipients one message may have (a report is about one notification; relays merge few).
const MAX_RECIPIENTS: usize = 100;
/// Bad commands before the session is closed.
const MAX_ERRORS: usize = 10;
/// How long a stopping listener lets its sessions finish.
const DRAIN: Duration = Duration::from_secs(10);

/// What a session needs.
struct Inbound {
    addresses: BounceAddresses,
    store: Store,
    events: Arc<dyn OrderEvents>,
    metrics: Metrics,
    hostname: String,
    max_bytes: usize,
}

/// The bound listener.
pub struct BounceListener {
    listener: TcpListener,
    inbound: Arc<Inbound>,
}

impl BounceListener {
    /// Binds `listen` for the bounce addresses `addresses`.
    pub async fn bind(
        listen: &str,
        addresses: BounceAddresses,
        max_bytes: usize,
        store: Store,
        events: Arc<dyn OrderEvents>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on VARSEL_BOUNCE_LISTEN={listen}: {e}"))?;
        let hostname = addresses.domain().to_owned();
        Ok(Self {
            listener,
            inbound: Arc::new(Inbound { addresses, store, events, metrics, hostname, max_bytes }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves; then lets sessions in progress finish for a few seconds.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut sessions = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((mut stream, peer)) if sessions.len() >= MAX_SESSIONS => {
                        tracing::warn!(%peer, "bounce listener: too many sessions; refused");
                        sessions.spawn(async move {
                            let _ = stream.write_all(b"421 4.3.2 too busy, try again later\r\n").await;
                        });
                    }
                    Ok((stream, peer)) => {
                        let inbound = self.inbound.clone();
                        sessions.spawn(async move {
                            match tokio::time::timeout(SESSION_LIMIT, session(&inbound, stream)).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "bounce listener: session ended"),
                                Err(_) => tracing::info!(%peer, "bounce listener: session took too long; closed"),
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "bounce listener: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        let _ =
            tokio::time::timeout(DRAIN, async { while sessions.join_next().await.is_some() {} })
                .await;
    }
}

/// One message in the making.
#[derive(Default)]
struct Transaction {
    mail: bool,
    /// The notifications its recipients name.
    notifications: Vec<String>,
    data: Vec<u8>,
}

enum Phase {
    Commands,
    Data(DataReceiver),
    /// Past the size limit: the rest of the message is read and dropped.
    Discard(DummyDataReceiver),
}

fn reply(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

async fn session(inbound: &Inbound, mut stream: TcpStream) -> std::io::Result<()> {
    let mut out = Vec::new();
    reply(&mut out, &format!("220 {} ESMTP varsel", inbound.hostname));
    stream.write_all(&out).await?;
    let mut requests = RequestReceiver::default();
    let mut phase = Phase::Commands;
    let mut tx = Transaction::default();
    let mut errors = 0;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
            Ok(read) => read?,
            Err(_) => {
                let _ = stream.write_all(b"421 4.4.2 idle too long, closing\r\n").await;
                return Ok(());
            }
        };
        if n == 0 {
            return Ok(());
        }
        let mut bytes = buf[..n].iter();
        out.clear();
        let mut close = false;
        while !close {
            match &mut phase {
                Phase::Commands => {
                    let request = match requests.ingest(&mut bytes) {
                        Ok(request) => request,
                        Err(SmtpError::NeedsMoreData { .. }) => break,
                        Err(e) => {
                            errors += 1;
                            reply(&mut out, &refusal(&e));
                            if errors >= MAX_ERRORS {
                                reply(&mut out, "421 4.7.0 too many errors, closing");
                                close = true;
                            }
                            continue;
                        }
                    };
                    match request {
                        Request::Ehlo { .. } => {
                            tx = Transaction::default();
                            let size = inbound.max_bytes;
                            reply(&mut out, &format!("250-{}", inbound.hostname));
                            reply(&mut out, &format!("250-SIZE {size}"));
                            reply(&mut out, "250-PIPELINING");
                            reply(&mut out, "250-ENHANCEDSTATUSCODES");
                            reply(&mut out, "250 8BITMIME");
                        }
                        Request::Helo { .. } => {
                            tx = Transaction::default();
                            reply(&mut out, &format!("250 {}", inbound.hostname));
                        }
                        Request::Mail { from } => {
                            if tx.mail {
                                reply(&mut out, "503 5.5.1 a message is already begun");
                            } else if from.size > inbound.max_bytes {
                                reply(&mut out, "552 5.3.4 message too big");
                            } else {
                                tx = Transaction { mail: true, ..Default::default() };
                                reply(&mut out, "250 2.1.0 OK");
                            }
                        }
                        Request::Rcpt { to } => {
                            if !tx.mail {
                                reply(&mut out, "503 5.5.1 MAIL first");
                            } else if tx.notifications.len() >= MAX_RECIPIENTS {
                                reply(&mut out, "452 4.5.3 too many recipients");
                            } else if let Some(id) = inbound.addresses.notification_of(&to.address)
                            {
                                tx.notifications.push(id);
                                reply(&mut out, "250 2.1.5 OK");
                            } else {
                                inbound.metrics.bounce_mails.with_label_values(&["refused"]).inc();
                                tracing::info!(
                                    recipient = %to.address,
                                    "bounce listener: refused a recipient that is no bounce address of ours"
                                );
                                reply(&mut out, "550 5.1.1 no such bounce address");
                            }
                        }
                        Request::Data => {
                            if tx.notifications.is_empty() {
                                reply(&mut out, "503 5.5.1 no valid recipients");
                            } else {
                                reply(&mut out, "354 end data with <CR><LF>.<CR><LF>");
                                phase = Phase::Data(DataReceiver::new());
                            }
                        }
                        Request::Rset => {
                            tx = Transaction::default();
                            reply(&mut out, "250 2.0.0 OK");
                        }
                        Request::Noop { .. } => reply(&mut out, "250 2.0.0 OK"),
                        Request::Vrfy { .. } => reply(&mut out, "252 2.5.0 cannot verify"),
                        Request::Quit => {
                            reply(&mut out, "221 2.0.0 bye");
                            close = true;
                        }
                        other => {
                            errors += 1;
                            reply(&mut out, &format!("502 5.5.1 {} not offered", other.name()));
                        }
                    }
                }
                Phase::Data(data) => {
                    let done = data.ingest(&mut bytes, &mut tx.data);
                    if done {
                        phase = Phase::Commands;
                        let answer = receive(inbound, &std::mem::take(&mut tx)).await;
                        reply(&mut out, &answer);
                    } else if tx.data.len() > inbound.max_bytes {
                        phase = Phase::Discard(DummyDataReceiver::new_data(data));
                        tx.data = Vec::new();
                    } else {
                        break;
                    }
                }
                Phase::Discard(rest) => {
                    if rest.ingest(&mut bytes) {
                        phase = Phase::Commands;
                        tx = Transaction::default();
                        inbound.metrics.bounce_mails.with_label_values(&["too_big"]).inc();
                        reply(&mut out, "552 5.3.4 message too big");
                    } else {
                        break;
                    }
                }
            }
            if bytes.len() == 0 && matches!(phase, Phase::Commands) {
                break;
            }
        }
        stream.write_all(&out).await?;
        if close {
            return Ok(());
        }
    }
}

/// The answer to a command smtp-proto could not parse.
fn refusal(e: &SmtpError) -> String {
    match e {
        SmtpError::UnknownCommand => "500 5.5.2 unknown command".into(),
        SmtpError::InvalidSenderAddress => "501 5.1.7 invalid sender address".into(),
        SmtpError::InvalidRecipientAddress => "501 5.1.3 invalid recipient address".into(),
        SmtpError::SyntaxError { syntax } => format!("501 5.5.4 syntax: {syntax}"),
        SmtpError::InvalidParameter { param } => format!("501 5.5.4 invalid parameter {param}"),
        SmtpError::UnsupportedParameter { param } => {
            format!("555 5.5.4 unsupported parameter {param}")
        }
        SmtpError::ResponseTooLong => "500 5.5.6 line too long".into(),
        _ => "500 5.5.2 syntax error".into(),
    }
}

/// Reads a received message and applies it to each notification its recipients name; the reply.
async fn receive(inbound: &Inbound, tx: &Transaction) -> String {
    let read = match bounces::read_report(&tx.data) {
        Ok(read) => read,
        Err(e) => {
            inbound.metrics.bounce_mails.with_label_values(&["not_a_report"]).inc();
            tracing::warn!(error = %e, notifications = ?tx.notifications, "bounce listener: refused a message that is no report");
            return format!("550 5.6.0 {e}");
        }
    };
    for id in &tx.notifications {
        let report = Report {
            target: ReportTarget::Notification(id.clone()),
            status: read.status,
            reason: Some(read.reason.clone()),
            provider_ref: None,
            raw: read.raw.clone(),
        };
        let applied = apply_and_notify(
            &inbound.store,
            &inbound.events,
            &inbound.metrics,
            &report,
            Channel::Email,
            false,
        )
        .await;
        if let Err(e) = applied {
            inbound.metrics.bounce_mails.with_label_values(&["failed"]).inc();
            tracing::error!(notification = %id, error = %e, "bounce listener: could not store a report; the relay will retry");
            return "451 4.3.0 the report could not be stored; try again later".into();
        }
    }
    inbound.metrics.bounce_mails.with_label_values(&["applied"]).inc();
    "250 2.0.0 report received".into()
}
