//! The implementations of the order workflow's activities.
//!
//! What Temporal does after a failed attempt is decided in one place, [`Failure`]: retry with
//! the activity's backoff (the database or a provider may recover: the normal case), retry after
//! exactly the delay a provider asked for, or stop (retrying cannot help). Outcomes that are
//! final for a notification are recorded on it instead and are not failures here.

use crate::contacts;
use crate::providers::SendError;
use crate::providers::attachments::{AttachmentFetcher, FetchError};
use crate::providers::condition::{ConditionClient, ConditionError};
use crate::providers::email::{Mailer, OutgoingEmail};
use crate::providers::sms::{OutgoingSms, SmsRouter};
use crate::store::{Notification, ProviderResult, ResultWriter, Store};
use chrono::Utc;
use futures::StreamExt;
use std::sync::Arc;
use temporalio_common::ActivityError;
use temporalio_macros::activities;
use temporalio_sdk::activities::ActivityContext;
use varsel_workflows::activities::{
    ConditionOutcome, FinishOrder, GenerateBatch, GenerateOutcome, SendBatch, SendOutcome,
    SettleOutcome, SliceBatch, SliceOutcome, StartOutcome, defs,
};
use varsel_workflows::domain::{Channel, EmailAddress, NotificationStatus, OrderStatus};
use varsel_workflows::keywords;
use varsel_workflows::order::{Order, Recipient, StoredOrder};
use varsel_workflows::plan;
use varsel_workflows::sms::SenderDecision;

/// Everything the activities need, built once per worker.
pub struct OrderActivitiesImpl {
    /// The database.
    pub store: Store,
    /// Where recipients are looked up.
    pub contacts: crate::contacts::ContactSources,
    /// Email sender.
    pub mailer: Mailer,
    /// Fetches composed emails' attachments when they are sent.
    pub attachments: AttachmentFetcher,
    /// SMS sender.
    pub sms: SmsRouter,
    /// Whether the email relay sends delivery reports (then `Email_Succeeded` waits for one).
    pub email_reports: bool,
    /// Condition endpoint client.
    pub condition: ConditionClient,
    /// SMS sender id when the order gives none.
    pub default_sms_sender: String,
    /// How many sends run at once in this worker, over all its batches.
    pub send_slots: SendSlots,
    /// How long one send batch keeps starting sends (below the batch's 120 s start-to-close
    /// timeout): a batch slowed by a rate limit or a sluggish relay stops early and leaves the
    /// rest to the next batch, instead of timing out while still sending (a timed-out attempt
    /// keeps running, and its retry would send the same notifications again).
    pub send_budget: std::time::Duration,
    /// How long a notification may stay open before it fails with `*_Failed_TTL`.
    pub notification_ttl: std::time::Duration,
    /// The SMS sending window; an SMS's time-to-live counts from when it opens.
    pub sms_window: Option<varsel_workflows::sms::SendingWindow>,
    /// Per-country handling of unregistered sender ids.
    pub sender_policies: Vec<varsel_workflows::sms::SenderPolicy>,
    /// Send latency, provider errors, finished orders.
    pub metrics: crate::metrics::Metrics,
    /// Per-provider send-rate limits shared by all workers.
    pub rate_limits: crate::providers::rate::SendRateLimits,
    /// Providers that asked this worker to wait (`Retry-After`).
    pub pauses: crate::providers::rate::ProviderPauses,
    /// Set when the worker shuts down: send batches start no further sends.
    pub draining: Draining,
}

/// A worker's word to its send batches that it is shutting down (SIGTERM): a running batch
/// starts no further sends, lets the ones in flight finish and be recorded, and returns what is
/// left to the next batch, which another worker takes. The SDK stops polling meanwhile, and
/// cancels what still runs at the end of the grace period.
#[derive(Clone, Default)]
pub struct Draining(Arc<std::sync::atomic::AtomicBool>);

