//! varsel's deterministic core: domain types that parse, the order workflow, the webhook
//! workflow, and the activity definitions they call. Nothing in this crate performs I/O; the
//! `activities` crate implements the definitions and the `api` crate wires everything together.

pub mod activities;
pub mod domain;
pub mod keywords;
pub mod order;
pub mod plan;
pub mod sms;
pub mod webhook;
pub mod workflow;

pub use webhook::{WebhookWorkflow, WebhookWorkflowInput};
pub use workflow::{OrderWorkflow, OrderWorkflowInput, OrderWorkflowOutput, WorkflowPolicy};
