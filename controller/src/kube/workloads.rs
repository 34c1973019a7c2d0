//! The target workload (a Deployment or a DaemonSet) and the `<target>-primary` workload of the
//! same kind the controller owns: building the primary from the target, scaling, and reading how
//! ready each is.
//!
//! A DaemonSet has no replica count: it is scaled to zero as Flagger does it, by a node selector
//! that no node carries ([`SCALE_TO_ZERO_LABEL`]), and scaled up by removing it. That selector is
//! the controller's, not the user's: it is left out of the revision and never copied to the primary.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use super::configs::{ConfigRef, use_primary_copies};
use crate::engine::Readiness;

/// The annotation on the primary naming the revision it runs.
pub const REVISION_ANNOTATION: &str = "serin.dev/revision";

pub use serin_crds::revision::SCALE_TO_ZERO_LABEL;

/// The kinds a Canary can target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
}

impl WorkloadKind {
    /// From `spec.targetRef.kind` (Deployment when unset); `None` for a kind not supported.
    pub fn parse(kind: Option<&str>) -> Option<WorkloadKind> {
        match kind.unwrap_or("Deployment") {
            "Deployment" => Some(WorkloadKind::Deployment),
            "DaemonSet" => Some(WorkloadKind::DaemonSet),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// A target or primary workload as read from (or applied to) the cluster.
#[derive(Clone, Debug)]
pub enum Workload {
    Deployment(Deployment),
    DaemonSet(DaemonSet),
}

impl Workload {
    pub fn kind(&self) -> WorkloadKind {
        match self {
            Workload::Deployment(_) => WorkloadKind::Deployment,
            Workload::DaemonSet(_) => WorkloadKind::DaemonSet,
        }
    }

    pub fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Workload::Deployment(d) => &d.metadata,
            Workload::DaemonSet(d) => &d.metadata,
        }
    }

    pub fn meta_mut(&mut self) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
        match self {
            Workload::Deployment(d) => &mut d.metadata,
            Workload::DaemonSet(d) => &mut d.metadata,
        }
    }

    /// The pod template as the user wrote it: without the controller's scale-to-zero selector.
    pub fn template(&self) -> PodTemplateSpec {
        let template = match self {
            Workload::Deployment(d) => d.spec.as_ref().map(|s| &s.template),
            Workload::DaemonSet(d) => d.spec.as_ref().map(|s| &s.template),
        };
        template.map(serin_crds::revision::user_template).unwrap_or_default()
    }

    /// The pod labels the workload's selector picks (for its Service).
    pub fn selector(&self) -> BTreeMap<String, String> {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.selector.match_labels.clone()),
            Workload::DaemonSet(d) => d.spec.as_ref().and_then(|s| s.selector.match_labels.clone()),
        }
        .unwrap_or_default()
    }

    /// The replicas asked for; a DaemonSet asks for one per node, or none when scaled to zero.
    pub fn replicas(&self) -> i32 {
        match self {
            Workload::Deployment(d) => d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            Workload::DaemonSet(_) if self.scaled_to_zero() => 0,
            Workload::DaemonSet(d) => d.status.as_ref().map_or(1, |s| s.desired_number_scheduled.max(1)),
        }
    }

    fn scaled_to_zero(&self) -> bool {
        match self {
            Workload::Deployment(_) => self.replicas() == 0,
            Workload::DaemonSet(d) => d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|s| s.node_selector.as_ref())
                .is_some_and(|selector| selector.contains_key(SCALE_TO_ZERO_LABEL)),
        }
    }

    /// The patch that scales this workload to `replicas` (for a DaemonSet, zero or all nodes).
    pub fn scale_patch(kind: WorkloadKind, replicas: i32) -> Value {
        match kind {
            WorkloadKind::Deployment => serde_json::json!({"spec": {"replicas": replicas}}),
            WorkloadKind::DaemonSet => {
                let value = if replicas == 0 { Value::String("true".into()) } else { Value::Null };
                serde_json::json!({"spec": {"template": {"spec": {"nodeSelector": {SCALE_TO_ZERO_LABEL: value}}}}})
            }
        }
    }

    /// Ready when the newest template runs and is available everywhere it should; failed when a
    /// Deployment's own progress deadline passed; pending otherwise, since its last progress.
    pub fn readiness(&self, what: &str, now: Timestamp) -> Readiness {
        if self.scaled_to_zero() {
            return Readiness::ScaledToZero;
        }
        match self {
            Workload::Deployment(deployment) => deployment_readiness(deployment, what, now),
            Workload::DaemonSet(daemon_set) => daemon_set_readiness(daemon_set, what, now),
        }
    }
}

