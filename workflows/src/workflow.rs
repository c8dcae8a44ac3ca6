//! The order workflow: one durable execution per order, workflow id = order id.
//!
//! Determinism: this code reads time only through `ctx.workflow_time()`, does no I/O, and takes
//! every tunable from its input (which is recorded in history), so a replay takes the same path.
//! The workflow type name `varsel.order` and the activity names are a contract with every running
//! order: change behaviour only behind `ctx.patched(..)`.

use crate::activities::{
    ConditionOutcome, FinishOrder, GenerateBatch, OrderActivities, SendBatch, SliceBatch,
    StartOutcome,
};
use crate::domain::{Channel, OrderStatus};
use serde::{Deserialize, Serialize};
use std::cell::Cell;
use std::time::{Duration, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityOptions, ContinueAsNewOptions, LocalActivityOptions, SyncWorkflowContext,
    WorkflowContext, WorkflowResult,
};

/// The workflow type name, pinned.
pub const ORDER_WORKFLOW_TYPE: &str = "varsel.order";

/// How long a generate or send batch may go without a heartbeat before Temporal gives its
/// attempt up and retries it (the activities heartbeat every 2 s).
pub const BATCH_HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(10);

/// Tunables of one order's run, fixed when the order is accepted and recorded in its history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WorkflowPolicy {
    /// Recipients per generate activity.
    pub generate_batch: u32,
    /// Notifications per send activity.
    pub send_batch: u32,
    /// Attempts at the condition endpoint before the order is sent anyway.
    pub condition_attempts: u32,
    /// First retry delay for the condition endpoint, in milliseconds (doubles each attempt).
    pub condition_retry_ms: u64,
    /// Upper bound of the retry delay of store and provider activities, in milliseconds.
    pub max_retry_interval_ms: u64,
    /// Batches one run may execute before it continues as new, so a history stays far below
    /// Temporal's 51,200-event limit however many recipients an order has.
    #[serde(default = "default_max_batches_per_run")]
    pub max_batches_per_run: u32,
    /// The daily window SMS are sent in; `None` sends at any time. Orders recorded before this
    /// field existed decode as `None` and replay unchanged.
    #[serde(default)]
    pub sms_window: Option<crate::sms::SendingWindow>,
    /// Slices of one order in flight at once: each is generated and sent by its own activity,
    /// and Temporal hands them to whichever workers poll, so one order uses every worker.
    /// Orders recorded before sliced sending decode as 1 (they send one batch at a time).
    #[serde(default = "one")]
    pub send_window: u32,
}

fn default_max_batches_per_run() -> u32 {
    500
}

fn one() -> u32 {
    1
}

impl Default for WorkflowPolicy {
    fn default() -> Self {
        Self {
            generate_batch: 1000,
            send_batch: 1000,
            condition_attempts: 3,
            condition_retry_ms: 60_000,
            max_retry_interval_ms: 60_000,
            max_batches_per_run: default_max_batches_per_run(),
            sms_window: None,
            send_window: 4,
        }
    }
}

/// Input of the order workflow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderWorkflowInput {
    /// The order id (also the workflow id).
    pub order_id: String,
    /// The requested send time, Unix milliseconds (UTC).
    pub requested_send_time_ms: i64,
    /// Tunables.
    pub policy: WorkflowPolicy,
    /// Where a continued run picks up; `None` for the first run.
    #[serde(default)]
    pub resume: Option<Resume>,
    /// Carried across continued runs: the condition endpoint could not be read.
    #[serde(default)]
    pub condition_inconclusive: bool,
}

/// The point a continued run of an order resumes at.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Resume {
    /// Generating notifications, at this recipient index.
    Generate {
        /// First recipient index still to do.
        from_index: u32,
    },
    /// Sending, on this channel (and the ones after it).
    Send {
        /// The channel still being sent.
        channel: Channel,
    },
    /// An operator's redrive of a finished order: reset the notifications that failed without
    /// reaching a provider, send them, and settle again.
    Redrive,
    /// Sliced sending (several slices at once), from this slice on.
    Slices {
        /// First recipient index of the next slice.
        from_index: u32,
        /// Recipients of the order.
        recipients: u32,
        /// The channels the order sends on.
        channels: Vec<Channel>,
    },
}

