//! The console's pages as HTML fragments, drawn on the server: the order search, an order's page
//! (its facts, actions, picture and failure reasons), a page of its notifications, the redrive
//! preview and the overview. The console's script puts them in place; links are `#/…` routes,
//! buttons name their action in `data-*` attributes, so no page carries a script of its own.

use super::overview::Overview;
use super::view::{History, NotificationList, OrderView};
use chrono::{DateTime, Utc};
use maud::{Markup, html};
use varsel_activities::store::{COUNT_CAP, Notification, OrderPage};
use varsel_workflows::domain::{NotificationChannel, NotificationStatus, OrderStatus};
use varsel_workflows::order::StoredOrder;

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn status_class(status: &str) -> &'static str {
    let s = status.to_ascii_lowercase();
    if s.contains("failed")
        || s.contains("notsent")
        || s == "cancelled"
        || s.contains("conditionnotmet")
    {
        "bad"
    } else if s.contains("delivered")
        || s.contains("succeeded")
        || s.contains("accepted")
        || s == "completed"
    {
        "good"
    } else {
        "busy"
    }
}

/// The criteria the search form shows again.
#[derive(Debug, Clone, Default)]
pub struct SearchForm {
    pub creator: String,
    pub status: String,
    pub channel: String,
    pub created_from: String,
    pub created_to: String,
    pub senders_reference: String,
    pub id: String,
}

