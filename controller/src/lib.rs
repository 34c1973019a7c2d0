//! Serin's controller: the rollout engine and the platforms that drive it.

pub mod analysis;
pub mod engine;
pub mod outbound;
pub mod simulate;
