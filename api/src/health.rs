//! Health for orchestrators and load balancers: `/health/live` (the process serves; `/health` is
//! the same) and `/health/ready` (it can do its work: the database answers with every migration
//! applied, and Temporal answers). Not ready is 503 problem details naming the failing part.
//! Both are unauthenticated, so an answer names the part and what kind of failure it is; the
//! underlying error (host names, driver messages) goes to the process's log, not to the caller.

use crate::config::Config;
use poem::{IntoResponse, Response, handler, http::StatusCode, web::Data, web::Json};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use temporalio_client::Client;
use varsel_activities::Store;

/// How long one check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What a caller is told of a part whose error was logged.
const NOT_ANSWERING: &str = "does not answer (the cause is in this process's log)";

/// The caller's text for a failed `part`, the cause logged beside it.
fn logged(part: &'static str, cause: String) -> String {
    tracing::warn!(part, cause = %cause, "not ready");
    NOT_ANSWERING.to_owned()
}

/// What readiness checks, with a Temporal client kept between probes.
pub struct Readiness {
    store: Store,
    config: Arc<Config>,
    temporal: tokio::sync::Mutex<Option<Client>>,
}

impl Readiness {
    /// Readiness of a process using `store` and the Temporal of `config`.
    pub fn new(store: Store, config: Arc<Config>) -> Self {
        Self { store, config, temporal: Default::default() }
    }

    /// Each part and what is wrong with it, if anything.
    pub async fn check(&self) -> Vec<(&'static str, Result<(), String>)> {
        let (database, temporal) = tokio::join!(self.database(), self.temporal());
        let (database, migrations) = match database {
            Ok(0) => (Ok(()), Ok(())),
            Ok(n) => (Ok(()), Err(format!("{n} migration(s) of this build not applied"))),
            Err(e) => (Err(e), Err("unknown: the database did not answer".to_owned())),
        };
        vec![("database", database), ("migrations", migrations), ("temporal", temporal)]
    }

    async fn database(&self) -> Result<usize, String> {
        match tokio::time::timeout(CHECK_TIMEOUT, self.store.readiness()).await {
            Ok(Ok(pending)) => Ok(pending),
            Ok(Err(e)) => Err(logged("database", e.to_string())),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }

    async fn temporal(&self) -> Result<(), String> {
        let mut cached = self.temporal.lock().await;
        let probe = async {
            let client = match cached.take() {
                Some(c) => c,
                None => {
                    crate::temporal::connect(&self.config).await.map_err(|e| format!("{e:#}"))?
                }
            };
            crate::temporal::ping(&client).await.map_err(|e| format!("{e:#}"))?;
            Ok::<_, String>(client)
        };
        match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
            Ok(Ok(client)) => {
                *cached = Some(client);
                Ok(())
            }
            Ok(Err(e)) => Err(logged("temporal", e)),
            Err(_) => Err(format!("no answer within {CHECK_TIMEOUT:?}")),
        }
    }
}

/// The process is up and serving.
#[handler]
pub fn live() -> &'static str {
    "ok"
}

/// 200 with each part's state when every part is ready; 503 problem details naming what is not.
#[handler]
pub async fn ready(readiness: Data<&Arc<Readiness>>) -> Response {
    let checks = readiness.check().await;
    let mut parts = Map::new();
    let mut failing = Vec::new();
    for (part, result) in &checks {
        match result {
            Ok(()) => {
                parts.insert((*part).to_owned(), json!("ok"));
            }
            Err(e) => {
                parts.insert((*part).to_owned(), json!(e));
                failing.push(format!("{part}: {e}"));
            }
        }
    }
    if failing.is_empty() {
        return Json(json!({"status": "ready", "checks": Value::Object(parts)})).into_response();
    }
    let problem = crate::error::problem_body(503, format!("Not ready: {}", failing.join("; ")));
    let mut body: Value = serde_json::from_slice(&problem).unwrap_or_default();
    if let Value::Object(m) = &mut body {
        m.insert("checks".into(), Value::Object(parts));
    }
    Json(body)
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
        .with_content_type("application/problem+json")
        .into_response()
}
