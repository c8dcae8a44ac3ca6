//! A composed email's attachments, fetched from their URLs when the email is sent: through the
//! outbound policy of condition endpoints (no loopback, private, link-local or metadata target,
//! by literal, by DNS or by redirect), a few downloads at once over the whole worker, each
//! bounded in time, the message's files together bounded in size while they arrive (a download
//! stops at the first byte over the limit, it is never read whole first), and each file's type
//! checked against the type its order declared.
//!
//! What can go wrong is sorted into what retrying cannot mend (`Invalid`: a refused or malformed
//! URL, a 4xx answer such as an expired SAS signature, another type than declared; `TooLarge`)
//! and what it can (`Unavailable`: a timeout, a refused connection, a 5xx, 408 or 429 answer).

use super::outbound::{OutboundPolicy, error_chain, refusal};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use varsel_workflows::order::Attachment;

/// Redirects followed at most (a blob store may redirect once or twice).
const MAX_REDIRECTS: usize = 3;

/// How attachments are fetched.
#[derive(Debug, Clone)]
pub struct AttachmentSettings {
    /// Downloads at once over the whole worker.
    pub concurrency: usize,
    /// Bound of one download: connecting, the answer and its whole body.
    pub timeout: Duration,
    /// The largest a message may be with its attachments, bytes; the files together must stay
    /// below it.
    pub max_message_bytes: u64,
}

/// A fetched file, ready to attach.
#[derive(Debug, Clone)]
pub struct FetchedFile {
    /// The file's name in the email.
    pub filename: String,
    /// Its media type: the declared one.
    pub mime_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why a message's attachments could not be fetched.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// A file cannot be fetched from its URL, and retrying cannot change that.
    #[error("{0}")]
    Invalid(String),
    /// The files together exceed the message size limit.
    #[error("{0}")]
    TooLarge(String),
    /// The file server could not answer now; a later attempt may succeed.
    #[error("{0}")]
    Unavailable(String),
}

/// Fetches attachments.
#[derive(Clone)]
pub struct AttachmentFetcher {
    http: reqwest::Client,
    policy: Arc<OutboundPolicy>,
    slots: Arc<tokio::sync::Semaphore>,
    settings: AttachmentSettings,
}

impl AttachmentFetcher {
    /// A fetcher that only reaches what `policy` allows.
    pub fn new(settings: AttachmentSettings, policy: OutboundPolicy) -> anyhow::Result<Self> {
        let policy = Arc::new(policy);
        let http = policy
            .client_builder(settings.timeout)
            .redirect(policy.checked_redirects(MAX_REDIRECTS))
            .user_agent(concat!("varsel/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let slots = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        Ok(Self { http, policy, slots, settings })
    }

    /// The largest a message may be with its attachments.
    pub fn max_message_bytes(&self) -> u64 {
        self.settings.max_message_bytes
    }

    /// Fetches a message's files, in their order; the first failure ends the others.
    pub async fn fetch_all(&self, files: &[Attachment]) -> Result<Vec<FetchedFile>, FetchError> {
        let budget = std::sync::atomic::AtomicU64::new(0);
        // At most `concurrency` at once over the worker: each waits for a download slot.
        futures::future::try_join_all(files.iter().map(|file| self.fetch(file, &budget))).await
    }

    /// One file, its bytes counted against the message's `budget` as they arrive.
    async fn fetch(
        &self,
        file: &Attachment,
        budget: &std::sync::atomic::AtomicU64,
    ) -> Result<FetchedFile, FetchError> {
        use std::sync::atomic::Ordering;
        let name = &file.filename;
        let invalid = |why: String| FetchError::Invalid(format!("attachment '{name}': {why}"));
        let url = reqwest::Url::parse(&file.url).map_err(|e| invalid(format!("bad URL: {e}")))?;
        self.policy.check_url(&url).map_err(|r| invalid(r.0))?;
        let _slot = self.slots.acquire().await.expect("the download slots are never closed");
        let resp = self.http.get(url).send().await.map_err(|e| match refusal(&e) {
            Some(r) => invalid(r),
            None => FetchError::Unavailable(format!(
                "attachment '{name}': file server unreachable: {}",
                error_chain(&e)
            )),
        })?;
        let status = resp.status();
        if status.is_server_error()
            || status == reqwest::StatusCode::TOO_MANY_REQUESTS
            || status == reqwest::StatusCode::REQUEST_TIMEOUT
        {
            return Err(FetchError::Unavailable(format!(
                "attachment '{name}': file server answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(invalid(format!("the URL answered HTTP {status}")));
        }
        let served = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        if let Some(served) = served.filter(|t| !agrees(t, &file.mime_type)) {
            return Err(invalid(format!(
                "the URL serves {served}, the order declares {}",
                file.mime_type
            )));
        }
        let limit = self.settings.max_message_bytes;
        let too_large = || {
            FetchError::TooLarge(format!(
                "the attachments exceed the message size limit of {limit} bytes (at '{name}')"
            ))
        };
        // A declared length over the limit is refused before a byte is read.
        if resp.content_length().is_some_and(|n| budget.load(Ordering::SeqCst) + n > limit) {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| {
                FetchError::Unavailable(format!(
                    "attachment '{name}': download broke off: {}",
                    error_chain(&e)
                ))
            })?;
            let n = chunk.len() as u64;
            if budget.fetch_add(n, Ordering::SeqCst) + n > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(FetchedFile { filename: name.clone(), mime_type: file.mime_type.clone(), bytes })
    }
}

/// Whether a served media type agrees with the declared one: the same type, or a generic
/// `application/octet-stream` (what a blob store serves for a file stored without a type).
fn agrees(served: &str, declared: &str) -> bool {
    let declared = declared.split(';').next().unwrap_or_default().trim();
    served.eq_ignore_ascii_case(declared) || served == "application/octet-stream"
}

#[cfg(test)]
mod tests {
    use super::agrees;

    #[test]
    fn a_served_type_agrees_when_it_is_the_declared_one_or_says_nothing() {
        assert!(agrees("application/pdf", "application/pdf"));
        assert!(agrees("application/pdf", "Application/PDF"));
        assert!(agrees("text/plain", "text/plain; charset=utf-8"));
        assert!(agrees("application/octet-stream", "image/png"));
        assert!(!agrees("text/html", "application/pdf"));
    }
}
