//! Crashes and outages against the real processes: a worker killed with SIGKILL in the middle of
//! a 1,000-recipient order, the Temporal server killed and restarted, and the database cut off.
//! Every order completes afterwards, and the SMTP server counts what each recipient received:
//! one message each, or, for the few sends in flight at the moment of a crash, a duplicate
//! within the bound docs/reliability.md states (one per concurrent send of the killed worker).

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use varsel_activities::Store;
use varsel_api::Config;
use varsel_tests::{
    Db, SmtpServer, TcpProxy, TemporalProcess, TestApp, TestAppOptions, eventually, never_within,
    postgres_url,
};

const EXE: &str = env!("CARGO_BIN_EXE_varsel");

/// The production profile's database: worker processes of their own share it.
fn db() -> Db {
    Db::Postgres
}

fn email_order(prefix: &str, n: usize) -> Value {
    let recipients: Vec<Value> =
        (0..n).map(|i| json!({"emailAddress": format!("{prefix}{i}@example.no")})).collect();
    json!({"subject": "s", "body": "b", "recipients": recipients})
}

async fn wait_for_count(smtp: &SmtpServer, n: usize, timeout: Duration) {
    eventually(format!("{n} emails"), timeout, || async move {
        let count = smtp.count();
        if count >= n { Ok(()) } else { Err(format!("only {count} emails")) }
    })
    .await
}

/// Emails received per address, for the `prefix` addresses.
fn per_address(smtp: &SmtpServer, prefix: &str) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for m in smtp.messages() {
        if m.to.starts_with(prefix) {
            *seen.entry(m.to.clone()).or_insert(0) += 1;
        }
    }
    seen
}

/// Every one of `n` addresses received at least one email; returns how many got a second.
fn assert_all_received(smtp: &SmtpServer, prefix: &str, n: usize) -> usize {
    let seen = per_address(smtp, prefix);
    for i in 0..n {
        let a = format!("{prefix}{i}@example.no");
        assert!(seen.get(&a).copied().unwrap_or(0) >= 1, "{a} received nothing");
    }
    assert_eq!(seen.len(), n, "no other address received mail");
    seen.values().map(|c| c - 1).sum()
}

/// After a worker stopped mid-order: a new worker completes the order, each of its `n`
/// notifications succeeded and each `prefix` address got its email. The new worker (kept until
/// the test ends) and how many addresses got a second email.
async fn completes_on_a_new_worker(
    app: &TestApp,
    smtp: &SmtpServer,
    id: &str,
    prefix: &str,
    n: usize,
) -> (varsel_tests::KillOnDrop, usize) {
    let worker = app.spawn_role(EXE, "worker", worker_config);
    app.wait_status(id, "Completed", Duration::from_secs(180)).await;
    let rows = app.store.notifications(id).await.unwrap();
    assert_eq!(rows.len(), n, "one notification per recipient");
    assert!(
        rows.iter().all(|r| r.status.as_str() == "Email_Succeeded"),
        "every notification succeeded"
    );
    // The counts the database keeps as rows change agree with the rows, across the kill.
    let mut kept = app.store.notification_counts(id).await.unwrap();
    let mut tally = app.store.tally_notifications(id).await.unwrap();
    kept.sort_by_key(|(c, s, _)| (c.as_str(), s.as_str()));
    tally.sort_by_key(|(c, s, _)| (c.as_str(), s.as_str()));
    assert_eq!(kept, tally, "kept counts equal the notifications counted");
    (worker, assert_all_received(smtp, prefix, n))
}

