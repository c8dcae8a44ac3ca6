//! Every side effect of varsel: the store, contact lookup, SMTP, SMS and condition endpoints,
//! and the implementations of the order workflow's activities.

pub mod bounces;
pub mod contacts;
pub mod events;
pub mod instant;
pub mod metrics;
pub mod order_activities;
pub mod providers;
pub mod store;
pub mod webhook_activities;
pub mod webhooks;

pub use order_activities::OrderActivitiesImpl;
pub use store::Store;
pub use webhook_activities::WebhookActivitiesImpl;
