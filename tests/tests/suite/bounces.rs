//! Delivery truth from a plain SMTP relay: every email's envelope sender is its notification's
//! signed bounce address, varsel asks for notifications of successes too (`NOTIFY`), a real
//! Postfix relays to destination servers that accept, refuse and defer, and the delivery status
//! notifications Postfix itself writes come back to varsel's inbound SMTP listener and move each
//! notification.

use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use varsel_tests::postfix::Postfix;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, eventually, free_port};

const T: Duration = Duration::from_secs(60);
const BOUNCE_DOMAIN: &str = "bounces.varsel.test";

/// Talks SMTP to `addr`: sends each line and returns the server's replies, the greeting first.
/// A line `DATA:<text>` sends `DATA`, then the text and the final dot.
async fn smtp(addr: std::net::SocketAddr, lines: &[String]) -> Vec<String> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut replies = Vec::new();
    async fn read_reply(r: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).await.expect("read") == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all.trim_end().to_owned();
            }
        }
    }
    replies.push(read_reply(&mut r).await);
    for line in lines {
        if let Some(text) = line.strip_prefix("DATA:") {
            w.write_all(b"DATA\r\n").await.expect("write");
            replies.push(read_reply(&mut r).await);
            w.write_all(format!("{text}\r\n.\r\n").as_bytes()).await.expect("write");
        } else {
            w.write_all(format!("{line}\r\n").as_bytes()).await.expect("write");
        }
        replies.push(read_reply(&mut r).await);
    }
    replies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postfix_deliveries_bounces_and_delays_move_notifications_and_forged_addresses_are_refused()
{
    // One destination server for three domains: `rejected*` get 550, `outage*` 451 while the
    // outage is on, everyone else is accepted.
    let destination = SmtpServer::start_flaky();
    destination.set_outage(true);
    let relay_port = free_port();
    let mut opts = TestAppOptions::new(Db::Sqlite, format!("smtp://127.0.0.1:{relay_port}"));
    opts.tweak = Box::new(|c| {
        c.email.bounce_domain = BOUNCE_DOMAIN.into();
        c.email.bounce_listen = "127.0.0.1:0".into();
        c.email.dsn_notify = true;
    });
    let app = TestApp::spawn(opts).await;
    let listener = app.bounce_addr.expect("the bounce listener runs");
    let postfix = Postfix::start(
        relay_port,
        &[
            ("accept.test", destination.port),
            ("refuse.test", destination.port),
            ("defer.test", destination.port),
            (BOUNCE_DOMAIN, listener.port()),
        ],
        Duration::from_secs(6),
    );

    let id = app
        .order(
            "/orders/email",
            &json!({"subject": "Hei", "body": "Fra varsel.", "recipients": [
                {"emailAddress": "ola@accept.test"},
                {"emailAddress": "rejected-kari@refuse.test"},
                {"emailAddress": "outage-per@defer.test"},
            ]}),
        )
        .await;
    // Each email left with its own signed envelope sender (Postfix logs it as `from=<…>`).
    let (app, postfix, id) = (&app, &postfix, id.as_str());
    let rows = eventually("the three emails are sent", T, || async move {
        let rows = app.store.notifications(id).await.unwrap();
        let sent = rows.iter().filter(|n| !n.status.is_pending()).count();
        if sent == 3 { Ok(rows) } else { Err(format!("{sent} of 3 sent: {rows:?}")) }
    })
    .await;
    let rows = &rows;
    eventually("Postfix received the three emails from their bounce addresses", T, || async move {
        let log = postfix.maillog();
        let senders = rows
            .iter()
            .filter(|n| {
                let tag = uuid::Uuid::parse_str(&n.id).unwrap().simple().to_string();
                log.contains(&format!("from=<b-{tag}-"))
            })
            .count();
        if senders == 3 { Ok(()) } else { Err(format!("{senders} of 3 senders in:\n{log}")) }
    })
    .await;

    // The accepted one is reported relayed (the destination knows no DSN): delivered. The
    // refused one bounces at once; the deferred one is first reported delayed (and stays open),
    // then, when Postfix gives up on it, failed.
    let status_of = |address: &'static str| async move {
        let rows = app.store.notifications(id).await.unwrap();
        let n = rows.into_iter().find(|n| n.address == address).unwrap();
        (n.status.as_str().to_owned(), n.status_reason.unwrap_or_default(), n.id)
    };
    let status_of = &status_of;
    // Waits until the email to `address` has `status` and its reason holds each of `words`.
    let reaches = |address: &'static str, status: &'static str, words: &'static [&'static str]| {
        eventually(
            format!("the email to {address} is {status} with {words:?}"),
            T,
            move || async move {
                let (now, reason, _) = status_of(address).await;
                if now == status && words.iter().all(|w| reason.contains(w)) {
                    Ok(())
                } else {
                    Err(format!("{now}: {reason}"))
                }
            },
        )
    };
    reaches(
        "rejected-kari@refuse.test",
        "Email_Failed_Bounced",
        &[
            "failed 5.1.1: smtp; 550 5.1.1 mailbox unavailable",
            "reported by dns; relay.varsel.test",
        ],
    )
    .await;
    let (_, _, deferred) = status_of("outage-per@defer.test").await;
    let deferred = &deferred;
    eventually("the deferred email's delay notice is in its events", T, || async move {
        let events = app.store.notification_events(id).await.unwrap();
        let delay = events.iter().find(|e| {
            &e.notification_id == deferred
                && e.detail.as_deref().is_some_and(|d| d.contains("delayed 4.3.2"))
        });
        match delay {
            Some(e) => {
                assert_eq!(e.status.as_str(), "Email_Succeeded", "a delay keeps it open");
                Ok(())
            }
            None => Err(format!("{events:?}")),
        }
    })
    .await;
    // When Postfix gives up on the deferred one, it fails.
    reaches("outage-per@defer.test", "Email_Failed", &["failed 4.3.2"]).await;
    reaches("ola@accept.test", "Email_Delivered", &["relayed 2.0.0"]).await;
    assert_eq!(destination.messages().len(), 1, "only ola's email arrived");
    // Every notification waited for its report; the last one completes the order.
    app.wait_status(id, "Completed", T).await;

    // Straight to the listener: a forged tag, an unknown local part, another domain are refused
    // at RCPT; a valid address takes only a report.
    let good = |n: &varsel_activities::store::Notification| {
        varsel_activities::providers::bounce_address::BounceAddresses::new(
            BOUNCE_DOMAIN,
            app.config.reports.secret.expose().as_bytes(),
        )
        .address_for(&n.id)
        .unwrap()
    };
    let valid = good(&rows[0]);
    // `b-<id>-<tag>`: the same id with another tag.
    let forged = format!("{}-{}@{BOUNCE_DOMAIN}", &valid[..34], "0".repeat(16));
    let replies = smtp(
        listener,
        &[
            "EHLO relay.test".into(),
            "MAIL FROM:<>".into(),
            format!("RCPT TO:<{forged}>"),
            format!("RCPT TO:<postmaster@{BOUNCE_DOMAIN}>"),
            format!("RCPT TO:<{}>", valid.replace(BOUNCE_DOMAIN, "example.org")),
            "DATA".into(),
            format!("RCPT TO:<{valid}>"),
            "DATA:Subject: out of office\r\n\r\nI am away.".into(),
            "QUIT".into(),
        ],
    )
    .await;
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "550", "550", "550", "503", "250", "354", "550", "221"],
        "{replies:#?}"
    );
    assert!(replies[9].contains("neither a delivery status notification"), "{replies:#?}");

    // A mailbox provider's complaint (ARF) about a delivered email: accepted, kept in its events.
    let ola = rows.iter().find(|n| n.address == "ola@accept.test").unwrap();
    let arf = "From: fbl@isp.test\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=feedback-report; boundary=\"A\"\r\n\r\n\
        --A\r\nContent-Type: text/plain\r\n\r\nAn abuse report.\r\n\
        --A\r\nContent-Type: message/feedback-report\r\n\r\n\
        Feedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\n\
        --A--";
    let replies = smtp(
        listener,
        &[
            "HELO isp.test".into(),
            "MAIL FROM:<fbl@isp.test>".into(),
            format!("RCPT TO:<{}>", good(ola)),
            format!("DATA:{arf}"),
            "QUIT".into(),
        ],
    )
    .await;
    assert!(replies[5].starts_with("250"), "{replies:#?}");
    let events = app.store.notification_events(id).await.unwrap();
    assert!(
        events.iter().any(|e| e.notification_id == ola.id
            && e.detail
                .as_deref()
                .is_some_and(|d| d.contains("the recipient complained (ARF feedback type abuse)"))),
        "{events:#?}"
    );
    drop(destination);
}
