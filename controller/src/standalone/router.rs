//! Standalone routing: the whole meshproxy config, composed from the endpoint groups, the primary
//! groups the controller owns, the generated HTTPRoute of each Canary (the shared builder in
//! `crate::route`) and the user's own routes and TrafficPolicies; pushed through meshproxy's admin
//! API whenever it differs from what meshproxy runs.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::Full;
use serin_meshproxy_api::ProxyConfig;
use serin_meshproxy_api::admin::{AdminError, CONFIG_PATH, GENERATION_PATH, GenerationReply};

use super::error::MeshproxyError;
use super::manifests::Manifests;
use super::state::{RouteWeights, StandaloneState};
use crate::outbound::Outbound;
use crate::route::canary_route;

const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// The config meshproxy should run now.
pub fn desired_config(manifests: &Manifests, state: &StandaloneState) -> ProxyConfig {
    let mut config = ProxyConfig {
        services: manifests.groups.clone(),
        routes: manifests.routes.clone(),
        traffic_policies: manifests.traffic_policies.clone(),
    };
    for canary in &manifests.canaries {
        let apex = canary.spec.apex_name();
        let record = state.canaries.get(&canary.key());
        if manifests.group(&canary.namespace, apex).is_none() && apex != canary.spec.canary_service_name() {
            // Clients address the apex by name; it has no endpoints of its own, only the route.
            config.services.push(serin_meshproxy_api::ServiceSpec {
                name: apex.to_string(),
                namespace: canary.namespace.clone(),
                ..Default::default()
            });
        }
        let Some(primary) = record.and_then(|r| r.primary.as_ref()) else {
            // Not initialized yet: no primary, so the apex has no route until the first tick.
            continue;
        };
        config.services.push(primary.clone());
        let weights = record.and_then(|r| r.routes).unwrap_or(RouteWeights { primary: 100, canary: 0, mirror: false });
        let status = record.and_then(|r| r.status.as_ref());
        config.routes.push(canary_route(&canary.namespace, &canary.spec, weights.into(), status));
    }
    config
}

/// meshproxy's admin API.
#[derive(Clone)]
pub struct MeshproxyAdmin {
    base: String,
    client: Outbound,
}

impl MeshproxyAdmin {
    pub fn new(base: &str, client: Outbound) -> MeshproxyAdmin {
        MeshproxyAdmin { base: base.trim_end_matches('/').to_string(), client }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The generation of the config meshproxy runs.
    pub async fn generation(&self) -> Result<u64, MeshproxyError> {
        let request = Request::get(format!("{}{GENERATION_PATH}", self.base))
            .body(Full::new(Bytes::new()))
            .expect("a valid request");
        let reply = self.client.send(request, ADMIN_TIMEOUT, false).await.map_err(MeshproxyError::Unreachable)?;
        let body: GenerationReply = serde_json::from_slice(&reply.body)
            .map_err(|_| MeshproxyError::BadReply { status: reply.status, excerpt: reply.body_excerpt(200) })?;
        Ok(body.generation)
    }

    /// Replaces meshproxy's config; meshproxy refuses a bad one and says why.
    pub async fn replace(&self, config: &ProxyConfig) -> Result<u64, MeshproxyError> {
        let body = serde_json::to_vec(config).expect("a config serializes");
        let request = Request::put(format!("{}{CONFIG_PATH}", self.base))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .expect("a valid request");
        let reply = self.client.send(request, ADMIN_TIMEOUT, false).await.map_err(MeshproxyError::Unreachable)?;
        if !reply.status.is_success() {
            let message = serde_json::from_slice::<AdminError>(&reply.body)
                .map(|e| e.error)
                .unwrap_or_else(|_| reply.body_excerpt(600));
            return Err(MeshproxyError::Refused { status: reply.status, message });
        }
        let body: GenerationReply = serde_json::from_slice(&reply.body)
            .map_err(|_| MeshproxyError::BadReply { status: reply.status, excerpt: reply.body_excerpt(200) })?;
        Ok(body.generation)
    }
}
