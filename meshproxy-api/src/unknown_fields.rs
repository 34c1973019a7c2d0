use serde_json::Value;

/// Fields in `sent` that did not survive a round trip through a typed struct: the ones the type
/// does not know. The Gateway API types accept unknown fields silently; meshproxy refuses them, so
/// a misspelt `backendRef` never routes traffic by accident.
pub fn unknown_fields(sent: &Value, kept: &Value, path: &str, found: &mut Vec<String>) {
    match (sent, kept) {
        (Value::Object(sent), Value::Object(kept)) => {
            for (key, value) in sent {
                let here = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match kept.get(key) {
                    Some(kept_value) => unknown_fields(value, kept_value, &here, found),
                    // A null serializes away (an absent Option); it is not an unknown field.
                    None if value.is_null() => {}
                    None => found.push(here),
                }
            }
        }
        (Value::Array(sent), Value::Array(kept)) => {
            for (index, (value, kept_value)) in sent.iter().zip(kept).enumerate() {
                unknown_fields(value, kept_value, &format!("{path}[{index}]"), found);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::unknown_fields;

    #[test]
    fn names_each_dropped_field_with_its_path() {
        let sent = json!({ "spec": { "rules": [{ "backendRefs": [], "backendRef": [{"name": "x"}], "matchez": [] }], "extra": null } });
        let kept = json!({ "spec": { "rules": [{ "backendRefs": [] }] } });
        let mut found = Vec::new();
        unknown_fields(&sent, &kept, "", &mut found);
        assert_eq!(found, vec!["spec.rules[0].backendRef", "spec.rules[0].matchez"]);
    }
}