/// What the order workflow ended with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OrderWorkflowOutput {
    /// The order's status when the workflow finished.
    pub status: OrderStatus,
    /// Whether the condition endpoint could not be read and the order was sent anyway.
    pub condition_inconclusive: bool,
}

/// The order workflow.
#[workflow]
#[derive(Default)]
pub struct OrderWorkflow {
    /// How many times the report endpoints said every notification looked final.
    final_signals: u32,
}

/// The patch that added delivery tracking: histories recorded before it complete right after
/// sending; with it, the workflow waits for delivery reports and the time-to-live.
pub const PATCH_DELIVERY_TRACKING: &str = "varsel.delivery-tracking";

/// The patch that runs the order's short store steps (claim, settle, finish, expire) as local
/// activities: in the worker that runs the workflow task, recorded as a marker, without a
/// round trip through Temporal's task queue each. Histories recorded before it schedule them as
/// activities.
pub const PATCH_LOCAL_STORE_STEPS: &str = "varsel.local-store-steps";

/// The patch that sends an order in slices, several at once: histories recorded before it
/// generate every notification first, then send one batch at a time.
pub const PATCH_SLICED_SENDING: &str = "varsel.sliced-sending";

#[workflow_methods]
impl OrderWorkflow {
    /// Runs one order from its send time to its final status: wait for the send time, claim the
    /// order, check its send condition, generate its notifications, send them channel by
    /// channel, then track delivery until every notification is final. A continued run resumes
    /// at the step its input names; an operator's redrive resets first and sends again.
    #[run(name = "varsel.order")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: OrderWorkflowInput,
    ) -> WorkflowResult<OrderWorkflowOutput> {
        let mut run = Run::new(&input);
        run.local_steps = ctx.patched(PATCH_LOCAL_STORE_STEPS);
        // The channels this order can use, when `start_processing` said so (first runs).
        let mut usable_channels: Option<Vec<Channel>> = None;
        // The order's recipients, when `start_processing` said so (first runs).
        let mut recipients: Option<u32> = None;
        match &input.resume {
            Some(Resume::Redrive) => run.redrive_reset(ctx).await?,
            Some(Resume::Generate { .. } | Resume::Send { .. } | Resume::Slices { .. }) => {}
            None => {
                if run.wait_for_send_time(ctx).await == Waited::Cancelled {
                    return Ok(Run::ended_early(OrderStatus::Cancelled));
                }
                let start = run.claim(ctx).await?;
                if !start.proceed {
                    return Ok(Run::ended_early(start.status));
                }
                usable_channels = start.channels;
                recipients = start.recipients;
                if start.has_condition && !run.send_condition_met(ctx).await? {
                    let status = run.finish(ctx, Some(OrderStatus::SendConditionNotMet)).await?;
                    return Ok(Run::ended_early(status));
                }
            }
        }

        // Sliced sending: first runs that know their recipients (recorded with the patch), and
        // runs continued from one. Older histories take the path below.
        let slices = match &input.resume {
            Some(Resume::Slices { from_index, recipients, channels }) => {
                Some((*from_index, *recipients, channels.clone()))
            }
            None => recipients.filter(|_| ctx.patched(PATCH_SLICED_SENDING)).map(|n| {
                let channels =
                    usable_channels.clone().unwrap_or(vec![Channel::Email, Channel::Sms]);
                (0, n, channels)
            }),
            Some(_) => None,
        };
        if let Some((from_index, recipients, channels)) = slices {
            run.send_slices(ctx, from_index, recipients, channels).await?;
        } else {
            if let Some(from_index) = run.generate_from() {
                run.generate(ctx, from_index).await?;
            }
            for &channel in run.channels_to_send() {
                if usable_channels.as_ref().is_some_and(|c| !c.contains(&channel)) {
                    continue;
                }
                if channel == Channel::Sms {
                    run.wait_for_sms_window(ctx).await;
                }
                run.send_channel(ctx, channel).await?;
            }
        }

        if !ctx.patched(PATCH_DELIVERY_TRACKING) {
            // Histories recorded before delivery tracking: the final status right after sending.
            let status = run.finish(ctx, None).await?;
            return Ok(run.output(status));
        }
        let status = run.track_delivery(ctx).await?;
        Ok(run.output(status))
    }

    /// The report endpoints' word that every notification of the order may now be final.
    #[signal(name = "varsel.order.reports_final")]
    pub fn reports_final(&mut self, _ctx: &mut SyncWorkflowContext<Self>, _input: ()) {
        self.final_signals += 1;
    }
}

