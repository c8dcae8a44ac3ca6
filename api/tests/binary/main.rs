//! The tests that drive the built `varsel` binary as an operator would: its commands, its edge
//! under abuse, crashes and outages, and the production profile. One test binary; run one module
//! with `cargo test --workspace --features varsel-api/process-tests --test binary <module>::`.

mod cli;
mod crash;
mod edge;
mod production;
mod secured;
mod traced;
