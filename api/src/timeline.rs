//! An order's timeline: its workflow history (every run), told in words an operator reads at a
//! glance, merged with its notifications' statuses and its status webhooks' delivery attempts.

use base64::Engine;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use temporalio_client::errors::WorkflowInteractionError;
use temporalio_client::{Client, WorkflowHistoryError};
use varsel_activities::Store;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// `workflow`, `order` (the database's record, once the workflow's history has expired),
    /// `action` (a cancel or redrive, and who did it), `notification` or `webhook`.
    pub source: &'static str,
    /// What happened.
    pub text: String,
    /// The notification it is about.
    pub notification_id: Option<String>,
}

pub(crate) fn activity_words(name: &str) -> &str {
    match name {
        "varsel.order.start_processing" => "claim the order for processing",
        "varsel.order.check_send_condition" => "check the send condition",
        "varsel.order.generate_notifications" => "look up recipients and create notifications",
        "varsel.order.send_batch" => "send a batch",
        "varsel.order.send_slice" => "create and send a slice of the recipients",
        "varsel.order.settle" => "settle the order",
        "varsel.order.expire_notifications" => "give up notifications past their time-to-live",
        "varsel.order.finish" => "finish the order",
        "varsel.order.redrive_reset" => "reset failed notifications for a redrive",
        other => other,
    }
}

pub(crate) fn payload(v: &Value) -> Option<Value> {
    let data = v["payloads"][0]["data"].as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    serde_json::from_slice(&raw).ok()
}

