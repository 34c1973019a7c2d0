//! meshproxy's admin API: its paths, what each takes and what it answers. A refused change answers
//! 400 with an [`AdminError`] naming the object and field at fault; the config in use is kept.
//!
//! - `GET /live`, `GET /ready`, `GET /metrics`
//! - `GET /config`: a [`ConfigReply`]
//! - `GET /config/generation`: a [`GenerationReply`], cheap enough to poll
//! - `PUT /config`: a whole [`ProxyConfig`](crate::ProxyConfig), YAML or JSON; answers a [`GenerationReply`]
//! - `PUT /routes/{namespace}/{name}/weights`: [`RouteWeights`]; answers a [`GenerationReply`]

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ProxyConfig;

pub const LIVE_PATH: &str = "/live";
pub const READY_PATH: &str = "/ready";
pub const METRICS_PATH: &str = "/metrics";
pub const CONFIG_PATH: &str = "/config";
pub const GENERATION_PATH: &str = "/config/generation";

/// The path that sets one route's backend weights.
pub fn weights_path(namespace: &str, route: &str) -> String {
    format!("/routes/{namespace}/{route}/weights")
}

/// Backend name to weight, for `PUT /routes/{namespace}/{name}/weights`.
pub type RouteWeights = BTreeMap<String, i32>;

/// `GET /config`: the config in use and its generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigReply {
    pub generation: u64,
    pub config: ProxyConfig,
}

/// The generation of the config in use; it moves on every change, and starts again when meshproxy
/// restarts, which is how a controller notices that it must push its config again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationReply {
    pub generation: u64,
}

/// Why a change was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminError {
    pub error: String,
}
