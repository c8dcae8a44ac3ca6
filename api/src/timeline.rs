//! An order's timeline: its workflow history (every run), told in words an operator reads at a
//! glance, merged with its notifications' statuses and its status webhooks' delivery attempts.

use crate::history::{RunEnd, RunStart, Step, What};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use temporalio_client::Client;
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

/// A step of a run's history in words, as the timeline tells it.
pub(crate) fn step_words(step: &Step) -> String {
    match &step.what {
        What::RunStarted { start: RunStart::Redrive, .. } => {
            "workflow started again: an operator's redrive".to_owned()
        }
        What::RunStarted { start: RunStart::Continued { resume }, .. } => {
            format!("workflow continued as a new run, resuming at {resume}")
        }
        What::RunStarted { start: RunStart::First, task_queue, send_time } => format!(
            "workflow started; send time {}; task queue {task_queue}",
            send_time.map(|t| t.to_rfc3339()).unwrap_or_default()
        ),
        What::RunEnded(end) => format!("workflow {}", run_end_words(end)),
        What::TimerStarted { seconds } => {
            let until = step.time + chrono::Duration::milliseconds((seconds * 1000.0) as i64);
            format!("waiting {seconds:.0} s, until {}", until.to_rfc3339())
        }
        What::TimerEnded { fired: true, .. } => "timer fired".to_owned(),
        What::TimerEnded { fired: false, .. } => "timer cancelled".to_owned(),
        What::ActivityScheduled { name, input } if input.is_empty() => {
            format!("{}: scheduled", activity_words(name))
        }
        What::ActivityScheduled { name, input } => {
            format!("{}: scheduled ({input})", activity_words(name))
        }
        What::ActivityRetried { name, attempt, failure, .. } => format!(
            "{}: attempt {attempt}; the previous attempt failed: {failure}",
            activity_words(name)
        ),
        What::ActivityCompleted { name, result, .. } => {
            format!("{}: done ({result})", activity_words(name))
        }
        What::ActivityFailed { name, timed_out: true, .. } => {
            format!("{}: timed out", activity_words(name))
        }
        What::ActivityFailed { name, failure, .. } => {
            format!("{}: failed for good: {failure}", activity_words(name))
        }
        What::LocalActivity { name, attempts, outcome } => {
            let attempts =
                if *attempts > 1 { format!(" after {attempts} attempts") } else { String::new() };
            match outcome {
                Ok(result) => format!("{}: done{attempts} ({result})", activity_words(name)),
                Err(failure) => format!("{}: failed{attempts}: {failure}", activity_words(name)),
            }
        }
        What::Signalled { name } if name == REPORTS_FINAL => {
            "delivery reports: every notification may be final".to_owned()
        }
        What::Signalled { name } => format!("signal {name}"),
        What::CancelRequested => "cancellation requested".to_owned(),
        What::WorkflowTaskFailed { message } => format!("workflow task failed: {message}"),
    }
}

/// How a run ended, in words: `completed (…)`, `failed: …`.
pub(crate) fn run_end_words(end: &RunEnd) -> String {
    match end {
        RunEnd::Completed { result } => format!("completed ({result})"),
        RunEnd::ContinuedAsNew => "handed over to a new run (continue-as-new)".to_owned(),
        RunEnd::Cancelled => "ended: order cancelled".to_owned(),
        RunEnd::Failed { message } => format!("failed: {message}"),
        RunEnd::Terminated { reason } => format!("terminated: {reason}"),
        RunEnd::TimedOut => "timed out".to_owned(),
    }
}

/// The signal that tells a run every notification's delivery report may be final.
pub(crate) const REPORTS_FINAL: &str = "varsel.order.reports_final";

/// One run's steps as timeline entries.
pub fn workflow_entries(steps: &[Step]) -> Vec<Entry> {
    steps
        .iter()
        .map(|step| Entry {
            time: step.time,
            source: "workflow",
            text: step_words(step),
            notification_id: None,
        })
        .collect()
}

/// Every run of the order's workflow that Temporal still keeps, oldest first, as entries; and
/// whether a run's history is gone (past Temporal's retention).
pub async fn fetch_workflow_entries(
    client: &Client,
    order_id: &str,
) -> anyhow::Result<(Vec<Entry>, bool)> {
    let (runs, gone) = crate::history::fetch_runs(client, order_id).await?;
    Ok((runs.iter().flat_map(|run| workflow_entries(run)).collect(), gone))
}

/// What varsel's database keeps of the order itself: when it was registered, for when, and its
/// last status; told when Temporal has no history of the workflow. That is either because its
/// retention period passed, or because the workflow has not been started yet (Temporal could
/// not be reached when the order was accepted): the second of the answer says which (whether
/// the workflow was started).
pub async fn order_entries(
    store: &Store,
    order_id: &str,
) -> Result<(Vec<Entry>, bool), sea_orm::DbErr> {
    let Some(stored) = store.order(order_id).await? else { return Ok((Vec::new(), false)) };
    let (o, changed, started) = (stored.order, stored.status_changed, stored.workflow_started);
    let entry = |time, text: String| Entry { time, source: "order", text, notification_id: None };
    let why = if started {
        "The workflow's history has expired: Temporal no longer keeps it (its retention period \
         has passed), so this timeline shows what varsel's database kept"
    } else {
        "Its workflow has not been started yet: Temporal could not be reached when the order was \
         accepted, and varsel starts it as soon as Temporal answers"
    };
    let registered =
        format!("order registered; send time {}. {why}", o.requested_send_time.to_rfc3339());
    let entries = vec![
        entry(o.created, registered),
        entry(changed, format!("order {}: {}", o.status.as_str(), o.status.description())),
    ];
    Ok((entries, started))
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
    /// (False for a workflow not started yet, which has none.)
    pub workflow_history_expired: bool,
}

/// The merged timeline, ordered by time. When Temporal's retention has deleted the workflow's
/// history, the order's own record from the database stands in for it.
pub async fn order_timeline(
    store: &Store,
    client: &Client,
    order_id: &str,
) -> anyhow::Result<Timeline> {
    let (mut entries, gone) = fetch_workflow_entries(client, order_id).await?;
    let mut expired = gone;
    if gone {
        let (record, started) = order_entries(store, order_id).await?;
        // A workflow never started has no history that could have expired.
        expired = started;
        entries.extend(record);
    }
    entries.extend(action_entries(store, order_id).await?);
    entries.extend(notification_entries(store, order_id).await?);
    entries.extend(webhook_entries(store, order_id).await?);
    entries.sort_by_key(|e| e.time);
    Ok(Timeline { entries, workflow_history_expired: expired })
}