pub(crate) fn compact(v: &Value) -> String {
    match v {
        Value::Object(m) => m
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| {
                format!("{k}={}", if let Value::String(s) = v { s.clone() } else { v.to_string() })
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A scheduled activity's input in words, its order id aside.
pub(crate) fn activity_input(attributes: &Value) -> String {
    match payload(&attributes["input"]).unwrap_or_default() {
        Value::Object(mut m) => {
            m.remove("order_id");
            compact(&Value::Object(m))
        }
        _ => String::new(),
    }
}

/// What moved a notification, in words.
pub(crate) fn event_words(source: &str) -> &str {
    match source {
        "created" => "created",
        "sending" => "handed to the provider",
        "provider" => "provider answered",
        "report" => "delivery report",
        "ttl" => "time-to-live reached",
        "redrive" => "reset by a redrive",
        other => other,
    }
}

pub(crate) fn seconds(d: &Value) -> Option<f64> {
    d.as_str()?.trim_end_matches('s').parse().ok()
}

/// Turns one run's history (Temporal's JSON) into entries.
pub fn workflow_entries(history: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut scheduled: HashMap<i64, String> = HashMap::new();
    for e in history["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let time = e["event_time"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        let Some(time) = time else { continue };
        let Some((kind, a)) = e["attributes"].as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        let id = e["event_id"].as_i64().unwrap_or(0);
        let text = match kind.as_str() {
            "WorkflowExecutionStartedEventAttributes" => {
                let input = payload(&a["input"]).unwrap_or_default();
                if input["resume"] == "Redrive" {
                    "workflow started again: an operator's redrive".to_owned()
                } else if a["continued_execution_run_id"].as_str().is_some_and(|s| !s.is_empty()) {
                    format!(
                        "workflow continued as a new run, resuming at {}",
                        compact(&input["resume"])
                    )
                } else {
                    let at = input["requested_send_time_ms"]
                        .as_i64()
                        .and_then(DateTime::from_timestamp_millis);
                    format!(
                        "workflow started; send time {}; task queue {}",
                        at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                        a["task_queue"]["name"].as_str().unwrap_or("?")
                    )
                }
            }
            "TimerStartedEventAttributes" => {
                let secs = seconds(&a["start_to_fire_timeout"]).unwrap_or(0.0);
                let until = time + chrono::Duration::milliseconds((secs * 1000.0) as i64);
                format!("waiting {secs:.0} s, until {}", until.to_rfc3339())
            }
            "TimerFiredEventAttributes" => "timer fired".to_owned(),
            "TimerCanceledEventAttributes" => "timer cancelled".to_owned(),
            "ActivityTaskScheduledEventAttributes" => {
                let name = a["activity_type"]["name"].as_str().unwrap_or_default().to_owned();
                scheduled.insert(id, name.clone());
                let detail = activity_input(a);
                if detail.is_empty() {
                    format!("{}: scheduled", activity_words(&name))
                } else {
                    format!("{}: scheduled ({detail})", activity_words(&name))
                }
            }
            "ActivityTaskStartedEventAttributes" => {
                let name = scheduled
                    .get(&a["scheduled_event_id"].as_i64().unwrap_or(0))
                    .cloned()
                    .unwrap_or_default();
                let attempt = a["attempt"].as_i64().unwrap_or(1);
                if attempt <= 1 {
                    continue;
                }
                let failure = a["last_failure"]["message"].as_str().unwrap_or("unknown failure");
                format!(
                    "{}: attempt {attempt}; the previous attempt failed: {failure}",
                    activity_words(&name)
                )
            }
            // A local activity (the store steps, with `varsel.local-store-steps`): one marker,
            // written when it ended.
            "MarkerRecordedEventAttributes" if a["marker_name"] == "core_local_activity" => {
                let data = payload(&a["details"]["data"]).unwrap_or_default();
                let words = activity_words(data["activity_type"].as_str().unwrap_or_default());
                let attempts = match data["attempt"].as_i64().unwrap_or(1) {
                    n if n > 1 => format!(" after {n} attempts"),
                    _ => String::new(),
                };
                match a["failure"]["message"].as_str() {
                    Some(failure) => format!("{words}: failed{attempts}: {failure}"),
                    None => {
                        let result = payload(&a["details"]["result"])
                            .map(|r| compact(&r))
                            .unwrap_or_default();
                        format!("{words}: done{attempts} ({result})")
                    }
                }
            }
            "ActivityTaskCompletedEventAttributes" => {
                let name = scheduled
                    .get(&a["scheduled_event_id"].as_i64().unwrap_or(0))
                    .cloned()
                    .unwrap_or_default();
                let result = payload(&a["result"]).map(|r| compact(&r)).unwrap_or_default();
                format!("{}: done ({result})", activity_words(&name))
            }
            "ActivityTaskFailedEventAttributes" => {
                let name = scheduled
                    .get(&a["scheduled_event_id"].as_i64().unwrap_or(0))
                    .cloned()
                    .unwrap_or_default();
                format!(
                    "{}: failed for good: {}",
                    activity_words(&name),
                    a["failure"]["message"].as_str().unwrap_or_default()
                )
            }
            "ActivityTaskTimedOutEventAttributes" => {
                let name = scheduled
                    .get(&a["scheduled_event_id"].as_i64().unwrap_or(0))
                    .cloned()
                    .unwrap_or_default();
                format!("{}: timed out", activity_words(&name))
            }
            "WorkflowExecutionSignaledEventAttributes" => match a["signal_name"].as_str() {
                Some("varsel.order.reports_final") => {
                    "delivery reports: every notification may be final".to_owned()
                }
                Some(other) => format!("signal {other}"),
                None => continue,
            },
            "WorkflowExecutionCancelRequestedEventAttributes" => {
                "cancellation requested".to_owned()
            }
            "WorkflowExecutionCanceledEventAttributes" => {
                "workflow ended: order cancelled".to_owned()
            }
            "WorkflowExecutionCompletedEventAttributes" => {
                format!(
                    "workflow completed ({})",
                    payload(&a["result"]).map(|r| compact(&r)).unwrap_or_default()
                )
            }
            "WorkflowExecutionContinuedAsNewEventAttributes" => {
                "run handed over to a new run (continue-as-new)".to_owned()
            }
            "WorkflowExecutionFailedEventAttributes" => {
                format!("workflow failed: {}", a["failure"]["message"].as_str().unwrap_or_default())
            }
            "WorkflowExecutionTerminatedEventAttributes" => {
                format!("workflow terminated: {}", a["reason"].as_str().unwrap_or_default())
            }
            "WorkflowTaskFailedEventAttributes" => format!(
                "workflow task failed: {}",
                a["failure"]["message"].as_str().unwrap_or_default()
            ),
            _ => continue,
        };
        out.push(Entry { time, source: "workflow", text, notification_id: None });
    }
    out
}

/// Whether an error says Temporal no longer has the workflow's history (its retention period
/// passed, or it was deleted), rather than that Temporal could not be asked.
fn history_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<WorkflowHistoryError>(),
            Some(WorkflowHistoryError::Fetch(WorkflowInteractionError::NotFound(_)))
        )
    })
}