/// Whether the wait for the send time ran out or the order was cancelled during it.
#[derive(Debug, PartialEq, Eq)]
enum Waited {
    Elapsed,
    Cancelled,
}

/// One run of an order: its input, the activity options every step shares, and what the steps
/// learn on the way (batches executed, whether the condition was readable).
struct Run<'a> {
    input: &'a OrderWorkflowInput,
    store_retry: RetryPolicy,
    /// Activities executed by this run, counted towards `max_batches_per_run` (shared by the
    /// slices in flight).
    batches: Cell<u32>,
    /// The condition endpoint could not be read (carried across continued runs).
    condition_inconclusive: bool,
    /// The store steps run as local activities (recorded with the patch).
    local_steps: bool,
}

type Ctx = WorkflowContext<OrderWorkflow>;

impl<'a> Run<'a> {
    fn new(input: &'a OrderWorkflowInput) -> Self {
        let store_retry = RetryPolicy::builder()
            .initial_interval(Duration::from_millis(500))
            .maximum_interval(Duration::from_millis(input.policy.max_retry_interval_ms.max(1000)))
            .build();
        Self {
            input,
            store_retry,
            batches: Cell::new(0),
            condition_inconclusive: input.condition_inconclusive,
            local_steps: false,
        }
    }

    fn order_id(&self) -> String {
        self.input.order_id.clone()
    }

    fn policy(&self) -> &WorkflowPolicy {
        &self.input.policy
    }

    /// The workflow's result after sending.
    fn output(&self, status: OrderStatus) -> OrderWorkflowOutput {
        OrderWorkflowOutput { status, condition_inconclusive: self.condition_inconclusive }
    }

    /// The workflow's result when the order ends before sending (cancelled, already handled,
    /// condition not met): nothing was sent, so nothing was sent "anyway".
    fn ended_early(status: OrderStatus) -> OrderWorkflowOutput {
        OrderWorkflowOutput { status, condition_inconclusive: false }
    }

    /// Options of the single-row store activities.
    fn store_opts(&self) -> ActivityOptions {
        ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
            .retry_policy(self.store_retry.clone())
            .build()
    }

    /// Runs one of the short store steps: a local activity (with the patch) or an activity.
    async fn store_step<AD>(
        &self,
        ctx: &Ctx,
        activity: AD,
        input: AD::Input,
    ) -> Result<AD::Output, temporalio_sdk::ActivityExecutionError>
    where
        AD: temporalio_common::ActivityDefinition,
        AD::Output: temporalio_common::data_converters::TemporalDeserializable,
    {
        if self.local_steps {
            let opts = LocalActivityOptions::builder()
                .start_to_close_timeout(Duration::from_secs(60))
                .retry_policy(self.store_retry.clone())
                .build();
            ctx.execute_local_activity(activity, input, opts).await
        } else {
            ctx.execute_activity(activity, input, self.store_opts()).await
        }
    }

    /// Options of generate and send batches: they heartbeat while they run, so one whose worker
    /// died is retried elsewhere after the heartbeat timeout, not after the whole start-to-close
    /// timeout.
    fn batch_opts(&self) -> ActivityOptions {
        ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
            .heartbeat_timeout(BATCH_HEARTBEAT_TIMEOUT)
            .retry_policy(self.store_retry.clone())
            .build()
    }

