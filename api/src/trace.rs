//! Every request's trace id, log line and metrics: the outermost layer around the routes.
//!
//! The trace id is the W3C `traceparent` header's when the caller sends one (so a request can be
//! followed from the caller's own traces), otherwise a new random one. It is the `trace_id` of the
//! request's span (every log line written while handling it carries it), the `traceId` of every
//! problem-details answer, and the `traceresponse` header of every answer, so an operator given
//! one can find the other. A request whose client goes away before it is answered is logged
//! and counted as 499 (Altinn's `NOT-00002`: "the client disconnected or cancelled the request").

use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;
use varsel_activities::metrics::Metrics;

/// The status logged and counted for a request whose client went away before its answer.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request's trace id: 32 lower-case hex digits, as in W3C Trace Context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceId(pub String);

impl TraceId {
    /// The trace id of a `traceparent` header (`00-<trace id>-<parent id>-<flags>`), when it is
    /// one: version `00`, 32 hex digits not all zero, a 16-digit parent id, 2-digit flags.
    pub fn from_traceparent(header: &str) -> Option<Self> {
        let parts: Vec<&str> = header.trim().split('-').collect();
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        match parts.as_slice() {
            [version, trace, parent, flags]
                if hex(version, 2)
                    && *version != "ff"
                    && hex(trace, 32)
                    && hex(parent, 16)
                    && hex(flags, 2)
                    && trace.bytes().any(|b| b != b'0')
                    && parent.bytes().any(|b| b != b'0') =>
            {
                Some(Self(trace.to_ascii_lowercase()))
            }
            _ => None,
        }
    }

    /// A new random trace id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4().simple().to_string())
    }

    /// The request's: from its `traceparent`, or new.
    pub fn of(req: &Request) -> Self {
        req.headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(Self::from_traceparent)
            .unwrap_or_default()
    }
}

impl Default for TraceId {
    fn default() -> Self {
        Self::new()
    }
}

/// Logs and counts a request whose handling is dropped before it is answered: hyper drops it
/// when the client closes the connection.
struct Unanswered<'a> {
    method: &'a str,
    route: &'a str,
    started: Instant,
    metrics: &'a Metrics,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if !self.answered {
            // Still inside the request's span: the line carries the trace id.
            tracing::info!(
                status = CLIENT_CLOSED_REQUEST,
                code = "NOT-00002",
                elapsed_ms = self.started.elapsed().as_millis() as u64,
                "client closed the request before it was answered"
            );
            count(self.metrics, self.method, self.route, CLIENT_CLOSED_REQUEST, self.started);
        }
    }
}

fn count(metrics: &Metrics, method: &str, route: &str, status: u16, started: Instant) {
    metrics.http_requests.with_label_values(&[method, route, &status.to_string()]).inc();
    metrics
        .http_seconds
        .with_label_values(&[method, route])
        .observe(started.elapsed().as_secs_f64());
}

/// Around every route: the trace id, the request's span and its one "answered" log line, the
/// request metrics, and the trace id written into problem details.
pub async fn observe_request<E: Endpoint>(
    ep: Arc<E>,
    mut req: Request,
    metrics: Metrics,
) -> poem::Result<Response> {
    let trace = TraceId::of(&req);
    let method = req.method().as_str().to_owned();
    let route = route_label(req.uri().path());
    let span = tracing::info_span!(
        "request",
        trace_id = %trace.0,
        method = %method,
        path = %req.uri().path(),
    );
    req.extensions_mut().insert(trace.clone());
    async move {
        let mut guard = Unanswered {
            method: &method,
            route: &route,
            started: Instant::now(),
            metrics: &metrics,
            answered: false,
        };
        let resp = ep.call(req).await.map(IntoResponse::into_response);
        guard.answered = true;
        let resp = match resp {
            Ok(resp) => resp,
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16();
        let resp = with_trace_id(resp, &trace).await;
        let elapsed_ms = guard.started.elapsed().as_millis() as u64;
        if resp.status().is_server_error() {
            tracing::warn!(status, elapsed_ms, "answered");
        } else {
            tracing::info!(status, elapsed_ms, "answered");
        }
        count(&metrics, &method, &route, status, guard.started);
        Ok(resp)
    }
    .instrument(span)
    .await
}

/// The answer with its `traceresponse` header, and, when it is problem details, the trace id
/// as its `traceId`.
async fn with_trace_id(resp: Response, trace: &TraceId) -> Response {
    let is_problem =
        resp.content_type().is_some_and(|t| t.starts_with(crate::error::ProblemJson::MEDIA_TYPE));
    let mut resp = if is_problem {
        let (parts, body) = resp.into_parts();
        let bytes = body.into_bytes().await.unwrap_or_default();
        let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
            Ok(serde_json::Value::Object(mut doc)) => {
                doc.entry("traceId").or_insert_with(|| trace.0.clone().into());
                serde_json::to_vec(&doc).unwrap_or_else(|_| bytes.to_vec())
            }
            _ => bytes.to_vec(),
        };
        let mut resp = Response::from_parts(parts, bytes.into());
        resp.headers_mut().remove(poem::http::header::CONTENT_LENGTH);
        resp
    } else {
        resp
    };
    // W3C Trace Context's response header: version, trace id, a span id of ours, flags.
    let span_id = &uuid::Uuid::new_v4().simple().to_string()[..16];
    if let Ok(value) = HeaderValue::from_str(&format!("00-{}-{span_id}-00", trace.0)) {
        resp.headers_mut().insert("traceresponse", value);
    }
    resp
}

