//! Activity definitions: the contract between the order workflow and the worker that performs
//! side effects. Names are durable (they are written into every workflow history): never rename
//! one; add a new activity instead.

use crate::domain::{Channel, OrderStatus};
use serde::{Deserialize, Serialize};
use temporalio_common::ActivityError;
use temporalio_macros::activity_definitions;

/// What `start_processing` found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StartOutcome {
    /// False when the order must not be processed (cancelled, or already finished).
    pub proceed: bool,
    /// Whether the order has a send condition to check.
    pub has_condition: bool,
    /// The order's status after the call.
    pub status: OrderStatus,
    /// The channels the order can send on, so the workflow skips a channel it cannot use.
    /// Absent in histories recorded before it existed: every channel, as then.
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// How many recipients the order has, so the workflow can cut it into slices. Absent in
    /// histories recorded before sliced sending.
    #[serde(default)]
    pub recipients: Option<u32>,
}

/// The answer of a send-condition endpoint.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum ConditionOutcome {
    /// `{"sendNotification": true}`, or no endpoint.
    Met,
    /// `{"sendNotification": false}`.
    NotMet,
}

/// One slice of an order's recipients to turn into notifications.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GenerateBatch {
    /// The order.
    pub order_id: String,
    /// First recipient index of the slice.
    pub from_index: u32,
    /// How many recipients at most.
    pub limit: u32,
}

/// What a generate batch did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenerateOutcome {
    /// Where the next batch starts, or `None` when every recipient is done.
    pub next_index: Option<u32>,
    /// Notifications created for sending in this batch (not counting failed placeholders).
    pub sendable: u32,
}

/// A request to send the next pending notifications of one channel of an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendBatch {
    /// The order.
    pub order_id: String,
    /// The channel.
    pub channel: Channel,
    /// How many notifications at most.
    pub limit: u32,
}

/// What a send batch did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SendOutcome {
    /// Notifications handed to the provider in this batch.
    pub sent: u32,
    /// Whether notifications of this channel still wait to be sent: 0 when none (otherwise 1;
    /// histories recorded before may hold a count).
    pub remaining: u32,
}

/// One slice of an order's recipients: its notifications generated (once) and sent on the
/// channels whose time has come. Slices are disjoint, so several run at once, on any workers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SliceBatch {
    /// The order.
    pub order_id: String,
    /// First recipient index of the slice.
    pub from_index: u32,
    /// Recipients in the slice at most.
    pub recipients: u32,
    /// Whether the slice's notifications still have to be generated (idempotent: a retry finds
    /// them written).
    pub generate: bool,
    /// The channels to send now, in this order (SMS may wait for its sending window).
    pub channels: Vec<Channel>,
    /// Notifications a channel sends in one attempt at most; the rest is left for the next call.
    pub send_limit: u32,
    /// The slice holds the order's last recipient: once it is generated the order is
    /// `Processed` (slices are taken in order, so the earlier ones were generated first unless
    /// one of them is still being retried).
    pub last: bool,
}

/// What a slice batch did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SliceOutcome {
    /// Recipients the slice held, when this call generated it (fewer than asked: the order
    /// ends in this slice); 0 when it did not generate.
    pub recipients: u32,
    /// Notifications handed to a provider in this call.
    pub sent: u32,
    /// The channels of `channels` on which notifications of the slice still wait to be sent.
    pub unsent: Vec<Channel>,
}

/// Marker type carrying the activity definitions of the order workflow.
pub struct OrderActivities;

#[activity_definitions]
impl OrderActivities {
    /// Moves a `Registered` order to `Processing` (idempotent) and says whether to go on.
    #[activity(name = "varsel.order.start_processing")]
    pub fn start_processing(order_id: String) -> Result<StartOutcome, ActivityError> {
        unimplemented!()
    }

    /// Calls the order's condition endpoint once. Errors are retryable.
    #[activity(name = "varsel.order.check_send_condition")]
    pub fn check_send_condition(order_id: String) -> Result<ConditionOutcome, ActivityError> {
        unimplemented!()
    }

    /// Looks up contact points for a slice of recipients and writes one notification per address.
    /// Idempotent: a retried batch finds its rows already written.
    #[activity(name = "varsel.order.generate_notifications")]
    pub fn generate_notifications(batch: GenerateBatch) -> Result<GenerateOutcome, ActivityError> {
        unimplemented!()
    }

    /// Sends the next pending notifications of one channel, each at most once per attempt.
    #[activity(name = "varsel.order.send_batch")]
    pub fn send_batch(batch: SendBatch) -> Result<SendOutcome, ActivityError> {
        unimplemented!()
    }

    /// Generates (once) and sends one slice of an order's recipients: the unit that several
    /// workers run at once for one order.
    #[activity(name = "varsel.order.send_slice")]
    pub fn send_slice(batch: SliceBatch) -> Result<SliceOutcome, ActivityError> {
        unimplemented!()
    }

    /// Sets the order's final status: `Completed` when every notification is final (else
    /// `Processed`), or the given terminal status.
    #[activity(name = "varsel.order.finish")]
    pub fn finish_order(input: FinishOrder) -> Result<OrderStatus, ActivityError> {
        unimplemented!()
    }

    /// Completes the order when every notification is final; otherwise says when the next open
    /// one expires, so the workflow can wait for reports or that time.
    #[activity(name = "varsel.order.settle")]
    pub fn settle_order(order_id: String) -> Result<SettleOutcome, ActivityError> {
        unimplemented!()
    }

    /// Resets, for a redrive, the order's notifications that failed without reaching a provider
    /// (`*_Failed_TTL` never accepted, `*_Failed`) to `New` with a fresh time-to-live. Returns how many.
    #[activity(name = "varsel.order.redrive_reset")]
    pub fn redrive_reset(order_id: String) -> Result<u64, ActivityError> {
        unimplemented!()
    }

    /// Gives up the order's open notifications whose time-to-live has passed (`*_Failed_TTL`).
    #[activity(name = "varsel.order.expire_notifications")]
    pub fn expire_notifications(order_id: String) -> Result<u64, ActivityError> {
        unimplemented!()
    }
}

/// What `settle_order` found.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SettleOutcome {
    /// `Completed` when every notification is final, else `Processed`.
    pub status: OrderStatus,
    /// When the earliest open notification expires (Unix milliseconds), if any is open.
    pub next_expiry_ms: Option<i64>,
}

/// Input of `finish_order`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FinishOrder {
    /// The order.
    pub order_id: String,
    /// `Some(SendConditionNotMet)` to stop the order; `None` to complete it from its notifications.
    pub terminal: Option<OrderStatus>,
}

/// The activity marker types, for implementers (`#[activity(definition = defs::StartProcessing)]`).
pub mod defs {
    pub use super::order_activities::*;
}
