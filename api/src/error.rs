//! The one error table of the HTTP API: every failure a client can see is a variant here, with
//! its status, title and problem type, rendered as RFC 9457 problem details
//! (`application/problem+json`).

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{
    ApiResponse, Object,
    payload::Payload,
    registry::{MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};
use std::collections::BTreeMap;

/// RFC 9457 problem details, as Altinn's ASP.NET `ValidationProblemDetails` shapes them.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct ProblemDetails {
    /// A URI reference identifying the problem type.
    #[oai(rename = "type")]
    pub problem_type: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// An explanation specific to this occurrence.
    pub detail: Option<String>,
    /// Validation messages keyed by property path (for example `Recipients[0]`).
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// The request's trace id (W3C Trace Context: the caller's `traceparent`, or a new one),
    /// also in the log line of the request: give it to the operator.
    pub trace_id: Option<String>,
    /// Altinn's error code (`NOT-00001` …), on coded errors of the newer API.
    pub code: Option<String>,
    /// The status's reason phrase (`Unprocessable Entity` …), on coded errors, as Altinn's.
    pub status_description: Option<String>,
}

/// A payload with media type `application/problem+json`.
#[derive(Debug, Clone)]
pub struct ProblemJson(pub Box<ProblemDetails>);

impl ProblemJson {
    /// Its media type.
    pub const MEDIA_TYPE: &'static str = "application/problem+json";
}

impl Payload for ProblemJson {
    const CONTENT_TYPE: &'static str = Self::MEDIA_TYPE;
    fn schema_ref() -> MetaSchemaRef {
        ProblemDetails::schema_ref()
    }
    fn register(registry: &mut Registry) {
        ProblemDetails::register(registry);
    }
}

impl IntoResponse for ProblemJson {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.0.to_json()).unwrap_or_default();
        Response::builder()
            .status(
                StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            )
            .content_type(Self::CONTENT_TYPE)
            .body(body)
    }
}

/// Every error answer of the API.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is invalid: validation messages, malformed JSON or a wrong type.
    #[oai(status = 400)]
    BadRequest(ProblemJson),
    /// Missing, expired or badly signed token.
    #[oai(status = 401)]
    Unauthorized(ProblemJson),
    /// A valid token without the required scope or organisation.
    #[oai(status = 403)]
    Forbidden(ProblemJson),
    /// No such order for this organisation.
    #[oai(status = 404)]
    NotFound(ProblemJson),
    /// The order can no longer be changed this way (for example: cancelled too late), or an
    /// idempotency id is repeated with a different request.
    #[oai(status = 409)]
    Conflict(ProblemJson),
    /// A recipient has no contact details for its channel (`NOT-00001`); nothing was stored.
    #[oai(status = 422)]
    Unprocessable(ProblemJson),
    /// The request body exceeds the configured limit (`VARSEL_MAX_BODY_BYTES`); it was not read.
    #[oai(status = 413)]
    ContentTooLarge(ProblemJson),
    /// The request has a body that is not `application/json` (operations that take one).
    #[oai(status = 415)]
    UnsupportedMediaType(ProblemJson),
    /// The request body did not arrive within `VARSEL_BODY_READ_TIMEOUT_SECS`; the connection
    /// is closed.
    #[oai(status = 408)]
    RequestTimeout(ProblemJson),
    /// The request's header fields exceed `VARSEL_MAX_HEADER_BYTES`; the connection is closed.
    #[oai(status = 431)]
    HeaderFieldsTooLarge(ProblemJson),
    /// A part varsel depends on is unavailable; nothing was stored. Retry later.
    #[oai(status = 503)]
    Unavailable(ProblemJson),
    /// `NOT-00002`: the client disconnected or cancelled the request before it was answered.
    /// Nobody receives this answer; the request is logged and counted with this status, under
    /// its trace id. An instant message whose provider call had begun is still sent and recorded:
    /// repeat the request to learn its answer.
    #[oai(status = 499)]
    ClientClosedRequest(ProblemJson),
}

