//! Temporal secured as a production cluster is: TLS with the cluster's own CA and a client
//! certificate (mutual TLS), configured through the Temporal SDK's environment variables as for
//! the Temporal CLI. Debian's nginx terminates TLS in front of the dev server and refuses clients
//! without a certificate its CA signed.

use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use varsel_tests::{
    Db, KillOnDrop, SmtpServer, TestApp, TestAppOptions, TlsTemporal, eventually, temporal_address,
};

const EXE: &str = env!("CARGO_BIN_EXE_varsel");

/// The TLS settings of a client the proxy accepts.
fn with_tls(cmd: &mut Command, tls: &TlsTemporal) {
    cmd.env("TEMPORAL_TLS_SERVER_CA_CERT_PATH", &tls.ca)
        .env("TEMPORAL_TLS_CLIENT_CERT_PATH", &tls.client_cert)
        .env("TEMPORAL_TLS_CLIENT_KEY_PATH", &tls.client_key);
}

/// `varsel serve` (API and worker in one process) talks to Temporal only through the proxy,
/// with the CA and client certificate from `TEMPORAL_TLS_*`: an order goes in over HTTP and its
/// email arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_runs_end_to_end_through_a_mutual_tls_temporal() {
    let tls = TlsTemporal::start(&temporal_address());
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Postgres, smtp.url());
    // The harness's own process only reads the database; the order is the TLS process's.
    opts.tweak = Box::new(|c| c.run_worker = false);
    let app = TestApp::spawn(opts).await;
    let port = varsel_tests::port();
    let address = tls.address.clone();
    let mut cmd = app.command(EXE, |c| {
        c.run_api = true;
        c.run_worker = true;
        c.http.listen = format!("127.0.0.1:{port}");
        c.temporal.address = address;
        c.temporal.task_queue = format!("tls-{}", uuid::Uuid::new_v4().simple());
    });
    with_tls(&mut cmd, &tls);
    cmd.arg("serve").stdout(Stdio::null());
    let _serve = KillOnDrop(cmd.spawn().expect("varsel serve"));
    let base = format!("http://127.0.0.1:{port}");
    let (http, base_ref) = (app.http.clone(), &base);
    eventually("the TLS process answers", Duration::from_secs(60), || {
        let http = http.clone();
        async move {
            let r = http.get(format!("{base_ref}/health")).send().await.ok()?;
            (r.status() == 200).then_some(())
        }
    })
    .await;

    let resp = app
        .http
        .post(format!("{base}/notifications/api/v1/orders/email"))
        .bearer_auth(app.token("ttd"))
        .json(&json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "tls@example.no"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let id =
        resp.json::<serde_json::Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned();
    app.wait_status(&id, "Completed", Duration::from_secs(60)).await;
    let mails = smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails[0].to, "tls@example.no");
    app.stop().await;
}

/// A worker whose TLS settings the cluster does not accept stops at start, promptly, with a
/// message naming Temporal's address and the variables to check: a CA that did not sign the
/// server's certificate, and no client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_ca_or_a_missing_client_certificate_fails_the_start_with_a_clear_message() {
    let tls = TlsTemporal::start(&temporal_address());
    let app = TestApp::spawn(TestAppOptions::new(Db::Postgres, "")).await;
    // (what, the CA the worker trusts, whether it shows its client certificate)
    let cases = [
        ("a CA that did not sign the server's certificate", &tls.other_ca, true),
        ("no client certificate", &tls.ca, false),
    ];
    for (what, ca, show_certificate) in cases {
        let address = tls.address.clone();
        let mut cmd = app.command(EXE, |c| {
            c.run_api = false;
            c.run_worker = true;
            c.worker_metrics_listen = String::new();
            c.temporal.address = address;
        });
        if show_certificate {
            with_tls(&mut cmd, &tls);
        }
        cmd.env("TEMPORAL_TLS_SERVER_CA_CERT_PATH", ca);
        cmd.arg("worker");
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("varsel worker"))
            .await
            .unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: the worker must not start\n{stderr}");
        assert!(took < Duration::from_secs(20), "{what}: it failed after {took:?}");
        assert!(
            stderr.contains(&format!("cannot connect to Temporal at {}", tls.address)),
            "{what}: names Temporal's address\n{stderr}"
        );
        assert!(
            stderr.contains("TEMPORAL_TLS_SERVER_CA_CERT_PATH")
                && stderr.contains("TEMPORAL_TLS_CLIENT_CERT_PATH"),
            "{what}: names the settings to check\n{stderr}"
        );
        eprintln!("{what}: failed in {took:?}:\n{stderr}");
    }
    app.stop().await;
}