fn worker_config(c: &mut Config) {
    c.run_api = false;
    c.run_worker = true;
    c.worker_metrics_listen = String::new();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_order_resumes_and_each_recipient_gets_one_email() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db(), smtp.url());
    opts.tweak = Box::new(|c| {
        // This process only accepts orders; the worker is a process of its own, to be killed.
        c.run_worker = false;
        // Slow enough that the kill lands in the middle of sending.
        c.processing.send_rate_limits.insert("smtp".into(), 150);
    });
    let app = TestApp::spawn(opts).await;
    let concurrency = app.config.processing.send_concurrency;
    let mut worker = app.spawn_role(EXE, "worker", worker_config);

    let id = app.order("/orders/email", &email_order("crash", 1000)).await;
    wait_for_count(&smtp, 250, Duration::from_secs(90)).await;
    worker.0.kill().expect("SIGKILL the worker");
    let _ = worker.0.wait();
    let at_kill = smtp.count();
    assert!(at_kill < 1000, "the worker was killed mid-order ({at_kill} sent)");

    let (_worker, duplicates) = completes_on_a_new_worker(&app, &smtp, &id, "crash", 1000).await;
    eprintln!(
        "worker SIGKILL after {at_kill} of 1000 emails: {duplicates} duplicate(s), bound {concurrency}"
    );
    assert!(
        duplicates <= concurrency,
        "{duplicates} duplicates exceed the in-flight bound {concurrency}"
    );
    app.stop().await;
}

/// Sends `signal` (`TERM`, `INT`) to a child process.
fn signal(child: &std::process::Child, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{signal}");
}

/// Waits for a child process to end, at most `within`; its exit status.
async fn exited(
    child: &mut varsel_tests::KillOnDrop,
    within: Duration,
) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            return status;
        }
        assert!(started.elapsed() < within, "the process did not exit within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The same order, but the worker is stopped as `docker stop` and Kubernetes stop it (SIGTERM):
/// it stops polling, its batch starts no further sends and records the ones in flight, and it
/// exits 0 well within its grace period. Another worker completes the order, and no recipient
/// gets a second email: where SIGKILL costs up to the in-flight bound, SIGTERM costs nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopped_with_sigterm_mid_order_hands_over_without_duplicates() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db(), smtp.url());
    opts.tweak = Box::new(|c| {
        c.run_worker = false;
        c.processing.send_rate_limits.insert("smtp".into(), 150);
    });
    let app = TestApp::spawn(opts).await;
    let grace = app.config.shutdown_grace();
    let mut worker = app.spawn_role(EXE, "worker", worker_config);

    let id = app.order("/orders/email", &email_order("term", 1000)).await;
    wait_for_count(&smtp, 250, Duration::from_secs(90)).await;
    let asked = Instant::now();
    signal(&worker.0, "TERM");
    let status = exited(&mut worker, grace + Duration::from_secs(5)).await;
    let took = asked.elapsed();
    let at_stop = smtp.count();
    assert!(status.success(), "the worker exits 0 on SIGTERM: {status}");
    assert!(at_stop < 1000, "it was stopped mid-order ({at_stop} sent)");

    let (_worker, duplicates) = completes_on_a_new_worker(&app, &smtp, &id, "term", 1000).await;
    eprintln!(
        "worker SIGTERM after {at_stop} of 1000 emails: stopped in {took:?} (grace {grace:?}), {duplicates} duplicate(s)"
    );
    assert_eq!(duplicates, 0, "a worker stopped with SIGTERM sent {duplicates} email(s) twice");
    app.stop().await;
}

