//! varsel's API and binary: configuration, authentication, HTTP handlers, the Temporal bridge,
//! and the commands of the `varsel` binary.

pub mod auth;
pub mod bounces;
pub mod cli;
pub mod config;
pub mod console;
pub mod dev;
pub mod devserver;
pub mod error;
pub mod health;
pub mod history;
pub mod http;
pub mod jwks;
pub mod register;
pub mod replay;
pub mod server;
pub mod startup;
pub mod state;
pub mod temporal;
pub mod timeline;
pub mod trace;
pub mod upstream;

pub use config::Config;
pub use startup::Application;
