//! The send-condition check: `GET conditionEndpoint` → `{"sendNotification": bool}`.

use futures::StreamExt;
use std::time::Duration;
use varsel_workflows::activities::ConditionOutcome;

/// Largest condition answer read; anything longer is an error, not a memory problem.
const MAX_BODY: usize = 64 * 1024;

/// Calls condition endpoints.
#[derive(Clone)]
pub struct ConditionClient {
    http: reqwest::Client,
}

impl ConditionClient {
    /// A client with the given per-request timeout.
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("varsel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// One check. `Err` is inconclusive (retry): non-2xx, network error, timeout, a body that is
    /// too large, not JSON, or without a boolean `sendNotification`.
    pub async fn check(&self, url: &str) -> Result<ConditionOutcome, String> {
        let resp = self.http.get(url).send().await.map_err(|e| format!("condition endpoint unreachable: {e}"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("condition endpoint answered HTTP {status}"));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("condition endpoint body unreadable: {e}"))?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(format!("condition endpoint answer exceeds {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("condition endpoint answer is not JSON: {e}"))?;
        match value.get("sendNotification").and_then(|v| v.as_bool()) {
            Some(true) => Ok(ConditionOutcome::Met),
            Some(false) => Ok(ConditionOutcome::NotMet),
            None => Err("condition endpoint answer has no boolean sendNotification".into()),
        }
    }
}
