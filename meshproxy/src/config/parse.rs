use serde_json::Value;

use super::{ConfigError, ProxyConfig};
use serin_meshproxy_api::unknown_fields;

/// Reads a config from YAML or JSON and checks it whole. `source_name` (a path, or `admin API`)
/// starts every error message.
pub fn parse_config(source_name: &str, text: &str) -> Result<ProxyConfig, ConfigError> {
    let value = read_value(text).map_err(|e| ConfigError::new("config", "", e).from_source(source_name))?;
    if value.is_null() {
        return Ok(ProxyConfig::default());
    }
    let config: ProxyConfig = serde_path_to_error::deserialize(&value).map_err(|e| {
        let path = e.path().to_string();
        let (object, field) = object_at(&value, &path);
        ConfigError::new(object, field, e.into_inner().to_string()).from_source(source_name)
    })?;

    // The Gateway API types ignore unknown fields; refuse them here. (Serin's own types, the
    // TrafficPolicy among them, refuse them while parsing.)
    let kept = serde_json::to_value(&config).expect("a parsed config serializes");
    for (list, kind) in [("routes", "HTTPRoute")] {
        let sent_items = value.get(list).and_then(Value::as_array).cloned().unwrap_or_default();
        let kept_items = kept.get(list).and_then(Value::as_array).cloned().unwrap_or_default();
        for (sent, kept) in sent_items.iter().zip(&kept_items) {
            let mut found = Vec::new();
            unknown_fields(sent, kept, "", &mut found);
            if let Some(field) = found.first() {
                return Err(
                    ConfigError::new(describe(kind, sent), field.clone(), "unknown field").from_source(source_name)
                );
            }
        }
    }

    super::validate(&config).map_err(|e| e.from_source(source_name))?;
    Ok(config)
}

/// A JSON object (what a controller sends) is read as JSON, which is faster and has no node budget;
/// anything else as YAML, with the parser's budget raised to fit ten thousand services and routes.
fn read_value(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"));
    }
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_nodes: 20_000_000,
            max_events: 50_000_000,
        },
    };
    serde_saphyr::from_str_with_options(text, options).map_err(|e| format!("not valid YAML: {e}"))
}

/// Splits a serde path (`routes[2].spec.rules[0]`) into the object it points into
/// (`HTTPRoute ns/name`) and the field within that object (`spec.rules[0]`).
fn object_at(value: &Value, path: &str) -> (String, String) {
    let whole = || ("config".to_string(), path.to_string());
    let Some((list, rest)) = path.split_once('[') else { return whole() };
    let Some((index, field)) = rest.split_once(']') else { return whole() };
    let Ok(index) = index.parse::<usize>() else { return whole() };
    let kind = match list {
        "services" => "Service",
        "routes" => "HTTPRoute",
        "trafficPolicies" => "TrafficPolicy",
        _ => return whole(),
    };
    let field = field.trim_start_matches('.').to_string();
    match value.get(list).and_then(|l| l.get(index)) {
        Some(item) => (describe(kind, item), field),
        None => whole(),
    }
}

fn describe(kind: &str, item: &Value) -> String {
    let meta = item.get("metadata").unwrap_or(item);
    let name = meta.get("name").and_then(Value::as_str).unwrap_or("<unnamed>");
    let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("default");
    format!("{kind} {namespace}/{name}")
}
