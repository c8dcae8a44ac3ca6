//! What the picture of an order draws from its workflow history: spans and points on lanes
//! (runs, waits, condition checks, sending, settling, reports), from the steps of each run
//! ([`crate::history`]). A span opens and closes with two steps; a point says what the timeline
//! says of its step.

use crate::history::{RunStart, Step, What};
use crate::timeline::{REPORTS_FINAL, activity_words, run_end_words, step_words};
use chrono::{DateTime, Utc};
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

/// The marks of one run's steps.
pub fn history_marks(steps: &[Step]) -> Vec<Mark> {
    let mut out: Vec<Mark> = Vec::new();
    // Open spans by the step that opened them; the run's own span.
    let mut open: HashMap<i64, usize> = HashMap::new();
    let mut run: Option<usize> = None;
    let span = |lane, start, text: String| Mark {
        lane,
        start,
        end: None,
        span: true,
        text,
        failed: false,
    };
    let point = |lane, step: &Step, failed| Mark {
        lane,
        start: step.time,
        end: None,
        span: false,
        text: step_words(step),
        failed,
    };
    for step in steps {
        let time = step.time;
        let close = |out: &mut Vec<Mark>, i: usize, text: &str, failed: bool| {
            let m = &mut out[i];
            m.end = Some(time);
            m.text = format!("{}: {text}", m.text);
            m.failed |= failed;
        };
        match &step.what {
            What::RunStarted { start, task_queue, .. } => {
                let what = match start {
                    RunStart::Redrive => "run started again by an operator's redrive".to_owned(),
                    RunStart::Continued { resume } => {
                        format!("continued run, resuming at {resume}")
                    }
                    RunStart::First => format!("run on task queue {task_queue}"),
                };
                run = Some(out.len());
                out.push(span(Lane::Runs, time, what));
            }
            What::RunEnded(end) => {
                let text = run_end_words(end);
                if let Some(i) = run.take() {
                    close(&mut out, i, &text, end.failed());
                }
            }
            What::TimerStarted { seconds } => {
                open.insert(step.id, out.len());
                out.push(span(Lane::Waits, time, format!("waiting up to {seconds:.0} s")));
            }
            What::TimerEnded { started, fired } => {
                if let Some(i) = open.remove(started) {
                    close(&mut out, i, if *fired { "elapsed" } else { "cancelled" }, false);
                }
            }
            What::ActivityScheduled { name, input } => {
                let mut text = activity_words(name).to_owned();
                if !input.is_empty() {
                    text.push_str(&format!(" ({input})"));
                }
                open.insert(step.id, out.len());
                out.push(span(lane_of(name), time, text));
            }
            What::ActivityRetried { name, .. } => out.push(point(lane_of(name), step, true)),
            What::ActivityCompleted { scheduled, result, .. } => {
                if let Some(i) = open.remove(scheduled) {
                    close(&mut out, i, &format!("done ({result})"), false);
                }
            }
            What::ActivityFailed { scheduled, failure, .. } => {
                if let Some(i) = open.remove(scheduled) {
                    let why = if failure.is_empty() { "timed out" } else { failure };
                    close(&mut out, i, &format!("failed for good: {why}"), true);
                }
            }
            What::LocalActivity { name, outcome, .. } => {
                out.push(point(lane_of(name), step, outcome.is_err()));
            }
            What::Signalled { name } if name == REPORTS_FINAL => {
                out.push(point(Lane::Reports, step, false));
            }
            What::Signalled { .. } => {}
            What::CancelRequested => out.push(point(Lane::Runs, step, false)),
            What::WorkflowTaskFailed { .. } => out.push(point(Lane::Runs, step, true)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

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
        let marks = history_marks(&crate::history::read(&history));
        let lanes: Vec<Lane> = marks.iter().map(|m| m.lane).collect();
        assert_eq!(lanes, [Lane::Runs, Lane::Waits, Lane::Sending, Lane::Sending]);
        assert!(marks.iter().filter(|m| m.span).all(|m| m.end.is_some()), "{marks:?}");
        let retry = &marks[3];
        assert!(retry.failed && retry.text.contains("relay down"), "{retry:?}");
        assert!(marks[0].text.contains("completed"), "{:?}", marks[0]);
    }
}
