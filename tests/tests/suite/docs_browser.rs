//! The docs page in a real browser: headless Chromium lists the order operations and renders an
//! example request.

use super::browser::{Browser, PAGE};
use varsel_tests::{Db, TestApp, TestAppOptions, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_lists_the_operations_and_renders_an_example() {
    let app = TestApp::spawn(TestAppOptions::new(Db::Sqlite, "")).await;
    let driver = Browser::start(1280, 1000).await;
    driver.goto(&format!("{}/docs", app.base_url)).await;

    // The operations are listed.
    let driver_ref = &driver;
    let paths = eventually("the operations are listed", PAGE, || async move {
        let mut texts = Vec::new();
        for id in
            driver_ref.find_all(".opblock-summary-path, .opblock-summary-path__deprecated").await
        {
            let t = driver_ref.get(&id, "text").await?;
            texts.push(t.as_str().unwrap_or_default().replace('\u{200b}', ""));
        }
        if texts.len() >= 8 { Ok(texts) } else { Err(format!("{texts:?}")) }
    })
    .await;
    for expected in [
        "/notifications/api/v1/orders",
        "/notifications/api/v1/orders/email",
        "/notifications/api/v1/orders/sms",
        "/notifications/api/v1/orders/{id}",
        "/notifications/api/v1/orders/{id}/status",
        "/notifications/api/v1/orders/{id}/cancel",
    ] {
        assert!(paths.iter().any(|p| p == expected), "{expected} not in {paths:?}");
    }
    // Altinn's legacy order API (nine operations) and the older instant endpoint are shown
    // deprecated, as Altinn's document marks them.
    let deprecated = driver.find_all(".opblock.opblock-deprecated").await;
    assert_eq!(deprecated.len(), 10, "{deprecated:?}");

    // Credentials can be entered: "Authorize" offers the bearer token and the PlatformAccessToken.
    driver.click(".auth-wrapper .authorize").await;
    driver
        .wait_source("the Authorize dialog offers both credentials", |s| {
            s.contains("bearerToken") && s.contains("PlatformAccessToken")
        })
        .await;
    driver.goto(&format!("{}/docs", app.base_url)).await;
    driver
        .wait_source("the docs page loads again", |s| s.contains("operations-Orders-createOrder"))
        .await;

    // Opening "POST /orders" renders the seed example as its request body.
    driver.click("#operations-Orders-createOrder .opblock-summary").await;
    driver
        .wait_source("the example request renders", |s| {
            s.contains("9A547448-FDF4-4E60-87AC-C2F652C8353C") && s.contains("Demo SMS content")
        })
        .await;
    driver.close().await;
    app.stop().await;
}
