//! The one error type of a refused config, shared by the parser and the route table's compiler
//! (which checks what the types cannot), so both name the object and field the same way.

/// Why a config was refused: which object, which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}: {object}: {field}: {message}")]
pub struct ConfigError {
    /// Where the config came from: a file path, or `admin API`.
    pub source_name: String,
    /// `HTTPRoute test/podinfo`, `Service test/podinfo-canary`, or `config` for the top level.
    pub object: String,
    /// The field's path within the object, e.g. `spec.rules[0].backendRefs[1].weight`.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(object: impl Into<String>, field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { source_name: String::new(), object: object.into(), field: field.into(), message: message.into() }
    }

    pub fn from_source(mut self, source_name: &str) -> Self {
        self.source_name = source_name.to_string();
        self
    }
}
