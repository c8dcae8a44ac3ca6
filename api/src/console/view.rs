//! Everything an order's page shows, read once: the order, its counts, its workflow's marks,
//! its notification events counted over time, why notifications failed, webhook attempts,
//! actions, and a page of its notifications with their events. Each read is bounded, so an
//! order of 100,000 notifications reads as few rows as an order of one, the bucketed events
//! aside (one grouped query).

use super::lanes::{Lane, Mark, history_marks};
use crate::state::AppState;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use varsel_activities::store::{
    EventBucket, EventSecond, FailureReason, Notification, NotificationKey, StatusEvent,
    WebhookAttempt,
};
use varsel_workflows::domain::{Channel, NotificationStatus};
use varsel_workflows::order::StoredOrder;

/// How many buckets the events of an order are counted in, over their whole span.
pub const BUCKETS: f64 = 160.0;
/// Up to this many notifications, an order's events are counted over time from the events
/// themselves (to the millisecond); beyond it, from their counts per second, which the store
/// keeps as it writes them (a few hundred rows for an order of 100,000).
pub const RAW_EVENTS_UP_TO: i64 = 5_000;
/// Notifications a page of the list shows.
pub const PAGE: u64 = 50;
/// Webhook attempts the picture draws at most.
pub const MAX_WEBHOOK_MARKS: u64 = 2000;

/// What Temporal could tell of the order's workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum History {
    /// Every run's history.
    Kept,
    /// Some or all of it is gone: Temporal's retention period passed.
    Expired,
    /// The workflow has not been started yet (Temporal could not be reached when the order was
    /// accepted): there is no history.
    NotStarted,
    /// Temporal could not be asked; the page shows what the database knows.
    Unreachable(String),
}

/// An order's notification events counted over time.
#[derive(Debug, Clone)]
pub struct Buckets {
    /// When bucket 0 starts.
    pub from: DateTime<Utc>,
    /// Seconds a bucket spans.
    pub width: f64,
    /// The counts.
    pub rows: Vec<EventBucket>,
}

impl Buckets {
    /// When bucket `b` starts.
    pub fn start(&self, b: i64) -> DateTime<Utc> {
        self.from + chrono::Duration::microseconds((b as f64 * self.width * 1e6) as i64)
    }
}

/// Which notifications the list shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// `failed`, `open`, `succeeded`, a status name, or empty for all.
    pub name: String,
    /// After this notification (the page before's last).
    pub after: Option<NotificationKey>,
}

impl Filter {
    /// The statuses the filter names; empty for all; `None` when it names nothing known.
    pub fn statuses(&self) -> Option<Vec<NotificationStatus>> {
        let all = NotificationStatus::ALL.iter().copied();
        Some(match self.name.as_str() {
            "" | "all" => Vec::new(),
            "failed" => all.filter(|s| s.is_failure()).collect(),
            "open" => all.filter(|s| s.is_open()).collect(),
            "succeeded" => all.filter(|s| s.is_success()).collect(),
            name => vec![all.into_iter().find(|s| s.as_str().eq_ignore_ascii_case(name))?],
        })
    }
}

/// A list page's cursor: its last notification's place.
pub fn cursor_of(k: &NotificationKey) -> String {
    format!("{}.{}.{}", k.recipient_idx, k.channel.as_str(), k.address)
}

/// The place a cursor names; `None` when it is not one.
pub fn parse_cursor(raw: &str) -> Option<NotificationKey> {
    let mut parts = raw.splitn(3, '.');
    let recipient_idx = parts.next()?.parse().ok()?;
    let channel = parts.next()?;
    let channel = Channel::ALL.iter().copied().find(|c| c.as_str() == channel)?;
    Some(NotificationKey { recipient_idx, channel, address: parts.next()?.to_owned() })
}

/// A page of the order's notifications, each with its events.
#[derive(Debug, Clone)]
pub struct NotificationList {
    /// The filter it shows.
    pub filter: Filter,
    /// The notifications and their events, oldest event first.
    pub rows: Vec<(Notification, Vec<StatusEvent>)>,
    /// The next page's cursor, when there is one.
    pub next: Option<String>,
}