/// A path as a metric label: id-like segments (anything with a digit and 8 characters or more:
/// an order's id, a notification's) written `:id`, so the series stay few.
pub fn route_label(path: &str) -> String {
    path.trim_end_matches('/')
        .split('/')
        .map(|s| if s.len() >= 8 && s.chars().any(|c| c.is_ascii_digit()) { ":id" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// `StatusCode`'s reason phrase, with the non-standard 499 named as nginx names it.
pub fn status_description(status: u16) -> String {
    match status {
        CLIENT_CLOSED_REQUEST => "Client Closed Request".to_owned(),
        s => StatusCode::from_u16(s)
            .ok()
            .and_then(|c| c.canonical_reason())
            .unwrap_or("Error")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_gives_its_trace_id() {
        let t =
            TraceId::from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01");
        assert_eq!(t, Some(TraceId("4bf92f3577b34da6a3ce929d0e0e4736".into())));
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-zbf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceId::from_traceparent(bad), None, "{bad}");
        }
        let fresh = TraceId::new();
        assert_eq!(fresh.0.len(), 32);
        assert_ne!(fresh, TraceId::new());
    }

    /// Log lines written while a future runs, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn install(&self) -> tracing::subscriber::DefaultGuard {
            let me = self.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || me.clone())
                .with_ansi(false)
                .with_max_level(tracing::Level::INFO)
                .finish();
            tracing::subscriber::set_default(subscriber)
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn counted(metrics: &Metrics, status: &str) -> u64 {
        metrics.http_requests.with_label_values(&["GET", "/x", status]).get()
    }

    #[tokio::test]
    async fn a_problem_carries_its_requests_trace_id_and_so_does_its_log_line() {
        let logs = Captured::default();
        let _guard = logs.install();
        let metrics = Metrics::new();
        let ep = Arc::new(poem::endpoint::make(|_| async {
            crate::error::problem_response(404, "The order does not exist.")
        }));
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let req = Request::builder().uri_str("/x").header("traceparent", traceparent).finish();
        let resp = observe_request(ep.clone(), req, metrics.clone()).await.unwrap();
        assert_eq!(resp.status(), 404);
        let header = resp.headers().get("traceresponse").unwrap().to_str().unwrap().to_owned();
        assert!(header.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"), "{header}");
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_bytes().await.unwrap()).unwrap();
        assert_eq!(body["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736", "{body}");
        assert_eq!(body["detail"], "The order does not exist.", "{body}");
        let text = logs.text();
        let line =
            text.lines().find(|l| l.contains("answered")).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"), "{line}");
        assert!(line.contains("status=404"), "{line}");
        assert_eq!(counted(&metrics, "404"), 1);

        // Without a traceparent: a new id, the same in the body and the log.
        let req = Request::builder().uri_str("/x").finish();
        let resp = observe_request(ep, req, metrics.clone()).await.unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&resp.into_body().into_bytes().await.unwrap()).unwrap();
        let id = body["traceId"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);
        assert!(logs.text().contains(&format!("trace_id={id}")));
    }

    #[tokio::test]
    async fn a_client_that_goes_away_is_logged_and_counted_as_499() {
        let logs = Captured::default();
        let _guard = logs.install();
        let metrics = Metrics::new();
        let ep = Arc::new(poem::endpoint::make(|_| async {
            std::future::pending::<()>().await;
            "never"
        }));
        let req = Request::builder()
            .uri_str("/x")
            .header("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .finish();
        // hyper drops the request's future when its client closes the connection.
        let call = observe_request(ep, req, metrics.clone());
        let gone = tokio::time::timeout(std::time::Duration::from_millis(20), call).await;
        assert!(gone.is_err());
        assert_eq!(counted(&metrics, "499"), 1);
        let text = logs.text();
        let line =
            text.lines().find(|l| l.contains("client closed")).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("trace_id=0af7651916cd43dd8448eb211c80319c"), "{line}");
        assert!(line.contains("NOT-00002"), "{line}");
    }

    #[test]
    fn id_segments_become_one_label() {
        assert_eq!(
            route_label("/notifications/api/v1/orders/0f8fad5b-d9cb-469f-a165-70867728950e/status"),
            "/notifications/api/v1/orders/:id/status"
        );
        assert_eq!(status_description(499), "Client Closed Request");
        assert_eq!(status_description(422), "Unprocessable Entity");
    }
}