/// The search form and, when searched, a page of results with counts per status.
pub fn search(form: &SearchForm, page: Option<(&OrderPage, Option<String>, String)>) -> Markup {
    let field = |name: &str, label: &str, value: &str, kind: &str, hint: &str| {
        html! {
            label {
                span { (label) }
                input type=(kind) name=(name) value=(value) placeholder=(hint) autocomplete="off";
            }
        }
    };
    html! {
        h1 { "Find orders" }
        form #search data-route="orders" {
            (field("sendersReference", "Sender's reference", &form.senders_reference, "text", "exactly as sent"))
            (field("creator", "Creator", &form.creator, "text", "organisation, e.g. ttd"))
            (field("id", "Order id", &form.id, "text", "GUID"))
            label {
                span { "Status" }
                select name="status" {
                    option value="" { "any" }
                    @for s in OrderStatus::ALL {
                        option value=(s.as_str()) selected[form.status.eq_ignore_ascii_case(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label {
                span { "Channel" }
                select name="channel" {
                    option value="" { "any" }
                    @for c in NotificationChannel::ALL {
                        option value=(c.as_str()) selected[form.channel.eq_ignore_ascii_case(c.as_str())] { (c.as_str()) }
                    }
                }
            }
            (field("createdFrom", "Accepted from", &form.created_from, "text", "2026-12-01T00:00:00Z"))
            (field("createdTo", "Accepted before", &form.created_to, "text", "2026-12-02T00:00:00Z"))
            button type="submit" { "Search" }
        }
        @if let Some((page, next, query)) = page {
            @let total: u64 = page.counts.iter().map(|c| c.1).sum();
            p.counts {
                @if total >= COUNT_CAP {
                    "More than " (COUNT_CAP) " orders found; the newest " (COUNT_CAP) ": "
                } @else {
                    (total) @if total == 1 { " order found: " } @else { " orders found: " }
                }
                @for (s, n) in &page.counts {
                    span class=(format!("pill {}", status_class(s.as_str()))) { (s.as_str()) " " (n) }
                    " "
                }
            }
            @if page.orders.is_empty() {
                p.empty { "No order matches." }
            } @else {
                table.results {
                    thead { tr { th { "Accepted" } th { "Order" } th { "Creator" } th { "Reference" } th { "Channel" } th { "Recipients" } th { "Status" } } }
                    tbody {
                        @for o in &page.orders {
                            (result_row(o))
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p { a.next href=(format!("#/orders?{query}&cursor={}", urlencode(&next))) { "Older orders →" } }
            }
        }
    }
}

fn result_row(s: &StoredOrder) -> Markup {
    let o = &s.order;
    html! {
        tr {
            td { (when(o.created)) }
            td { a href=(format!("#/order/{}", o.id)) { code { (o.id) } } }
            td { (o.creator) }
            td { (o.senders_reference.as_deref().unwrap_or("")) }
            td { (o.channel.as_str()) }
            td { (s.recipient_count) }
            td { span class=(format!("pill {}", status_class(o.status.as_str()))) { (o.status.as_str()) } }
        }
    }
}

/// Percent-encodes a query value.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An order's page, its notification list aside (loaded into `#notifications`).
pub fn order(view: &OrderView, picture: Markup) -> Markup {
    let s = &view.order;
    let o = &s.order;
    let registered = o.status == OrderStatus::Registered;
    let finished = matches!(o.status, OrderStatus::Completed);
    let open = matches!(
        o.status,
        OrderStatus::Registered | OrderStatus::Processing | OrderStatus::Processed
    );
    html! {
        h1 data-open=(open) { "Order " code { (o.id) } }
        dl.facts {
            dt { "Status" } dd { span class=(format!("pill {}", status_class(o.status.as_str()))) { (o.status.as_str()) } " " (o.status.description()) }
            dt { "Creator" } dd { (o.creator) }
            dt { "Sender's reference" } dd { (o.senders_reference.as_deref().unwrap_or("—")) }
            dt { "Accepted" } dd { (when(o.created)) }
            dt { "Send time" } dd { (when(o.requested_send_time)) }
            dt { "Channel" } dd { (o.channel.as_str()) }
            dt { "Recipients" } dd { (s.recipient_count) }
            dt { "Last change" } dd { (when(s.status_changed)) }
        }
        p.counts {
            @for (c, st, n) in &view.counts {
                span class=(format!("pill {}", status_class(st.as_str()))) title=(st.description()) { (c.as_str()) " " (st.as_str()) " " (n) }
                " "
            }
        }
        div.actions role="group" aria-label="Actions" {
            @if registered {
                button data-action="cancel" data-order=(o.id) { "Cancel order" }
            }
            @if finished {
                button data-action="redrive-preview" data-order=(o.id) { "Redrive…" }
            }
            button data-action="replay" data-order=(o.id) { "Replay history" }
            a.button href=(format!("{}/orders/{}/history", super::API, o.id)) data-action="history" data-order=(o.id) { "Timeline as text" }
        }
        div #action-result role="status" aria-live="polite" {}
        @match &view.history {
            History::Kept => {},
            History::Expired => p.note { "Temporal no longer keeps (all of) this workflow's history: its retention period has passed. The picture shows what varsel's database kept." },
            History::NotStarted => p.note { "This order's workflow has not been started yet: Temporal could not be reached when the order was accepted, and varsel starts it as soon as Temporal answers. The picture shows what varsel's database knows." },
            History::Unreachable(e) => p.note.bad { "Temporal could not be asked (" (e) "); the picture shows what varsel's database knows." },
        }
        @if view.webhooks_cut {
            p.note { "The picture draws the first " (super::view::MAX_WEBHOOK_MARKS) " webhook attempts." }
        }
        figure.picture-frame {
            (picture)
            figcaption { "Hover a mark to read it. Red marks failed; ≈ marks an idle stretch drawn short." }
        }
        @if !view.failures.is_empty() {
            h2 { "Why notifications failed" }
            table.failures {
                thead { tr { th { "Notifications" } th { "Status" } th { "Reason" } th { "First" } th { "Last" } } }
                tbody {
                    @for r in &view.failures {
                        tr {
                            td { (r.count) }
                            td { span.pill.bad { (r.status.as_str()) } }
                            td { (super::view::reason(r)) }
                            td { (when(r.first)) }
                            td { (when(r.last)) }
                        }
                    }
                }
            }
        }
        h2 #notifications-heading { "Notifications" }
        section #notifications data-order=(o.id) aria-labelledby="notifications-heading" {}
    }
}

fn recipient(n: &Notification) -> String {
    if !n.address.is_empty() {
        return n.address.clone();
    }
    n.nin.clone().or(n.org_no.clone()).map(|id| format!("recipient {id}")).unwrap_or_default()
}

/// A page of an order's notifications, with the filter that chose them.
pub fn notifications(
    order_id: &str,
    list: &NotificationList,
    present: &[NotificationStatus],
) -> Markup {
    let chosen = list.filter.name.as_str();
    html! {
        form #notification-filter data-order=(order_id) {
            label {
                span { "Show" }
                select name="status" {
                    @for (value, label) in [("", "all"), ("failed", "failed"), ("open", "still open"), ("succeeded", "succeeded")] {
                        option value=(value) selected[chosen == value] { (label) }
                    }
                    @for s in present {
                        option value=(s.as_str()) selected[chosen.eq_ignore_ascii_case(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if list.rows.is_empty() {
            p.empty { "No notification matches." }
        } @else {
            ol.notifications {
                @for (n, events) in &list.rows {
                    li {
                        details {
                            summary {
                                span class=(format!("pill {}", status_class(n.status.as_str()))) { (n.status.as_str()) }
                                " " (n.channel.as_str()) " " strong { (recipient(n)) }
                                @if let Some(r) = &n.status_reason { " — " span.reason { (r) } }
                            }
                            dl.facts {
                                dt { "Notification" } dd { code { (n.id) } }
                                dt { "Recipient #" } dd { (n.recipient_idx) }
                                dt { "Attempts" } dd { (n.attempts) }
                                dt { "Changed" } dd { (when(n.status_changed)) }
                                @if let Some(p) = &n.provider_ref { dt { "Provider reference" } dd { code { (p) } } }
                                @if let Some(r) = &n.delivery_report { dt { "Last report" } dd { code { (r) } } }
                            }
                            ol.events {
                                @for e in events {
                                    li {
                                        time { (e.at.format("%H:%M:%S%.3f")) } " " (crate::timeline::event_words(&e.source)) ": "
                                        span class=(format!("pill {}", status_class(e.status.as_str()))) { (e.status.as_str()) }
                                        @if let Some(d) = &e.detail { " " span.reason { (d) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = &list.next {
            p { button data-action="more-notifications" data-order=(order_id) data-status=(chosen) data-after=(next) { "More notifications" } }
        }
    }
}

/// What a redrive would send again, for the operator to confirm.
pub fn redrive_preview(order_id: &str, count: u64, rows: &[Notification]) -> Markup {
    html! {
        div.preview role="dialog" aria-labelledby="preview-title" {
            h2 #preview-title { "Redrive: " (count) " notifications will be sent again" }
            @if count == 0 {
                p { "Nothing to send again: no notification of this order failed before reaching a provider." }
            } @else {
                table.results {
                    thead { tr { th { "Channel" } th { "Address" } th { "Status" } th { "Reason" } } }
                    tbody {
                        @for n in rows {
                            tr { td { (n.channel.as_str()) } td { (recipient(n)) } td { (n.status.as_str()) } td { (n.status_reason.as_deref().unwrap_or("")) } }
                        }
                    }
                }
                @if count > rows.len() as u64 { p { "…and " (count - rows.len() as u64) " more." } }
                p {
                    button.danger data-action="redrive" data-order=(order_id) data-count=(count) { "Send these " (count) " again" }
                    " "
                    button data-action="close-preview" { "Not now" }
                }
            }
        }
    }
}

/// The overview page.
pub fn overview(o: &Overview) -> Markup {
    html! {
        h1 { "Overview" }
        p.note { "As of " (when(o.now)) ". Windows sum the counters of every varsel process (" (o.processes) " in the last day), from the snapshots each keeps in the database, this one's live; counts now read the database." }
        div.cards {
            @for w in &o.windows {
                section.card {
                    h2 { (w.label) }
                    dl.facts {
                        dt { "Orders accepted" } dd { (w.accepted) }
                        dt { "Orders finished" } dd { (w.finished_text()) }
                        dt { "Sends" } dd { (w.sends) }
                        dt { "Provider errors" } dd class=(if w.provider_errors > 0.0 { "bad" } else { "" }) { (w.provider_errors_text()) }
                        dt { "Throttled sends" } dd { (w.throttled) }
                        dt { "Delivery reports" } dd { (w.reports_text()) }
                        dt { "Report lag" } dd { (w.report_lag_text()) }
                        dt { "Webhook attempts" } dd { (w.webhooks_text()) }
                        dt { "Server errors (5xx)" } dd class=(if w.server_errors > 0.0 { "bad" } else { "" }) { (w.server_errors) }
                    }
                }
            }
            section.card {
                h2 { "Now" }
                dl.facts {
                    dt { "Oldest unfinished order" }
                    dd {
                        @match &o.oldest_open {
                            Some(s) => { a href=(format!("#/order/{}", s.order.id)) { (when(s.order.created)) } " (" (s.order.status.as_str()) ")" },
                            None => "none",
                        }
                    }
                    dt { "Dead reports" } dd class=(if o.dead_reports > 0 { "bad" } else { "" }) {
                        (o.dead_reports)
                        @if o.dead_reports > 0 { " " button data-action="reapply-dead" { "Re-apply all" } }
                    }
                    dt { "Worker" } dd { (o.worker) }
                    dt { "Order dispatch" } dd { (o.dispatch) }
                }
            }
        }
        div #action-result role="status" aria-live="polite" {}
        h2 { "Task queues" }
        @match &o.queues {
            Err(e) => p.note.bad { "Temporal could not be asked: " (e) },
            Ok(queues) => table.results.queues {
                thead { tr { th { "Task queue" } th { "Tasks" } th { "Workers polling" } th { "Waiting" } th { "Oldest waiting" } } }
                tbody {
                    @for q in queues {
                        tr {
                            td { code { (q.queue) } }
                            td { (q.kind) }
                            td class=(if q.pollers.is_empty() { "bad" } else { "" }) {
                                @if q.pollers.is_empty() { "none" } @else { (q.pollers.len()) ": " (q.pollers.join(", ")) }
                            }
                            td { (q.backlog) }
                            td { @match q.backlog_age { Some(d) => (format!("{:.1} s", d.as_secs_f64())), None => "—" } }
                        }
                    }
                }
            },
        }
        h2 { "Orders by status" }
        p.counts {
            @for (s, n) in &o.orders {
                a href=(format!("#/orders?status={}", s.as_str())) class=(format!("pill {}", status_class(s.as_str()))) { (s.as_str()) " " (n) }
                " "
            }
        }
        h2 { "Notifications by channel and status" }
        table.results {
            thead { tr { th { "Channel" } th { "Status" } th { "Notifications" } } }
            tbody {
                @for (c, s, n) in &o.notifications {
                    tr { td { (c.as_str()) } td { span class=(format!("pill {}", status_class(s.as_str()))) { (s.as_str()) } } td { (n) } }
                }
            }
        }
    }
}
