//! The HTTP surface: DTOs, validation and handlers.

pub mod dto;
pub mod orders;
pub mod reports;
pub mod validate;
