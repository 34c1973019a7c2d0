//! The target's current revision, computed as the controller computes it (`serin_crds::revision`),
//! so that `wait` waits for the rollout of what the target runs now, never an earlier one.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use kube::{Api, Client};
use serin_crds::canary::Canary;
use serin_crds::revision::{self, ConfigRef};

/// The revision id of the Canary's target as it is now.
pub async fn current(client: &Client, namespace: &str, canary: &Canary) -> anyhow::Result<String> {
    let target = &canary.spec.target_ref;
    let kind = target.kind.as_deref().unwrap_or("Deployment");
    let template = workload_template(client, namespace, kind, &target.name).await?.ok_or_else(|| {
        anyhow::anyhow!("{kind} {namespace}/{} (the Canary's spec.targetRef) does not exist", target.name)
    })?;
    let template = revision::user_template(&template);
    let mut checksums = BTreeMap::new();
    // A config that does not exist is not tracked, as in the controller.
    for config in revision::referenced(&template) {
        let checksum = match &config {
            ConfigRef::ConfigMap(name) => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await?
                .map(|c| revision::config_map_checksum(&c)),
            ConfigRef::Secret(name) => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(name)
                .await?
                .map(|s| revision::secret_checksum(&s)),
        };
        if let Some(checksum) = checksum {
            checksums.insert(config.key(), checksum);
        }
    }
    Ok(revision::revision_id(&serde_json::to_value(&template)?, &checksums))
}

/// The pod template of the workload `kind`/`name`, if it exists.
pub async fn workload_template(
    client: &Client,
    namespace: &str,
    kind: &str,
    name: &str,
) -> anyhow::Result<Option<PodTemplateSpec>> {
    Ok(match kind {
        "Deployment" => Api::<Deployment>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(|d| d.spec.unwrap_or_default().template),
        "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), namespace)
            .get_opt(name)
            .await?
            .map(|d| d.spec.unwrap_or_default().template),
        other => anyhow::bail!("spec.targetRef.kind {other:?}: Serin rolls out Deployments and DaemonSets"),
    })
}
