//! Serin's controller: the rollout engine and the platforms that drive it.

// The engine is its own crate (the plugin simulates with it too); these keep its paths.
pub use serin_engine as engine;
pub use serin_engine::{reconcile, simulate};

pub mod analysis;
pub mod api;
pub mod hooks;
pub mod kube;
pub mod outbound;
pub mod route;
pub mod standalone;
pub mod state_file;