/// Every run of the order's workflow that Temporal still keeps, oldest first, as Temporal's JSON
/// history; and whether a run's history is gone (past Temporal's retention).
pub async fn fetch_workflow_histories(
    client: &Client,
    order_id: &str,
) -> anyhow::Result<(Vec<Value>, bool)> {
    // Runs of a continued order share its workflow id; visibility lists them all.
    let mut runs = Vec::new();
    let mut stream =
        client.list_workflows(format!("WorkflowId = '{order_id}'"), Default::default());
    while let Some(item) = stream.next().await {
        let info = item?;
        runs.push((info.start_time(), info.run_id().to_owned()));
    }
    runs.sort();
    let mut histories = Vec::new();
    if runs.is_empty() {
        // Visibility may lag just after the start: fall back to the latest run.
        return match crate::replay::fetch_history_json(client, order_id).await {
            Ok(bytes) => Ok((vec![serde_json::from_slice(&bytes)?], false)),
            Err(e) if history_gone(&e) => Ok((histories, true)),
            Err(e) => Err(e),
        };
    }
    let mut gone = false;
    for (_, run_id) in runs {
        match crate::replay::fetch_run_history_json(client, order_id, &run_id).await {
            Ok(bytes) => histories.push(serde_json::from_slice(&bytes)?),
            // Listed, but its history already deleted (visibility lags behind).
            Err(e) if history_gone(&e) => gone = true,
            Err(e) => return Err(e),
        }
    }
    Ok((histories, gone))
}

/// Every run of the order's workflow that Temporal still keeps, oldest first, as entries; and
/// whether a run's history is gone (past Temporal's retention).
pub async fn fetch_workflow_entries(
    client: &Client,
    order_id: &str,
) -> anyhow::Result<(Vec<Entry>, bool)> {
    let (histories, gone) = fetch_workflow_histories(client, order_id).await?;
    Ok((histories.iter().flat_map(workflow_entries).collect(), gone))
}

/// What varsel's database keeps of the order itself: when it was registered, for when, and its
/// last status; told when Temporal no longer has the workflow's history.
pub async fn order_entries(store: &Store, order_id: &str) -> Result<Vec<Entry>, sea_orm::DbErr> {
    let Some(stored) = store.order(order_id).await? else { return Ok(Vec::new()) };
    let (o, changed) = (stored.order, stored.status_changed);
    let entry = |time, text: String| Entry { time, source: "order", text, notification_id: None };
    Ok(vec![
        entry(
            o.created,
            format!(
                "order registered; send time {}. The workflow's history has expired: Temporal \
                 no longer keeps it (its retention period has passed), so this timeline shows \
                 what varsel's database kept",
                o.requested_send_time.to_rfc3339()
            ),
        ),
        entry(changed, format!("order {}: {}", o.status.as_str(), o.status.description())),
    ])
}

