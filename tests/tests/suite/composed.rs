//! Composed emails (`POST /future/orders/composed-email`) against the real stack: files fetched
//! from a file server when the email is sent and attached as MIME parts at a real SMTP server;
//! files that cannot be fetched (a refused answer, another type, a redirect to a metadata
//! address) end `Email_Failed_InvalidSasUrl`, too large ones `Email_Failed_PayloadTooLarge`;
//! a relay's 552 ends it `Email_Failed_PayloadTooLarge` too; private destinations refused when
//! ordered; their own task queue; their own scope; Altinn's validation messages.

use poem::http::StatusCode;
use poem::web::Path;
use poem::{Response, Route, get, handler, listener::Acceptor, listener::Listener};
use serde_json::{Value, json};
use std::time::Duration;
use varsel_api::auth::COMPOSED_EMAIL_SCOPE;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions};

const T: Duration = Duration::from_secs(60);

/// A PDF-like file with bytes that are not UTF-8, so the test sees them survive base64.
fn pdf() -> Vec<u8> {
    let mut bytes = b"%PDF-1.4\n".to_vec();
    bytes.extend((0..=255u8).cycle().take(5000));
    bytes
}

const NOTE: &str = "Vedtak i sak 4711.\nMed vennlig hilsen, Etaten\n";

/// The message size limit of the test app: the two files fit, `big.zip` does not.
const LIMIT: u64 = 64 * 1024;

#[handler]
fn file(Path(name): Path<String>) -> Response {
    let ok = |kind: &str, body: Vec<u8>| {
        Response::builder().status(StatusCode::OK).content_type(kind).body(body)
    };
    match name.as_str() {
        "vedtak.pdf" => ok("application/pdf", pdf()),
        "notat.txt" => ok("text/plain; charset=utf-8", NOTE.as_bytes().to_vec()),
        // Served as a blob store serves a file stored without a type.
        "big.zip" => ok("application/octet-stream", vec![7u8; (LIMIT * 2) as usize]),
        // A login page where a PDF should be.
        "login.pdf" => ok("text/html", b"<html>Log in</html>".to_vec()),
        // An expired SAS signature.
        "expired.pdf" => Response::builder().status(StatusCode::FORBIDDEN).body("expired"),
        // A redirect to the cloud metadata address.
        "metadata.pdf" => Response::builder()
            .status(StatusCode::FOUND)
            .header("Location", "http://169.254.169.254/latest/meta-data/")
            .finish(),
        _ => Response::builder().status(StatusCode::NOT_FOUND).finish(),
    }
}

/// A file server on loopback (allow-listed in the test app's `attachment_allowed_hosts`).
async fn file_server() -> String {
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().expect("tcp").port();
    let app = Route::new().at("/files/:name", get(file));
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    format!("http://127.0.0.1:{port}/files")
}

fn request(id: &str, to: &str, files: Value) -> Value {
    json!({
        "idempotencyId": id,
        "sendersReference": "ref-composed",
        "recipient": {
            "emailAddress": to,
            "emailSettings": {"subject": "Vedtak", "body": "Se vedlagt vedtak.", "attachments": files}
        }
    })
}

fn attachment(name: &str, mime: &str, url: String) -> Value {
    json!({"filename": name, "mimeType": mime, "sasUrl": url})
}

