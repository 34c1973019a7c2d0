//! Reading Serin objects from YAML with errors that say which document, which object and which field
//! is wrong: the loader behind `crdgen`'s tests, the examples' tests, `simulate` and standalone mode.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::validation::{self, FieldError};
use crate::{API_VERSION, AlertProvider, Canary, MetricTemplate, TrafficPolicy};

/// One object read from a manifest.
#[derive(Debug, Clone)]
pub enum Manifest {
    Canary(Box<Canary>),
    MetricTemplate(Box<MetricTemplate>),
    AlertProvider(Box<AlertProvider>),
    TrafficPolicy(Box<TrafficPolicy>),
    /// Any other kind (Deployments, Services, HTTPRoutes...), kept as parsed.
    Other {
        api_version: String,
        kind: String,
        name: String,
        value: Value,
    },
}

/// Why a manifest could not be read. Says where: the source (usually a file), the document's position
/// in it, the object's kind and name, and the field.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{source_name}: not valid YAML: {message}")]
    Yaml { source_name: String, message: String },
    #[error("{source_name}: document {document}: {message}")]
    Document { source_name: String, document: usize, message: String },
    #[error("{0}")]
    Field(Box<FieldProblem>),
}

/// A field of one object that is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {document}: {kind} {name:?}: {field}: {message}")]
pub struct FieldProblem {
    pub source_name: String,
    pub document: usize,
    pub kind: String,
    pub name: String,
    pub field: String,
    pub message: String,
}

const TOP_LEVEL_KEYS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// The documents of a YAML stream, each as JSON.
fn documents(source_name: &str, text: &str) -> Result<Vec<Value>, ManifestError> {
    // Manifests are the operator's own files, and a folder may hold thousands of Canaries in one
    // stream: the parser's default budget (1,024 documents, 250,000 nodes) is raised to fit them,
    // still bounded.
    let options = serde_saphyr::options! {
        budget: serde_saphyr::budget! {
            max_documents: 100_000,
            max_nodes: 20_000_000,
            max_events: 50_000_000,
        },
    };
    let documents: Vec<Value> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| ManifestError::Yaml { source_name: source_name.to_string(), message: e.to_string() })?;
    Ok(documents)
}

/// Reads every document of a YAML stream. `source_name` (a path, usually) is used in errors.
pub fn parse_all(source_name: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    documents(source_name, text)?
        .into_iter()
        .enumerate()
        .filter(|(_, doc)| !doc.is_null())
        .map(|(i, doc)| check_document(source_name, i + 1, doc).map_err(|mut all| all.remove(0)))
        .collect()
}

/// Every problem of every document, not only the first: what `kubectl serin lint` reports.
pub fn lint(source_name: &str, text: &str) -> (usize, Vec<ManifestError>) {
    let documents = match documents(source_name, text) {
        Ok(documents) => documents,
        Err(error) => return (0, vec![error]),
    };
    let mut count = 0;
    let mut problems = Vec::new();
    for (i, doc) in documents.into_iter().enumerate().filter(|(_, doc)| !doc.is_null()) {
        count += 1;
        if let Err(found) = check_document(source_name, i + 1, doc) {
            problems.extend(found);
        }
    }
    (count, problems)
}

