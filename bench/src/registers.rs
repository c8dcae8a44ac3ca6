//! The contact register's figures: how fast `varsel contacts import` loads a large file (against
//! the same rows upserted straight from memory, in the same run) and how much memory it takes
//! while it does; and how fast an order's notifications are generated when its persons are
//! looked up in KRR answering in 20 ms a call (a stand-in, with Maskinporten in front) against
//! the embedded register, in the same run.

use crate::{Figure, TaskCtx, bar};
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use varsel_activities::Store;
use varsel_activities::contacts::import::{BATCH, ContactKind, FileFormat, import};
use varsel_activities::store::PersonContact;
use varsel_api::Application;
use varsel_api::config::{Config, PersonsSource};
use varsel_tests::standins::{KRR_SCOPE, KrrStandIn, MaskinportenStandIn, RsaKey};

/// The process's peak resident set since the last [`reset_peak_rss`], MiB (Linux).
fn peak_rss_mib() -> Option<f64> {
    crate::fleet::peak_rss_mib(std::process::id())
}

/// Starts the peak resident set anew from the current one (Linux's `clear_refs` 5).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn nin(i: usize) -> String {
    format!("{:011}", 60_000_000_000u64 + i as u64)
}

/// `import`: an NDJSON file of `n` persons loaded with the importer, against the same persons
/// upserted from memory a batch at a time (no file, no parsing, no validation).
pub async fn import_phase(store: &Store, dir: &Path, n: usize) -> anyhow::Result<Vec<Figure>> {
    let path = dir.join("persons.ndjson");
    let pb = bar(n as u64, "import: writing the file");
    {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        for i in 0..n {
            writeln!(
                out,
                r#"{{"nationalIdentityNumber":"{}","name":"Person {i}","email":"p{i}@import.example","mobileNumber":"4{:07}","isReserved":false,"lastUpdated":"2026-10-01"}}"#,
                nin(i),
                i % 10_000_000
            )?;
            if i % 10_000 == 0 {
                pb.set_position(i as u64);
            }
        }
        out.flush()?;
    }
    pb.finish_and_clear();
    let size_mib = std::fs::metadata(&path)?.len() as f64 / 1024.0 / 1024.0;

    // Baseline: the same rows straight into the store, a batch a transaction.
    let pb = bar(n as u64, "import: baseline upserts from memory");
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let rows: Vec<(String, PersonContact)> = (i..(i + BATCH).min(n))
            .map(|j| {
                let contact = PersonContact {
                    name: Some(format!("Person {j}")),
                    email: Some(format!("p{j}@baseline.example")),
                    mobile: Some(format!("+474{:07}", j % 10_000_000)),
                    reserved: false,
                    updated_at: Some(chrono::Utc::now()),
                };
                (nin(j), contact)
            })
            .collect();
        store.upsert_persons(&rows).await?;
        i += BATCH;
        pb.set_position(i.min(n) as u64);
    }
    let baseline_rate = n as f64 / start.elapsed().as_secs_f64();
    pb.finish_and_clear();

    let pb = bar(0, "import: varsel contacts import");
    let measured = reset_peak_rss();
    let before = peak_rss_mib();
    let start = Instant::now();
    let file = std::fs::File::open(&path)?;
    let summary = import(store, ContactKind::Persons, FileFormat::Ndjson, file, |_| {}).await?;
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    pb.finish_and_clear();
    anyhow::ensure!(summary.imported == n as u64 && summary.rejected == 0, "import: {summary:?}");

    let mut figures = vec![Figure::ratio(
        &format!("import: {n} persons from {size_mib:.0} MiB of NDJSON, persons/s"),
        rate,
        baseline_rate,
        "persons/s vs upserts/s",
        0.5,
    )];
    if let (true, Some(before), Some(peak)) = (measured, before, peak) {
        figures.push(Figure::plain(
            "import: peak resident memory of the process while importing",
            peak,
            "MiB",
            &format!("{before:.0} MiB before; bounded, not growing with the file"),
            Some(peak - before < 256.0),
        ));
    }
    Ok(figures)
}

