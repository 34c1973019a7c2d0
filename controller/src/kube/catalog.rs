//! What a Canary's analysis and alerts read from the cluster: the MetricTemplates and
//! AlertProviders it names, and the Secrets those name. Read when needed, not cached: a fixed
//! template or a created Secret takes effect at the next check. One that is missing is simply not
//! in the catalog, and the analysis or the alert says which one.

use std::collections::BTreeMap;

use ::kube::Api;
use ::kube::Client;
use k8s_openapi::api::core::v1::Secret;
use serin_crds::alert_provider::{AlertProvider, AlertProviderSpec};
use serin_crds::metric_template::MetricTemplate;

use crate::analysis::{Catalog, ObjectKey};
use crate::reconcile::CanaryRef;

/// The MetricTemplates the Canary's metrics name, with their secrets.
pub async fn metric_catalog(client: &Client, canary: CanaryRef<'_>) -> Catalog {
    let mut catalog = Catalog::default();
    for metric in &canary.spec.analysis.metrics {
        let Some(reference) = &metric.template_ref else { continue };
        let namespace = reference.namespace.clone().unwrap_or_else(|| canary.namespace.to_string());
        let api: Api<MetricTemplate> = Api::namespaced(client.clone(), &namespace);
        let Some(template) = fetch(&api, &namespace, &reference.name).await else { continue };
        if let Some(secret) = &template.spec.provider.secret_ref {
            add_secret(client, &mut catalog, &namespace, &secret.name).await;
        }
        catalog.templates.insert((namespace, reference.name.clone()), template.spec);
    }
    catalog
}

/// The AlertProviders the Canary's alerts name (by namespace and name), and their secrets.
pub async fn alert_directory(
    client: &Client,
    canary: CanaryRef<'_>,
) -> (BTreeMap<ObjectKey, (String, AlertProviderSpec)>, Catalog) {
    let mut providers = BTreeMap::new();
    let mut catalog = Catalog::default();
    for alert in &canary.spec.analysis.alerts {
        let namespace = alert.provider_ref.namespace.clone().unwrap_or_else(|| canary.namespace.to_string());
        let name = alert.provider_ref.name.clone();
        let api: Api<AlertProvider> = Api::namespaced(client.clone(), &namespace);
        let Some(provider) = fetch(&api, &namespace, &name).await else { continue };
        if let Some(secret) = &provider.spec.secret_ref {
            add_secret(client, &mut catalog, &namespace, &secret.name).await;
        }
        providers.insert((namespace.clone(), name.clone()), (format!("{namespace}/{name}"), provider.spec));
    }
    (providers, catalog)
}

/// The object, or `None` when it does not exist or cannot be read (which is logged: a forbidden
/// read would otherwise look like a missing object).
async fn fetch<K>(api: &Api<K>, namespace: &str, name: &str) -> Option<K>
where
    K: ::kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    match api.get_opt(name).await {
        Ok(found) => found,
        Err(problem) => {
            let kind = K::kind(&Default::default()).into_owned();
            tracing::warn!(%problem, "cannot read {kind} {namespace}/{name}");
            None
        }
    }
}

/// A Secret's data as text, the way a mounted Secret reads.
async fn add_secret(client: &Client, catalog: &mut Catalog, namespace: &str, name: &str) {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = fetch(&api, namespace, name).await else { return };
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in secret.data.unwrap_or_default() {
        data.insert(key, String::from_utf8_lossy(&value.0).into_owned());
    }
    for (key, value) in secret.string_data.unwrap_or_default() {
        data.insert(key, value);
    }
    catalog.secrets.insert((namespace.to_string(), name.to_string()), data);
}