async fn post(app: &TestApp, body: &Value) -> (u16, Value) {
    let token = app.token_with(&json!({
        "iss": varsel_api::auth::DEV_ISSUER,
        "scope": COMPOSED_EMAIL_SCOPE,
        "urn:altinn:org": "ttd",
        "exp": chrono::Utc::now().timestamp() + 600,
    }));
    let resp = app
        .http
        .post(format!("{}/notifications/api/v1/future/orders/composed-email", app.base_url))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// Posts a composed email that must be accepted, and waits for its order to complete; its one
/// notification's status and reason.
async fn sent(app: &TestApp, body: &Value) -> (String, String) {
    let (status, answer) = post(app, body).await;
    assert_eq!(status, 201, "{answer}");
    let shipment = answer["notification"]["shipmentId"].as_str().unwrap().to_owned();
    app.wait_status(&shipment, "Completed", T).await;
    let n = app.store.notifications(&shipment).await.unwrap().remove(0);
    (n.status.as_str().to_owned(), n.status_reason.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_composed_email_arrives_with_its_files_as_mime_parts() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| c.email.max_message_bytes = LIMIT);
    let app = TestApp::spawn(opts).await;
    let files = file_server().await;

    // Two files: the email leaves with both, as the server served them.
    let body = request(
        "composed-1",
        "kari@example.no",
        json!([
            attachment("vedtak.pdf", "application/pdf", format!("{files}/vedtak.pdf")),
            attachment("notat.txt", "text/plain", format!("{files}/notat.txt")),
        ]),
    );
    let (status, first) = post(&app, &body).await;
    assert_eq!(status, 201, "{first}");
    let shipment = first["notification"]["shipmentId"].as_str().unwrap().to_owned();
    app.wait_status(&shipment, "Completed", T).await;
    let raw = smtp.raw_messages();
    assert_eq!(raw.len(), 1);
    let mail = mailparse::parse_mail(&raw[0]).unwrap();
    assert_eq!(mail.ctype.mimetype, "multipart/mixed");
    assert_eq!(mail.subparts.len(), 3, "the body and two files");
    assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(mail.subparts[0].get_body().unwrap().trim_end(), "Se vedlagt vedtak.");
    let part = |i: usize| {
        let p = &mail.subparts[i];
        let disposition = p.get_content_disposition();
        (
            p.ctype.mimetype.clone(),
            disposition.disposition,
            disposition.params.get("filename").cloned(),
            p.get_body_raw().unwrap(),
        )
    };
    assert_eq!(
        part(1),
        (
            "application/pdf".into(),
            mailparse::DispositionType::Attachment,
            Some("vedtak.pdf".into()),
            pdf()
        )
    );
    assert_eq!(
        part(2),
        (
            "text/plain".into(),
            mailparse::DispositionType::Attachment,
            Some("notat.txt".into()),
            NOTE.as_bytes().to_vec()
        )
    );
    let manifest: Value =
        app.get(&format!("/future/shipment/{shipment}"), "ttd").await.json().await.unwrap();
    assert_eq!(manifest["type"], "Composed", "{manifest}");
    assert_eq!(manifest["recipients"][0]["status"], "Email_Succeeded", "{manifest}");
    // Sent on the composed emails' own task queue, as its history shows.
    let history: Value =
        app.get(&format!("/orders/{shipment}/history"), "ttd").await.json().await.unwrap();
    let queue = format!("; task queue {}-composed", app.config.temporal.task_queue);
    assert!(
        history["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["text"].as_str().is_some_and(|t| t.ends_with(&queue))),
        "{queue} in {history}"
    );
    // A repeat: the first answer, nothing sent again.
    let (status, again) = post(&app, &body).await;
    assert_eq!((status, &again), (200, &first));
    assert_eq!(smtp.count(), 1);

    // What cannot be fetched, or is too large, ends the email; nothing is sent.
    let failures = [
        ("expired.pdf", "application/pdf", "Email_Failed_InvalidSasUrl", "HTTP 403"),
        ("login.pdf", "application/pdf", "Email_Failed_InvalidSasUrl", "serves text/html"),
        ("metadata.pdf", "application/pdf", "Email_Failed_InvalidSasUrl", "169.254.169.254"),
        ("big.zip", "application/zip", "Email_Failed_PayloadTooLarge", "size limit"),
    ];
    for (i, (name, mime, want, why)) in failures.into_iter().enumerate() {
        let body = request(
            &format!("composed-fail-{i}"),
            "ola@example.no",
            json!([attachment(name, mime, format!("{files}/{name}"))]),
        );
        let (status, reason) = sent(&app, &body).await;
        assert_eq!(status, want, "{name}: {reason}");
        assert!(reason.contains(why), "{name}: {reason}");
    }
    assert_eq!(smtp.count(), 1, "no failed email was sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_relay_refuses_as_too_large_fails_payload_too_large() {
    // The relay takes 4 KiB at most; the PDF alone is over 5 KB, and a third more as base64.
    let smtp = SmtpServer::start_with_size_limit(4096);
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, smtp.url())).await;
    let files = file_server().await;
    let body = request(
        "composed-relay-552",
        "kari@example.no",
        json!([attachment("vedtak.pdf", "application/pdf", format!("{files}/vedtak.pdf"))]),
    );
    let (status, reason) = sent(&app, &body).await;
    assert_eq!(status, "Email_Failed_PayloadTooLarge", "{reason}");
    assert!(reason.contains("relay refused the message as too large"), "{reason}");
    assert_eq!(smtp.count(), 0);

    // A message within the relay's limit goes through the same relay.
    let body = request(
        "composed-relay-small",
        "kari@example.no",
        json!([attachment("notat.txt", "text/plain", format!("{files}/notat.txt"))]),
    );
    let (status, reason) = sent(&app, &body).await;
    assert_eq!(status, "Email_Succeeded", "{reason}");
    assert_eq!(smtp.count(), 1);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_emails_are_checked_as_altinn_checks_them() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, smtp.url())).await;
    let files = "http://127.0.0.1:9/files";
    let valid = |name: &str| attachment(name, "application/pdf", format!("{files}/{name}"));

    // Only the composed-email scope: the create scope and PlatformAccessToken are not enough.
    let resp = app
        .post(
            "/future/orders/composed-email",
            &request("x", "a@b.no", json!([valid("a.pdf")])),
            "ttd",
        )
        .await;
    assert_eq!(resp.status(), 403);
    let p: Value = resp.json().await.unwrap();
    assert!(p["detail"].as_str().unwrap().contains(COMPOSED_EMAIL_SCOPE), "{p}");
    let resp = app
        .http
        .post(format!("{}/notifications/api/v1/future/orders/composed-email", app.base_url))
        .header("PlatformAccessToken", app.platform_token("ttd"))
        .json(&request("x", "a@b.no", json!([])))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let key = "Recipient.Settings.Attachments[0]";
    let cases: Vec<(Value, String, String)> = vec![
        (
            request("x", "a@b.no", json!([attachment("vedtak", "application/pdf", format!("{files}/v"))])),
            format!("{key}.Filename"),
            "Attachment 'vedtak': filename must not contain path separators, and must include a file extension.".into(),
        ),
        (
            request("x", "a@b.no", json!([attachment("", "application/pdf", format!("{files}/v"))])),
            format!("{key}.Filename"),
            "Attachment filename must not be empty.".into(),
        ),
        (
            request("x", "a@b.no", json!([attachment("a.exe", "application/x-msdownload", format!("{files}/a.exe"))])),
            format!("{key}.MimeType"),
            "Attachment 'a.exe': mimeType is not supported. Refer to ACS documentation for the list of accepted MIME types.".into(),
        ),
        (
            request("x", "a@b.no", json!([attachment("a.pdf", "application/pdf", "ftp://files.example.no/a.pdf".into())])),
            format!("{key}.SasUrl"),
            "Attachment 'a.pdf': sasUrl must be an absolute HTTPS URI.".into(),
        ),
        (
            // http only for a listed host.
            request("x", "a@b.no", json!([attachment("a.pdf", "application/pdf", "http://files.example.no/a.pdf".into())])),
            format!("{key}.SasUrl"),
            "Attachment 'a.pdf': sasUrl must be an absolute HTTPS URI.".into(),
        ),
        (
            request("x", "a@b.no", json!([attachment("a.pdf", "application/pdf", "https://acct.blob.core.windows.net/c/a.pdf?sp=r&sig=x".into())])),
            format!("{key}.SasUrl"),
            "Attachment 'a.pdf': sasUrl is missing required SAS parameters (se, sig, sp, sr).".into(),
        ),
        (
            request("x", "a@b.no", json!([attachment("a.pdf", "application/pdf", "https://acct.blob.core.windows.net/c/a.pdf?se=2099-01-01T00%3A00%3A00Z&sp=w&sr=b&sig=x".into())])),
            format!("{key}.SasUrl"),
            "Attachment 'a.pdf': sasUrl does not grant read permission ('r' must be present in 'sp').".into(),
        ),
        (
            request("x", "a@b.no", json!([attachment("a.pdf", "application/pdf", "https://acct.blob.core.windows.net/c/a.pdf?se=2020-01-01T00%3A00%3A00Z&sp=r&sr=b&sig=x".into())])),
            key.to_owned(),
            "Attachment 'a.pdf': sasUrl must be valid for at least 15 minutes after requestedSendTime.".into(),
        ),
        (
            request("x", "a@b.no", json!([null])),
            key.to_owned(),
            "Attachment item must not be null.".into(),
        ),
        (
            request("x", "not-an-address", json!([])),
            "Recipient.EmailAddress".into(),
            "Invalid email address format.".into(),
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"emailAddress": "a@b.no"}}),
            "Recipient.Settings".into(),
            "Recipient email settings cannot be null.".into(),
        ),
        (
            json!({"idempotencyId": "x", "recipient": {"emailAddress": "a@b.no", "emailSettings": {"body": "b"}}}),
            "Recipient.Settings.Subject".into(),
            "The email subject must not be empty.".into(),
        ),
        (
            json!({"recipient": {"emailAddress": "a@b.no", "emailSettings": {"subject": "s", "body": "b"}}}),
            "IdempotencyId".into(),
            "IdempotencyId cannot be null or empty.".into(),
        ),
    ];
    for (body, key, message) in cases {
        let (status, p) = post(&app, &body).await;
        assert_eq!(status, 400, "{body}: {p}");
        let errors = p["errors"][&key].as_array().unwrap_or_else(|| panic!("{key} in {p}"));
        assert!(errors.iter().any(|e| e == message.as_str()), "{key}: {p}");
    }

    // Private, loopback (other than the allow-listed address) and metadata destinations are
    // refused when the email is ordered, whatever the scheme.
    for url in [
        "https://169.254.169.254/latest/meta-data/a.pdf",
        "https://10.0.0.5/a.pdf",
        "https://[::1]/a.pdf",
        "http://127.0.0.2/a.pdf",
    ] {
        let (status, p) = post(
            &app,
            &request("x", "a@b.no", json!([attachment("a.pdf", "application/pdf", url.into())])),
        )
        .await;
        assert_eq!(status, 400, "{url}: {p}");
        assert!(p["errors"][format!("{key}.SasUrl")].is_array(), "{url}: {p}");
    }
    let stored = app.store.orders_by_senders_reference("ttd", "ref-composed").await.unwrap();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    app.stop().await;
}
