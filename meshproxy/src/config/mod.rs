//! meshproxy's configuration: services with their endpoints, Gateway API HTTPRoutes, and Serin
//! TrafficPolicies. Read from a YAML file in standalone mode or PUT through the admin API; always
//! checked whole before it replaces the config in use.

mod parse;
mod validate;

pub use crate::config_error::ConfigError;
// The model is the contract with the controller, defined once in serin-meshproxy-api.
pub use parse::parse_config;
pub use serin_meshproxy_api::config::{Endpoint, ProxyConfig, ServiceSpec, default_namespace};
pub use validate::{check_services, validate};
