//! The HTTP surface: DTOs, validation and handlers.

pub mod dto;
pub mod future;
pub mod future_dto;
pub mod orders;
pub mod reports;
pub mod validate;
pub mod validate_future;