    /// Options of a slice: a batch's, and never executed eagerly. Eager execution hands an
    /// activity to the worker that scheduled it, which for an order is always the one running
    /// its workflow: every slice would go to that one worker instead of whichever polls.
    fn slice_opts(&self) -> ActivityOptions {
        let mut opts = self.batch_opts();
        opts.do_not_eagerly_execute = true;
        opts
    }

    /// An operator's redrive: reset the notifications that failed without reaching a provider.
    async fn redrive_reset(&self, ctx: &mut Ctx) -> WorkflowResult<()> {
        ctx.execute_activity(OrderActivities::redrive_reset, self.order_id(), self.store_opts())
            .await?;
        Ok(())
    }

    /// Durable wait for the requested send time. A cancelled order ends here; `claim` checks the
    /// store again in case the cancellation request never reached the workflow.
    async fn wait_for_send_time(&self, ctx: &mut Ctx) -> Waited {
        let requested = self.input.requested_send_time_ms;
        let wait_ms = requested - now_ms(ctx).unwrap_or(requested);
        if wait_ms <= 0 {
            return Waited::Elapsed;
        }
        temporalio_sdk::workflows::select! {
            _ = ctx.timer(Duration::from_millis(wait_ms as u64)) => Waited::Elapsed,
            _ = ctx.cancelled() => Waited::Cancelled,
        }
    }

    /// Claims the order for processing (or learns that it was cancelled or already ran).
    async fn claim(&self, ctx: &mut Ctx) -> WorkflowResult<StartOutcome> {
        Ok(self.store_step(ctx, OrderActivities::start_processing, self.order_id()).await?)
    }

    /// The send condition: retried; when it stays unreadable the order is sent anyway, as in
    /// Altinn (a notification the sender asked for is not silently dropped). False only when
    /// the endpoint said the condition is not met.
    async fn send_condition_met(&mut self, ctx: &mut Ctx) -> WorkflowResult<bool> {
        let policy = self.policy();
        let retry = RetryPolicy::builder()
            .initial_interval(Duration::from_millis(policy.condition_retry_ms.max(1)))
            .maximum_attempts(policy.condition_attempts.max(1))
            .build();
        let opts = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(retry)
            .build();
        match ctx
            .execute_activity(OrderActivities::check_send_condition, self.order_id(), opts)
            .await
        {
            Ok(ConditionOutcome::Met) => Ok(true),
            Ok(ConditionOutcome::NotMet) => Ok(false),
            Err(_) => {
                self.condition_inconclusive = true;
                Ok(true)
            }
        }
    }

    /// Settles the order's status without delivery tracking: `terminal` when the order ends
    /// early, else from its notifications.
    async fn finish(
        &self,
        ctx: &mut Ctx,
        terminal: Option<OrderStatus>,
    ) -> WorkflowResult<OrderStatus> {
        let finish = FinishOrder { order_id: self.order_id(), terminal };
        Ok(self.store_step(ctx, OrderActivities::finish_order, finish).await?)
    }

    /// Where generation starts: at the beginning, where a continued run left it, or not at all
    /// (sending or redriving).
    fn generate_from(&self) -> Option<u32> {
        match self.input.resume {
            None => Some(0),
            Some(Resume::Generate { from_index }) => Some(from_index),
            Some(Resume::Send { .. } | Resume::Redrive | Resume::Slices { .. }) => None,
        }
    }

    /// Contact lookup and notification rows, a batch of recipients at a time.
    async fn generate(&mut self, ctx: &mut Ctx, mut from_index: u32) -> WorkflowResult<()> {
        loop {
            let batch = GenerateBatch {
                order_id: self.order_id(),
                from_index,
                limit: self.policy().generate_batch.max(1),
            };
            let outcome = ctx
                .execute_activity(OrderActivities::generate_notifications, batch, self.batch_opts())
                .await?;
            self.count_batch();
            let Some(next) = outcome.next_index else { return Ok(()) };
            from_index = next;
            self.continue_as_new_if_due(ctx, Resume::Generate { from_index })?;
        }
    }

