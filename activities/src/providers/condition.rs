//! The send-condition check: `GET conditionEndpoint` → `{"sendNotification": bool}`.

use super::outbound::{OutboundPolicy, error_chain, refusal};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use varsel_workflows::activities::ConditionOutcome;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

/// Largest condition answer read; anything longer is an error, not a memory problem.
const MAX_BODY: usize = 64 * 1024;

/// Why a condition check gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConditionError {
    /// The destination is not allowed (see [`super::outbound`]); retrying cannot help.
    #[error("condition endpoint refused: {0}")]
    Refused(String),
    /// Unreachable, timed out, not 2xx, too large or not the expected JSON: worth a retry.
    #[error("{0}")]
    Inconclusive(String),
}

/// How varsel proves itself to condition endpoints.
#[derive(Clone, Default)]
pub enum ConditionAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// A fixed bearer token.
    Bearer(String),
    /// A Maskinporten token for `scope` (Altinn's `altinn:system/notifications.condition.check`).
    Maskinporten {
        /// The process's Maskinporten client.
        client: Arc<super::maskinporten::Maskinporten>,
        /// The scope asked for.
        scope: String,
    },
}

/// Calls condition endpoints.
#[derive(Clone)]
pub struct ConditionClient {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    auth: ConditionAuth,
}

impl ConditionClient {
    /// A client with the given per-request timeout (connect, answer and body together) that only
    /// reaches the destinations `policy` allows, redirects included.
    pub fn new(timeout: Duration, policy: OutboundPolicy) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let http = policy
            .client_builder(timeout)
            .redirect(policy.checked_redirects(MAX_REDIRECTS))
            .user_agent(concat!("varsel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http, policy, auth: ConditionAuth::None })
    }

    /// The same client, proving itself with `auth`. A redirect to another host drops the
    /// token (reqwest removes `Authorization` when the host changes).
    pub fn with_auth(mut self, auth: ConditionAuth) -> Self {
        self.auth = auth;
        self
    }

    /// One check. `Refused` when the destination (or a redirect, or every address its name
    /// resolves to) is not allowed; `Inconclusive` on a non-2xx answer, network error, timeout, a
    /// body that is too large, not JSON, or without a boolean `sendNotification`.
    pub async fn check(&self, url: &str) -> Result<ConditionOutcome, ConditionError> {
        use ConditionError::Inconclusive;
        let parsed =
            reqwest::Url::parse(url).map_err(|e| ConditionError::Refused(format!("{url}: {e}")))?;
        self.policy.check_url(&parsed).map_err(|r| ConditionError::Refused(r.0))?;
        let mut request = self.http.get(parsed);
        match &self.auth {
            ConditionAuth::None => {}
            ConditionAuth::Bearer(token) => request = request.bearer_auth(token),
            ConditionAuth::Maskinporten { client, scope } => {
                let token = client.token(scope).await.map_err(|e| Inconclusive(e.to_string()))?;
                request = request.bearer_auth(token);
            }
        }
        let resp = request.send().await.map_err(|e| match refusal(&e) {
            Some(r) => ConditionError::Refused(r),
            None => Inconclusive(format!("condition endpoint unreachable: {}", error_chain(&e))),
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Inconclusive(format!("condition endpoint answered HTTP {status}")));
        }
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Inconclusive(format!("condition endpoint body unreadable: {}", error_chain(&e)))
            })?;
            if body.len() + chunk.len() > MAX_BODY {
                return Err(Inconclusive(format!(
                    "condition endpoint answer exceeds {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Inconclusive(format!("condition endpoint answer is not JSON: {e}")))?;
        match value.get("sendNotification").and_then(|v| v.as_bool()) {
            Some(true) => Ok(ConditionOutcome::Met),
            Some(false) => Ok(ConditionOutcome::NotMet),
            None => Err(Inconclusive(
                "condition endpoint answer has no boolean sendNotification".into(),
            )),
        }
    }
}
