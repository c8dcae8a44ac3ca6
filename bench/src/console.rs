//! The operator's reads: the console's page of an order of `--recipients` notifications against
//! the same page of a one-notification order (`console`), and the order search over
//! `--search-orders` orders against a search by id on the same table (`search`). Both through the
//! API, as an operator's browser or script calls it; the median of several loads.

use super::{Bench, Figure, bar, queries};
use serde_json::json;
use std::time::{Duration, Instant};

/// Loads each page this many times; the median counts.
const LOADS: usize = 7;

impl Bench {
    /// The console's address, beside the API's.
    fn console_base(&self) -> String {
        self.ctx.base.trim_end_matches("/notifications/api/v1").to_owned()
    }

    fn operator_token(&self) -> anyhow::Result<String> {
        let key = varsel_api::auth::load_or_create_dev_key(&self.cfg.data_dir)?;
        varsel_api::auth::mint(
            &key,
            varsel_api::auth::TokenKind::Bearer {
                org: "bench-operator".into(),
                scope: varsel_api::auth::OPERATOR_SCOPE.into(),
            },
            24 * 3600,
        )
    }

    /// The median time `url` takes to answer 200, over [`LOADS`] loads, and its size.
    async fn median_load(&self, url: &str, token: &str) -> anyhow::Result<(Duration, usize)> {
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..LOADS {
            let start = Instant::now();
            let resp = self.ctx.http.get(url).bearer_auth(token).send().await?;
            if let Some(t) = resp.headers().get("server-timing") {
                eprintln!("{url}: {}", t.to_str().unwrap_or_default());
            }
            let status = resp.status();
            let body = resp.bytes().await?;
            times.push(start.elapsed());
            anyhow::ensure!(
                status == 200,
                "GET {url}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            size = body.len();
        }
        times.sort();
        Ok((times[times.len() / 2], size))
    }

    /// An order of `recipients` plain addresses, sent to its end.
    async fn completed_order(&self, recipients: u32, what: &str) -> anyhow::Result<String> {
        let list: Vec<_> = (0..recipients)
            .map(|i| json!({"emailAddress": format!("console-{i}@bench.example")}))
            .collect();
        let body = json!({
            "notificationChannel": "Email",
            "emailTemplate": {"subject": "Bench", "body": "A benchmark message."},
            "recipients": list,
        });
        let pb = bar(0, what);
        let id = self.ctx.post("/orders", &body).await?;
        let deadline = Instant::now() + Duration::from_secs(3600);
        while queries::count_orders_with_status(&self.store, std::slice::from_ref(&id), "Completed")
            .await?
            == 0
        {
            anyhow::ensure!(Instant::now() < deadline, "{what}: not completed in an hour");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        pb.finish_and_clear();
        Ok(id)
    }

    /// The console's order page (its picture) and first page of notifications, for an order of
    /// `--recipients` notifications against one of a single notification.
    pub(crate) async fn console(&self) -> anyhow::Result<Vec<Figure>> {
        let n = self.opts.recipients;
        let large = self.completed_order(n, "console: an order to its end").await?;
        let small = self.completed_order(1, "console: a one-recipient order").await?;
        let token = self.operator_token()?;
        let base = self.console_base();
        let page = |id: &str| format!("{base}/console/fragments/orders/{id}");
        let list = |id: &str| format!("{base}/console/fragments/orders/{id}/notifications");
        let (small_page, _) = self.median_load(&page(&small), &token).await?;
        let (large_page, page_bytes) = self.median_load(&page(&large), &token).await?;
        let (small_list, _) = self.median_load(&list(&small), &token).await?;
        let (large_list, _) = self.median_load(&list(&large), &token).await?;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        eprintln!("console: the order page of {n} notifications is {page_bytes} bytes");
        Ok(vec![
            Figure::slower(
                &format!("console: order page, {n} notifications (vs 1)"),
                ms(large_page),
                ms(small_page),
                "ms",
                20.0,
            ),
            Figure::slower(
                &format!("console: first 50 notifications of {n} (vs of 1)"),
                ms(large_list),
                ms(small_list),
                "ms",
                5.0,
            ),
        ])
    }

    /// Seeds `--search-orders` orders in one statement, then times the operator's searches
    /// against a search by id on the same table.
    pub(crate) async fn search(&self) -> anyhow::Result<Vec<Figure>> {
        let n = self.opts.search_orders;
        let pb = bar(0, &format!("search: seeding {n} orders"));
        let start = Instant::now();
        queries::seed_orders(&self.store, n).await?;
        pb.finish_and_clear();
        eprintln!("search: {n} orders seeded in {:.1} s", start.elapsed().as_secs_f64());
        let token = self.operator_token()?;
        let find = |q: &str| format!("{}/operator/orders?{q}", self.ctx.base);
        let id = queries::seeded_order_id(n / 2);
        let (by_id, _) = self.median_load(&find(&format!("id={id}")), &token).await?;
        // A page deep in the newest-first list: the cursor of the page before.
        let first: serde_json::Value =
            self.ctx.http.get(find("limit=500")).bearer_auth(&token).send().await?.json().await?;
        let mut cursor = first["nextCursor"].as_str().unwrap_or_default().to_owned();
        for _ in 0..20 {
            let page: serde_json::Value = self
                .ctx
                .http
                .get(find(&format!("limit=500&cursor={cursor}")))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            cursor = page["nextCursor"].as_str().unwrap_or_default().to_owned();
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut figures = Vec::new();
        for (what, q) in [
            ("newest 50 of all", "limit=50".to_owned()),
            ("one creator's newest 50", "creator=bench-org-7".to_owned()),
            ("one status, newest 50", "status=Cancelled".to_owned()),
            ("by sendersReference", "creator=bench-org-7&sendersReference=ref-7".to_owned()),
            ("a page 10,000 orders deep", format!("cursor={cursor}")),
            (
                "one creator, one day",
                "creator=bench-org-7&createdFrom=2026-01-01T00:00:00Z&createdTo=2026-01-02T00:00:00Z"
                    .to_owned(),
            ),
        ] {
            let (t, _) = self.median_load(&find(&q), &token).await?;
            figures.push(Figure::slower(
                &format!("search of {n} orders: {what} (vs by id)"),
                ms(t),
                ms(by_id),
                "ms",
                10.0,
            ));
        }
        Ok(figures)
    }
}