    /// The channels still to send, in order: email, then SMS; a run continued while sending SMS
    /// starts there.
    fn channels_to_send(&self) -> &'static [Channel] {
        match self.input.resume {
            Some(Resume::Send { channel: Channel::Sms }) => &[Channel::Sms],
            _ => &[Channel::Email, Channel::Sms],
        }
    }

    /// Durable wait for the SMS sending window, if the order has one (a timer, so it survives
    /// restarts).
    async fn wait_for_sms_window(&self, ctx: &mut Ctx) {
        let Some(window) = &self.policy().sms_window else { return };
        let wait = window.wait_ms(now_ms(ctx).unwrap_or(0));
        if wait > 0 {
            ctx.timer(Duration::from_millis(wait as u64)).await;
        }
    }

    /// Sends one channel's notifications, a batch at a time, until none is left.
    async fn send_channel(&mut self, ctx: &mut Ctx, channel: Channel) -> WorkflowResult<()> {
        loop {
            let batch = SendBatch {
                order_id: self.order_id(),
                channel,
                limit: self.policy().send_batch.max(1),
            };
            let outcome =
                ctx.execute_activity(OrderActivities::send_batch, batch, self.batch_opts()).await?;
            self.count_batch();
            if outcome.remaining == 0 {
                return Ok(());
            }
            self.continue_as_new_if_due(ctx, Resume::Send { channel })?;
        }
    }

    fn count_batch(&self) {
        self.batches.set(self.batches.get() + 1);
    }

    /// Whether this run has executed its share of batches (or Temporal suggests a new run).
    fn run_is_full(&self, ctx: &Ctx) -> bool {
        self.batches.get() >= self.policy().max_batches_per_run.max(1)
            || ctx.continue_as_new_suggested()
    }

    /// Sliced sending: the order's recipients cut into slices of `generate_batch`, up to
    /// `send_window` of them in flight at once, each generated and sent by its own activities
    /// (so sending starts with the first slice, and Temporal spreads the slices over every
    /// worker). The window is a fixed set of lanes, each taking the next slice when it is done
    /// with one: which lane takes which slice follows from the order activities complete in,
    /// which the history records, so a replay takes the same path. When the run has done its
    /// share of batches the lanes take no new slice, and once the ones in flight are done the
    /// order continues as new at the next slice.
    async fn send_slices(
        &self,
        ctx: &mut Ctx,
        from_index: u32,
        recipients: u32,
        channels: Vec<Channel>,
    ) -> WorkflowResult<()> {
        let size = self.policy().generate_batch.max(1);
        let next = Cell::new(from_index);
        // Set when a slice found the order's end earlier than its recipient count said.
        let ended = Cell::new(false);
        let failed = Cell::new(false);
        let lanes = (0..self.policy().send_window.max(1)).map(|_| {
            let ctx = ctx.clone();
            let (next, ended, failed, channels) = (&next, &ended, &failed, &channels);
            async move {
                loop {
                    let from = next.get();
                    if from >= recipients || ended.get() || failed.get() || self.run_is_full(&ctx) {
                        return Ok(());
                    }
                    next.set(from.saturating_add(size));
                    let last = from.saturating_add(size) >= recipients;
                    match self.send_slice(&ctx, from, size, last, channels).await {
                        Ok(true) => {}
                        Ok(false) => ended.set(true),
                        Err(e) => {
                            failed.set(true);
                            return Err(e);
                        }
                    }
                }
            }
        });
        let results: Vec<WorkflowResult<()>> =
            temporalio_sdk::workflows::join_all(lanes.collect::<Vec<_>>()).await;
        for r in results {
            r?;
        }
        let from_index = next.get();
        if from_index < recipients && !ended.get() {
            return self.continue_at(ctx, Resume::Slices { from_index, recipients, channels });
        }
        Ok(())
    }

    /// One slice: generated, then sent on each channel until nothing of it is left (SMS once its
    /// sending window is open). False when the slice held fewer recipients than its size: the
    /// order ends there.
    async fn send_slice(
        &self,
        ctx: &Ctx,
        from_index: u32,
        size: u32,
        last: bool,
        channels: &[Channel],
    ) -> WorkflowResult<bool> {
        let mut todo = channels.to_vec();
        let mut generate = true;
        let mut full = true;
        loop {
            let sms_wait = if todo.contains(&Channel::Sms) { self.sms_wait_ms(ctx) } else { 0 };
            let now: Vec<Channel> =
                todo.iter().copied().filter(|c| *c != Channel::Sms || sms_wait == 0).collect();
            if now.is_empty() && !generate {
                // Only SMS left, outside their window.
                ctx.timer(Duration::from_millis(sms_wait as u64)).await;
                continue;
            }
            let batch = SliceBatch {
                order_id: self.order_id(),
                from_index,
                recipients: size,
                generate,
                channels: now.clone(),
                send_limit: self.policy().send_batch.max(1),
                last,
            };
            let outcome =
                ctx.execute_activity(OrderActivities::send_slice, batch, self.slice_opts()).await?;
            self.count_batch();
            if generate {
                full = outcome.recipients >= size;
                generate = false;
            }
            todo.retain(|c| !now.contains(c) || outcome.unsent.contains(c));
            if todo.is_empty() {
                return Ok(full);
            }
        }
    }

    /// How long until the order's SMS sending window opens; 0 when it is open or there is none.
    fn sms_wait_ms(&self, ctx: &Ctx) -> i64 {
        let Some(window) = &self.policy().sms_window else { return 0 };
        window.wait_ms(now_ms(ctx).unwrap_or(0)).max(0)
    }

    /// A long order continues as new every `max_batches_per_run` batches (or when Temporal
    /// suggests it), carrying where it was: the `Err` is the continue-as-new termination.
    fn continue_as_new_if_due(&self, ctx: &mut Ctx, resume: Resume) -> WorkflowResult<()> {
        if !self.run_is_full(ctx) {
            return Ok(());
        }
        self.continue_at(ctx, resume)
    }

    /// Continues the order as a new run that resumes at `resume`: the `Err` is the
    /// continue-as-new termination.
    fn continue_at(&self, ctx: &mut Ctx, resume: Resume) -> WorkflowResult<()> {
        let next = OrderWorkflowInput {
            resume: Some(resume),
            condition_inconclusive: self.condition_inconclusive,
            ..self.input.clone()
        };
        match ctx.continue_as_new(next, ContinueAsNewOptions::default())? {}
    }

    /// Delivery tracking: the order completes when every notification is final. Waits for the
    /// report endpoints' signal or the next time-to-live, whichever comes first; no polling.
    async fn track_delivery(&self, ctx: &mut Ctx) -> WorkflowResult<OrderStatus> {
        loop {
            // Read before settling: a signal that arrives while the settle activity runs must
            // wake the wait below, not be counted as already seen.
            let seen = ctx.state(|s| s.final_signals);
            let settled =
                self.store_step(ctx, OrderActivities::settle_order, self.order_id()).await?;
            if settled.status != OrderStatus::Processed {
                return Ok(settled.status);
            }
            let now = now_ms(ctx).unwrap_or(0);
            let wait_ms = settled.next_expiry_ms.map(|e| (e - now).max(1)).unwrap_or(1) as u64;
            let expired = temporalio_sdk::workflows::select! {
                _ = ctx.timer(Duration::from_millis(wait_ms)) => true,
                _ = ctx.wait_condition(move |s| s.final_signals > seen) => false,
            };
            if expired {
                self.store_step(ctx, OrderActivities::expire_notifications, self.order_id())
                    .await?;
            }
        }
    }
}

/// The workflow's "now", Unix milliseconds: Temporal's time of the current workflow task, the
/// same on replay. `None` only before the first activation.
fn now_ms(ctx: &Ctx) -> Option<i64> {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
}
