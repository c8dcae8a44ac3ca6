//! The HTTP surface: DTOs, validation and handlers.

pub mod contacts;
pub mod dto;
pub mod eventgrid;
pub mod json_body;
pub mod operator;
pub mod orders;
pub mod reports;
pub mod schema_rules;
pub mod security;
pub mod v2;
pub mod v2_dto;
pub mod validate;
pub mod validate_composed;
pub mod validate_v2;
pub mod webhooks;
