//! What Temporal says of varsel's task queues: which workers poll them and how far behind they
//! are. The operator console's overview shows it.

use std::time::Duration;
use temporalio_client::Client;
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeTaskQueueRequest;

/// One task queue of one kind (workflow or activity tasks), as Temporal sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueHealth {
    /// The task queue.
    pub queue: String,
    /// `workflow` or `activity`.
    pub kind: &'static str,
    /// The identities of the workers that polled it lately.
    pub pollers: Vec<String>,
    /// Tasks waiting for a worker (Temporal's estimate).
    pub backlog: i64,
    /// How long the oldest waiting task has waited.
    pub backlog_age: Option<Duration>,
}

/// The workflow and activity sides of each of `queues`.
pub async fn queue_health(client: &Client, queues: &[String]) -> anyhow::Result<Vec<QueueHealth>> {
    // TASK_QUEUE_KIND_NORMAL; TASK_QUEUE_TYPE_WORKFLOW and _ACTIVITY.
    const NORMAL: i32 = 1;
    let mut out = Vec::new();
    for queue in queues {
        for (kind, task_queue_type) in [("workflow", 1), ("activity", 2)] {
            let request = DescribeTaskQueueRequest {
                namespace: client.options().namespace.clone(),
                task_queue: Some(TaskQueue {
                    name: queue.clone(),
                    kind: NORMAL,
                    normal_name: String::new(),
                }),
                task_queue_type,
                report_stats: true,
                ..Default::default()
            };
            let mut service = client.connection().workflow_service();
            let answer =
                service.describe_task_queue(tonic::Request::new(request)).await?.into_inner();
            let stats = answer.stats.unwrap_or_default();
            out.push(QueueHealth {
                queue: queue.clone(),
                kind,
                pollers: answer.pollers.into_iter().map(|p| p.identity).collect(),
                backlog: stats.approximate_backlog_count,
                backlog_age: stats
                    .approximate_backlog_age
                    .and_then(|d| Duration::try_from(d).ok())
                    .filter(|d| !d.is_zero()),
            });
        }
    }
    Ok(out)
}