impl Draining {
    /// From now on, batches start no further sends.
    pub fn start(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the worker is shutting down.
    pub fn is_set(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The worker's sends in flight, bounded over every batch it runs (`VARSEL_SEND_CONCURRENCY`):
/// an order's slices running side by side on one worker share them, so the sends a crash can
/// leave unrecorded (the duplicate window) stay at most this many a worker, however many
/// batches it runs.
#[derive(Clone)]
pub struct SendSlots {
    slots: Arc<tokio::sync::Semaphore>,
    size: usize,
}

impl SendSlots {
    /// `size` sends at once (at least one).
    pub fn new(size: usize) -> Self {
        let size = size.max(1);
        Self { slots: Arc::new(tokio::sync::Semaphore::new(size)), size }
    }

    /// How many sends run at once.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Waits for a free slot; it is given back when the permit is dropped.
    async fn take(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.slots.clone().acquire_owned().await.expect("the send slots are never closed")
    }
}

/// Why a claimed notification was not sent in this attempt: it stays `Sending`, and the retried
/// attempt claims it again.
#[derive(Debug)]
struct Deferred {
    reason: String,
    /// The provider asked not to be called again before this.
    retry_after: Option<std::time::Duration>,
    /// A provider's answer could not be stored: the message may have gone out unrecorded, so
    /// the batch starts no further sends (each would be one more possible duplicate).
    store_failed: bool,
}

impl Deferred {
    fn unrecorded(reason: String) -> Self {
        Self {
            reason: format!("the provider's answer could not be stored: {reason}"),
            retry_after: None,
            store_failed: true,
        }
    }
}

impl From<String> for Deferred {
    fn from(reason: String) -> Self {
        Self { reason, retry_after: None, store_failed: false }
    }
}

/// How often a running batch tells Temporal it is alive; with the workflow's heartbeat timeout,
/// a batch whose worker died is retried elsewhere within seconds instead of at its
/// start-to-close timeout.
const HEARTBEAT_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs `work` while heartbeating, and stops it when Temporal cancels the attempt (it timed out
/// while this worker was cut off, say, and a retry may already be running elsewhere): a
/// stopped batch starts no further sends.
async fn with_heartbeats<T>(
    ctx: &ActivityContext,
    work: impl std::future::Future<Output = Result<T, ActivityError>>,
) -> Result<T, ActivityError> {
    let beat = async {
        loop {
            tokio::time::sleep(HEARTBEAT_EVERY).await;
            if let Err(e) = ctx.record_heartbeat(0u8).await {
                tracing::warn!(error = %e, "heartbeat could not be recorded");
            }
        }
    };
    tokio::select! {
        out = work => out,
        never = beat => never,
        () = ctx.cancelled() => {
            tracing::warn!("batch attempt cancelled by Temporal; its unsent notifications are left to the next attempt");
            Err(ActivityError::cancelled())
        }
    }
}

/// How often a send batch checks that no newer attempt has claimed its notifications.
const FENCE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// A send batch's watch on its claim. When Temporal gives up on an attempt (its worker stalled
/// past the heartbeat timeout: a long pause, a cut to Temporal but not to the relay) it retries
/// the batch elsewhere, and the retry claims the same notifications again. The stalled attempt
/// learns of it from the database within [`FENCE_EVERY`] of running again, instead of at its next
/// heartbeat (which Temporal's client sends at most every 8 s), and starts no further sends:
/// the two attempts overlap by the sends in flight, not by seconds of sending.
struct Fence {
    /// Each claimed notification and the attempt number this batch claimed it with (the rows
    /// as claimed carry it).
    claimed: Vec<(String, u32)>,
    /// Set once a newer attempt has claimed any of them.
    superseded: Arc<std::sync::atomic::AtomicBool>,
}

impl Fence {
    fn new(claimed: &[Notification]) -> Self {
        Self {
            claimed: claimed.iter().map(|n| (n.id.clone(), n.attempts)).collect(),
            superseded: Default::default(),
        }
    }

    /// Checks the claim every [`FENCE_EVERY`] while the batch sends; never ends (the batch's
    /// sends do).
    async fn watch(&self, store: &Store, order_id: &str) -> std::convert::Infallible {
        loop {
            tokio::time::sleep(FENCE_EVERY).await;
            if self.superseded.load(std::sync::atomic::Ordering::SeqCst) {
                continue;
            }
            match store.reclaimed(&self.claimed).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::warn!(
                        order_id,
                        reclaimed = n,
                        "a newer attempt of this send batch claimed its notifications; this attempt stops sending"
                    );
                    self.superseded.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err(e) => {
                    tracing::warn!(order_id, error = %e, "the batch's claim could not be checked")
                }
            }
        }
    }
}

/// How an activity attempt failed, and so what Temporal does next.
#[derive(Debug)]
enum Failure {
    /// The database or a provider may recover: retry with the activity's backoff.
    Retryable(String),
    /// A provider asked to wait: retry after exactly this long.
    RetryAfter(String, std::time::Duration),
    /// Retrying cannot help (a refused destination, an unreadable stored order): stop.
    Permanent(String),
}

impl From<Failure> for ActivityError {
    fn from(f: Failure) -> Self {
        use temporalio_common::error::ApplicationFailure;
        match f {
            Failure::Retryable(m) => ActivityError::from(anyhow::anyhow!(m)),
            Failure::RetryAfter(m, wait) => ActivityError::application(
                ApplicationFailure::builder(anyhow::anyhow!(m))
                    .next_retry_delay(wait.max(std::time::Duration::from_millis(100)))
                    .build(),
            ),
            Failure::Permanent(m) => {
                ActivityError::application(ApplicationFailure::non_retryable(anyhow::anyhow!(m)))
            }
        }
    }
}

/// An internal error (the database, a provider) as a retryable failure.
fn retryable(e: impl std::fmt::Display) -> ActivityError {
    Failure::Retryable(e.to_string()).into()
}

fn corrupt(what: &str) -> ActivityError {
    Failure::Permanent(format!("stored order is unreadable: {what}")).into()
}

#[activities]
impl OrderActivitiesImpl {
    /// See [`varsel_workflows::activities::OrderActivities::start_processing`].
    #[activity(definition = defs::StartProcessing)]
    pub async fn start_processing(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<StartOutcome, ActivityError> {
        let moved = self
            .store
            .transition_order(&order_id, &[OrderStatus::Registered], OrderStatus::Processing)
            .await
            .map_err(retryable)?;
        let stored = self.load_stored(&order_id).await?;
        let order = stored.order;
        let status = order.status;
        // A retried attempt finds the order already Processing: that is still ours to run.
        let proceed = moved || status == OrderStatus::Processing;
        if moved {
            tracing::info!(order_id, "order processing started");
        }
        let channels = Some(order.channel.channels());
        Ok(StartOutcome {
            proceed,
            has_condition: order.condition_endpoint.is_some(),
            status,
            channels,
            recipients: Some(stored.recipient_count),
        })
    }

    /// See [`varsel_workflows::activities::OrderActivities::check_send_condition`].
    #[activity(definition = defs::CheckSendCondition)]
    pub async fn check_send_condition(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<ConditionOutcome, ActivityError> {
        let order = self.load_order(&order_id).await?;
        let Some(url) = order.condition_endpoint else { return Ok(ConditionOutcome::Met) };
        match self.condition.check(&url).await {
            Ok(outcome) => {
                tracing::info!(order_id, ?outcome, "send condition checked");
                Ok(outcome)
            }
            Err(e @ ConditionError::Refused(_)) => {
                // Retrying cannot make a refused destination allowed: the order goes on as for
                // an unreadable condition (sent anyway), without further attempts.
                tracing::warn!(order_id, error = %e, "send condition endpoint refused by the outbound policy");
                Err(Failure::Permanent(e.to_string()).into())
            }
            Err(e) => {
                tracing::warn!(order_id, error = %e, "send condition could not be read; will retry");
                Err(retryable(e))
            }
        }
    }

    /// See [`varsel_workflows::activities::OrderActivities::generate_notifications`].
    #[activity(definition = defs::GenerateNotifications)]
    pub async fn generate_notifications(
        self: Arc<Self>,
        ctx: ActivityContext,
        batch: GenerateBatch,
    ) -> Result<GenerateOutcome, ActivityError> {
        with_heartbeats(&ctx, self.generate(batch)).await
    }

    /// See [`varsel_workflows::activities::OrderActivities::send_batch`].
    #[activity(definition = defs::SendBatch)]
    pub async fn send_batch(
        self: Arc<Self>,
        ctx: ActivityContext,
        batch: SendBatch,
    ) -> Result<SendOutcome, ActivityError> {
        with_heartbeats(&ctx, self.send(batch)).await
    }
    /// See [`varsel_workflows::activities::OrderActivities::send_slice`].
    #[activity(definition = defs::SendSlice)]
    pub async fn send_slice(
        self: Arc<Self>,
        ctx: ActivityContext,
        batch: SliceBatch,
    ) -> Result<SliceOutcome, ActivityError> {
        with_heartbeats(&ctx, self.slice(batch)).await
    }

    /// See [`varsel_workflows::activities::OrderActivities::finish_order`].
    #[activity(definition = defs::FinishOrder)]
    pub async fn finish_order(
        self: Arc<Self>,
        _ctx: ActivityContext,
        input: FinishOrder,
    ) -> Result<OrderStatus, ActivityError> {
        let from = [OrderStatus::Registered, OrderStatus::Processing, OrderStatus::Processed];
        let target = match input.terminal {
            Some(t) => t,
            None => {
                let pending = self
                    .store
                    .has_pending(&input.order_id, Channel::Email)
                    .await
                    .map_err(retryable)?
                    || self
                        .store
                        .has_pending(&input.order_id, Channel::Sms)
                        .await
                        .map_err(retryable)?;
                if pending { OrderStatus::Processed } else { OrderStatus::Completed }
            }
        };
        if self.store.transition_order(&input.order_id, &from, target).await.map_err(retryable)?
            && target != OrderStatus::Processed
        {
            self.metrics.orders_finished.with_label_values(&[target.as_str()]).inc();
        }
        tracing::info!(order_id = input.order_id, status = target.as_str(), "order finished");
        Ok(target)
    }

    /// See [`varsel_workflows::activities::OrderActivities::settle_order`].
    #[activity(definition = defs::SettleOrder)]
    pub async fn settle_order(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<SettleOutcome, ActivityError> {
        let settled = self.store.settle_order(&order_id).await.map_err(retryable)?;
        if settled.status == OrderStatus::Completed {
            self.metrics.orders_finished.with_label_values(&[settled.status.as_str()]).inc();
            tracing::info!(order_id, "order completed: every notification has a final status");
        }
        Ok(SettleOutcome {
            status: settled.status,
            next_expiry_ms: settled.next_expiry.map(|t| t.timestamp_millis()),
        })
    }

    /// See [`varsel_workflows::activities::OrderActivities::redrive_reset`].
    #[activity(definition = defs::RedriveReset)]
    pub async fn redrive_reset(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<u64, ActivityError> {
        let n =
            self.store.redrive_reset(&order_id, self.notification_ttl).await.map_err(retryable)?;
        tracing::info!(
            order_id,
            notifications = n,
            "redrive: failed notifications reset for sending"
        );
        Ok(n)
    }

    /// See [`varsel_workflows::activities::OrderActivities::expire_notifications`].
    #[activity(definition = defs::ExpireNotifications)]
    pub async fn expire_notifications(
        self: Arc<Self>,
        _ctx: ActivityContext,
        order_id: String,
    ) -> Result<u64, ActivityError> {
        let n = self.store.expire_notifications(&order_id, Utc::now()).await.map_err(retryable)?;
        if n > 0 {
            tracing::warn!(
                order_id,
                notifications = n,
                "notifications reached their time-to-live without a final status"
            );
        }
        Ok(n)
    }
}

impl OrderActivitiesImpl {
    /// One batch of recipients: contact lookup and notification rows.
    async fn generate(&self, batch: GenerateBatch) -> Result<GenerateOutcome, ActivityError> {
        let order = self.load_order(&batch.order_id).await?;
        let written = self.write_notifications(&order, batch.from_index, batch.limit).await?;
        let done = written.recipients < batch.limit;
        let next_index = if done { None } else { written.last_index.map(|idx| idx + 1) };
        if next_index.is_none() {
            self.mark_generated(&order.id).await?;
        }
        Ok(GenerateOutcome { next_index, sendable: written.sendable })
    }

    /// Every notification of the order is generated: `Processing` → `Processed`.
    async fn mark_generated(&self, order_id: &str) -> Result<(), ActivityError> {
        if self
            .store
            .transition_order(order_id, &[OrderStatus::Processing], OrderStatus::Processed)
            .await
            .map_err(retryable)?
        {
            tracing::info!(order_id, "notifications generated");
        }
        Ok(())
    }

    /// One slice of an order: its notifications written (once), then sent on the channels the
    /// workflow names, one claim of at most `send_limit` each, within one send budget.
    async fn slice(self: &Arc<Self>, batch: SliceBatch) -> Result<SliceOutcome, ActivityError> {
        self.refuse_when_draining()?;
        let order = Arc::new(self.load_order(&batch.order_id).await?);
        let mut recipients = 0;
        if batch.generate {
            let written =
                self.write_notifications(&order, batch.from_index, batch.recipients).await?;
            recipients = written.recipients;
            if batch.last || written.recipients < batch.recipients {
                self.mark_generated(&order.id).await?;
            }
        }
        let range = batch.from_index..batch.from_index.saturating_add(batch.recipients);
        let deadline = std::time::Instant::now() + self.send_budget;
        let mut sent = 0;
        let mut unsent = Vec::new();
        for &channel in &batch.channels {
            let claimed = self
                .store
                .claim_slice(&order.id, channel, range.clone(), batch.send_limit)
                .await
                .map_err(retryable)?;
            if !claimed.is_empty() {
                sent += self.send_claimed(&order, channel, claimed, deadline).await?;
            }
            if self
                .store
                .has_pending_in(&order.id, channel, range.clone())
                .await
                .map_err(retryable)?
            {
                unsent.push(channel);
            }
        }
        Ok(SliceOutcome { recipients, sent, unsent })
    }

    /// A batch that a last poll brought in while the worker shuts down claims nothing: Temporal
    /// gives it to another worker.
    fn refuse_when_draining(&self) -> Result<(), ActivityError> {
        if self.draining.is_set() {
            return Err(retryable(
                "this worker is shutting down; the batch goes to another worker",
            ));
        }
        Ok(())
    }

    /// Contact lookup and notification rows for up to `limit` recipients of an order from
    /// `from_index` on (idempotent: rows already written are kept as they are).
    async fn write_notifications(
        &self,
        order: &Order,
        from_index: u32,
        limit: u32,
    ) -> Result<Written, ActivityError> {
        let channel = order.channel;
        let slice =
            self.store.recipients_slice(&order.id, from_index, limit).await.map_err(retryable)?;
        let recipients: Vec<Recipient> = slice.iter().map(|(_, r)| r.clone()).collect();
        // A source that cannot answer fails the batch, which Temporal retries: nobody becomes
        // "not identified" because a register was down.
        let want_names = [
            order.email.as_ref().map(|e| e.subject.as_str()),
            order.email.as_ref().map(|e| e.body.as_str()),
            order.sms.as_ref().map(|s| s.body.as_str()),
        ]
        .into_iter()
        .flatten()
        .any(keywords::has_keywords);
        let resolved =
            contacts::resolve(&self.contacts, &recipients, want_names).await.map_err(retryable)?;

        let now = Utc::now();
        let expiry = Store::expiry_from(order.requested_send_time, self.notification_ttl);
        // An SMS may wait for its sending window; its time-to-live starts there (as Altinn's).
        let sms_expiry = match &self.sms_window {
            Some(w) => {
                let start = order.requested_send_time.max(now);
                let opens =
                    start + chrono::Duration::milliseconds(w.wait_ms(start.timestamp_millis()));
                Store::expiry_from(opens, self.notification_ttl)
            }
            None => expiry,
        };
        let mut rows = Vec::new();
        let mut sendable = 0;
        for ((idx, r), res) in slice.iter().zip(resolved.iter()) {
            for mut p in plan::plan(channel, &res.contact, order.ignore_reservation) {
                // Register data is not validated on entry: an address that cannot be valid ends
                // here instead of at the relay.
                if p.status == NotificationStatus::EmailNew
                    && EmailAddress::parse(&p.address).is_err()
                {
                    p.status = NotificationStatus::EmailFailedInvalidFormat;
                }
                let (subject, body) = render_for(order, p.channel, res);
                let segments = (p.channel == Channel::Sms).then(|| {
                    let template = order.sms.as_ref().map(|s| s.body.as_str());
                    let text = body.as_deref().or(template).unwrap_or_default();
                    varsel_workflows::sms::segments(text) as u32
                });
                if p.status.is_pending() {
                    sendable += 1;
                }
                rows.push(Notification {
                    // Time-ordered (v7): a large order's rows go to the end of the primary
                    // key's index instead of a random page of it (random v4 keys made a
                    // 1,000,000-recipient order slower a notification than a 100,000 one).
                    id: uuid::Uuid::now_v7().to_string(),
                    order_id: order.id.clone(),
                    channel: p.channel,
                    recipient_idx: *idx,
                    org_no: r.org_no.clone(),
                    nin: r.nin.clone(),
                    address: p.address,
                    subject,
                    body,
                    status: p.status,
                    status_changed: now,
                    status_reason: None,
                    provider_ref: None,
                    attempts: 0,
                    expiry: if p.channel == Channel::Sms { sms_expiry } else { expiry },
                    segments,
                    delivery_report: None,
                    awaits_report: false,
                });
            }
        }
        self.store.insert_notifications(rows).await.map_err(retryable)?;
        Ok(Written {
            recipients: slice.len() as u32,
            last_index: slice.last().map(|(idx, _)| *idx),
            sendable,
        })
    }

    /// One batch of sends.
    async fn send(self: &Arc<Self>, batch: SendBatch) -> Result<SendOutcome, ActivityError> {
        self.refuse_when_draining()?;
        let order = Arc::new(self.load_order(&batch.order_id).await?);
        let claimed = self
            .store
            .claim_notifications(&batch.order_id, batch.channel, batch.limit)
            .await
            .map_err(retryable)?;
        let deadline = std::time::Instant::now() + self.send_budget;
        let sent = self.send_claimed(&order, batch.channel, claimed, deadline).await?;
        let remaining = u32::from(
            self.store.has_pending(&batch.order_id, batch.channel).await.map_err(retryable)?,
        );
        Ok(SendOutcome { sent, remaining })
    }

    /// Sends claimed notifications of one channel, `send_concurrency` at a time, until they are
    /// done or `deadline` passes (the rest stays `Sending` for the next batch). How many were
    /// handed to a provider; a transient fault fails the attempt so that Temporal retries it.
    async fn send_claimed(
        self: &Arc<Self>,
        order: &Arc<Order>,
        channel: Channel,
        claimed: Vec<Notification>,
        deadline: std::time::Instant,
    ) -> Result<u32, ActivityError> {
        // Whatever could not be sent within its time-to-live (a relay down for days) is given up
        // when it is claimed, so a retried batch ends instead of retrying forever. Only the
        // claimed rows are looked at: a large order is not scanned once per batch.
        let now = Utc::now();
        let (expired, claimed): (Vec<_>, Vec<_>) =
            claimed.into_iter().partition(|n| n.expiry <= now);
        let n_expired =
            self.store.expire_claimed(channel, &expired, now).await.map_err(retryable)?;
        if n_expired > 0 {
            tracing::warn!(
                order_id = order.id,
                notifications = n_expired,
                "unsent notifications reached their time-to-live"
            );
        }
        let this = self.clone();
        let writer = ResultWriter::start(self.store.clone());
        let halted = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fence = Fence::new(&claimed);
        let sends = futures::stream::iter(claimed.into_iter().map(|n| {
            let this = this.clone();
            let order = order.clone();
            let writer = writer.clone();
            let halted = halted.clone();
            let superseded = fence.superseded.clone();
            let draining = this.draining.clone();
            async move {
                // Held until the answer is recorded (or the send given up).
                let _slot = this.send_slots.take().await;
                if std::time::Instant::now() >= deadline
                    || superseded.load(std::sync::atomic::Ordering::SeqCst)
                    || draining.is_set()
                {
                    // Left `Sending`: the next batch (or the attempt that superseded this one)
                    // has it.
                    return Ok(false);
                }
                if halted.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(Deferred::from(
                        "not sent: an earlier answer of this batch could not be stored".to_owned(),
                    ));
                }
                let result = this.send_one(&order, n, &writer).await;
                if result.as_ref().is_err_and(|d| d.store_failed) {
                    halted.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                result.map(|()| true)
            }
        }))
        .buffer_unordered(self.send_slots.size())
        .collect::<Vec<Result<bool, Deferred>>>();
        let results = tokio::select! {
            results = sends => results,
            never = fence.watch(&self.store, &order.id) => match never {},
        };
        if fence.superseded.load(std::sync::atomic::Ordering::SeqCst) {
            // Temporal gave up on this attempt and a retry runs elsewhere: what this one
            // returns is not looked at, and what it left unsent is the retry's.
            return Err(retryable(
                "superseded: a newer attempt of this batch claimed its notifications, so this one stopped sending",
            ));
        }
        let sent = results.iter().filter(|r| matches!(r, Ok(true))).count() as u32;
        let deferred: Vec<&Deferred> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        // The root cause first: the store failure that halted the batch, else the first fault.
        if let Some(first) = deferred.iter().find(|d| d.store_failed).or(deferred.first()) {
            // Some sends hit a transient fault: fail the attempt so Temporal retries, with its
            // backoff or, when a provider said how long to wait, after exactly that. Rows already
            // recorded are not claimed again.
            let message = format!(
                "{} of {} {} notifications could not be sent yet: {}",
                deferred.len(),
                results.len(),
                channel.as_str(),
                first.reason
            );
            return Err(match deferred.iter().filter_map(|d| d.retry_after).max() {
                Some(wait) => Failure::RetryAfter(message, wait),
                None => Failure::Retryable(message),
            }
            .into());
        }
        Ok(sent)
    }

    async fn load_order(&self, id: &str) -> Result<Order, ActivityError> {
        Ok(self.load_stored(id).await?.order)
    }

    async fn load_stored(&self, id: &str) -> Result<StoredOrder, ActivityError> {
        let found = self.store.order(id).await.map_err(retryable)?;
        found.ok_or_else(|| corrupt("order row missing"))
    }

    /// Hands one notification to its provider: honours a provider's pause and the shared send
    /// rate, applies the sender policy, sends, and counts the outcome. `Ok` is the answer to
    /// record (a success or a permanent failure); `Err` is transient (`Transient`, or
    /// `Throttled`, which also pauses the provider for this process). Used by send batches and
    /// by the API's instant messages.
    pub async fn deliver(
        &self,
        order: &Order,
        n: &Notification,
    ) -> Result<ProviderResult, SendError> {
        let channel = n.channel;
        // A sender-policy note for the status description (e.g. the sender shows as "tuntematon").
        let mut note = None;
        let provider = match channel {
            Channel::Email => self.mailer.provider(),
            Channel::Sms => self.sms.provider_for(&n.address),
        };
        if let Some(wait) = self.pauses.remaining(provider) {
            return Err(SendError::Throttled {
                reason: format!("{provider} asked to wait; not called for {wait:?}"),
                retry_after: wait,
            });
        }
        self.rate_limits
            .acquire(provider)
            .await
            .map_err(|e| SendError::Transient(e.to_string()))?;
        let started = std::time::Instant::now();
        let result = match channel {
            Channel::Email => {
                let template = order.email.as_ref();
                // A composed email's files, fetched now: what cannot be fetched, or is too
                // large, ends the notification; a file server that cannot answer now is retried.
                let attachments = match template.map(|t| t.attachments.as_slice()) {
                    Some(files) if !files.is_empty() => {
                        self.attachments.fetch_all(files).await.map_err(|e| match e {
                            FetchError::Invalid(reason) => SendError::Permanent {
                                status: NotificationStatus::EmailFailedInvalidSasUrl,
                                reason,
                            },
                            FetchError::TooLarge(reason) => SendError::Permanent {
                                status: NotificationStatus::EmailFailedPayloadTooLarge,
                                reason,
                            },
                            FetchError::Unavailable(reason) => SendError::Transient(reason),
                        })
                    }
                    _ => Ok(Vec::new()),
                };
                let mail = attachments.map(|attachments| OutgoingEmail {
                    notification_id: n.id.clone(),
                    from: template.and_then(|t| t.from.clone()),
                    to: n.address.clone(),
                    subject: n
                        .subject
                        .clone()
                        .or_else(|| template.map(|t| t.subject.clone()))
                        .unwrap_or_default(),
                    body: n
                        .body
                        .clone()
                        .or_else(|| template.map(|t| t.body.clone()))
                        .unwrap_or_default(),
                    content_type: template.map(|t| t.content_type).unwrap_or_default(),
                    attachments,
                });
                match mail {
                    Ok(mail) => {
                        self.mailer.send(mail).await.map(|r| {
                            (NotificationStatus::EmailSucceeded, Some(r), self.email_reports)
                        })
                    }
                    Err(e) => Err(e),
                }
            }
            Channel::Sms => {
                let template = order.sms.as_ref();
                let sender = template
                    .and_then(|t| t.sender.clone())
                    .unwrap_or_else(|| self.default_sms_sender.clone());
                let body =
                    n.body.clone().or_else(|| template.map(|t| t.body.clone())).unwrap_or_default();
                match varsel_workflows::sms::decide_sender(
                    &n.address,
                    &sender,
                    &body,
                    &self.sender_policies,
                ) {
                    SenderDecision::Refuse(reason) => Err(SendError::Permanent {
                        status: NotificationStatus::SmsFailedRejected,
                        reason,
                    }),
                    SenderDecision::Send { sender, note: policy_note } => {
                        note = policy_note;
                        // The gateway stops trying when varsel gives the message up.
                        let validity = (n.expiry - Utc::now()).to_std().ok();
                        let sms = OutgoingSms {
                            notification_id: n.id.clone(),
                            to: n.address.clone(),
                            sender,
                            body,
                            validity,
                        };
                        self.sms
                            .send(&sms)
                            .await
                            .map(|r| (NotificationStatus::SmsAccepted, r.provider_ref, true))
                    }
                }
            }
        };
        let answered_at = Utc::now();
        self.metrics
            .send_seconds
            .with_label_values(&[provider])
            .observe(started.elapsed().as_secs_f64());
        match &result {
            Err(SendError::Permanent { .. }) => {
                self.metrics.provider_errors.with_label_values(&[provider, "permanent"]).inc()
            }
            Err(SendError::Transient(_)) => {
                self.metrics.provider_errors.with_label_values(&[provider, "transient"]).inc()
            }
            Err(SendError::Throttled { .. }) => {
                self.metrics.provider_errors.with_label_values(&[provider, "throttled"]).inc()
            }
            Ok(_) => {}
        }
        let base = |status, reason, provider_ref, awaits_report| ProviderResult {
            id: n.id.clone(),
            order_id: order.id.clone(),
            status,
            reason,
            provider_ref,
            awaits_report,
            answered_at,
        };
        match result {
            Ok((status, provider_ref, awaits_report)) => {
                Ok(base(status, note, provider_ref, awaits_report))
            }
            Err(SendError::Permanent { status, reason }) => {
                Ok(base(status, Some(reason), None, false))
            }
            Err(SendError::Throttled { reason, retry_after }) => {
                self.pauses.pause(provider, retry_after);
                Err(SendError::Throttled { reason, retry_after })
            }
            Err(e) => Err(e),
        }
    }

    /// Sends one claimed notification and records the outcome. `Err` means transient: the row
    /// stays `Sending` and the next attempt picks it up.
    async fn send_one(
        &self,
        order: &Order,
        n: Notification,
        writer: &ResultWriter,
    ) -> Result<(), Deferred> {
        match self.deliver(order, &n).await {
            Ok(result) => {
                let (status, failed, reason) =
                    (result.status, !result.status.is_success(), result.reason.clone());
                writer.record(result).await.map_err(Deferred::unrecorded)?;
                if failed {
                    tracing::warn!(
                        order_id = order.id,
                        notification_id = n.id,
                        status = status.as_str(),
                        reason,
                        "notification failed permanently"
                    );
                } else {
                    tracing::info!(
                        order_id = order.id,
                        notification_id = n.id,
                        status = status.as_str(),
                        "notification sent"
                    );
                }
                Ok(())
            }
            Err(SendError::Throttled { reason, retry_after }) => {
                tracing::warn!(
                    order_id = order.id,
                    notification_id = n.id,
                    reason,
                    ?retry_after,
                    "provider asked to slow down; will retry after its delay"
                );
                Err(Deferred { reason, retry_after: Some(retry_after), store_failed: false })
            }
            Err(SendError::Transient(reason) | SendError::Permanent { reason, .. }) => {
                tracing::warn!(
                    order_id = order.id,
                    notification_id = n.id,
                    reason,
                    "send failed; will retry"
                );
                Err(reason.into())
            }
        }
    }
}

/// What writing a slice's notifications found.
struct Written {
    /// Recipients the slice held (fewer than asked: the order ends in it).
    recipients: u32,
    /// Index of its last recipient.
    last_index: Option<u32>,
    /// Notifications created for sending (not counting failed placeholders).
    sendable: u32,
}

/// Per-recipient subject and body, only when the template has keywords (otherwise the order's
/// template is used at send time and nothing is copied).
fn render_for(
    order: &Order,
    channel: Channel,
    res: &contacts::Resolved,
) -> (Option<String>, Option<String>) {
    let party = res.party.keywords();
    let render = |t: Option<&str>| {
        t.filter(|t| keywords::has_keywords(t)).map(|t| keywords::render(t, party))
    };
    match channel {
        Channel::Email => {
            let email = order.email.as_ref();
            (render(email.map(|e| e.subject.as_str())), render(email.map(|e| e.body.as_str())))
        }
        Channel::Sms => (None, render(order.sms.as_ref().map(|s| s.body.as_str()))),
    }
}
