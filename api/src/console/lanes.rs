//! What the picture of an order draws from its workflow history: spans and points on lanes
//! (runs, waits, condition checks, sending, settling, reports), read from Temporal's JSON
//! history of each run.

use crate::timeline::{activity_input, activity_words, compact, payload, seconds};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;

/// A row of the picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// Each run of the workflow: the first, continued runs, redrives.
    Runs,
    /// Durable timers: the send-time wait, SMS sending windows, waiting for reports.
    Waits,
    /// Send-condition checks and their answers.
    Condition,
    /// Lookups and sending: each slice (or batch) with its retries.
    Sending,
    /// Claiming, settling, expiring, finishing, resetting for a redrive.
    Settling,
    /// Delivery reports.
    Reports,
    /// Status webhooks' delivery attempts.
    Webhooks,
    /// What people did: cancels, redrives, replays.
    Actions,
}

impl Lane {
    /// The lane's name, as the picture labels it.
    pub fn label(self) -> &'static str {
        match self {
            Lane::Runs => "workflow runs",
            Lane::Waits => "waits",
            Lane::Condition => "send condition",
            Lane::Sending => "lookup and send",
            Lane::Settling => "settle",
            Lane::Reports => "delivery reports",
            Lane::Webhooks => "webhooks",
            Lane::Actions => "actions",
        }
    }
}

/// One thing on a lane: a span (`end` given) or a point.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    /// Its lane.
    pub lane: Lane,
    /// When it began (a point: when it happened).
    pub start: DateTime<Utc>,
    /// When it ended; `None` for a point, or a span still open.
    pub end: Option<DateTime<Utc>>,
    /// Whether it is a span (an open span runs to the picture's end).
    pub span: bool,
    /// What it is, in words (shown on hover).
    pub text: String,
    /// Whether it failed (drawn in the failure colour).
    pub failed: bool,
}

fn lane_of(activity: &str) -> Lane {
    match activity {
        "varsel.order.check_send_condition" => Lane::Condition,
        "varsel.order.generate_notifications"
        | "varsel.order.send_batch"
        | "varsel.order.send_slice" => Lane::Sending,
        _ => Lane::Settling,
    }
}