/// An API process stopped with SIGTERM answers new requests with 503 problem details and
/// `Retry-After` while it drains, then stops accepting and exits 0 within its grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_stopped_with_sigterm_drains_with_503_and_exits_0() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(db(), smtp.url())).await;
    let port = varsel_tests::port();
    let mut api = app.spawn_role(EXE, "api", |c| {
        c.http.listen = format!("127.0.0.1:{port}");
        c.shutdown_drain_secs = 3;
        c.shutdown_grace_secs = 10;
    });
    let base = format!("http://127.0.0.1:{port}");
    let (http, base_ref) = (app.http.clone(), &base);
    eventually("the API process answers", Duration::from_secs(60), || {
        let http = http.clone();
        async move {
            http.get(format!("{base_ref}/health")).send().await.ok().filter(|r| r.status() == 200)
        }
    })
    .await;
    let order = |reference: &str| {
        let mut body = email_order("drain", 1);
        body["sendersReference"] = json!(reference);
        app.http
            .post(format!("{base}/notifications/api/v1/orders/email"))
            .bearer_auth(app.token("ttd"))
            .json(&body)
    };
    assert_eq!(order("before").send().await.unwrap().status(), 202, "accepted before the signal");

    signal(&api.0, "TERM");
    // Each attempt has its own reference: those before the signal took effect are accepted.
    let attempts = std::sync::atomic::AtomicUsize::new(0);
    let (order_ref, attempts_ref, http) = (&order, &attempts, app.http.clone());
    let (refused, reference): (reqwest::Response, String) =
        eventually("a 503 while draining", Duration::from_secs(3), || async move {
            let n = attempts_ref.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let reference = format!("while-draining-{n}");
            let r = order_ref(&reference).send().await.ok()?;
            (r.status() == 503).then_some((r, reference))
        })
        .await;
    assert_eq!(refused.headers()["retry-after"], "3");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let p: Value = refused.json().await.unwrap();
    assert_eq!(p["detail"], "The service is shutting down. Nothing was done; please retry.");
    let stored = app.store.orders_by_senders_reference("ttd", &reference).await.unwrap();
    assert!(stored.is_empty(), "nothing of a refused order is stored");
    let status = exited(&mut api, Duration::from_secs(15)).await;
    assert!(status.success(), "the API exits 0 on SIGTERM: {status}");
    assert!(http.get(format!("{base}/health")).send().await.is_err(), "no longer listening");
    app.stop().await;
}

/// The same on the SMS path: the worker dies mid-order while it sends SMS (through the simulator,
/// which keeps one row per message it took, so a second send shows); the order resumes and
/// completes, each number got its SMS, and repeats stay within the in-flight bound. The
/// simulator's delivery reports due when the worker died die with it (a gateway's would not):
/// those notifications end at their time-to-live, as docs/delivery.md says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_sms_order_resumes_within_the_in_flight_bound() {
    const N: usize = 600;
    let mut opts = TestAppOptions::new(db(), "");
    opts.tweak = Box::new(|c| {
        c.run_worker = false;
        c.processing.send_rate_limits.insert("simulator".into(), 100);
        c.sms.simulator_report_delay_ms = 100;
        c.processing.notification_ttl_secs = 60;
    });
    let app = TestApp::spawn(opts).await;
    let concurrency = app.config.processing.send_concurrency;
    let mut worker = app.spawn_role(EXE, "worker", worker_config);

    let recipients: Vec<Value> =
        (0..N).map(|i| json!({"mobileNumber": format!("+4791{i:06}")})).collect();
    let id = app.order("/orders/sms", &json!({"body": "Hei", "recipients": recipients})).await;
    let (app_ref, id_ref) = (&app, &id);
    eventually("150 SMS taken", Duration::from_secs(90), || async move {
        let n = app_ref.simulated_sms(id_ref).await.len();
        if n >= 150 { Ok(()) } else { Err(format!("{n} SMS")) }
    })
    .await;
    worker.0.kill().expect("SIGKILL the worker");
    let _ = worker.0.wait();
    let at_kill = app.simulated_sms(&id).await.len();
    assert!(at_kill < N, "the worker was killed mid-order ({at_kill} of {N} sent)");

    let _worker = app.spawn_role(EXE, "worker", worker_config);
    app.wait_status(&id, "Completed", Duration::from_secs(180)).await;
    let rows = app.store.notifications(&id).await.unwrap();
    assert_eq!(rows.len(), N);
    let unreported = rows.iter().filter(|r| r.status.as_str() == "SMS_Failed_TTL").count();
    let delivered = rows.iter().filter(|r| r.status.as_str() == "SMS_Delivered").count();
    assert_eq!(delivered + unreported, N, "delivered, or its report died with the worker");
    let taken = app.simulated_sms(&id).await;
    let mut numbers: Vec<&str> = taken.iter().map(|s| s.recipient.as_str()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), N, "every number got its SMS");
    let duplicates = taken.len() - N;
    eprintln!(
        "worker SIGKILL after {at_kill} of {N} SMS: {duplicates} duplicate(s), bound {concurrency}; {unreported} report(s) lost with it"
    );
    assert!(duplicates <= concurrency, "{duplicates} repeats exceed the bound {concurrency}");
    app.stop().await;
}