/// Every status change of the order's notifications (creation, each send attempt, the
/// provider's answer, each delivery report, time-to-live, redrive) as entries.
pub async fn notification_entries(
    store: &Store,
    order_id: &str,
) -> Result<Vec<Entry>, sea_orm::DbErr> {
    let notes: HashMap<String, _> =
        store.notifications(order_id).await?.into_iter().map(|n| (n.id.clone(), n)).collect();
    Ok(store
        .notification_events(order_id)
        .await?
        .into_iter()
        .map(|e| {
            let n = notes.get(&e.notification_id);
            let to = n
                .map(|n| {
                    if n.address.is_empty() {
                        n.nin
                            .clone()
                            .or(n.org_no.clone())
                            .map(|id| format!("recipient {id}"))
                            .unwrap_or_else(|| "recipient".into())
                    } else {
                        n.address.clone()
                    }
                })
                .unwrap_or_default();
            let channel = n.map(|n| n.channel.as_str()).unwrap_or_default();
            let what = event_words(&e.source);
            let mut text = format!("{channel} {to}: {what}: {}", e.status);
            if e.source != "sending" {
                text.push_str(&format!(" ({})", e.status.description().trim_end_matches('.')));
            }
            if let Some(d) = &e.detail {
                text.push_str(&format!("; {d}"));
            }
            Entry {
                time: e.at,
                source: "notification",
                text,
                notification_id: Some(e.notification_id),
            }
        })
        .collect())
}

/// What a webhook delivery attempt came to, in words.
pub(crate) fn webhook_outcome(a: &varsel_activities::store::WebhookAttempt) -> String {
    match (&a.error, a.status_code) {
        (None, Some(code)) => format!("accepted (HTTP {code})"),
        (None, None) => "accepted".to_owned(),
        (Some(e), _) => format!("failed: {e}"),
    }
}

/// What someone did to an order, and who: `redrive by operator kari: 1 notifications to send
/// again`.
pub(crate) fn action_words(a: &varsel_activities::store::OrderAction) -> String {
    match &a.detail {
        Some(detail) => format!("{} by {}: {detail}", a.action, a.actor),
        None => format!("{} by {}", a.action, a.actor),
    }
}

/// Every attempt at delivering the order's status webhooks, with what the endpoint answered.
pub async fn webhook_entries(store: &Store, order_id: &str) -> Result<Vec<Entry>, sea_orm::DbErr> {
    Ok(store
        .webhook_attempts_of_order(order_id, None)
        .await?
        .into_iter()
        .map(|a| {
            let outcome = webhook_outcome(&a);
            Entry {
                time: a.at,
                source: "webhook",
                text: format!(
                    "webhook {} {} to {} (endpoint {}), attempt {}: {outcome} in {} ms",
                    a.event_type, a.message_id, a.url, a.endpoint_id, a.attempt, a.duration_ms
                ),
                notification_id: None,
            }
        })
        .collect())
}

/// Records that `actor` did `action` to an order, after it was done: a record that cannot be
/// written is logged, never an error, which would invite the caller to do it again.
pub async fn record_action(
    store: &Store,
    order_id: &str,
    actor: &str,
    action: &str,
    detail: Option<String>,
) {
    if let Err(e) = store.record_action(order_id, actor, action, detail).await {
        tracing::error!(order_id, action, error = %e, "the action could not be recorded");
    }
}

/// What people did to the order (cancel, redrive), and who.
pub async fn action_entries(store: &Store, order_id: &str) -> Result<Vec<Entry>, sea_orm::DbErr> {
    Ok(store
        .actions_of(order_id)
        .await?
        .into_iter()
        .map(|a| Entry {
            time: a.at,
            source: "action",
            text: action_words(&a),
            notification_id: None,
        })
        .collect())
}

/// An order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    /// Everything known, ordered by time.
    pub entries: Vec<Entry>,
    /// Temporal no longer keeps (some of) the workflow's history: its retention period passed.
    pub workflow_history_expired: bool,
}

/// The merged timeline, ordered by time. When Temporal's retention has deleted the workflow's
/// history, the order's own record from the database stands in for it.
pub async fn order_timeline(
    store: &Store,
    client: &Client,
    order_id: &str,
) -> anyhow::Result<Timeline> {
    let (mut entries, expired) = fetch_workflow_entries(client, order_id).await?;
    if expired {
        entries.extend(order_entries(store, order_id).await?);
    }
    entries.extend(action_entries(store, order_id).await?);
    entries.extend(notification_entries(store, order_id).await?);
    entries.extend(webhook_entries(store, order_id).await?);
    entries.sort_by_key(|e| e.time);
    Ok(Timeline { entries, workflow_history_expired: expired })
}
