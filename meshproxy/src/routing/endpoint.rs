//! One address of a backend, with the state the proxy keeps for it.

use std::net::SocketAddr;
use std::sync::Arc;

use serin_meshproxy_api::config::UpstreamProtocol;

use crate::metrics::Label;
use crate::state::EndpointState;

#[derive(Debug, Clone)]
pub struct BackendEndpoint {
    pub address: SocketAddr,
    /// `address` as a URI authority, made once rather than per request.
    pub authority: http::uri::Authority,
    /// The endpoint's `version` label, reported in metrics.
    pub version: Label,
    /// The service port it serves; None: every port.
    pub service_port: Option<u16>,
    /// What to speak to it, whatever the client spoke.
    pub protocol: UpstreamProtocol,
    pub state: Arc<EndpointState>,
}
