//! Serin's controller: the rollout engine and the platforms that drive it.

pub mod engine;
pub mod simulate;