/// How a JSON value is named in messages ("a number", "an object", …).
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The one table of problem types and titles, by status.
pub fn status_meta(status: u16) -> (&'static str, &'static str) {
    match status {
        400 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "One or more validation errors occurred.",
        ),
        401 => ("https://tools.ietf.org/html/rfc9110#section-15.5.2", "Unauthorized"),
        403 => ("https://tools.ietf.org/html/rfc9110#section-15.5.4", "Forbidden"),
        404 => ("https://tools.ietf.org/html/rfc9110#section-15.5.5", "Not Found"),
        405 => ("https://tools.ietf.org/html/rfc9110#section-15.5.6", "Method Not Allowed"),
        408 => ("https://tools.ietf.org/html/rfc9110#section-15.5.9", "Request Timeout"),
        409 => ("https://tools.ietf.org/html/rfc9110#section-15.5.10", "Conflict"),
        413 => ("https://tools.ietf.org/html/rfc9110#section-15.5.14", "Content Too Large"),
        414 => ("https://tools.ietf.org/html/rfc9110#section-15.5.15", "URI Too Long"),
        415 => ("https://tools.ietf.org/html/rfc9110#section-15.5.16", "Unsupported Media Type"),
        422 => ("https://tools.ietf.org/html/rfc9110#section-15.5.21", "Unprocessable Content"),
        431 => {
            ("https://www.rfc-editor.org/rfc/rfc6585#section-5", "Request Header Fields Too Large")
        }
        499 => ("about:blank", "Client Closed Request"),
        503 => ("https://tools.ietf.org/html/rfc9110#section-15.6.4", "Service Unavailable"),
        s if s >= 500 => {
            ("https://tools.ietf.org/html/rfc9110#section-15.6.1", "Internal Server Error")
        }
        s => (
            "about:blank",
            StatusCode::from_u16(s).ok().and_then(|c| c.canonical_reason()).unwrap_or("Error"),
        ),
    }
}

fn problem(status: u16, detail: Option<String>) -> ProblemJson {
    let (problem_type, title) = status_meta(status);
    ProblemJson(Box::new(ProblemDetails {
        problem_type: problem_type.to_owned(),
        title: title.to_owned(),
        status,
        detail,
        errors: None,
        trace_id: None,
        code: None,
        status_description: None,
    }))
}

/// The problem-details document of a status, as JSON bytes (for answers made outside poem).
pub fn problem_body(status: u16, detail: impl Into<String>) -> Vec<u8> {
    serde_json::to_vec(&problem(status, Some(detail.into())).0.to_json()).unwrap_or_default()
}

/// A problem-details answer of a status (for answers made outside the typed handlers).
pub fn problem_response(status: u16, detail: impl Into<String>) -> Response {
    problem(status, Some(detail.into())).into_response()
}

impl ApiError {
    /// 400 with Altinn's validation envelope.
    pub fn validation(errors: BTreeMap<String, Vec<String>>) -> Self {
        let mut p = problem(400, None);
        p.0.errors = Some(errors);
        Self::BadRequest(p)
    }

    /// 400 with one message under one key.
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        Self::validation(BTreeMap::from([(key.to_owned(), vec![message.into()])]))
    }

    /// 401.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized(problem(401, Some(detail.into())))
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden(problem(403, Some(detail.into())))
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::NotFound(problem(404, Some(detail.into())))
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict(problem(409, Some(detail.into())))
    }

    /// 503.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::Unavailable(problem(503, Some(detail.into())))
    }

    /// An Altinn coded error (`type = urn:altinn:error:<code>`, `code`, `title`).
    pub fn coded(status: u16, code: &str, title: &str, detail: Option<String>) -> Self {
        let mut p = problem(status, detail);
        p.0.problem_type = format!("urn:altinn:error:{code}");
        p.0.title = title.to_owned();
        p.0.code = Some(code.to_owned());
        p.0.status_description = Some(crate::trace::status_description(status));
        match status {
            404 => Self::NotFound(p),
            422 => Self::Unprocessable(p),
            499 => Self::ClientClosedRequest(p),
            _ => Self::Unavailable(p),
        }
    }

    /// A contact source could not answer the acceptance-time lookup. Logged in full, answered
    /// as 503: nothing is stored, and the same request succeeds once the source is back.
    pub fn lookup(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "recipient lookup failed while accepting an order");
        Self::unavailable(
            "The recipients could not be looked up: a contact register is temporarily unavailable. Nothing was stored; please retry.",
        )
    }

    /// A storage failure: the database is unreachable or refused the write. Logged in full,
    /// answered as 503 without internals.
    pub fn storage(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "database error while handling a request");
        Self::unavailable(
            "The order store is temporarily unavailable. Nothing was stored; please retry.",
        )
    }
}

/// Renders any error that escaped the typed handlers (malformed JSON, wrong types, unknown
/// routes, wrong methods, oversize bodies) as problem details, so no client ever sees a bare
/// text body or a 500 for bad input.
pub fn render_poem_error(err: poem::Error) -> Response {
    // Our own typed errors already carry their problem-details response.
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let message = err.to_string();
    if status.is_server_error() {
        tracing::error!(error = %message, "unhandled server error");
    }
    let mut p = problem(status.as_u16(), Some(message.clone()));
    if status.as_u16() == 400 {
        // A query or path parameter that does not parse is named by its parameter.
        let (key, message) = match err.downcast_ref::<poem_openapi::error::ParseParamError>() {
            Some(e) => (
                e.name.to_owned(),
                format!(
                    "The {} parameter is not valid: {}.",
                    e.name,
                    e.reason.trim_end_matches('.')
                ),
            ),
            None => ("$".to_owned(), message),
        };
        p.0.detail = Some(message.clone());
        p.0.errors = Some(BTreeMap::from([(key, vec![message])]));
    }
    p.into_response()
}
