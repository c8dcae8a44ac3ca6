//! The operator console's server side: its page and assets under a strict content policy, every
//! fragment behind the API's own operator check with the API's messages, one-time sign-in links,
//! and the operator's cancel.

use super::{Fast, V1, email_order, json_of};
use poem::http::StatusCode;
use serde_json::json;

async fn page(fast: &Fast, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = fast.client.get(path);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await;
    let status = resp.0.status().as_u16();
    (status, resp.0.into_body().into_string().await.unwrap())
}

#[tokio::test]
async fn the_console_is_served_offline_and_every_fragment_is_an_operators() {
    let fast = Fast::start().await;
    let resp = fast.client.get("/console").send().await;
    resp.assert_status_is_ok();
    let policy = resp.0.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    let html = resp.0.into_body().into_string().await.unwrap();
    assert!(html.contains("/console/assets/console.js") && !html.contains("http"), "{html}");
    for asset in ["/console/assets/console.js", "/console/assets/console.css"] {
        fast.client.get(asset).send().await.assert_status_is_ok();
    }
    assert_eq!(page(&fast, "/console/nothing-here", None).await.0, 404);

    // The same refusals as the API's, in its words.
    let (status, body) = page(&fast, "/console/fragments/overview", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("varsel:operator") || body.contains("Bearer"), "{body}");
    let (status, body) = page(&fast, "/console/fragments/overview", Some(&fast.token("ttd"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("The token lacks the scope varsel:operator."), "{body}");

    let op = fast.operator();
    let (status, body) = page(&fast, "/console/fragments/overview", Some(&op)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<h1>Overview</h1>") && body.contains("Last hour"), "{body}");

    // Search: the API's validation, then results with counts.
    let resp = fast.post("/orders", &email_order("case-console"), "ttd").await;
    resp.assert_status(StatusCode::ACCEPTED);
    let id = json_of(resp).await["orderId"].as_str().unwrap().to_owned();
    let (status, body) = page(&fast, "/console/fragments/orders?status=Bogus", Some(&op)).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Unknown order status 'Bogus'."), "{body}");
    let (status, body) =
        page(&fast, "/console/fragments/orders?sendersReference=case-console", Some(&op)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&id) && body.contains("1 order found"), "{body}");

    // An order's page draws its picture without Temporal, and says so.
    let (status, body) = page(&fast, &format!("/console/fragments/orders/{id}"), Some(&op)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<svg") && body.contains("Temporal could not be asked"), "{body}");
    assert!(body.contains("data-action=\"cancel\""), "a registered order offers its cancel");
    let (status, body) = page(
        &fast,
        &format!("/console/fragments/orders/{id}/notifications?status=nonsense"),
        Some(&op),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Unknown notification status 'nonsense'."), "{body}");
    let (status, body) =
        page(&fast, &format!("/console/fragments/orders/{id}/redrive"), Some(&op)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("0 notifications will be sent again"), "{body}");
    let missing = uuid::Uuid::new_v4();
    let (status, body) =
        page(&fast, &format!("/console/fragments/orders/{missing}"), Some(&op)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("The order does not exist."), "{body}");
    assert_eq!(page(&fast, "/console/fragments/orders/not-a-guid", Some(&op)).await.0, 404);
}

#[tokio::test]
async fn a_sign_in_link_gives_its_token_once() {
    let fast = Fast::start().await;
    let code = fast.console_link.split_once("#signin=").expect("a sign-in link").1.to_owned();
    let redeem = || {
        fast.client
            .post("/console/signin")
            .content_type("application/json")
            .body(json!({ "code": code }).to_string())
            .send()
    };
    let first = redeem().await;
    first.assert_status_is_ok();
    assert_eq!(json_of(first).await["token"], fast.operator());
    let again = redeem().await;
    again.assert_status(StatusCode::UNAUTHORIZED);
    assert!(
        json_of(again).await["detail"].as_str().unwrap().contains("has been used or has expired")
    );
}

#[tokio::test]
async fn an_operator_cancels_any_creators_order_and_is_named_for_it() {
    let fast = Fast::start().await;
    let resp = fast.post("/orders", &email_order("case-cancel"), "nav").await;
    let id = json_of(resp).await["orderId"].as_str().unwrap().to_owned();
    let cancel = |token: String| {
        fast.client
            .post(format!("{V1}/operator/orders/{id}/cancel"))
            .header("Authorization", format!("Bearer {token}"))
            .send()
    };
    cancel(fast.token("nav")).await.assert_status(StatusCode::FORBIDDEN);
    let done = cancel(fast.operator()).await;
    done.assert_status_is_ok();
    let order = json_of(done).await;
    assert_eq!(
        (order["id"].as_str(), order["status"].as_str()),
        (Some(id.as_str()), Some("Cancelled"))
    );
    // Its page shows who cancelled it; a cancelled order offers no cancel.
    let (_, body) =
        page(&fast, &format!("/console/fragments/orders/{id}"), Some(&fast.operator())).await;
    assert!(body.contains("cancel by operator org:digdir"), "{body}");
    assert!(!body.contains("data-action=\"cancel\""), "{body}");
    let missing = uuid::Uuid::new_v4();
    let resp = fast
        .client
        .post(format!("{V1}/operator/orders/{missing}/cancel"))
        .header("Authorization", format!("Bearer {}", fast.operator()))
        .send()
        .await;
    resp.assert_status(StatusCode::NOT_FOUND);
}
