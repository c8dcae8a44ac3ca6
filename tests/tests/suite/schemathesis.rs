//! Property-based fuzzing of the served OpenAPI document with schemathesis (PyPI), against the
//! real app: no answer is a 5xx, every answer matches its documented status, content type,
//! headers and schema, schema-violating requests are refused, undeclared methods get 405 with
//! `Allow`, and a request without credentials is refused.
//!
//! Schema-valid requests are accepted (`positive_data_acceptance`): the document states what the
//! validators demand, and `tests/support/schemathesis.toml` lists the operations whose validators
//! also refuse what no schema can say, each with its reasons.

use std::process::Command;
use std::time::Instant;
use varsel_tests::{Db, TestApp, TestAppOptions, project_root};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let mut opts = TestAppOptions::new(Db::Sqlite, "");
    // The API is under test; generated orders need not be sent.
    opts.tweak = Box::new(|c| c.run_worker = false);
    let app = TestApp::spawn(opts).await;
    let schemathesis = project_root().join(".venv/bin/schemathesis");
    assert!(schemathesis.exists(), "schemathesis: run ./scripts/bootstrap --test-tools");
    let workdir = tempfile::tempdir().unwrap();
    let url = format!("{}/notifications/api/v1/openapi.json", app.base_url);
    let auth = format!("Authorization: Bearer {}", app.token("ttd"));
    let doc: serde_json::Value = app.http.get(&url).send().await.unwrap().json().await.unwrap();
    let operations: usize =
        doc["paths"].as_object().unwrap().values().map(|ops| ops.as_object().unwrap().len()).sum();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            .current_dir(workdir.path())
            .env("NO_COLOR", "1")
            .env("SCHEMATHESIS_HOOKS", project_root().join("tests/support/schemathesis_hooks.py"))
            .arg("--config-file")
            .arg(project_root().join("tests/support/schemathesis.toml"))
            // Every check (schemathesis' default; named on the command line, checks would
            // override the per-operation settings of the configuration).
            .args(["run", &url, "-H", &auth])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args([
                "--max-examples",
                "40",
                "--max-time",
                "60",
                "--seed",
                "20261122",
                "--workers",
                "2",
            ])
            .args(["--generation-database", "none", "--max-failures", "50"])
            .output()
            .expect("run schemathesis")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("schemathesis ran for {:?}", started.elapsed());
    assert!(output.status.success(), "schemathesis found problems:\n{text}");
    assert!(
        text.contains(&format!("Tested: {operations}")),
        "every one of the {operations} operations was tested:\n{text}"
    );
    app.stop().await;
}
