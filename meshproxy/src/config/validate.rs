use std::collections::BTreeSet;
use std::net::SocketAddr;

use serin_meshproxy_api::config::UpstreamProtocol;

use super::{ConfigError, ProxyConfig};
use crate::routing::RouteTable;
use crate::state::RuntimeState;

/// Checks what the types cannot: unique services, endpoint addresses, references between objects,
/// and everything the route table needs (regexes, weights, timeouts), by compiling it.
pub fn validate(config: &ProxyConfig) -> Result<(), ConfigError> {
    check_services(config)?;
    // References, policies and everything else the route table needs are checked by compiling it.
    RouteTable::compile(config, &RuntimeState::default()).map(drop)
}

/// The checks that compiling the route table does not make: each service defined once, every
/// endpoint an `ip:port`. The config store runs these and then compiles the table it keeps, so a
/// swap compiles once.
pub fn check_services(config: &ProxyConfig) -> Result<(), ConfigError> {
    let mut seen = BTreeSet::new();
    for (index, service) in config.services.iter().enumerate() {
        let object = format!("Service {}/{}", service.namespace, service.name);
        if service.name.is_empty() {
            return Err(ConfigError::new(format!("services[{index}]"), "name", "must not be empty"));
        }
        if !seen.insert(service.key()) {
            return Err(ConfigError::new(object, "name", "defined more than once"));
        }
        check_app_protocol(&object, "appProtocol", service.app_protocol.as_deref())?;
        for (e, endpoint) in service.endpoints.iter().enumerate() {
            if endpoint.address.parse::<SocketAddr>().is_err() {
                return Err(ConfigError::new(
                    object,
                    format!("endpoints[{e}].address"),
                    format!("{:?} is not an ip:port address", endpoint.address),
                ));
            }
            check_app_protocol(&object, &format!("endpoints[{e}].appProtocol"), endpoint.app_protocol.as_deref())?;
        }
    }
    Ok(())
}

fn check_app_protocol(object: &str, field: &str, value: Option<&str>) -> Result<(), ConfigError> {
    match value {
        Some(value) if UpstreamProtocol::parse(value).is_none() => Err(ConfigError::new(
            object,
            field,
            format!("{value:?} is not a protocol meshproxy speaks to endpoints ({})", UpstreamProtocol::KNOWN),
        )),
        _ => Ok(()),
    }
}
