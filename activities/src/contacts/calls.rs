//! How varsel calls a lookup service, the same for each: JSON posted a batch at a time, `n`
//! batches at once; an answer classified as usable, refused (a 4xx about what was asked) or
//! unavailable (unreachable, timeout, 401/403/408/429, 5xx: worth a retry); a refused batch
//! asked again one key at a time, so one bad key leaves only its recipient unidentified.

use super::sources::LookupError;
use futures::{StreamExt, TryStreamExt};
use std::future::Future;

/// What one call came to.
#[derive(Debug)]
pub enum CallError {
    /// The service cannot answer now.
    Unavailable(String),
    /// The service refused what was asked (a 4xx other than 401, 403, 408 and 429).
    Refused(String),
}

/// Posts `body` to `url` (with `bearer`, if any) and reads the answer as `T`. A 401 or 403 is
/// `Unavailable` with `status` set, so a caller can renew its token.
pub async fn post_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
) -> Result<T, (CallError, Option<u16>)> {
    let unavailable = |e: String| (CallError::Unavailable(e), None);
    let mut request = http.post(url).json(body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.map_err(|e| unavailable(format!("{url}: {e}")))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| unavailable(format!("{url}: {e}")))?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map_err(|e| unavailable(format!("{url}: not the expected answer: {e}")));
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
    let reason = format!("{url}: HTTP {status}: {text}");
    let code = status.as_u16();
    if status.is_client_error() && !matches!(code, 401 | 403 | 408 | 429) {
        Err((CallError::Refused(reason), Some(code)))
    } else {
        Err((CallError::Unavailable(reason), Some(code)))
    }
}

/// Calls `call` for `keys` in batches of `batch`, `concurrency` at once, and gathers what each
/// found. A refused batch is asked again one key at a time; a refused key finds nothing. An
/// unavailable service fails the whole lookup.
pub async fn in_batches<T, F, Fut>(
    source_name: &'static str,
    keys: &[String],
    batch: usize,
    concurrency: usize,
    call: F,
) -> Result<Vec<T>, LookupError>
where
    F: Fn(Vec<String>) -> Fut + Sync,
    Fut: Future<Output = Result<Vec<T>, CallError>> + Send,
    T: Send,
{
    let lookup_error = |reason| LookupError { source_name, reason };
    let call = &call;
    let chunks: Vec<Vec<String>> = keys.chunks(batch.max(1)).map(<[String]>::to_vec).collect();
    let batches = futures::stream::iter(chunks)
        .map(|chunk| async move {
            let n = chunk.len();
            match call(chunk.clone()).await {
                Ok(found) => Ok(found),
                Err(CallError::Unavailable(e)) => Err(lookup_error(e)),
                Err(CallError::Refused(e)) if n == 1 => {
                    tracing::warn!(
                        source = source_name,
                        reason = e,
                        "a key was refused; its recipient is not identified"
                    );
                    Ok(vec![])
                }
                Err(CallError::Refused(e)) => {
                    tracing::warn!(
                        source = source_name,
                        keys = n,
                        reason = e,
                        "a batch was refused; asking one key at a time"
                    );
                    let ones: Vec<Vec<String>> = chunk.into_iter().map(|k| vec![k]).collect();
                    futures::stream::iter(ones)
                        .map(|one| async move {
                            match call(one).await {
                                Ok(found) => Ok(found),
                                Err(CallError::Refused(_)) => Ok(vec![]),
                                Err(CallError::Unavailable(e)) => Err(lookup_error(e)),
                            }
                        })
                        .buffer_unordered(concurrency.max(1))
                        .try_concat()
                        .await
                }
            }
        })
        .buffer_unordered(concurrency.max(1));
    batches.try_concat().await
}
