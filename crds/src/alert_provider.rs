//! The `AlertProvider` kind: a chat or webhook destination for a Canary's alerts.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metric_template::SecretRef;

/// Where alerts go. `address` or a Secret holding `address` (and optionally `token`) is required.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[kube(
    group = "serin.dev",
    version = "v1alpha1",
    kind = "AlertProvider",
    namespaced,
    category = "serin",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("anyOf" = [{"required": ["address"]}, {"required": ["secretRef"]}]))]
pub struct AlertProviderSpec {
    #[serde(rename = "type")]
    pub type_: AlertProviderType,
    /// Channel (Slack, Rocket). Default `general`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Sender name. Default `serin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Webhook URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// HTTP proxy URL for the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Secret with `address` and optionally `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// Alert destinations. `generic` posts a JSON document to any URL (Serin; Flagger has none).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertProviderType {
    #[default]
    Slack,
    Msteams,
    Discord,
    Rocket,
    Gchat,
    Generic,
}
