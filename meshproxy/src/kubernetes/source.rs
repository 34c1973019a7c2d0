//! Watches Services, EndpointSlices, HTTPRoutes, TrafficPolicies and pods' labels, and rebuilds
//! the config whenever one changes. Changes that arrive together (a rollout step touches a route
//! and, soon after, endpoints) are coalesced for a few milliseconds, then the config is built whole
//! and swapped in if it differs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use gateway_api::apis::standard::httproutes::HttpRoute;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serin_crds::TrafficPolicy;
use tokio::sync::Notify;

use super::apply::apply;
use super::translate::{ClusterObjects, PodFacts, build_config};
use crate::store::ConfigStore;

/// How long a change waits for others before the config is rebuilt.
const COALESCE: Duration = Duration::from_millis(10);

/// Which namespaces a meshproxy serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A waypoint for one namespace (the usual case, as Istio's waypoints).
    Namespace(String),
    All,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{kind} ({api_version}) is not served by the apiserver: {install} (meshproxy --kubernetes reads it)")]
    MissingKind { kind: &'static str, api_version: &'static str, install: &'static str },
    #[error("cannot list {kind} to start watching: {source}")]
    Api { kind: &'static str, source: kube::Error },
}

/// The watches' stores.
struct Stores {
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    routes: Store<HttpRoute>,
    policies: Store<TrafficPolicy>,
    pods: Store<PartialObjectMeta<Pod>>,
}

/// Checks that every kind is served, then watches them and keeps `store` in step, forever. The
/// store is marked ready once the first complete config is in.
pub async fn run(client: Client, scope: Scope, store: Arc<ConfigStore>) -> Result<(), SourceError> {
    preflight(&client, &scope).await?;
    let changed = Arc::new(Notify::new());
    let stores = Stores {
        services: watch(api(&client, &scope), &changed, without_managed_fields),
        slices: watch(api(&client, &scope), &changed, without_managed_fields),
        routes: watch(api(&client, &scope), &changed, without_managed_fields),
        policies: watch(api(&client, &scope), &changed, without_managed_fields),
        pods: watch(api(&client, &scope), &changed, labels_only),
    };
    let _ = stores.services.wait_until_ready().await;
    let _ = stores.slices.wait_until_ready().await;
    let _ = stores.routes.wait_until_ready().await;
    let _ = stores.policies.wait_until_ready().await;
    let _ = stores.pods.wait_until_ready().await;
    tracing::info!(?scope, "cluster objects listed; serving their config");
    rebuild(&stores, &store);
    store.mark_ready();
    loop {
        changed.notified().await;
        tokio::time::sleep(COALESCE).await;
        rebuild(&stores, &store);
    }
}

fn rebuild(stores: &Stores, store: &ConfigStore) {
    let started = Instant::now();
    let pods: BTreeMap<(String, String), PodFacts> = stores
        .pods
        .state()
        .iter()
        .map(|pod| {
            let key =
                (pod.metadata.namespace.clone().unwrap_or_default(), pod.metadata.name.clone().unwrap_or_default());
            (key, PodFacts::of(pod.metadata.labels.as_ref().unwrap_or(&BTreeMap::new())))
        })
        .collect();
    let pod_facts = |namespace: &str, name: &str| pods.get(&(namespace.to_string(), name.to_string())).cloned();
    let config = build_config(&ClusterObjects {
        services: &stores.services.state(),
        slices: &stores.slices.state(),
        routes: &stores.routes.state(),
        policies: &stores.policies.state(),
        pod_facts: &pod_facts,
    });
    let applied = apply(store, config);
    for error in &applied.left_out {
        tracing::warn!(%error, "left out of the config; the rest is served");
    }
    if let Some(generation) = applied.generation {
        tracing::info!(generation, took_ms = started.elapsed().as_millis() as u64, "config from the cluster applied");
    }
}

fn api<K>(client: &Client, scope: &Scope) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match scope {
        Scope::Namespace(namespace) => Api::namespaced(client.clone(), namespace),
        Scope::All => Api::all(client.clone()),
    }
}

/// A reflector over `api`, each object trimmed by `trim` before it is stored, waking `changed` on
/// every event.
fn watch<K>(api: Api<K>, changed: &Arc<Notify>, trim: fn(&mut K)) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + Sync + 'static,
    <K as Resource>::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let changed = changed.clone();
    let kind = K::kind(&Default::default()).to_string();
    let stream = watcher(api, watcher::Config::default()).default_backoff().modify(trim).reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            match stream.try_next().await {
                Ok(Some(_)) => changed.notify_one(),
                Ok(None) => break,
                Err(error) => tracing::warn!(%kind, %error, "watch failed; retrying with back-off"),
            }
        }
    });
    reader
}

/// What meshproxy never reads of an object.
fn without_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A pod as meshproxy keeps it: its labels (an Api over PartialObjectMeta asks for metadata only).
fn labels_only(pod: &mut PartialObjectMeta<Pod>) {
    pod.metadata.managed_fields = None;
    pod.metadata.annotations = None;
    pod.metadata.owner_references = None;
}

/// One clear error per kind the apiserver does not serve, instead of watches retrying forever.
async fn preflight(client: &Client, scope: &Scope) -> Result<(), SourceError> {
    let probe = kube::api::ListParams::default().limit(1);
    let missing = |error: &kube::Error| matches!(error, kube::Error::Api(status) if status.code == 404);
    if let Err(error) = api::<HttpRoute>(client, scope).list_metadata(&probe).await {
        if missing(&error) {
            return Err(SourceError::MissingKind {
                kind: "HTTPRoute",
                api_version: "gateway.networking.k8s.io/v1",
                install: "install the Gateway API CRDs (standard channel)",
            });
        }
        return Err(SourceError::Api { kind: "HTTPRoute", source: error });
    }
    if let Err(error) = api::<TrafficPolicy>(client, scope).list_metadata(&probe).await {
        if missing(&error) {
            return Err(SourceError::MissingKind {
                kind: "TrafficPolicy",
                api_version: "serin.dev/v1alpha1",
                install: "install Serin's CRDs (kubectl apply --server-side -f crds/)",
            });
        }
        return Err(SourceError::Api { kind: "TrafficPolicy", source: error });
    }
    for (kind, result) in [
        ("Service", api::<Service>(client, scope).list_metadata(&probe).await.map(drop)),
        ("EndpointSlice", api::<EndpointSlice>(client, scope).list_metadata(&probe).await.map(drop)),
        ("Pod", api::<Pod>(client, scope).list_metadata(&probe).await.map(drop)),
    ] {
        result.map_err(|source| SourceError::Api { kind, source })?;
    }
    Ok(())
}
