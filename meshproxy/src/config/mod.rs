//! meshproxy's configuration: services with their endpoints, Gateway API HTTPRoutes, and Serin
//! TrafficPolicies. Read from a YAML file in standalone mode or PUT through the admin API; always
//! checked whole before it replaces the config in use.

mod error;
mod model;
mod parse;
mod unknown_fields;
mod validate;

pub use error::ConfigError;
pub use model::{Endpoint, ProxyConfig, ServiceSpec};
pub use parse::parse_config;
pub use validate::validate;
