//! The `varsel` binary as an operator runs it, against a running stack: `history`, `redrive` and
//! `replay` on an order whose SMTP relay was down, and `worker` as a process of its own.

use serde_json::{Value, json};
use std::process::{Command, Output};
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions};

const VARSEL: &str = env!("CARGO_BIN_EXE_varsel");
const T: Duration = Duration::from_secs(60);

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("varsel runs")).await.unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_redrive_and_replay_from_the_command_line() {
    let smtp = SmtpServer::start_flaky();
    smtp.set_outage(true);
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| c.processing.notification_ttl_secs = 3);
    let app = TestApp::spawn(opts).await;
    let cmd = |args: &[&str]| {
        let mut c = app.command(VARSEL, |_| {});
        c.args(args);
        c
    };

    // A waiting order cannot be redriven: the command says why and exits 1.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let waiting = app.order("/orders/email", &json!({"subject": "s", "body": "b", "requestedSendTime": later, "recipients": [{"emailAddress": "x@example.no"}]})).await;
    app.wait_started(&waiting, T).await;
    let out = run(cmd(&["redrive", &waiting])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("still running"), "{}", stderr(&out));

    // The relay is down longer than the time-to-live.
    let id = app.order("/orders/email", &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "ok@example.no"}, {"emailAddress": "outage@example.no"}]})).await;
    app.wait_status(&id, "Completed", T).await;

    let out = run(cmd(&["history", &id])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "order {id}\nTemporal web UI: http://127.0.0.1:8233/namespaces/default/workflows/{id}\n"
        )),
        "{text}"
    );
    assert!(text.contains("workflow started"), "{text}");
    assert!(text.contains("outage@example.no: time-to-live reached: Email_Failed_TTL"), "{text}");
    assert!(text.contains("ok@example.no: provider answered: Email_Succeeded"), "{text}");

    // The relay is back: the command redrives the failed notification, and only it.
    smtp.set_outage(false);
    let out = run(cmd(&["redrive", &id])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("1 notifications will be sent again"), "{}", stdout(&out));
    app.wait_notifications(&id, "Email_Succeeded", T).await;
    app.wait_status(&id, "Completed", T).await;
    smtp.wait_for(2, T).await;
    let mut to: Vec<String> = smtp.messages().iter().map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, vec!["ok@example.no", "outage@example.no"]);

    // --json: one object per line, the redrive run in it.
    let out = run(cmd(&["history", &id, "--json"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let entries: Vec<Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert!(
        entries
            .iter()
            .all(|e| e["time"].is_string() && e["source"].is_string() && e["text"].is_string())
    );
    let texts: Vec<&str> = entries.iter().map(|e| e["text"].as_str().unwrap()).collect();
    assert!(
        texts.iter().any(|t| t.contains("reset failed notifications for a redrive: done")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains("outage@example.no: provider answered: Email_Succeeded")),
        "{texts:#?}"
    );
    let out = run(cmd(&["redrive", &id])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nothing to redrive"), "{}", stderr(&out));

    // Replay: the order's history replays against this build; an unknown id is reported missing.
    let out = run(cmd(&["replay", &id])).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("ok      {id}  replays cleanly")), "{}", stdout(&out));
    let unknown = uuid::Uuid::new_v4().to_string();
    let out = run(cmd(&["replay", &id, &unknown])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains(&format!("MISSING {unknown}")), "{}", stdout(&out));
    assert!(stderr(&out).contains("1 of 2 orders did not replay"), "{}", stderr(&out));

    let out = run(cmd(&["history", &unknown])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("no order {unknown}")), "{}", stderr(&out));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_sends_and_reports_its_own_and_temporal_metrics() {
    let smtp = SmtpServer::start();
    let mut opts = TestAppOptions::new(Db::Sqlite, smtp.url());
    opts.tweak = Box::new(|c| c.run_worker = false);
    let app = TestApp::spawn(opts).await;
    let port = varsel_tests::port();
    let _worker =
        app.spawn_role(VARSEL, "worker", |c| c.worker_metrics_listen = format!("127.0.0.1:{port}"));

    let id = app
        .order(
            "/orders/email",
            &json!({"subject": "s", "body": "b", "recipients": [{"emailAddress": "a@example.no"}]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    assert_eq!(smtp.wait_for(1, T).await[0].to, "a@example.no");

    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.lines().any(|l| l == r#"varsel_send_seconds_count{provider="smtp"} 1"#), "{text}");
    // The SDK's worker metrics, from its own exporter, appended.
    assert!(text.lines().any(|l| l.starts_with("temporal_worker_task_slots_available{")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("temporal_activity_execution_latency_count{")),
        "{text}"
    );
    // The database gauges are the API's alone.
    assert!(!text.contains("varsel_orders{"), "{text}");

    let api = app
        .http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(api.lines().any(|l| l == r#"varsel_orders{status="Completed"} 1"#), "{api}");
    app.stop().await;
}

/// A `varsel.order` as another build might have written it: one short timer, then done. Its
/// histories are what `varsel replay` exists to catch.
#[temporalio_macros::workflow]
#[derive(Default)]
pub struct OtherBuildsOrderWorkflow {}

#[temporalio_macros::workflow_methods]
impl OtherBuildsOrderWorkflow {
    /// Waits 10 ms and completes, where this build claims the order first.
    #[run(name = "varsel.order")]
    pub async fn run(
        ctx: &mut temporalio_sdk::WorkflowContext<Self>,
        _input: varsel_workflows::workflow::OrderWorkflowInput,
    ) -> temporalio_sdk::WorkflowResult<()> {
        ctx.timer(Duration::from_millis(10)).await;
        Ok(())
    }
}

/// An order's history recorded by a `varsel.order` that does something else than this build:
/// `varsel replay` reports it as diverging, names the step, and exits 1; with `--failed` absent
/// and the id named, it is the only verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reports_a_history_this_build_diverges_from() {
    use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
    use temporalio_sdk::{Runtime, Worker, WorkerOptions};

    let mut cfg = varsel_api::Config::default();
    cfg.temporal.address = varsel_tests::temporal_address();
    let client = varsel_api::temporal::connect(&cfg).await.expect("temporal client");
    let queue = format!("other-build-{}", uuid::Uuid::new_v4().simple());
    let runtime = Runtime::from_current_tokio(Default::default()).expect("runtime");
    let opts = WorkerOptions::new(&queue)
        .register_workflow::<OtherBuildsOrderWorkflow>()
        .expect("register")
        .build();
    let mut worker = Worker::new(&runtime, client.clone(), opts).expect("worker");
    let shutdown = worker.shutdown_handle();

    // The other build's worker runs the order to its end (in this task: the worker is not Send).
    let id = uuid::Uuid::new_v4().to_string();
    let input = varsel_workflows::workflow::OrderWorkflowInput {
        order_id: id.clone(),
        requested_send_time_ms: chrono::Utc::now().timestamp_millis(),
        policy: Default::default(),
        resume: None,
        condition_inconclusive: false,
    };
    let order = async {
        let handle = client
            .start_workflow(
                OtherBuildsOrderWorkflow::run,
                input,
                WorkflowStartOptions::new(&queue, &id).build(),
            )
            .await
            .expect("start");
        tokio::time::timeout(T, handle.get_result(WorkflowGetResultOptions::default()))
            .await
            .expect("the other build's run completes")
            .expect("its result");
        shutdown();
    };
    let (ran, ()) = tokio::join!(worker.run(), order);
    ran.expect("the other build's worker");

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(VARSEL);
    cmd.args(["replay", &id])
        .current_dir(dir.path())
        .env("TEMPORAL_ADDRESS", &cfg.temporal.address)
        .env("VARSEL_LOG", "warn")
        .env_remove("VARSEL_CONFIG");
    let out = run(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with(&format!("DIVERGE {id}  ")), "{line}");
    assert!(line.contains("Nondeterminism"), "reported as nondeterminism: {line}");
    // This build schedules its first step where the history has the other build's timer.
    assert!(line.contains("Timer"), "naming what the history holds: {line}");
    assert!(stderr(&out).contains("1 of 1 orders did not replay"), "{}", stderr(&out));
}

/// Passwords in the database and SMTP URLs never reach what an operator's commands print, their
/// logs (at debug) or their errors; nor does `--help` show any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_in_urls_never_reach_output_logs_or_errors() {
    const DB_PASSWORD: &str = "pg-topsecret";
    const SMTP_PASSWORD: &str = "smtp-topsecret";
    let base = varsel_tests::postgres_url();
    let mut db = url::Url::parse(&varsel_tests::fresh_postgres_database(&base).await).unwrap();
    // The local server trusts its clients: any password is accepted, and must stay hidden.
    db.set_password(Some(DB_PASSWORD)).unwrap();
    let mut unreachable = db.clone();
    unreachable.set_port(Some(1)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let varsel = |args: &[&str], database: &url::Url| {
        let mut c = Command::new(VARSEL);
        c.args(args)
            .current_dir(dir.path())
            .env_remove("VARSEL_CONFIG")
            .env("VARSEL_LOG", "debug")
            .env("VARSEL_DATABASE_URL", database.as_str())
            .env("VARSEL_SMTP_URL", format!("smtp://mailer:{SMTP_PASSWORD}@127.0.0.1:1"))
            .env("TEMPORAL_ADDRESS", varsel_tests::temporal_address());
        c
    };
    let unknown = uuid::Uuid::new_v4().to_string();
    let cases: Vec<(&str, Command, bool)> = vec![
        ("migrate", varsel(&["migrate"], &db), true),
        ("history of an unknown order", varsel(&["history", &unknown], &db), false),
        ("a worker whose database is unreachable", varsel(&["worker"], &unreachable), false),
        ("--help", varsel(&["--help"], &db), true),
        ("serve --help", varsel(&["serve", "--help"], &db), true),
    ];
    for (what, cmd, succeeds) in cases {
        let out = tokio::time::timeout(Duration::from_secs(60), run(cmd))
            .await
            .unwrap_or_else(|_| panic!("{what}: no end within 60 s"));
        let all = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.success(), succeeds, "{what}: {all}");
        for secret in [DB_PASSWORD, SMTP_PASSWORD] {
            assert!(!all.contains(secret), "{what} shows a password:\n{all}");
        }
        if what == "migrate" {
            assert!(stdout(&out).contains(":***@127.0.0.1"), "the URL, password hidden: {all}");
        }
    }
    varsel_tests::drop_postgres_database(&base, db.path().trim_start_matches('/')).await;
}

/// Outside `varsel dev`, a process does not make up the secrets every host must share: an API
/// without token keys, an API without the report secret and a worker-only Kannel process
/// without the public base URL refuse to start, naming what to set; the explicit opt-in for a
/// single host starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_secrets_must_be_configured_outside_dev() {
    let dir = tempfile::tempdir().unwrap();
    let varsel = |role: &str, env: &[(&str, &str)]| {
        let mut c = Command::new(VARSEL);
        c.arg(role)
            .current_dir(dir.path())
            .env_remove("VARSEL_CONFIG")
            .env("VARSEL_LOG", "warn")
            .env("TEMPORAL_ADDRESS", varsel_tests::temporal_address());
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    let hmac = ("VARSEL_AUTH_HMAC_SECRETS", "[MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]");
    let cases = [
        ("api", vec![], "no token verification keys are configured: set VARSEL_AUTH_HMAC_SECRETS"),
        ("api", vec![hmac], "VARSEL_REPORT_SECRET is not set"),
        (
            "worker",
            vec![("VARSEL_SMS_PROVIDER", "kannel"), ("VARSEL_REPORT_SECRET", "s3cret")],
            "VARSEL_PUBLIC_BASE_URL is not set",
        ),
    ];
    for (role, env, says) in cases {
        let out = tokio::time::timeout(T, run(varsel(role, &env))).await.expect("ends at once");
        assert_eq!(out.status.code(), Some(1), "{role} {env:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{role} {env:?}: {}", stderr(&out));
    }

    // The single-host opt-in: the API starts with keys of its own.
    let port = varsel_tests::port();
    let listen = format!("127.0.0.1:{port}");
    let mut api =
        varsel("api", &[("VARSEL_ALLOW_DATA_DIR_KEYS", "true"), ("VARSEL_LISTEN", &listen)]);
    let _api = varsel_tests::KillOnDrop(api.stdout(std::process::Stdio::null()).spawn().unwrap());
    let url = format!("http://{listen}/health/ready");
    varsel_tests::eventually("the opted-in API is ready", T, || {
        let url = url.clone();
        async move { reqwest::get(url).await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;
}

/// An operator loads the register from files with `varsel contacts import` (on PostgreSQL, whose
/// multi-row upserts differ from SQLite's): bad lines are reported by number and skipped, a
/// second import changes nothing, an order naming the imported persons and organisation reaches
/// them (and not the reserved one), and `export` writes what `import` reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_imported_from_files_and_orders_find_them() {
    let smtp = SmtpServer::start();
    let app = TestApp::spawn(TestAppOptions::new(Db::Postgres, smtp.url())).await;
    let dir = tempfile::tempdir().unwrap();
    let persons = dir.path().join("persons.csv");
    // Confirmed a month ago: within KRR's 18 months, so orders use it.
    let updated = (chrono::Utc::now() - chrono::Duration::days(30)).date_naive().to_string();
    std::fs::write(
        &persons,
        format!(
            "nationalIdentityNumber,name,email,mobileNumber,isReserved,lastUpdated\n\
         24017000001,Ola,ola@import.example,99999999,false,{updated}\n\
         24017000002,Kari,kari@import.example,,true,\n\
         2401700000x,Bad,bad@import.example,,false,\n\
         24017000003,Per,per@import.example,,false,\n"
        ),
    )
    .unwrap();
    let orgs = dir.path().join("organizations.ndjson");
    std::fs::write(
        &orgs,
        "{\"organizationNumber\":\"924017000\",\"name\":\"Import AS\",\"emailList\":[\"post@import.example\"]}\n\
         {\"organizationNumber\":\"924017000\",\"emailList\":\"one\"}\n",
    )
    .unwrap();
    let cmd = |args: &[&str]| {
        let mut c = app.command(VARSEL, |_| {});
        c.args(args);
        c
    };
    let p = persons.to_str().unwrap();
    for _ in 0..2 {
        let out = run(cmd(&["contacts", "import", "--kind", "persons", p])).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).starts_with(&format!("{p}: imported 3 persons, refused 1 lines (")),
            "{}",
            stdout(&out)
        );
        assert_eq!(
            stderr(&out).lines().filter(|l| l.starts_with(p)).collect::<Vec<_>>(),
            [format!(
                "{p}: line 4: nationalIdentityNumber: National identity number must be 11 digits long."
            )]
        );
    }
    let o = orgs.to_str().unwrap();
    let out = run(cmd(&["contacts", "import", "--kind", "organizations", o])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("imported 1 organizations, refused 1 lines"), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("{o}: line 2: not an organization entry: ")),
        "{}",
        stderr(&out)
    );
    let out = run(cmd(&["contacts", "import", "--kind", "persons", "persons.txt"])).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("say --format csv or --format ndjson"), "{}", stderr(&out));

    let id = app
        .order(
            "/orders",
            &json!({
                "notificationChannel": "Email",
                "emailTemplate": {"subject": "s", "body": "Hei $recipientName$"},
                "recipients": [
                    {"nationalIdentityNumber": "24017000001"},
                    {"nationalIdentityNumber": "24017000002"},
                    {"nationalIdentityNumber": "24017000003"},
                    {"organizationNumber": "924017000"}
                ]
            }),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    let mut sent: Vec<(String, String)> =
        smtp.wait_for(3, T).await.into_iter().map(|m| (m.to, m.body.trim().to_owned())).collect();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("ola@import.example".to_owned(), "Hei Ola".to_owned()),
            ("per@import.example".to_owned(), "Hei Per".to_owned()),
            ("post@import.example".to_owned(), "Hei Import AS".to_owned()),
        ]
    );
    let statuses: Vec<String> = app.notifications(&id).await.into_iter().map(|n| n.2).collect();
    assert!(statuses.contains(&"Email_Failed_RecipientReserved".to_owned()), "{statuses:?}");

    let out = run(cmd(&["contacts", "export", "--kind", "persons"])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let exported: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &Value| v["nationalIdentityNumber"].as_str().unwrap().starts_with("2401700"))
        .collect();
    assert_eq!(exported.len(), 3);
    assert_eq!(
        exported[0],
        json!({"nationalIdentityNumber": "24017000001", "name": "Ola", "email": "ola@import.example",
               "mobileNumber": "+4799999999", "isReserved": false, "lastUpdated": format!("{updated}T00:00:00+00:00")})
    );
}
