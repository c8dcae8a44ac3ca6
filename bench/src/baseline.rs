//! Baselines for `varsel-bench`: the smallest workflows the same Temporal server and worker
//! settings can run, so the order workflow's figures can be read as a share of what the platform
//! itself allows. Never started by the service; the names are pinned like the order workflow's.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use temporalio_common::ActivityError;
use temporalio_macros::{activity_definitions, workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

/// A workflow that does nothing: the raw cost of starting one.
pub const NOOP_WORKFLOW_TYPE: &str = "varsel.bench.noop";

/// Input of the baseline workflows.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct BenchInput {
    /// An arbitrary number, echoed.
    pub n: u32,
}

/// Marker type carrying the baseline's activity definition.
pub struct BenchActivities;

#[activity_definitions]
impl BenchActivities {
    /// Returns its input: one activity round trip and nothing else.
    #[activity(name = "varsel.bench.echo")]
    pub fn echo(input: BenchInput) -> Result<BenchInput, ActivityError> {
        unimplemented!()
    }
}

/// The activity marker types, for implementers.
pub mod defs {
    pub use super::bench_activities::*;
}

/// Does nothing.
#[workflow]
#[derive(Default)]
pub struct NoopWorkflow {}

#[workflow_methods]
impl NoopWorkflow {
    /// Returns at once.
    #[run(name = "varsel.bench.noop")]
    pub async fn run(
        _ctx: &mut WorkflowContext<Self>,
        input: BenchInput,
    ) -> WorkflowResult<BenchInput> {
        Ok(input)
    }
}

/// Runs one activity: the trivial workflow the small-order figure is compared with.
#[workflow]
#[derive(Default)]
pub struct OneActivityWorkflow {}

#[workflow_methods]
impl OneActivityWorkflow {
    /// Calls `varsel.bench.echo` once.
    #[run(name = "varsel.bench.one_activity")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: BenchInput,
    ) -> WorkflowResult<BenchInput> {
        let opts = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30)).build();
        Ok(ctx.execute_activity(BenchActivities::echo, input, opts).await?)
    }
}