/// Waits until the order's notifications are all generated (its status moved past
/// `Processing`), then until it is `Completed`; returns the first wait.
async fn generated_then_completed(store: &Store, id: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3600);
    let mut generated = None;
    loop {
        let status = store.order(id).await?.map(|o| o.order.status.as_str().to_owned());
        match status.as_deref() {
            Some("Processed" | "Completed") if generated.is_none() => {
                generated = Some(start.elapsed());
            }
            _ => {}
        }
        if status.as_deref() == Some("Completed") {
            return Ok(generated.unwrap_or_else(|| start.elapsed()));
        }
        anyhow::ensure!(Instant::now() < deadline, "order {id} did not complete in an hour");
        tokio::time::sleep(Duration::from_millis(if generated.is_some() { 500 } else { 20 })).await;
    }
}

/// `krr`: one order of `n` persons generated with the embedded register, then the same persons
/// looked up in KRR (20 ms a call, Maskinporten tokens, nothing remembered between calls) by a
/// second API and worker on their own task queue.
pub(crate) async fn krr_phase(
    store: &Store,
    ctx: &TaskCtx,
    cfg: &Config,
    n: usize,
) -> anyhow::Result<Vec<Figure>> {
    let pb = bar(n as u64, "krr: seeding the register and KRR");
    let key = RsaKey::generate();
    let maskinporten = MaskinportenStandIn::start(
        "varsel-bench",
        "bench-key",
        &key.public,
        &[KRR_SCOPE],
        Duration::from_secs(120),
    )
    .await;
    let krr = KrrStandIn::start(&maskinporten).await;
    krr.set_delay(Duration::from_millis(20));
    let updated = chrono::Utc::now().to_rfc3339();
    let mut rows = Vec::with_capacity(BATCH);
    for i in 0..n {
        let nin = format!("{:011}", 61_000_000_000u64 + i as u64);
        let email = format!("krr-{i}@bench.example");
        krr.put_active(&nin, &email, "99999999", &updated);
        let contact = PersonContact {
            name: None,
            email: Some(email),
            mobile: None,
            reserved: false,
            updated_at: None,
        };
        rows.push((nin, contact));
        if rows.len() == BATCH || i + 1 == n {
            store.upsert_persons(&rows).await?;
            rows.clear();
            pb.set_position(i as u64 + 1);
        }
    }
    pb.finish_and_clear();
    let body = json!({
        "notificationChannel": "Email",
        "emailTemplate": {"subject": "Bench", "body": "A benchmark message."},
        "recipients": (0..n).map(|i| json!({"nationalIdentityNumber": format!("{:011}", 61_000_000_000u64 + i as u64)})).collect::<Vec<_>>(),
    });

    let pb = bar(0, "krr: the embedded register's order");
    let id = ctx.post("/orders", &body).await?;
    let register = generated_then_completed(store, &id).await?;
    pb.finish_and_clear();

    let mut kcfg = cfg.clone();
    kcfg.http.listen = "127.0.0.1:0".into();
    kcfg.temporal.task_queue = format!("varsel-bench-krr-{}", uuid::Uuid::new_v4().simple());
    kcfg.contacts.persons = PersonsSource::Krr;
    kcfg.contacts.krr_url = krr.url.clone();
    kcfg.contacts.cache_secs = 0;
    kcfg.maskinporten.maskinporten_token_url = maskinporten.token_url.clone();
    kcfg.maskinporten.maskinporten_client_id = "varsel-bench".into();
    kcfg.maskinporten.maskinporten_key_file = key.private.clone();
    kcfg.maskinporten.maskinporten_kid = "bench-key".into();
    let app = Application::build(kcfg).await?;
    let kctx = TaskCtx {
        base: format!("{}/notifications/api/v1", app.base_url()),
        token: ctx.token.clone(),
        http: ctx.http.clone(),
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    let pb = bar(0, "krr: the same persons through KRR");
    let calls_before = krr.calls();
    let id = kctx.post("/orders", &body).await?;
    let through_krr = generated_then_completed(store, &id).await?;
    pb.finish_and_clear();
    let calls = krr.calls() - calls_before;
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    Ok(vec![
        Figure::ratio(
            &format!("krr: {n} persons, generated/s through KRR (20 ms a call, {calls} calls)"),
            rate(through_krr),
            rate(register),
            "notifications/s vs register",
            0.8,
        ),
        Figure::plain(
            "krr: Maskinporten tokens fetched",
            maskinporten.issued() as f64,
            "tokens",
            "one, reused",
            Some(maskinporten.issued() == 1),
        ),
    ])
}
