//! The operator's console at `/console`: a page and its script and style, embedded in the binary
//! (no CDN: it works offline), and the HTML fragments the script loads, drawn on the server.
//! The operator signs in with an operator token (pasted, or through a one-time link from
//! `varsel dev`), kept in the browser tab's `sessionStorage`; every fragment and every action
//! goes through the same operator check as the API (`Verifier::authorize_operator`), and the
//! actions are the API's own operator endpoints.

mod lanes;
pub mod overview;
mod pages;
mod picture;
pub mod signin;
mod view;

use crate::error::ApiError;
use crate::state::AppState;
use poem::http::{HeaderValue, header};
use poem::web::{Data, Json, Path, Query};
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler, post};
use std::collections::HashMap;
use std::sync::Arc;

/// Where the API the console calls lives.
pub const API: &str = "/notifications/api/v1";

/// What the console keeps in a process: one-time sign-in links, and the name this process's
/// metric snapshots go by (the overview counts it from its live counters).
#[derive(Default)]
pub struct ConsoleState {
    /// Codes of one-time sign-in links.
    pub links: signin::SignInLinks,
    /// This process, as its metric snapshots name it.
    pub process: overview::ProcessId,
}

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The pages may run only their own script and style, talk only to this origin, and never be
/// framed; nothing they show is cached or sent on as a referrer.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn hardened(mut r: Response, cache: bool) -> Response {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(POLICY));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if cache { "no-cache" } else { "no-store" }),
    );
    r
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    hardened(Response::builder().content_type(content_type).body(body), true)
}

fn fragment(markup: maud::Markup) -> Response {
    hardened(
        Response::builder().content_type("text/html; charset=utf-8").body(markup.into_string()),
        false,
    )
}

fn refused(e: ApiError) -> Response {
    hardened(e.into_response(), false)
}

/// The operator the request's token names, or the API's own refusal.
fn operator(state: &AppState, req: &Request) -> Result<String, ApiError> {
    state.verifier.authorize_operator(req.headers())
}

/// The order id of a fragment's path, once the token is an operator's.
fn an_operators_order(state: &AppState, req: &Request, raw: &str) -> Result<String, ApiError> {
    operator(state, req)?;
    crate::http::orders::order_id(raw)
}

fn respond(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(refused)
}

#[handler]
fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

#[handler]
fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

#[handler]
fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

#[derive(serde::Deserialize)]
struct SignInCode {
    code: String,
}

/// Trades a one-time link's code for its token, once.
#[handler]
fn sign_in(state: Data<&Arc<AppState>>, body: Json<SignInCode>) -> Response {
    match state.console.links.redeem(&body.code) {
        Some(token) => hardened(Json(serde_json::json!({ "token": token })).into_response(), false),
        None => refused(ApiError::unauthorized(
            "This sign-in link has been used or has expired: start varsel dev again, or paste an operator token.",
        )),
    }
}

#[handler]
async fn overview_page(state: Data<&Arc<AppState>>, req: &Request) -> Response {
    respond(
        async {
            operator(&state, req)?;
            let o = overview::Overview::load(&state).await.map_err(ApiError::storage)?;
            Ok(fragment(pages::overview(&o)))
        }
        .await,
    )
}

