//! The operator console in a real browser, used as a person uses it: sign in with a token, find a
//! failed order by its reference, open it, read the failure's reason in the picture, redrive it
//! by keyboard after reading exactly what will be sent again, and watch it complete. Each page is
//! photographed and checked for what a person must see there, and the browser's console stays
//! free of errors. Set `VARSEL_SCREENSHOTS=<dir>` to keep the screenshots somewhere (the
//! README's come from `VARSEL_SCREENSHOTS=docs/images`).

use super::browser::{Browser, ENTER, TAB};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use varsel_tests::{Db, SmtpServer, TestApp, TestAppOptions, on_both_databases};

const T: Duration = Duration::from_secs(60);

/// Where the screenshots go: `VARSEL_SCREENSHOTS` for the SQLite run, the target dir otherwise.
fn screenshots(db: Db) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    if db != Db::Sqlite {
        return tmp.join("postgres");
    }
    match std::env::var("VARSEL_SCREENSHOTS") {
        Ok(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() { dir } else { varsel_tests::project_root().join(dir) }
        }
        _ => tmp,
    }
}

async fn find_see_redrive(db: Db) {
    // A relay outage outlasts the time-to-live: one of two emails fails.
    let smtp = SmtpServer::start_flaky();
    smtp.set_outage(true);
    let mut opts = TestAppOptions::new(db, smtp.url());
    opts.tweak = Box::new(|c| c.processing.notification_ttl_secs = 3);
    let app = TestApp::spawn(opts).await;
    let reference = "invoice-reminders-2026-12";
    let id = app
        .order(
            "/orders/email",
            &json!({"sendersReference": reference, "subject": "Your invoice", "body": "It is due.",
                    "recipients": [{"emailAddress": "ok@example.no"}, {"emailAddress": "outage@example.no"}]}),
        )
        .await;
    app.wait_status(&id, "Completed", T).await;
    // A delivery report for a notification varsel does not know: a dead report.
    let report = varsel_activities::store::Report {
        target: varsel_activities::store::ReportTarget::Notification("not-one-of-ours".into()),
        status: varsel_workflows::domain::NotificationStatus::EmailDelivered,
        reason: None,
        provider_ref: None,
        raw: "{}".into(),
    };
    let dead = app.store.apply_report(&report, varsel_workflows::domain::Channel::Email).await;
    assert!(matches!(dead, Ok(varsel_activities::store::ApplyOutcome::Dead { .. })), "{dead:?}");
    let operator = app.token_with(&json!({
        "iss": varsel_api::auth::DEV_ISSUER,
        "scope": varsel_api::auth::OPERATOR_SCOPE,
        "sub": "ops-kari",
        "exp": chrono::Utc::now().timestamp() + 600,
    }));
    let shots = screenshots(db);
    let b = Browser::start(1280, 1200).await;

    // Signing in: the console asks for a token; a creator's token is refused in the API's words.
    b.goto(&format!("{}/console", app.base_url)).await;
    b.assert_visible("sign-in", &["#sign-in-form textarea", "#sign-in-form button"]).await;
    b.type_into("#sign-in-form textarea", &app.token("ttd")).await;
    b.click("#sign-in-form button").await;
    b.wait_text("#sign-in-error", "a creator's token is refused", |t| {
        t.contains("varsel:operator")
    })
    .await;
    let refused = b.console_log().await;
    assert!(
        refused.iter().all(|e| e["message"].as_str().is_some_and(|m| m.contains("403"))),
        "only the refusal: {refused:#?}"
    );
    b.type_into("#sign-in-form textarea", &operator).await;
    b.click("#sign-in-form button").await;

    // The overview.
    b.wait_text("#page h1", "the overview", |t| t == "Overview").await;
    b.wait_text("#page", "the overview counts the order and the dead report", |t| {
        t.contains("Completed 1") && t.contains("Dead reports\n1")
    })
    .await;
    let queues = b
        .wait_text("table.queues", "Temporal names the workers polling the order queue", |t| {
            t.lines().filter(|l| l.contains("workflow") || l.contains("activity")).count() == 4
        })
        .await;
    assert!(
        queues.lines().any(|l| l.contains("workflow") && l.contains("1: ")),
        "this app's worker polls its workflow tasks: {queues}"
    );
    b.assert_visible(
        "overview",
        &["#page h1", ".cards .card", "table.queues", "p.counts .pill", "table.results"],
    )
    .await;
    b.screenshot(&shots.join("console-overview.png")).await;
    // Re-apply the dead report: it still matches nothing, and the console says so.
    b.click("button[data-action=reapply-dead]").await;
    b.wait_text("#flash", "the re-apply's outcome", |t| {
        t.contains("Dead reports re-applied: 1 The report still matches no open notification.")
    })
    .await;
    let refused = b.console_log().await;
    assert!(
        refused.iter().all(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("/reapply") && m.contains("409"))),
        "only the re-apply's refusal: {refused:#?}"
    );

    // Find: the order by its reference, typed and sent with Enter.
    b.click("a[data-nav=orders]").await;
    b.type_into("#search input[name=sendersReference]", reference).await;
    b.keys(ENTER).await;
    b.wait_text("table.results", "the order is found", |t| t.contains(&id)).await;
    let found = b.text("p.counts").await;
    assert!(found.starts_with("1 order found"), "{found}");
    b.assert_visible("search", &["#search", "p.counts", "table.results"]).await;
    b.screenshot(&shots.join("console-search.png")).await;

    // See: the order's picture marks the failure with its reason.
    b.click(&format!("table.results a[href='#/order/{id}']")).await;
    b.find("svg.picture").await;
    let reason = b
        .wait_text(
            "table.failures tbody tr td:nth-child(3)",
            "the failure table names a reason",
            |t| !t.is_empty(),
        )
        .await;
    let marks = b
        .run("return [...document.querySelectorAll('svg.picture .failure title')].map(t => t.textContent)")
        .await;
    let marks: Vec<String> = serde_json::from_value(marks).unwrap();
    assert!(
        marks.iter().any(|m| m.starts_with("1 × Email_Failed_TTL: ") && m.contains(&reason)),
        "hovering the failure names it: {marks:?} (reason {reason})"
    );
    let shown = b.text("svg.picture .failure text").await;
    assert!(shown.contains("Email_Failed_TTL"), "the picture names the failure: {shown}");
    b.assert_visible(
        "order",
        &["#page h1", "svg.picture", "svg.picture .failure", "table.failures", "#notifications li"],
    )
    .await;
    b.screenshot(&shots.join("console-order-failed.png")).await;

    // The notifications, narrowed to the failed one, with its own events.
    b.click("#notification-filter select option[value=failed]").await;
    b.click("#notification-filter button").await;
    let list = b
        .wait_text("#notifications ol.notifications", "only the failed notification", |t| {
            t.contains("outage@example.no") && !t.contains("ok@example.no")
        })
        .await;
    assert!(list.contains("Email_Failed_TTL"), "{list}");
    b.click("#notifications summary").await;
    b.wait_text("#notifications ol.events", "its events", |t| t.contains("time-to-live reached"))
        .await;

    // Act, by keyboard: Tab to "Redrive…", Enter; the preview says exactly what will be sent
    // again and takes the focus; Enter sends it.
    smtp.set_outage(false);
    let mut reached = false;
    for _ in 0..40 {
        b.keys(TAB).await;
        if b.run("return document.activeElement.dataset.action || ''").await == "redrive-preview" {
            reached = true;
            break;
        }
    }
    assert!(reached, "Tab reaches the Redrive button");
    b.keys(ENTER).await;
    let preview =
        b.wait_text(".preview", "the redrive preview", |t| t.contains("will be sent again")).await;
    assert!(
        preview.contains("1 notifications will be sent again")
            && preview.contains("outage@example.no")
            && !preview.contains("ok@example.no"),
        "{preview}"
    );
    b.screenshot(&shots.join("console-redrive-preview.png")).await;
    assert_eq!(
        b.run("return document.activeElement.dataset.action || ''").await,
        "redrive",
        "the preview's confirm button has the focus"
    );
    b.keys(ENTER).await;
    b.wait_text("#flash", "the redrive starts", |t| t.contains("Redrive started: 1")).await;

    // The page follows the order until it completes again, and shows who redrove it.
    b.wait_text("#page", "the order completes again", |t| {
        t.contains("email Email_Succeeded 2") && !t.contains("Why notifications failed")
    })
    .await;
    app.wait_status(&id, "Completed", T).await;
    b.wait_source("the picture shows the redrive and who did it", |s| {
        s.contains("redrive by operator ops-kari")
    })
    .await;
    b.assert_visible("order after redrive", &["svg.picture", ".lane-actions .mark"]).await;
    b.screenshot(&shots.join("console-order.png")).await;

    // Replay the history against this build, from the console.
    b.click("button[data-action=replay]").await;
    b.wait_text("#flash", "the replay's verdict", |t| t.starts_with("Replay: clean")).await;

    // Nothing went wrong in the browser.
    let severe: Vec<Value> =
        b.console_log().await.into_iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(severe.is_empty(), "the browser console shows errors: {severe:#?}");
    b.close().await;
    app.stop().await;
}
on_both_databases!(an_operator_finds_a_failed_order_sees_why_and_redrives_it, find_see_redrive);