/// Reads a page of an order's notifications.
pub async fn notification_list(
    state: &AppState,
    order_id: &str,
    filter: Filter,
    statuses: &[NotificationStatus],
) -> Result<NotificationList, sea_orm::DbErr> {
    let store = &state.store;
    let mut rows =
        store.notification_page(order_id, statuses, filter.after.as_ref(), PAGE + 1).await?;
    let next = (rows.len() as u64 > PAGE).then(|| {
        rows.truncate(PAGE as usize);
        rows.last().map(|n| cursor_of(&NotificationKey::from(n)))
    });
    let ids: Vec<String> = rows.iter().map(|n| n.id.clone()).collect();
    let mut events = store.events_of_notifications(&ids).await?;
    let rows = rows
        .into_iter()
        .map(|n| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                events.drain(..).partition(|e| e.notification_id == n.id);
            events = rest;
            (n, mine)
        })
        .collect();
    Ok(NotificationList { filter, rows, next: next.flatten() })
}

/// Everything the order's page shows above its notification list.
#[derive(Debug, Clone)]
pub struct OrderView {
    /// The order.
    pub order: StoredOrder,
    /// Its notifications by channel and status.
    pub counts: Vec<(Channel, NotificationStatus, i64)>,
    /// What the workflow lanes, reports, webhooks and actions draw.
    pub marks: Vec<Mark>,
    /// What Temporal could tell.
    pub history: History,
    /// Notification events over time; `None` before the order has any.
    pub buckets: Option<Buckets>,
    /// Why notifications failed, the most frequent first.
    pub failures: Vec<FailureReason>,
    /// Whether there were more webhook attempts than the picture draws.
    pub webhooks_cut: bool,
    /// When the page was read.
    pub now: DateTime<Utc>,
    /// How long each read took (the answer's `Server-Timing`).
    pub timings: Vec<(&'static str, std::time::Duration)>,
}

impl OrderView {
    /// Reads the order's page; `None` when there is no such order. Temporal being unreachable
    /// is shown on the page, not an error: the database still knows most of the story.
    pub async fn load(state: &AppState, id: &str) -> Result<Option<Self>, sea_orm::DbErr> {
        let store = &state.store;
        let mut timings = Vec::new();
        let mut clock = std::time::Instant::now();
        let mut lap = |what: &'static str| {
            timings.push((what, clock.elapsed()));
            clock = std::time::Instant::now();
        };
        let Some(order) = store.order(id).await? else { return Ok(None) };
        let counts = store.notification_counts(id).await?;
        lap("order");
        let (mut marks, history) = match state.dispatcher.client().await {
            Err(e) => (Vec::new(), History::Unreachable(format!("{e}"))),
            Ok(client) => match crate::history::fetch_runs(&client, id).await {
                Ok((runs, gone)) => (
                    runs.iter().flat_map(|run| history_marks(run)).collect(),
                    match (gone, order.workflow_started) {
                        (false, _) => History::Kept,
                        (true, true) => History::Expired,
                        (true, false) => History::NotStarted,
                    },
                ),
                Err(e) => (Vec::new(), History::Unreachable(format!("{e:#}"))),
            },
        };
        lap("history");
        for a in store.actions_of(id).await? {
            marks.push(Mark {
                lane: Lane::Actions,
                start: a.at,
                end: None,
                span: false,
                text: crate::timeline::action_words(&a),
                failed: false,
            });
        }
        let attempts = store.webhook_attempts_of_order(id, Some(MAX_WEBHOOK_MARKS + 1)).await?;
        let webhooks_cut = attempts.len() as u64 > MAX_WEBHOOK_MARKS;
        marks.extend(attempts.into_iter().take(MAX_WEBHOOK_MARKS as usize).map(webhook_mark));
        lap("actions");
        let notifications: i64 = counts.iter().map(|c| c.2).sum();
        let buckets = if notifications <= RAW_EVENTS_UP_TO {
            match store.event_span(id).await? {
                None => None,
                Some((first, last)) => {
                    let span = (last - first).num_microseconds().unwrap_or(0) as f64 / 1e6;
                    let width = (span / BUCKETS).max(0.01);
                    Some(Buckets {
                        from: first,
                        width,
                        rows: store.event_buckets(id, first, width).await?,
                    })
                }
            }
        } else {
            per_second(store.event_seconds(id).await?)
        };
        lap("events");
        let failures = store.failure_reasons(id, 12).await?;
        lap("failures");
        Ok(Some(Self {
            order,
            counts,
            marks,
            history,
            buckets,
            failures,
            webhooks_cut,
            now: Utc::now(),
            timings,
        }))
    }

