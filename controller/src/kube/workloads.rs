//! The target Deployment and the `<target>-primary` Deployment the controller owns: building the
//! primary from the target, and reading how ready each is.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::Value;

use super::configs::{ConfigRef, use_primary_copies};
use crate::engine::Readiness;

/// The annotation on the primary naming the revision it runs.
pub const REVISION_ANNOTATION: &str = "serin.dev/revision";

/// The primary Deployment for `target`: the same pod template, every selector label's value given
/// a `-primary` suffix (so the two select different pods), the `tracked` configs replaced by their
/// `-primary` copies, stamped with `revision`.
pub fn primary_from(
    target: &Deployment,
    name: &str,
    revision: &str,
    replicas: i32,
    tracked: &BTreeSet<ConfigRef>,
) -> Deployment {
    let mut template = target.spec.as_ref().map(|s| s.template.clone()).unwrap_or_default();
    use_primary_copies(&mut template, tracked);
    let selector = target.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default();
    let renamed: BTreeMap<String, String> = selector.iter().map(|(k, v)| (k.clone(), format!("{v}-primary"))).collect();
    let labels = template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default);
    for (key, value) in &renamed {
        labels.insert(key.clone(), value.clone());
    }
    let mut annotations = BTreeMap::new();
    annotations.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": target.metadata.namespace,
            "annotations": annotations,
            "labels": copied_labels(target),
        },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": renamed },
            "template": template,
        },
    }))
    .expect("a Deployment")
}

/// The target's labels for the primary, without those by which GitOps tools claim objects (the
/// primary is the controller's: Argo CD must not prune it, Flux and Helm must not adopt it).
fn copied_labels(target: &Deployment) -> BTreeMap<String, String> {
    const CLAIMS: [&str; 2] = ["app.kubernetes.io/instance", "app.kubernetes.io/managed-by"];
    const CLAIM_PREFIXES: [&str; 4] =
        ["argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/", "helm.sh/"];
    let mut labels = target.metadata.labels.clone().unwrap_or_default();
    labels.retain(|key, _| !CLAIMS.contains(&key.as_str()) && !CLAIM_PREFIXES.iter().any(|p| key.starts_with(p)));
    labels
}

/// The pod labels a Deployment's selector picks (for its Service).
pub fn selector_of(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment.spec.as_ref().and_then(|s| s.selector.match_labels.clone()).unwrap_or_default()
}

/// The pod template as JSON, what a revision is computed from.
pub fn template_value(deployment: &Deployment) -> Value {
    serde_json::to_value(deployment.spec.as_ref().map(|s| &s.template)).unwrap_or_default()
}

pub fn replicas(deployment: &Deployment) -> i32 {
    deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// Ready when the newest template is rolled out and available on every replica; failed when the
/// Deployment's own progress deadline passed; pending otherwise, since its last progress.
pub fn readiness(deployment: Option<&Deployment>, what: &str, now: Timestamp) -> Readiness {
    let Some(deployment) = deployment else {
        return Readiness::Pending { reason: format!("{what} does not exist yet"), since: now };
    };
    let wanted = replicas(deployment);
    if wanted == 0 {
        return Readiness::ScaledToZero;
    }
    let status = deployment.status.clone().unwrap_or_default();
    let conditions = status.conditions.clone().unwrap_or_default();
    if let Some(stuck) =
        conditions.iter().find(|c| c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        return Readiness::Failed { reason: format!("{what}: {}", stuck.message.clone().unwrap_or_default()) };
    }
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let total = status.replicas.unwrap_or(0);
    if observed && updated >= wanted && available >= wanted && total <= updated {
        return Readiness::Ready;
    }
    let since = conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.last_update_time.as_ref().map(|t| t.0))
        .or(deployment.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    Readiness::Pending {
        reason: format!("{what}: {available} of {wanted} replicas available, {updated} updated"),
        since,
    }
}
