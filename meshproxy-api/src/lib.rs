//! The one contract between Serin's controller and meshproxy. Both sides use these types and names
//! and nothing else: the config meshproxy runs ([`config`]), what its admin API takes and answers
//! ([`admin`]), and the names and labels of the metrics the analysis reads ([`metrics`]).
//!
//! No I/O lives here, so the controller can depend on it without pulling in the proxy.

pub mod admin;
pub mod config;
pub mod metrics;
mod unknown_fields;

pub use config::{Endpoint, ProxyConfig, ServiceSpec};
pub use unknown_fields::unknown_fields;
