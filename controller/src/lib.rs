//! Serin's controller: the rollout engine and the platforms that drive it.

pub mod analysis;
pub mod api;
pub mod engine;
pub mod hooks;
pub mod kube;
pub mod outbound;
pub mod reconcile;
pub mod route;
pub mod simulate;
pub mod standalone;
pub mod state_file;