/// Readiness of a workload that may not exist yet.
pub fn readiness(workload: Option<&Workload>, what: &str, now: Timestamp) -> Readiness {
    match workload {
        Some(workload) => workload.readiness(what, now),
        None => Readiness::Pending { reason: format!("{what} does not exist yet"), since: now },
    }
}

/// The primary workload for `target`, of the same kind: the same pod template, every selector
/// label's value given a `-primary` suffix (so the two select different pods), the `tracked`
/// configs replaced by their `-primary` copies, stamped with `revision`.
pub fn primary_from(
    target: &Workload,
    name: &str,
    revision: &str,
    replicas: i32,
    tracked: &BTreeSet<ConfigRef>,
) -> Workload {
    let mut template = target.template();
    use_primary_copies(&mut template, tracked);
    let renamed: BTreeMap<String, String> =
        target.selector().iter().map(|(k, v)| (k.clone(), format!("{v}-primary"))).collect();
    let labels = template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(Default::default);
    for (key, value) in &renamed {
        labels.insert(key.clone(), value.clone());
    }
    let mut annotations = BTreeMap::new();
    annotations.insert(REVISION_ANNOTATION.to_string(), revision.to_string());
    let mut spec = serde_json::json!({
        "selector": { "matchLabels": renamed },
        "template": template,
    });
    if target.kind() == WorkloadKind::Deployment {
        spec["replicas"] = replicas.into();
    }
    let object = serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": target.kind().as_str(),
        "metadata": {
            "name": name,
            "namespace": target.meta().namespace,
            "annotations": annotations,
            "labels": copied_labels(target),
        },
        "spec": spec,
    });
    match target.kind() {
        WorkloadKind::Deployment => Workload::Deployment(serde_json::from_value(object).expect("a Deployment")),
        WorkloadKind::DaemonSet => Workload::DaemonSet(serde_json::from_value(object).expect("a DaemonSet")),
    }
}

/// The target's labels for the primary, without those by which GitOps tools claim objects (the
/// primary is the controller's: Argo CD must not prune it, Flux and Helm must not adopt it).
fn copied_labels(target: &Workload) -> BTreeMap<String, String> {
    const CLAIMS: [&str; 2] = ["app.kubernetes.io/instance", "app.kubernetes.io/managed-by"];
    const CLAIM_PREFIXES: [&str; 4] =
        ["argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.toolkit.fluxcd.io/", "helm.sh/"];
    let mut labels = target.meta().labels.clone().unwrap_or_default();
    labels.retain(|key, _| !CLAIMS.contains(&key.as_str()) && !CLAIM_PREFIXES.iter().any(|p| key.starts_with(p)));
    labels
}

/// The pod template as JSON, what a revision is computed from.
pub fn template_value(workload: &Workload) -> Value {
    serde_json::to_value(workload.template()).unwrap_or_default()
}

