//! The `MetricTemplate` kind: a reusable query with the provider that answers it.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A named query against a metrics provider, referenced by a Canary's `analysis.metrics[].templateRef`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "MetricTemplate",
    namespaced,
    category = "serin",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.provider.type"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricTemplateSpec {
    pub provider: MetricProvider,
    /// The query, with `{{ name }}`, `{{ namespace }}`, `{{ target }}`, `{{ service }}`,
    /// `{{ interval }}` and `{{ variables.x }}` placeholders.
    pub query: String,
}

/// Where a template's query is sent.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricProvider {
    /// Provider type, default `prometheus`. Serin answers `prometheus` and `meshproxy` (its own scrape); Flagger's other
    /// types load but are reported as unsupported when a check uses them.
    #[serde(default = "prometheus", rename = "type")]
    #[schemars(extend("enum" = [
        "prometheus", "meshproxy", "influxdb", "datadog", "externalmetrics", "stackdriver",
        "cloudwatch", "newrelic", "graphite", "dynatrace", "keptn", "splunk"
    ]))]
    pub type_: String,
    /// Base URL of the provider, e.g. `http://prometheus:9090`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Extra request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, Vec<String>>,
    /// Secret with `token` (bearer) or `username` and `password` (basic auth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Cloud region, for the providers that need one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Skip TLS verification of `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
}

fn prometheus() -> String {
    "prometheus".to_string()
}

/// A Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    pub name: String,
}