fn at(e: &Value) -> Option<DateTime<Utc>> {
    e["event_time"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The marks of one run's history.
pub fn history_marks(history: &Value) -> Vec<Mark> {
    let mut out: Vec<Mark> = Vec::new();
    // Open spans by the event id that opened them; the run's own span.
    let mut open: HashMap<i64, usize> = HashMap::new();
    let mut names: HashMap<i64, String> = HashMap::new();
    let mut run: Option<usize> = None;
    let span = |lane, start, text: String| Mark {
        lane,
        start,
        end: None,
        span: true,
        text,
        failed: false,
    };
    let point = |lane, start, text: String, failed| Mark {
        lane,
        start,
        end: None,
        span: false,
        text,
        failed,
    };
    for e in history["events"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let Some(time) = at(e) else { continue };
        let Some((kind, a)) = e["attributes"].as_object().and_then(|m| m.iter().next()) else {
            continue;
        };
        let id = e["event_id"].as_i64().unwrap_or(0);
        let close = |out: &mut Vec<Mark>, i: usize, text: String, failed: bool| {
            let m = &mut out[i];
            m.end = Some(time);
            m.text = format!("{}: {text}", m.text);
            m.failed |= failed;
        };
        match kind.as_str() {
            "WorkflowExecutionStartedEventAttributes" => {
                let input = payload(&a["input"]).unwrap_or_default();
                let what = if input["resume"] == "Redrive" {
                    "run started again by an operator's redrive".to_owned()
                } else if a["continued_execution_run_id"].as_str().is_some_and(|s| !s.is_empty()) {
                    format!("continued run, resuming at {}", compact(&input["resume"]))
                } else {
                    format!("run on task queue {}", a["task_queue"]["name"].as_str().unwrap_or("?"))
                };
                run = Some(out.len());
                out.push(span(Lane::Runs, time, what));
            }
            "WorkflowExecutionCompletedEventAttributes"
            | "WorkflowExecutionContinuedAsNewEventAttributes"
            | "WorkflowExecutionCanceledEventAttributes"
            | "WorkflowExecutionFailedEventAttributes"
            | "WorkflowExecutionTerminatedEventAttributes"
            | "WorkflowExecutionTimedOutEventAttributes" => {
                let (text, failed) = match kind.as_str() {
                    "WorkflowExecutionCompletedEventAttributes" => (
                        format!(
                            "completed ({})",
                            payload(&a["result"]).map(|r| compact(&r)).unwrap_or_default()
                        ),
                        false,
                    ),
                    "WorkflowExecutionContinuedAsNewEventAttributes" => {
                        ("handed over to a new run".to_owned(), false)
                    }
                    "WorkflowExecutionCanceledEventAttributes" => {
                        ("ended: order cancelled".to_owned(), false)
                    }
                    "WorkflowExecutionTerminatedEventAttributes" => {
                        (format!("terminated: {}", a["reason"].as_str().unwrap_or_default()), true)
                    }
                    _ => (
                        format!(
                            "failed: {}",
                            a["failure"]["message"].as_str().unwrap_or("timed out")
                        ),
                        true,
                    ),
                };
                if let Some(i) = run.take() {
                    close(&mut out, i, text, failed);
                }
            }
            "TimerStartedEventAttributes" => {
                let secs = seconds(&a["start_to_fire_timeout"]).unwrap_or(0.0);
                open.insert(id, out.len());
                out.push(span(Lane::Waits, time, format!("waiting up to {secs:.0} s")));
            }
            "TimerFiredEventAttributes" | "TimerCanceledEventAttributes" => {
                if let Some(i) = open.remove(&a["started_event_id"].as_i64().unwrap_or(0)) {
                    let how =
                        if kind == "TimerFiredEventAttributes" { "elapsed" } else { "cancelled" };
                    close(&mut out, i, how.to_owned(), false);
                }
            }
            "ActivityTaskScheduledEventAttributes" => {
                let name = a["activity_type"]["name"].as_str().unwrap_or_default().to_owned();
                let detail = activity_input(a);
                let mut text = activity_words(&name).to_owned();
                if !detail.is_empty() {
                    text.push_str(&format!(" ({detail})"));
                }
                open.insert(id, out.len());
                out.push(span(lane_of(&name), time, text));
                names.insert(id, name);
            }
            "ActivityTaskStartedEventAttributes" => {
                let scheduled = a["scheduled_event_id"].as_i64().unwrap_or(0);
                let attempt = a["attempt"].as_i64().unwrap_or(1);
                if attempt > 1 {
                    let name = names.get(&scheduled).map(String::as_str).unwrap_or_default();
                    let failure =
                        a["last_failure"]["message"].as_str().unwrap_or("unknown failure");
                    out.push(point(
                        lane_of(name),
                        time,
                        format!(
                            "{}: attempt {attempt}; the previous attempt failed: {failure}",
                            activity_words(name)
                        ),
                        true,
                    ));
                }
            }
            "ActivityTaskCompletedEventAttributes" => {
                if let Some(i) = open.remove(&a["scheduled_event_id"].as_i64().unwrap_or(0)) {
                    let result = payload(&a["result"]).map(|r| compact(&r)).unwrap_or_default();
                    close(&mut out, i, format!("done ({result})"), false);
                }
            }
            "ActivityTaskFailedEventAttributes" | "ActivityTaskTimedOutEventAttributes" => {
                if let Some(i) = open.remove(&a["scheduled_event_id"].as_i64().unwrap_or(0)) {
                    let why = a["failure"]["message"].as_str().unwrap_or("timed out");
                    close(&mut out, i, format!("failed for good: {why}"), true);
                }
            }
            "MarkerRecordedEventAttributes" if a["marker_name"] == "core_local_activity" => {
                let data = payload(&a["details"]["data"]).unwrap_or_default();
                let name = data["activity_type"].as_str().unwrap_or_default();
                let (text, failed) = match a["failure"]["message"].as_str() {
                    Some(f) => (format!("{}: failed: {f}", activity_words(name)), true),
                    None => (
                        format!(
                            "{}: done ({})",
                            activity_words(name),
                            payload(&a["details"]["result"])
                                .map(|r| compact(&r))
                                .unwrap_or_default()
                        ),
                        false,
                    ),
                };
                out.push(point(lane_of(name), time, text, failed));
            }
            "WorkflowExecutionSignaledEventAttributes"
                if a["signal_name"] == "varsel.order.reports_final" =>
            {
                out.push(point(
                    Lane::Reports,
                    time,
                    "delivery reports: every notification may be final".to_owned(),
                    false,
                ));
            }
            "WorkflowExecutionCancelRequestedEventAttributes" => {
                out.push(point(Lane::Runs, time, "cancellation requested".to_owned(), false));
            }
            "WorkflowTaskFailedEventAttributes" => out.push(point(
                Lane::Runs,
                time,
                format!(
                    "workflow task failed: {}",
                    a["failure"]["message"].as_str().unwrap_or_default()
                ),
                true,
            )),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: i64, secs: u32, kind: &str, attrs: Value) -> Value {
        json!({"event_id": id, "event_time": format!("2026-12-06T10:00:{secs:02}Z"),
               "attributes": {kind: attrs}})
    }

    #[test]
    fn spans_close_and_retries_show_as_failures() {
        let history = json!({"events": [
            event(1, 0, "WorkflowExecutionStartedEventAttributes", json!({"task_queue": {"name": "varsel"}})),
            event(2, 1, "TimerStartedEventAttributes", json!({"start_to_fire_timeout": "30s"})),
            event(3, 31, "TimerFiredEventAttributes", json!({"started_event_id": 2})),
            event(4, 32, "ActivityTaskScheduledEventAttributes", json!({"activity_type": {"name": "varsel.order.send_slice"}})),
            event(5, 40, "ActivityTaskStartedEventAttributes", json!({"scheduled_event_id": 4, "attempt": 2, "last_failure": {"message": "relay down"}})),
            event(6, 41, "ActivityTaskCompletedEventAttributes", json!({"scheduled_event_id": 4})),
            event(7, 42, "WorkflowExecutionCompletedEventAttributes", json!({})),
        ]});
        let marks = history_marks(&history);
        let lanes: Vec<Lane> = marks.iter().map(|m| m.lane).collect();
        assert_eq!(lanes, [Lane::Runs, Lane::Waits, Lane::Sending, Lane::Sending]);
        assert!(marks.iter().filter(|m| m.span).all(|m| m.end.is_some()), "{marks:?}");
        let retry = &marks[3];
        assert!(retry.failed && retry.text.contains("relay down"), "{retry:?}");
        assert!(marks[0].text.contains("completed"), "{:?}", marks[0]);
    }
}