/// Checks one document; every rule it breaks once it is well-typed, else the first problem.
fn check_document(source_name: &str, document: usize, doc: Value) -> Result<Manifest, Vec<ManifestError>> {
    let doc_err = |message: String| ManifestError::Document { source_name: source_name.to_string(), document, message };
    let Value::Object(map) = &doc else {
        return Err(vec![doc_err("expected a mapping with apiVersion, kind and metadata".to_string())]);
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or_default().to_string();
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    let name = map.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
    if api_version.is_empty() || kind.is_empty() {
        return Err(vec![doc_err("missing apiVersion or kind".to_string())]);
    }
    let field_err = |field: String, message: String| {
        ManifestError::Field(Box::new(FieldProblem {
            source_name: source_name.to_string(),
            document,
            kind: kind.clone(),
            name: name.clone(),
            field,
            message,
        }))
    };
    if api_version == "flagger.app/v1beta1" {
        return Err(vec![field_err(
            "apiVersion".into(),
            format!("this is a Flagger object; change apiVersion to {API_VERSION} (the fields are the same)"),
        )]);
    }
    if api_version != API_VERSION {
        return Ok(Manifest::Other { api_version, kind, name, value: doc });
    }
    if name.is_empty() {
        return Err(vec![field_err("metadata.name".into(), "is required".into())]);
    }
    // The generated root types accept any top-level key; a typo there must not vanish silently.
    if let Some(unknown) = map.keys().find(|k| !TOP_LEVEL_KEYS.contains(&k.as_str())) {
        return Err(vec![field_err(
            unknown.clone(),
            format!("unknown field, expected one of {}", TOP_LEVEL_KEYS.join(", ")),
        )]);
    }
    if kind == "Canary" && map.get("spec").and_then(|s| s.get("canaryAnalysis")).is_some() {
        return Err(vec![field_err(
            "spec.canaryAnalysis".into(),
            "Flagger's deprecated name for spec.analysis: rename it to analysis".into(),
        )]);
    }
    let manifest = match kind.as_str() {
        "Canary" => {
            let canary: Canary = typed(doc).map_err(|(f, m)| vec![field_err(f, m)])?;
            all_errors(validation::validate_canary(&canary.spec), &field_err)?;
            Manifest::Canary(Box::new(canary))
        }
        "MetricTemplate" => Manifest::MetricTemplate(Box::new(typed(doc).map_err(|(f, m)| vec![field_err(f, m)])?)),
        "AlertProvider" => {
            let provider: AlertProvider = typed(doc).map_err(|(f, m)| vec![field_err(f, m)])?;
            if provider.spec.address.is_none() && provider.spec.secret_ref.is_none() {
                return Err(vec![field_err("spec".into(), "set address or secretRef".into())]);
            }
            Manifest::AlertProvider(Box::new(provider))
        }
        "TrafficPolicy" => {
            let policy: TrafficPolicy = typed(doc).map_err(|(f, m)| vec![field_err(f, m)])?;
            all_errors(validation::validate_traffic_policy(&policy.spec), &field_err)?;
            Manifest::TrafficPolicy(Box::new(policy))
        }
        other => {
            return Err(vec![field_err(
                "kind".into(),
                format!("{API_VERSION} has no kind {other:?} (Canary, MetricTemplate, AlertProvider, TrafficPolicy)"),
            )]);
        }
    };
    Ok(manifest)
}

fn all_errors(
    errors: Vec<FieldError>,
    field_err: &impl Fn(String, String) -> ManifestError,
) -> Result<(), Vec<ManifestError>> {
    if errors.is_empty() {
        return Ok(());
    }
    Err(errors.into_iter().map(|e| field_err(e.path, e.message)).collect())
}

/// Deserializes with the path of the failing field: `(path, message)`.
fn typed<T: DeserializeOwned>(doc: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { "(root)".to_string() } else { path };
        (path, e.into_inner().to_string())
    })
}

/// Reads exactly one Canary from a YAML stream (other documents are ignored).
pub fn parse_canary(source_name: &str, text: &str) -> Result<Canary, ManifestError> {
    let canaries: Vec<Canary> = parse_all(source_name, text)?
        .into_iter()
        .filter_map(|m| match m {
            Manifest::Canary(c) => Some(*c),
            _ => None,
        })
        .collect();
    match <[Canary; 1]>::try_from(canaries) {
        Ok([canary]) => Ok(canary),
        Err(found) => Err(ManifestError::Document {
            source_name: source_name.to_string(),
            document: 0,
            message: format!("expected exactly one Canary, found {}", found.len()),
        }),
    }
}
