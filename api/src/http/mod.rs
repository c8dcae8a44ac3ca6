//! The HTTP surface: DTOs, validation and handlers.

pub mod dto;
pub mod future;
pub mod future_dto;
pub mod json_body;
pub mod orders;
pub mod reports;
pub mod security;
pub mod validate;
pub mod validate_future;