/// The API process dies while its relay holds an instant email (the window docs/reliability.md
/// describes): the request gets no answer and the message stays reserved. A repeat within the
/// grace period is told to wait; after it, the dispatcher of another API process sends the
/// message, and a repeat gets the first answer. The recipient receives it once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_killed_mid_instant_message_sends_it_once_after_the_grace() {
    let smtp = SmtpServer::start_flaky();
    let mut opts = TestAppOptions::new(db(), smtp.url());
    // The relay stalls the first message to stall1@ for 30 s; varsel gives up after 1 s. The
    // grace period is the longer provider timeout and 30 s.
    opts.tweak = Box::new(|c| {
        c.email.smtp_timeout_secs = 1;
        c.sms.gateway_timeout_secs = 1;
    });
    let app = TestApp::spawn(opts).await;
    let port = varsel_tests::port();
    let mut api = app.spawn_role(EXE, "api", |c| c.http.listen = format!("127.0.0.1:{port}"));
    let other = format!("http://127.0.0.1:{port}");
    let http = app.http.clone();
    let other_ref = &other;
    eventually("the second API process answers", Duration::from_secs(60), || {
        let http = http.clone();
        async move {
            match http.get(format!("{other_ref}/health")).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(r.status().to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    })
    .await;

    let body = json!({
        "idempotencyId": "otp-crash",
        "sendersReference": "crash-window",
        "recipientEmail": {"emailAddress": "stall1@example.no", "emailSettings": {"subject": "Kode", "body": "1234"}}
    });
    let path = "/notifications/api/v1/future/orders/instant/email";
    let request = app.http.post(format!("{other}{path}")).bearer_auth(app.token("ttd")).json(&body);
    let in_flight = tokio::spawn(async move { request.send().await });
    // The message is reserved (and in the relay's hands) from here until the answer.
    let store = &app.store;
    eventually("the instant message reserved", Duration::from_secs(30), || async move {
        store.find_chain("ttd", "otp-crash").await.unwrap().ok_or("not yet")
    })
    .await;
    api.0.kill().expect("SIGKILL the API process");
    let _ = api.0.wait();
    assert!(in_flight.await.unwrap().is_err(), "the request got no answer");
    assert_eq!(smtp.count(), 0, "the relay did not keep the stalled message");

    // Within the grace period a repeat is told to wait: the message may still be on its way.
    let repeat = || {
        app.http.post(format!("{}{path}", app.base_url)).bearer_auth(app.token("ttd")).json(&body)
    };
    let early = repeat().send().await.unwrap();
    assert_eq!(early.status(), 409, "{}", early.text().await.unwrap());

    // After it, the dispatcher sends the reserved message, once.
    let order = store.orders_by_senders_reference("ttd", "crash-window").await.unwrap();
    assert_eq!(order.len(), 1, "the reservation is one order");
    let id = order[0].0.order.id.clone();
    app.wait_status(&id, "Completed", Duration::from_secs(120)).await;
    let mails: Vec<_> =
        smtp.messages().into_iter().filter(|m| m.to == "stall1@example.no").collect();
    assert_eq!(mails.len(), 1, "sent once after the crash: {mails:?}");
    assert_eq!(app.notifications(&id).await[0].2, "Email_Succeeded");
    let late = repeat().send().await.unwrap();
    assert_eq!(late.status(), 200, "a repeat gets the first answer");
    let answer: Value = late.json().await.unwrap();
    assert_eq!(answer["notification"]["shipmentId"], id.as_str(), "{answer}");
    app.stop().await;
}

/// The worker dies while it generates an order's notifications (slices of ten recipients, each
/// generated and then sent, several in flight): the order resumes with the slices that were
/// not done, every recipient gets exactly one notification row, and only sends in flight at the
/// kill may go out twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_generating_resumes_without_duplicates() {
    const N: usize = 2000;
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db(), smtp.url());
    opts.tweak = Box::new(|c| {
        c.run_worker = false;
        // Small generate batches: generation takes long enough to be interrupted.
        c.processing.generate_batch = 10;
    });
    let app = TestApp::spawn(opts).await;
    let concurrency = app.config.processing.send_concurrency;
    let mut worker = app.spawn_role(EXE, "worker", worker_config);

    let id = app.order("/orders/email", &email_order("gen", N)).await;
    let generated = |app: &TestApp, id: String| {
        let store = app.store.clone();
        async move {
            let counts = store.notification_counts(&id).await.unwrap();
            counts.iter().map(|(_, _, n)| *n as usize).sum::<usize>()
        }
    };
    let (app_ref, id_ref) = (&app, &id);
    eventually("generation under way", Duration::from_secs(60), || async move {
        let n = generated(app_ref, id_ref.clone()).await;
        if n > 0 { Ok(()) } else { Err(format!("{n} notifications")) }
    })
    .await;
    worker.0.kill().expect("SIGKILL the worker");
    let _ = worker.0.wait();
    let at_kill = generated(&app, id.clone()).await;
    assert!(at_kill < N, "the worker was killed mid-generation ({at_kill} of {N} generated)");

    let (_worker, duplicates) = completes_on_a_new_worker(&app, &smtp, &id, "gen", N).await;
    eprintln!(
        "worker SIGKILL after {at_kill} of {N} notifications generated: {duplicates} duplicate(s)"
    );
    assert!(
        duplicates <= concurrency,
        "{duplicates} duplicates exceed the in-flight bound {concurrency}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_temporal_server_killed_and_restarted_mid_order_loses_nothing() {
    let temporal = tokio::task::spawn_blocking(TemporalProcess::start).await.unwrap();
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db(), smtp.url());
    opts.temporal_address = Some(temporal.address.clone());
    opts.tweak = Box::new(|c| {
        c.processing.send_rate_limits.insert("smtp".into(), 60);
    });
    let app = TestApp::spawn(opts).await;

    let id = app.order("/orders/email", &email_order("restart", 300)).await;
    wait_for_count(&smtp, 60, Duration::from_secs(60)).await;
    let temporal = tokio::task::spawn_blocking(move || {
        temporal.kill();
        temporal
    })
    .await
    .unwrap();
    // Orders keep being accepted while Temporal is down; they start when it is back.
    let during = app.order("/orders/email", &email_order("during", 3)).await;
    let (app_ref, during_ref) = (&app, &during);
    never_within(
        "a workflow started while Temporal was down",
        Duration::from_secs(3),
        || async move { app_ref.order_row(during_ref).await.workflow_started },
    )
    .await;
    let temporal = tokio::task::spawn_blocking(move || {
        temporal.restart();
        temporal
    })
    .await
    .unwrap();

    app.wait_status(&id, "Completed", Duration::from_secs(180)).await;
    app.wait_status(&during, "Completed", Duration::from_secs(60)).await;
    let duplicates = assert_all_received(&smtp, "restart", 300);
    assert_eq!(assert_all_received(&smtp, "during", 3), 0);
    // No varsel process died and the database stayed up: every provider answer was recorded,
    // so nothing is sent twice (the in-flight bound is for a worker that dies).
    eprintln!("Temporal SIGKILL and restart mid-order: {duplicates} duplicate(s)");
    assert_eq!(duplicates, 0, "a Temporal restart sent {duplicates} email(s) twice");
    app.stop().await;
    drop(temporal);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_stores_nothing_and_running_orders_resume() {
    let base = postgres_url();
    let target = base
        .split('@')
        .nth(1)
        .and_then(|h| h.split('/').next())
        .unwrap_or("127.0.0.1:5432")
        .to_owned();
    let target: std::net::SocketAddr =
        tokio::net::lookup_host(&target).await.unwrap().next().unwrap();
    let proxy = TcpProxy::start(target).await;
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Postgres, smtp.url());
    let proxy_port = proxy.port;
    let direct_url = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let direct_url2 = direct_url.clone();
    opts.tweak = Box::new(move |c| {
        *direct_url2.lock().unwrap() = c.database.url.clone();
        c.database.url =
            c.database.url.replacen(&target.to_string(), &format!("127.0.0.1:{proxy_port}"), 1);
        c.processing.send_rate_limits.insert("smtp".into(), 40);
    });
    let app = TestApp::spawn(opts).await;
    let direct_url = direct_url.lock().unwrap().clone();
    let direct = Store::connect(&direct_url, 2).await.unwrap();
    let concurrency = app.config.processing.send_concurrency;

    let ready = || app.http.get(format!("{}/health/ready", app.base_url)).send();
    let up = ready().await.unwrap();
    assert_eq!(up.status(), 200, "ready with the database and Temporal up");
    let up: Value = up.json().await.unwrap();
    assert_eq!(up["checks"], json!({"database": "ok", "migrations": "ok", "temporal": "ok"}));
    let running = app.order("/orders/email", &email_order("outage", 200)).await;
    wait_for_count(&smtp, 20, Duration::from_secs(60)).await;

    proxy.set_up(false);
    let down = ready().await.unwrap();
    assert_eq!(down.status(), 503, "not ready while the database is cut off");
    let down: Value = down.json().await.unwrap();
    assert!(down["detail"].as_str().unwrap().starts_with("Not ready: database: "), "{down}");
    assert_eq!(down["checks"]["temporal"], "ok", "{down}");
    let mut during = email_order("never", 2);
    during["sendersReference"] = json!("sent-during-the-outage");
    let started = Instant::now();
    let resp = app.post("/orders/email", &during, "ttd").await;
    let took = started.elapsed();
    assert_eq!(resp.status(), 503, "an order sent while the database is down");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(
        p["detail"],
        "The order store is temporarily unavailable. Nothing was stored; please retry."
    );
    assert!(took < Duration::from_secs(20), "the 503 came after {took:?}");
    let (app_ref, running_ref) = (&app, &running);
    never_within("a read succeeded while the database was down", Duration::from_secs(2), || {
        async move { app_ref.get(&format!("/orders/{running_ref}"), "ttd").await.status() != 503 }
    })
    .await;
    proxy.set_up(true);
    eventually("ready again", Duration::from_secs(30), || async move {
        ready().await.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await;

    // Nothing of the refused order was stored.
    assert!(
        direct
            .orders_by_senders_reference("ttd", "sent-during-the-outage")
            .await
            .unwrap()
            .is_empty()
    );

    // The running order resumes and completes; a new order goes through.
    let after = app.order("/orders/email", &email_order("after", 2)).await;
    app.wait_status(&running, "Completed", Duration::from_secs(180)).await;
    app.wait_status(&after, "Completed", Duration::from_secs(60)).await;
    let duplicates = assert_all_received(&smtp, "outage", 200);
    eprintln!("database outage mid-order: {duplicates} duplicate(s), bound {concurrency}");
    assert!(duplicates <= concurrency);
    assert!(per_address(&smtp, "never").is_empty());
    app.stop().await;
}

/// A worker cut off from Temporal but not from its relay: its batch goes on sending while
/// Temporal, hearing no heartbeat, gives up on the attempt and hands the batch to another worker,
/// which claims the same notifications again. The cut-off worker sees the newer claim in the
/// database and starts no further sends (it does not wait to hear from Temporal), so the two
/// overlap by the sends in flight and what a shared rate limit lets through in one check
/// interval, not by however long the cut lasts. The order completes and every address gets its
/// email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_temporal_gave_up_on_stops_sending_when_its_retry_claims_the_notifications() {
    const N: usize = 600;
    const RATE: usize = 20;
    const CONCURRENCY: usize = 4;
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(db(), smtp.url());
    opts.tweak = Box::new(|c| {
        c.run_worker = false;
        c.processing.send_rate_limits.insert("smtp".into(), RATE as u32);
        c.processing.send_concurrency = CONCURRENCY;
    });
    let app = TestApp::spawn(opts).await;
    assert!(app.config.processing.send_batch as usize >= N, "one batch holds the order");
    let temporal: std::net::SocketAddr =
        app.config.temporal.address.trim_start_matches("http://").parse().unwrap();
    let proxy = TcpProxy::start(temporal).await;

    // Worker A reaches Temporal only through the proxy; its log shows what it sent, and when.
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("a.log");
    let mut cmd = app.command(EXE, |c| {
        worker_config(c);
        c.temporal.address = format!("http://127.0.0.1:{}", proxy.port);
    });
    cmd.arg("worker")
        .env("VARSEL_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let _a = varsel_tests::KillOnDrop(cmd.spawn().expect("worker A"));

    let id = app.order("/orders/email", &email_order("cut", N)).await;
    wait_for_count(&smtp, 40, Duration::from_secs(90)).await;
    proxy.set_up(false);
    let _b = app.spawn_role(EXE, "worker", worker_config);

    // Temporal gives up on A's attempt after the heartbeat timeout; B's retry claims the
    // notifications, and A notices.
    const SUPERSEDED: &str = "a newer attempt of this send batch claimed its notifications";
    let path = &log_path;
    eventually("worker A sees the newer claim", Duration::from_secs(90), || async move {
        std::fs::read_to_string(path).unwrap().contains(SUPERSEDED).then_some(())
    })
    .await;
    // Still cut off from Temporal (no cancellation can reach it), A stops on its own: past the
    // sends in flight, it sends nothing more while B goes on.
    let sent_after = |log: &str| {
        log.split_once(SUPERSEDED)
            .map_or(0, |(_, after)| after.matches("notification sent").count())
    };
    never_within(
        "worker A sends on after seeing the newer claim",
        Duration::from_secs(3),
        || async move { sent_after(&std::fs::read_to_string(path).unwrap()) > CONCURRENCY },
    )
    .await;
    let reached = per_address(&smtp, "cut").len();
    assert!(reached < N, "B was still sending ({reached} of {N} reached): the quiet was A's own");
    proxy.set_up(true);
    app.wait_status(&id, "Completed", Duration::from_secs(180)).await;

    let log = std::fs::read_to_string(&log_path).unwrap();
    let sent_by_a = log.split_once(SUPERSEDED).unwrap().0.matches("notification sent").count();
    let sent_after = sent_after(&log);
    let duplicates = assert_all_received(&smtp, "cut", N);
    eprintln!(
        "batch given up on: worker A sent {sent_by_a} before it saw the newer claim and {sent_after} after; {duplicates} duplicate(s)"
    );
    assert!(sent_by_a > 40, "A went on sending while cut off from Temporal");
    assert!(
        sent_after <= CONCURRENCY,
        "after seeing the newer claim A finished only the sends in flight ({sent_after})"
    );
    // What A sent between B's claim and its check (at most one check interval, under the shared
    // limit: two rate slots), and the sends in flight then.
    assert!(
        duplicates <= 2 * RATE + CONCURRENCY,
        "{duplicates} duplicates exceed one check interval's sends"
    );
    app.stop().await;
}
