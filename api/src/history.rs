//! An order's workflow history as Temporal keeps it: every run fetched (oldest first), and each
//! run's JSON events read into [`Step`]s. The timeline tells the steps in words
//! ([`crate::timeline`]) and the console's picture draws them on lanes (`console::lanes`); both
//! read Temporal's events here and nowhere else.

use base64::Engine;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::Value;
use std::collections::HashMap;
use temporalio_client::errors::WorkflowInteractionError;
use temporalio_client::{Client, WorkflowHistoryError};

/// One event of a run's history that says something about the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The event's id in its run: what a timer's or an activity's later events refer to.
    pub id: i64,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// What happened.
    pub what: What,
}

/// What a step of the history is.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    /// A run began.
    RunStarted {
        /// Why it began.
        start: RunStart,
        /// The task queue the run was started on.
        task_queue: String,
        /// The order's send time, as the run was given it.
        send_time: Option<DateTime<Utc>>,
    },
    /// A run ended.
    RunEnded(RunEnd),
    /// A durable timer began: the send-time wait, an SMS sending window, waiting for reports.
    TimerStarted { seconds: f64 },
    /// The timer begun by step `started` fired, or was cancelled.
    TimerEnded { started: i64, fired: bool },
    /// An activity was scheduled, with its input in words (the order id aside).
    ActivityScheduled { name: String, input: String },
    /// An attempt after the first began; the previous one failed with `failure`.
    ActivityRetried { scheduled: i64, name: String, attempt: i64, failure: String },
    /// The activity scheduled by step `scheduled` completed with `result` (in words).
    ActivityCompleted { scheduled: i64, name: String, result: String },
    /// The activity scheduled by step `scheduled` failed for good (or timed out): its last
    /// failure's message, as Temporal gives it (it may be empty).
    ActivityFailed { scheduled: i64, name: String, failure: String, timed_out: bool },
    /// A local activity (the store steps, with `varsel.local-store-steps`) ended after
    /// `attempts` attempts: its result in words, or its failure.
    LocalActivity { name: String, attempts: i64, outcome: Result<String, String> },
    /// A signal arrived.
    Signalled { name: String },
    /// Someone asked for the run to be cancelled.
    CancelRequested,
    /// A workflow task failed (non-determinism, a panic): the run is stuck until it is fixed.
    WorkflowTaskFailed { message: String },
}

/// Why a run began.
#[derive(Debug, Clone, PartialEq)]
pub enum RunStart {
    /// The order's first run.
    First,
    /// Continued as new from an earlier run, resuming at `resume` (in words).
    Continued { resume: String },
    /// Started again by an operator's redrive.
    Redrive,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// It completed with `result` (in words).
    Completed { result: String },
    /// It handed over to a new run (continue-as-new).
    ContinuedAsNew,
    /// The order was cancelled.
    Cancelled,
    /// It failed with `message`.
    Failed { message: String },
    /// Someone terminated it, giving `reason`.
    Terminated { reason: String },
    /// It ran past its execution timeout.
    TimedOut,
}

impl RunEnd {
    /// Whether the run ended badly.
    pub fn failed(&self) -> bool {
        matches!(self, RunEnd::Failed { .. } | RunEnd::Terminated { .. } | RunEnd::TimedOut)
    }
}

/// The first payload of a Temporal `Payloads` (JSON, base64-encoded), decoded.
fn payload(v: &Value) -> Option<Value> {
    let data = v["payloads"][0]["data"].as_str()?;
    let raw = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    serde_json::from_slice(&raw).ok()
}

