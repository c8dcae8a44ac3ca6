//! The real-process suite of varsel: one test binary (one link, one Temporal dev server shared
//! by every test, each test on a task queue of its own), a module per capability. Run one module
//! with `cargo test --workspace --features varsel-api/process-tests --test suite <module>::`.

mod bounces;
mod browser;
mod composed;
mod console_browser;
mod contract;
mod delivery;
mod docs_browser;
mod faults;
mod future;
mod history;
mod hostile;
mod indexes;
mod instant;
mod krr;
mod metrics;
mod openapi;
mod outbound;
mod pipeline;
mod profile;
mod reads;
mod redrive;
mod replay;
mod scheduling;
mod schemathesis;
mod sms_rules;
mod tokens;
mod webhooks;