fn given(q: &HashMap<String, String>, key: &str) -> Option<String> {
    q.get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The search's criteria, as the form names them.
const CRITERIA: [&str; 7] =
    ["creator", "status", "channel", "createdFrom", "createdTo", "sendersReference", "id"];

#[handler]
async fn search_page(
    state: Data<&Arc<AppState>>,
    req: &Request,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    respond(
        async {
            operator(&state, req)?;
            let g = |k: &str| given(&q, k).unwrap_or_default();
            let form = pages::SearchForm {
                creator: g("creator"),
                status: g("status"),
                channel: g("channel"),
                created_from: g("createdFrom"),
                created_to: g("createdTo"),
                senders_reference: g("sendersReference"),
                id: g("id"),
            };
            // The form alone until something is asked (`all` asks for every order).
            if CRITERIA.iter().chain(&["all"]).all(|k| given(&q, k).is_none()) {
                return Ok(fragment(pages::search(&form, None)));
            }
            let search =
                crate::http::operator::parse_search(crate::http::operator::SearchParams {
                    creator: given(&q, "creator"),
                    status: given(&q, "status"),
                    channel: given(&q, "channel"),
                    created_from: given(&q, "createdFrom"),
                    created_to: given(&q, "createdTo"),
                    senders_reference: given(&q, "sendersReference"),
                    id: given(&q, "id"),
                    limit: Some(50),
                    cursor: given(&q, "cursor"),
                })?;
            let page = state.store.search_orders(&search).await.map_err(ApiError::storage)?;
            let query: Vec<String> = CRITERIA
                .iter()
                .chain(&["all"])
                .filter_map(|k| given(&q, k).map(|v| format!("{k}={}", pages::urlencode(&v))))
                .collect();
            let next = crate::http::operator::next_cursor(&page);
            Ok(fragment(pages::search(&form, Some((&page, next, query.join("&"))))))
        }
        .await,
    )
}

#[handler]
async fn order_page(
    state: Data<&Arc<AppState>>,
    req: &Request,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            let id = an_operators_order(&state, req, &id)?;
            let v = view::OrderView::load(&state, &id)
                .await
                .map_err(ApiError::storage)?
                .ok_or_else(|| ApiError::not_found("The order does not exist."))?;
            let start = std::time::Instant::now();
            let mut r = fragment(pages::order(&v, picture::render(&v)));
            // Where a slow page spends its time, for the browser's developer tools.
            let timing: Vec<String> = v
                .timings
                .iter()
                .chain(&[("render", start.elapsed())])
                .map(|(what, d)| format!("{what};dur={:.1}", d.as_secs_f64() * 1000.0))
                .collect();
            if let Ok(h) = HeaderValue::from_str(&timing.join(", ")) {
                r.headers_mut().insert("server-timing", h);
            }
            Ok(r)
        }
        .await,
    )
}

#[handler]
async fn notifications_page(
    state: Data<&Arc<AppState>>,
    req: &Request,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    respond(
        async {
            let id = an_operators_order(&state, req, &id)?;
            let after = match given(&q, "after") {
                None => None,
                Some(raw) => Some(view::parse_cursor(&raw).ok_or_else(|| {
                    ApiError::invalid("after", "after must be a cursor this list gave.")
                })?),
            };
            let filter = view::Filter { name: given(&q, "status").unwrap_or_default(), after };
            let statuses = filter.statuses().ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    format!("Unknown notification status '{}'.", filter.name),
                )
            })?;
            let present: Vec<_> = state
                .store
                .notification_counts(&id)
                .await
                .map_err(ApiError::storage)?
                .into_iter()
                .map(|(_, s, _)| s)
                .collect();
            let list = view::notification_list(&state, &id, filter, &statuses)
                .await
                .map_err(ApiError::storage)?;
            Ok(fragment(pages::notifications(&id, &list, &present)))
        }
        .await,
    )
}

#[handler]
async fn redrive_page(
    state: Data<&Arc<AppState>>,
    req: &Request,
    Path(id): Path<String>,
) -> Response {
    respond(
        async {
            let id = an_operators_order(&state, req, &id)?;
            let store = &state.store;
            let count = store.count_redrivable(&id).await.map_err(ApiError::storage)?;
            let rows = store.redrivable_notifications(&id, 200).await.map_err(ApiError::storage)?;
            Ok(fragment(pages::redrive_preview(&id, count, &rows)))
        }
        .await,
    )
}

#[handler]
fn not_found() -> Response {
    refused(ApiError::not_found("No such console page."))
}

/// The console's routes, each with its full path under `/console` (nested without stripping).
pub fn routes(state: Arc<AppState>) -> impl Endpoint<Output = Response> {
    Route::new()
        .at("/console", get(index))
        .at("/console/assets/console.js", get(script))
        .at("/console/assets/console.css", get(style))
        .at("/console/signin", post(sign_in))
        .at("/console/fragments/overview", get(overview_page))
        .at("/console/fragments/orders", get(search_page))
        .at("/console/fragments/orders/:id", get(order_page))
        .at("/console/fragments/orders/:id/notifications", get(notifications_page))
        .at("/console/fragments/orders/:id/redrive", get(redrive_page))
        .at("/console/*", not_found)
        .data(state)
        .map_to_response()
}

/// A one-time link that signs the console in with `token`.
pub fn sign_in_link(state: &AppState, base_url: &str, token: String) -> String {
    format!("{base_url}/console#signin={}", state.console.links.issue(token))
}