/// A value in words: an object's non-null fields as `key=value, …`, a string as itself.
fn compact(v: &Value) -> String {
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

/// A payload in words, or nothing.
fn payload_words(v: &Value) -> String {
    payload(v).map(|r| compact(&r)).unwrap_or_default()
}

/// A scheduled activity's input in words, its order id aside.
fn activity_input(attributes: &Value) -> String {
    match payload(&attributes["input"]).unwrap_or_default() {
        Value::Object(mut m) => {
            m.remove("order_id");
            compact(&Value::Object(m))
        }
        _ => String::new(),
    }
}

/// A protobuf JSON duration (`"30s"`, `"1.5s"`) in seconds.
fn seconds(d: &Value) -> Option<f64> {
    d.as_str()?.trim_end_matches('s').parse().ok()
}

fn message(failure: &Value) -> String {
    failure["message"].as_str().unwrap_or_default().to_owned()
}

/// Reads one run's history (Temporal's JSON, as `temporal workflow show --output json` and
/// the SDK's history export write it) into steps, in the history's order. Events that say
/// nothing about the order (workflow tasks, activity starts of first attempts) are left out.
pub fn read(history: &Value) -> Vec<Step> {
    let mut out = Vec::new();
    // The activity each scheduling step named: later events refer to it by that step's id.
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
        let activity = |key: &str| {
            let scheduled_id = a[key].as_i64().unwrap_or(0);
            (scheduled_id, scheduled.get(&scheduled_id).cloned().unwrap_or_default())
        };
        let what = match kind.as_str() {
            "WorkflowExecutionStartedEventAttributes" => {
                let input = payload(&a["input"]).unwrap_or_default();
                let start = if input["resume"] == "Redrive" {
                    RunStart::Redrive
                } else if a["continued_execution_run_id"].as_str().is_some_and(|s| !s.is_empty()) {
                    RunStart::Continued { resume: compact(&input["resume"]) }
                } else {
                    RunStart::First
                };
                What::RunStarted {
                    start,
                    task_queue: a["task_queue"]["name"].as_str().unwrap_or("?").to_owned(),
                    send_time: input["requested_send_time_ms"]
                        .as_i64()
                        .and_then(DateTime::from_timestamp_millis),
                }
            }
            "WorkflowExecutionCompletedEventAttributes" => {
                What::RunEnded(RunEnd::Completed { result: payload_words(&a["result"]) })
            }
            "WorkflowExecutionContinuedAsNewEventAttributes" => {
                What::RunEnded(RunEnd::ContinuedAsNew)
            }
            "WorkflowExecutionCanceledEventAttributes" => What::RunEnded(RunEnd::Cancelled),
            "WorkflowExecutionFailedEventAttributes" => {
                What::RunEnded(RunEnd::Failed { message: message(&a["failure"]) })
            }
            "WorkflowExecutionTerminatedEventAttributes" => What::RunEnded(RunEnd::Terminated {
                reason: a["reason"].as_str().unwrap_or_default().to_owned(),
            }),
            "WorkflowExecutionTimedOutEventAttributes" => What::RunEnded(RunEnd::TimedOut),
            "TimerStartedEventAttributes" => {
                What::TimerStarted { seconds: seconds(&a["start_to_fire_timeout"]).unwrap_or(0.0) }
            }
            "TimerFiredEventAttributes" | "TimerCanceledEventAttributes" => What::TimerEnded {
                started: a["started_event_id"].as_i64().unwrap_or(0),
                fired: kind == "TimerFiredEventAttributes",
            },
            "ActivityTaskScheduledEventAttributes" => {
                let name = a["activity_type"]["name"].as_str().unwrap_or_default().to_owned();
                scheduled.insert(id, name.clone());
                What::ActivityScheduled { name, input: activity_input(a) }
            }
            "ActivityTaskStartedEventAttributes" => {
                let attempt = a["attempt"].as_i64().unwrap_or(1);
                if attempt <= 1 {
                    continue;
                }
                let (scheduled, name) = activity("scheduled_event_id");
                let failure = a["last_failure"]["message"].as_str().unwrap_or("unknown failure");
                What::ActivityRetried { scheduled, name, attempt, failure: failure.to_owned() }
            }
            "ActivityTaskCompletedEventAttributes" => {
                let (scheduled, name) = activity("scheduled_event_id");
                What::ActivityCompleted { scheduled, name, result: payload_words(&a["result"]) }
            }
            "ActivityTaskFailedEventAttributes" | "ActivityTaskTimedOutEventAttributes" => {
                let (scheduled, name) = activity("scheduled_event_id");
                What::ActivityFailed {
                    scheduled,
                    name,
                    failure: message(&a["failure"]),
                    timed_out: kind == "ActivityTaskTimedOutEventAttributes",
                }
            }
            // A local activity: one marker, written when it ended.
            "MarkerRecordedEventAttributes" if a["marker_name"] == "core_local_activity" => {
                let data = payload(&a["details"]["data"]).unwrap_or_default();
                What::LocalActivity {
                    name: data["activity_type"].as_str().unwrap_or_default().to_owned(),
                    attempts: data["attempt"].as_i64().unwrap_or(1),
                    outcome: match a["failure"]["message"].as_str() {
                        Some(failure) => Err(failure.to_owned()),
                        None => Ok(payload_words(&a["details"]["result"])),
                    },
                }
            }
            "WorkflowExecutionSignaledEventAttributes" => match a["signal_name"].as_str() {
                Some(name) => What::Signalled { name: name.to_owned() },
                None => continue,
            },
            "WorkflowExecutionCancelRequestedEventAttributes" => What::CancelRequested,
            "WorkflowTaskFailedEventAttributes" => {
                What::WorkflowTaskFailed { message: message(&a["failure"]) }
            }
            _ => continue,
        };
        out.push(Step { id, time, what });
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

/// The run id a run's history (Temporal's JSON) was started with.
fn started_run_id(history: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(history).ok()?;
    let started = &v["events"][0]["attributes"]["WorkflowExecutionStartedEventAttributes"];
    started["original_execution_run_id"].as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Every run of the order's workflow that Temporal still keeps, oldest first, as its run id and
/// Temporal's JSON history; and whether a run's history is gone (past Temporal's retention).
/// Visibility lists the runs and may lag behind a run just started (by a continue-as-new or a
/// redrive): the latest run is always fetched and added when the list does not have it yet.
/// (Runs are told apart by the id they started with; varsel never resets a workflow, which
/// would give a run a new id.)
pub async fn fetch_runs_json(
    client: &Client,
    order_id: &str,
) -> anyhow::Result<(Vec<(String, Vec<u8>)>, bool)> {
    let mut listed = Vec::new();
    let mut stream =
        client.list_workflows(format!("WorkflowId = '{order_id}'"), Default::default());
    while let Some(item) = stream.next().await {
        let info = item?;
        listed.push((info.start_time(), info.run_id().to_owned()));
    }
    listed.sort();
    let mut gone = false;
    let latest = match crate::replay::fetch_history_json(client, order_id).await {
        Ok(bytes) => Some((started_run_id(&bytes).unwrap_or_else(|| "latest".to_owned()), bytes)),
        Err(e) if history_gone(&e) => {
            gone = true;
            None
        }
        Err(e) => return Err(e),
    };
    let mut histories = Vec::new();
    for (_, run_id) in listed {
        if let Some((latest_id, bytes)) = &latest
            && *latest_id == run_id
        {
            histories.push((run_id, bytes.clone()));
            continue;
        }
        match crate::replay::fetch_run_history_json(client, order_id, &run_id).await {
            Ok(bytes) => histories.push((run_id, bytes)),
            // Listed, but its history already deleted (visibility lags behind).
            Err(e) if history_gone(&e) => gone = true,
            Err(e) => return Err(e),
        }
    }
    if let Some((latest_id, bytes)) = latest
        && !histories.iter().any(|(id, _)| *id == latest_id)
    {
        histories.push((latest_id, bytes));
    }
    Ok((histories, gone))
}

/// Every run of the order's workflow that Temporal still keeps, oldest first, each read into
/// its steps; and whether a run's history is gone (past Temporal's retention).
pub async fn fetch_runs(client: &Client, order_id: &str) -> anyhow::Result<(Vec<Vec<Step>>, bool)> {
    let (runs, gone) = fetch_runs_json(client, order_id).await?;
    let mut out = Vec::with_capacity(runs.len());
    for (_, bytes) in runs {
        out.push(read(&serde_json::from_slice(&bytes)?));
    }
    Ok((out, gone))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed histories of real runs (the replay tests' fixtures).
    fn fixtures() -> Vec<(String, Value)> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/histories");
        let mut all: Vec<(String, Value)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|f| {
                let path = f.unwrap().path();
                let history = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                (path.file_name().unwrap().to_string_lossy().into_owned(), history)
            })
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        assert!(all.len() >= 20, "{}: {} histories", dir.display(), all.len());
        all
    }

    #[test]
    fn every_committed_history_reads_into_whole_runs() {
        for (name, history) in fixtures() {
            let steps = read(&history);
            assert!(
                matches!(steps.first().map(|s| &s.what), Some(What::RunStarted { .. })),
                "{name}: {steps:#?}"
            );
            assert!(
                steps.windows(2).all(|w| w[0].id < w[1].id && w[0].time <= w[1].time),
                "{name}"
            );
            // Every ending names an activity or timer that began earlier in the same run.
            let opened = |id: &i64| steps.iter().any(|s| s.id == *id);
            for s in &steps {
                match &s.what {
                    What::TimerEnded { started, .. } => assert!(opened(started), "{name}: {s:?}"),
                    What::ActivityRetried { scheduled, name: activity, .. }
                    | What::ActivityCompleted { scheduled, name: activity, .. }
                    | What::ActivityFailed { scheduled, name: activity, .. } => {
                        assert!(opened(scheduled), "{name}: {s:?}");
                        assert!(activity.starts_with("varsel."), "{name}: {s:?}");
                    }
                    What::RunStarted { task_queue, .. } => assert_ne!(task_queue, "?", "{name}"),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn how_runs_begin_and_end_is_read() {
        let all: HashMap<String, Vec<Step>> =
            fixtures().into_iter().map(|(name, h)| (name, read(&h))).collect();
        let has =
            |name: &str, want: &dyn Fn(&What) -> bool| all[name].iter().any(|s| want(&s.what));
        assert!(has("redrive.json", &|w| matches!(
            w,
            What::RunStarted { start: RunStart::Redrive, .. }
        )));
        assert!(has("continued_as_new.json", &|w| *w == What::RunEnded(RunEnd::ContinuedAsNew)));
        assert!(has("continued.json", &|w| matches!(
            w,
            What::RunStarted { start: RunStart::Continued { .. }, .. }
        )));
        assert!(has("cancelled.json", &|w| *w == What::RunEnded(RunEnd::Cancelled)));
        assert!(has("report_signal.json", &|w| matches!(
            w,
            What::Signalled { name } if name == "varsel.order.reports_final"
        )));
        assert!(has("sent_email.json", &|w| matches!(
            w,
            What::RunEnded(RunEnd::Completed { result }) if !result.is_empty()
        )));
        assert!(has(
            "scheduled.json",
            &|w| matches!(w, What::TimerStarted { seconds } if *seconds > 0.0)
        ));
    }
}
