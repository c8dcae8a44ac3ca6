//! The production profile: PostgreSQL, one Temporal server, and API and worker as separate
//! `varsel` processes, two of each. Every notification goes out exactly once, a 10,000-recipient
//! order among them, whichever process takes which batch.

use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, eventually, never_within};

const VARSEL: &str = env!("CARGO_BIN_EXE_varsel");

async fn wait_http(url: &str) {
    eventually(format!("{url} answers"), Duration::from_secs(60), || async move {
        match reqwest::get(url).await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => Err(r.status().to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_rate_limit_holds_across_two_worker_processes() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Postgres, smtp.url());
    opts.tweak = Box::new(|c| c.run_worker = false);
    let app = TestApp::spawn(opts).await;
    const LIMIT: u32 = 20;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            app.spawn_role(VARSEL, "worker", |c| {
                c.worker_metrics_listen = String::new();
                c.processing.send_rate_limits.insert("smtp".into(), LIMIT);
            })
        })
        .collect();
    let recipients: Vec<_> =
        (0..100).map(|i| json!({"emailAddress": format!("r{i}@example.no")})).collect();
    let id = app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    app.wait_status(&id, "Completed", Duration::from_secs(120)).await;
    assert_eq!(smtp.wait_for(100, Duration::from_secs(10)).await.len(), 100);

    // No one-second slot carried more than the limit (a send that took its place at the end of
    // a second may be recorded just after it: a little slack), so 100 at 20/s spread over five
    // slots at least: more than 3 s from the first to the last.
    let events = app.store.notification_events(&id).await.unwrap();
    let sent: Vec<i64> =
        events.iter().filter(|e| e.source == "provider").map(|e| e.at.timestamp_millis()).collect();
    // No token can be taken before the first batch claimed its rows.
    let claimed = events
        .iter()
        .filter(|e| e.source == "sending")
        .map(|e| e.at.timestamp_millis())
        .min()
        .unwrap();
    assert_eq!(sent.len(), 100);
    let mut per_second: BTreeMap<i64, u32> = BTreeMap::new();
    for t in &sent {
        *per_second.entry(t.div_euclid(1000)).or_default() += 1;
    }
    // Counted cumulatively from the second the first batch was claimed: by the end of the k-th
    // second, at most k × LIMIT answers (plus a little slack for a slot's sends recorded at its
    // end). An answer is recorded after its send took its token, never before, so a slow
    // machine (a slow first SMTP connection, say) only moves answers later and cannot break
    // this; counting from the first answer instead could (two slots' tokens answered in one
    // second). A missing limit (100 sends in a second or two) does break it.
    let first = claimed.div_euclid(1000);
    let mut so_far = 0;
    for (second, n) in &per_second {
        so_far += n;
        let allowed = LIMIT * (second - first + 1) as u32 + 4;
        assert!(
            so_far <= allowed,
            "{so_far} sends by second {} exceed {allowed}: {per_second:?}",
            second - first + 1
        );
    }
    let span = sent.iter().max().unwrap() - sent.iter().min().unwrap();
    assert!(
        per_second.len() >= 5 && span > 3_000,
        "100 sends at {LIMIT}/s took only {span} ms: {per_second:?}"
    );
    drop(workers);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_and_two_worker_processes_send_every_notification_exactly_once() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Postgres, smtp.url());
    // This process only migrates and seeds; the work is the child processes'.
    opts.tweak = Box::new(|c| {
        c.run_api = false;
        c.run_worker = false;
        // Every process keeps its counters for the console's overview each second.
        c.processing.metric_snapshot_secs = 1;
    });
    let app = TestApp::spawn(opts).await;
    let recipients = varsel_bench::seed_bulk_recipients(&app.store, 10_000).await.unwrap();

    let mut apis = Vec::new();
    let mut processes = Vec::new();
    for _ in 0..2 {
        let port = varsel_tests::port();
        processes
            .push(app.spawn_role(VARSEL, "api", |c| c.http.listen = format!("127.0.0.1:{port}")));
        apis.push(format!("http://127.0.0.1:{port}"));
    }
    let mut worker_metrics = Vec::new();
    for _ in 0..2 {
        let port = varsel_tests::port();
        processes.push(app.spawn_role(VARSEL, "worker", |c| {
            c.worker_metrics_listen = format!("127.0.0.1:{port}")
        }));
        worker_metrics.push(format!("http://127.0.0.1:{port}/metrics"));
    }
    // Every process ready (database, migrations, Temporal) before the load: the APIs on their
    // listen address, the workers on their metrics port.
    let workers_ready = worker_metrics.iter().map(|m| m.replace("/metrics", "/health/ready"));
    for url in apis.iter().map(|a| format!("{a}/health/ready")).chain(workers_ready) {
        wait_http(&url).await;
        let ready: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready", "{url}: {ready}");
    }

    let token = app.token("ttd");
    let http = reqwest::Client::new();
    let post = |api: &str, body: serde_json::Value| {
        let req =
            http.post(format!("{api}/notifications/api/v1/orders")).bearer_auth(&token).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 202);
            resp.json::<serde_json::Value>().await.unwrap()["orderId"].as_str().unwrap().to_owned()
        }
    };
    let mut ids = vec![
        post(&apis[0], json!({"notificationChannel": "Email", "emailTemplate": {"subject": "Hei $recipientName$", "body": "b"}, "recipients": recipients})).await,
    ];
    for i in 0..40 {
        let body = json!({"notificationChannel": "Email", "emailTemplate": {"subject": "s", "body": "b"}, "recipients": [{"emailAddress": format!("small-{i}@example.no")}]});
        ids.push(post(&apis[i % 2], body).await);
    }

    // Every address once, nothing else: first the emails (counted in memory, cheap to poll),
    // then every order's status.
    let expected = 10_000 + 40;
    let (store, ids_ref, smtp_ref) = (&app.store, &ids, &smtp);
    eventually("every email arrived", Duration::from_secs(600), || async move {
        let n = smtp_ref.count();
        if n >= expected { Ok(()) } else { Err(format!("{n} of {expected}")) }
    })
    .await;
    eventually("every order completed", Duration::from_secs(60), || async move {
        let done = varsel_bench::queries::count_orders_with_status(store, ids_ref, "Completed")
            .await
            .unwrap();
        if done as usize == ids_ref.len() {
            Ok(())
        } else {
            Err(format!("{done} of {} orders completed", ids_ref.len()))
        }
    })
    .await;
    never_within("more emails than recipients arrived", Duration::from_secs(1), || async move {
        smtp_ref.count() > expected
    })
    .await;
    let mut by_address: HashMap<String, usize> = HashMap::new();
    for m in smtp.messages() {
        *by_address.entry(m.to).or_default() += 1;
    }
    assert_eq!(by_address.len(), expected, "distinct addresses");
    let twice: Vec<_> = by_address.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(
        by_address.get("person-0@bench.example"),
        Some(&1),
        "a person from the contact register"
    );
    assert_eq!(
        by_address.get("org-10@bench.example"),
        Some(&1),
        "an organisation from the contact register"
    );

    // Both workers took part.
    let mut sends = 0.0;
    for url in &worker_metrics {
        let text = reqwest::get(url).await.unwrap().text().await.unwrap();
        let sent: f64 = text
            .lines()
            .find(|l| l.starts_with(r#"varsel_send_seconds_count{provider="smtp"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(sent > 0.0, "a worker sent nothing ({url}):\n{text}");
        sends += sent;
    }

    // Either API's console overview counts the whole deployment: the orders both APIs
    // accepted, and the sends and finished orders of both workers (other processes' counters
    // from their snapshots in the database).
    let (operator, orders) = (app.operator_token(), ids.len());
    for api in &apis {
        let (url, http, operator) = (format!("{api}/console/fragments/overview"), &http, &operator);
        eventually(
            format!("{api}'s overview counts every process"),
            Duration::from_secs(30),
            || {
                let url = url.clone();
                async move {
                    let page = http.get(url).bearer_auth(operator).send().await.unwrap();
                    assert_eq!(page.status(), 200);
                    let page = page.text().await.unwrap();
                    let hour = page.split("<h2>Last day").next().unwrap_or_default().to_owned();
                    let whole = [
                        format!("<dt>Orders accepted</dt><dd>{orders}</dd>"),
                        format!("<dt>Orders finished</dt><dd>{orders} (Completed {orders})</dd>"),
                        format!("<dt>Sends</dt><dd>{sends}</dd>"),
                    ];
                    if whole.iter().all(|w| hour.contains(w)) { Ok(()) } else { Err(hour) }
                }
            },
        )
        .await;
    }
    drop(processes);
    app.stop().await;
}

/// One large order is not tied to one worker: its slices (disjoint sets of its recipients) are
/// in flight several at once, and Temporal hands them to both worker processes, which run them
/// at the same time. Each worker may run two activities at once, so four slices in flight need
/// both; every recipient still gets one email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orders_slices_run_on_two_worker_processes_at_once() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Postgres, smtp.url());
    opts.tweak = Box::new(|c| {
        c.run_worker = false;
        // Recorded in the order's policy when this process starts its workflow.
        c.processing.generate_batch = 40;
        c.processing.send_window = 4;
    });
    let app = TestApp::spawn(opts).await;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            app.spawn_role(VARSEL, "worker", |c| {
                c.worker_metrics_listen = String::new();
                c.temporal.worker_max_activities = 2;
                // Slow enough that slices overlap: a slice of 40 at 4 sends at a time.
                c.processing.send_concurrency = 4;
            })
        })
        .collect();
    let recipients: Vec<_> =
        (0..400).map(|i| json!({"emailAddress": format!("w{i}@example.no")})).collect();
    let id = app
        .order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": recipients}))
        .await;
    app.wait_status(&id, "Completed", Duration::from_secs(180)).await;
    let mails = smtp.wait_for(400, Duration::from_secs(10)).await;
    let mut by_address: HashMap<String, usize> = HashMap::new();
    for m in mails {
        *by_address.entry(m.to).or_default() += 1;
    }
    assert_eq!(by_address.len(), 400);
    assert!(by_address.values().all(|n| *n == 1), "each recipient gets one email");

    let client = varsel_api::temporal::connect(&app.config).await.expect("temporal client");
    let history = varsel_api::replay::fetch_history_json(&client, &id).await.expect("history");
    let runs = varsel_bench::fleet::slice_runs(&serde_json::from_slice(&history).unwrap());
    assert!(runs.len() >= 10, "one activity a slice at least: {runs:?}");
    let workers_seen: std::collections::BTreeSet<&str> =
        runs.iter().map(|(w, _, _)| w.as_str()).collect();
    assert_eq!(workers_seen.len(), 2, "both workers ran slices: {runs:?}");
    let overlapping = runs
        .iter()
        .any(|(w1, a1, b1)| runs.iter().any(|(w2, a2, b2)| w1 != w2 && a1 < b2 && a2 < b1));
    assert!(overlapping, "slices of the order ran on both workers at the same time: {runs:?}");
    drop(workers);
    app.stop().await;
}