fn deployment_readiness(deployment: &Deployment, what: &str, now: Timestamp) -> Readiness {
    let wanted = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
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

/// A DaemonSet is ready when every node that should run it runs the newest template and each of
/// those pods is available. It has no progress condition: it is pending since its spec last
/// changed (the newest write to it that was not a status update).
fn daemon_set_readiness(daemon_set: &DaemonSet, what: &str, now: Timestamp) -> Readiness {
    let status = daemon_set.status.clone().unwrap_or_default();
    let generation = daemon_set.metadata.generation.unwrap_or(0);
    let observed = status.observed_generation.unwrap_or(0) >= generation;
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    let available = status.number_available.unwrap_or(0);
    let unavailable = status.number_unavailable.unwrap_or(0);
    if observed && updated >= desired && available >= desired && unavailable == 0 {
        return Readiness::Ready;
    }
    let since = daemon_set
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref().unwrap_or_default().is_empty())
        .filter_map(|f| f.time.as_ref().map(|t| t.0))
        .max()
        .or(daemon_set.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    Readiness::Pending {
        reason: format!("{what}: {available} of {desired} scheduled pods available, {updated} updated"),
        since,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_set(node_selector: Value) -> Workload {
        Workload::DaemonSet(
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "agent", "namespace": "test", "labels": {"app": "agent", "helm.sh/chart": "x"}},
                "spec": {
                    "selector": {"matchLabels": {"app": "agent"}},
                    "template": {
                        "metadata": {"labels": {"app": "agent"}},
                        "spec": {"nodeSelector": node_selector, "containers": [{"name": "a", "image": "agent:v1"}]},
                    },
                },
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_daemon_set_scaled_to_zero_keeps_its_revision_and_its_primary_never_gets_the_selector() {
        let running = daemon_set(serde_json::json!({"disk": "ssd"}));
        let parked = daemon_set(serde_json::json!({"disk": "ssd", SCALE_TO_ZERO_LABEL: "true"}));
        assert_eq!(template_value(&running), template_value(&parked), "scaling is not a new revision");
        assert_eq!(parked.readiness("agent", Timestamp::now()), Readiness::ScaledToZero);
        assert_eq!(parked.replicas(), 0);

        let primary = primary_from(&parked, "agent-primary", "r1", 3, &BTreeSet::new());
        let Workload::DaemonSet(primary) = primary else { panic!("a DaemonSet's primary is a DaemonSet") };
        let spec = primary.spec.unwrap();
        assert_eq!(spec.template.spec.unwrap().node_selector.unwrap(), BTreeMap::from([("disk".into(), "ssd".into())]));
        assert_eq!(spec.selector.match_labels.unwrap()["app"], "agent-primary");
        assert!(!primary.metadata.labels.unwrap().contains_key("helm.sh/chart"), "GitOps claims are not copied");
    }

    #[test]
    fn scaling_a_daemon_set_sets_or_removes_the_selector() {
        let down = Workload::scale_patch(WorkloadKind::DaemonSet, 0);
        assert_eq!(down["spec"]["template"]["spec"]["nodeSelector"][SCALE_TO_ZERO_LABEL], "true");
        let up = Workload::scale_patch(WorkloadKind::DaemonSet, 5);
        assert!(up["spec"]["template"]["spec"]["nodeSelector"][SCALE_TO_ZERO_LABEL].is_null());
        assert_eq!(Workload::scale_patch(WorkloadKind::Deployment, 2)["spec"]["replicas"], 2);
    }

    #[test]
    fn a_daemon_set_is_pending_until_every_scheduled_pod_is_updated_and_available() {
        let mut workload = daemon_set(Value::Null);
        let Workload::DaemonSet(daemon_set) = &mut workload else { unreachable!() };
        daemon_set.metadata.generation = Some(2);
        daemon_set.status = Some(
            serde_json::from_value(serde_json::json!({
                "observedGeneration": 2, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
                "numberMisscheduled": 0, "numberReady": 1, "updatedNumberScheduled": 2,
                "numberAvailable": 1, "numberUnavailable": 1,
            }))
            .unwrap(),
        );
        let now = Timestamp::now();
        match workload.readiness("agent", now) {
            Readiness::Pending { reason, .. } => {
                assert_eq!(reason, "agent: 1 of 2 scheduled pods available, 2 updated")
            }
            other => panic!("{other:?}"),
        }
        let Workload::DaemonSet(daemon_set) = &mut workload else { unreachable!() };
        let status = daemon_set.status.as_mut().unwrap();
        (status.number_available, status.number_unavailable) = (Some(2), None);
        assert_eq!(workload.readiness("agent", now), Readiness::Ready);
    }
}