    /// Notifications of `channel`.
    pub fn total(&self, channel: Channel) -> i64 {
        self.counts.iter().filter(|(c, _, _)| *c == channel).map(|(_, _, n)| n).sum()
    }

    /// The channels the order has notifications on.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL.iter().copied().filter(|c| self.total(*c) > 0).collect()
    }
}

/// Buckets of whole seconds from an order's events counted per second.
fn per_second(rows: Vec<EventSecond>) -> Option<Buckets> {
    let first = rows.iter().map(|r| r.second).min()?;
    let last = rows.iter().map(|r| r.second).max()?;
    let width = ((last + 1 - first) as f64 / BUCKETS).max(1.0);
    let mut counted: HashMap<(i64, NotificationStatus, String), i64> = HashMap::new();
    for r in rows {
        let bucket = ((r.second - first) as f64 / width).floor() as i64;
        *counted.entry((bucket, r.status, r.source)).or_default() += r.count;
    }
    Some(Buckets {
        from: DateTime::from_timestamp(first, 0)?,
        width,
        rows: counted
            .into_iter()
            .map(|((bucket, status, source), count)| EventBucket { bucket, status, source, count })
            .collect(),
    })
}

/// Why notifications failed, in words: the provider's, else the status's own.
pub fn reason(r: &FailureReason) -> String {
    r.reason.clone().unwrap_or_else(|| r.status.description().trim_end_matches('.').to_owned())
}

fn webhook_mark(a: WebhookAttempt) -> Mark {
    let outcome = crate::timeline::webhook_outcome(&a);
    Mark {
        lane: Lane::Webhooks,
        start: a.at,
        end: None,
        span: false,
        text: format!("webhook {} to {}, attempt {}: {outcome}", a.event_type, a.url, a.attempt),
        failed: a.error.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_filters_name_statuses() {
        let k = NotificationKey {
            recipient_idx: 7,
            channel: Channel::Email,
            address: "a.b@example.no".into(),
        };
        assert_eq!(parse_cursor(&cursor_of(&k)), Some(k));
        assert_eq!(parse_cursor("x.email.a"), None);
        let f = |name: &str| Filter { name: name.into(), after: None }.statuses();
        assert_eq!(f(""), Some(vec![]));
        assert!(f("failed").unwrap().iter().all(|s| s.is_failure()));
        assert_eq!(f("email_failed_ttl"), Some(vec![NotificationStatus::EmailFailedTtl]));
        assert_eq!(f("nonsense"), None);
    }

    #[test]
    fn counts_per_second_make_buckets_of_whole_seconds() {
        let row = |second, status, count| EventSecond {
            second,
            status,
            source: "provider".into(),
            count,
        };
        let rows = vec![
            row(1_000, NotificationStatus::EmailSucceeded, 400),
            row(1_000, NotificationStatus::EmailFailedTtl, 2),
            row(1_040, NotificationStatus::EmailSucceeded, 600),
        ];
        let b = per_second(rows).unwrap();
        assert_eq!((b.from.timestamp(), b.width), (1_000, 1.0), "41 s take 41 buckets of 1 s");
        assert_eq!(b.rows.iter().map(|r| r.count).sum::<i64>(), 1_002);
        let last = b.rows.iter().find(|r| r.count == 600).unwrap();
        assert_eq!(last.bucket, 40);
        assert!(per_second(Vec::new()).is_none());
    }
}
