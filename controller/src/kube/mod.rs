//! Kubernetes mode: a kube-runtime controller over `Canary`, also woken by the workloads it
//! targets and the objects it owns, running the shared reconcile routine through [`KubePlatform`].
//!
//! What exists: Deployment and DaemonSet targets; bootstrap (the `-primary` workload, the apex, primary
//! and canary Services, the HTTPRoute with all traffic on the primary, the target scaled to zero),
//! steering a user's own apex Service without owning it; a `-primary` HorizontalPodAutoscaler with
//! `autoscalerRef`; route weights, scaling and promotion as server-side applies with one field
//! manager; status on the status subresource; events through events.k8s.io; webhooks; metrics and
//! alerts, with MetricTemplates, AlertProviders and their Secrets read from the cluster; operator
//! requests and gates through the `serin.dev/request` annotation, gates kept in the status; the
//! ConfigMaps and Secrets the target uses tracked in its revision, the primary running on
//! `-primary` copies; revertOnDeletion behind a finalizer; Lease leader election; the controller's
//! own metrics; the apex Service pointed at the namespace's waypoint (meshproxy), which serves the
//! routes.

mod catalog;
mod configs;
mod error;
pub mod leader;
mod metrics;
mod platform;
mod pods;
pub mod requests;
mod services;
mod waypoint;
mod workloads;

use std::sync::Arc;
use std::time::Duration;

use ::kube::core::PartialObjectMeta;
use ::kube::runtime::controller::{Action as Requeue, Controller};
use ::kube::runtime::events::{Recorder, Reporter};
use ::kube::runtime::reflector::{ObjectRef, Store};
use ::kube::runtime::utils::Predicate as _;
use ::kube::runtime::{WatchStreamExt, predicates, watcher};
use ::kube::{Api, Client, ResourceExt};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use serin_crds::canary::Canary;

pub use error::KubeError;
pub use metrics::ControllerMetrics;
pub use platform::KubePlatform;

use crate::analysis::MetricSources;
use crate::hooks::alerts::AlertSender;
use crate::hooks::webhook::WebhookCaller;
use crate::reconcile::{CanaryRef, reconcile};

/// The field manager of every object the controller applies.
pub const FIELD_MANAGER: &str = "serin-controller";
/// Holds a Canary's deletion until the target is restored (`revertOnDeletion`).
pub const FINALIZER: &str = "serin.dev/finalizer";

/// Reconciles at once unless told otherwise (Argo Rollouts runs 10 workers, Flagger 2).
pub const DEFAULT_WORKERS: u16 = 10;

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// Watch only this namespace (all when `None`).
    pub namespace: Option<String>,
    pub metrics: MetricSources,
    pub webhooks: WebhookCaller,
    pub alerts: AlertSender,
    pub recorder: Recorder,
    /// The controller's own metrics, served on `/metrics`.
    pub telemetry: ControllerMetrics,
    /// The Canaries as the controller last saw them, once it runs (for the gate checks).
    pub canaries: std::sync::OnceLock<Store<Canary>>,
    /// Reconcile only Canaries labelled with this controller instance (`None`: only those without
    /// the label); see `serin_crds::CONTROLLER_INSTANCE_LABEL`.
    pub instance: Option<String>,
    /// How many Canaries reconcile at once: bounded, so that a thousand Canaries waking together
    /// (a restart, a namespace-wide change) queue up rather than flood the API server and the heap.
    pub workers: u16,
    /// When each Canary's next tick is due, to measure how late ticks run.
    due: std::sync::Mutex<std::collections::HashMap<(String, String), std::time::Instant>>,
}

impl Context {
    pub fn new(client: Client, namespace: Option<String>, metrics: MetricSources) -> Context {
        let webhooks = WebhookCaller::new(metrics.client.clone());
        let alerts = AlertSender::new(metrics.client.clone());
        let recorder = Recorder::new(client.clone(), Reporter { controller: FIELD_MANAGER.into(), instance: None });
        let telemetry = ControllerMetrics::new();
        Context {
            client,
            namespace,
            metrics,
            webhooks,
            alerts,
            recorder,
            telemetry,
            canaries: Default::default(),
            instance: None,
            workers: DEFAULT_WORKERS,
            due: Default::default(),
        }
    }

    /// Whether `gate` of the Canary `namespace/name` is open; `None` for a Canary it does not know.
    pub fn gate_is_open(&self, namespace: &str, name: &str, gate: &str) -> Option<bool> {
        let canary = self.canaries.get()?.get(&ObjectRef::new(name).within(namespace))?;
        Some(canary.status.as_ref().is_some_and(|s| s.open_gates.contains(gate)))
    }

    fn api<K>(&self) -> Api<K>
    where
        K: ::kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as ::kube::Resource>::DynamicType: Default,
    {
        match &self.namespace {
            Some(namespace) => Api::namespaced(self.client.clone(), namespace),
            None => Api::all(self.client.clone()),
        }
    }
}

/// A kind the controller cannot work without, and how to install it.
pub struct RequiredKind {
    pub resource: ::kube::api::ApiResource,
    pub install: &'static str,
}

/// The kinds the controller reads and writes that are not built into Kubernetes.
pub fn required_kinds() -> Vec<RequiredKind> {
    vec![
        RequiredKind {
            resource: ::kube::api::ApiResource::erase::<Canary>(&()),
            install: "kubectl apply --server-side -f crds/ (or install the chart)",
        },
        RequiredKind {
            resource: ::kube::api::ApiResource::erase::<gateway_api::apis::standard::httproutes::HttpRoute>(&()),
            install: "install the Gateway API CRDs (standard channel)",
        },
    ]
}

/// Checks, before starting, that every required kind is served and may be listed where the
/// controller watches (`namespace`, else the whole cluster): one message naming each missing kind
/// and how to install it, or each missing right, instead of a controller that retries forever.
pub async fn preflight(client: &Client, namespace: Option<&str>, kinds: &[RequiredKind]) -> Result<(), Vec<String>> {
    let mut missing = Vec::new();
    let scope = namespace.map_or("cluster-wide".to_string(), |n| format!("in namespace {n}"));
    for kind in kinds {
        let api: Api<::kube::api::DynamicObject> = match namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &kind.resource),
            None => Api::all_with(client.clone(), &kind.resource),
        };
        match api.list(&::kube::api::ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(::kube::Error::Api(status)) if status.code == 404 => missing.push(format!(
                "{} ({}/{}) is not installed: {}",
                kind.resource.kind, kind.resource.group, kind.resource.version, kind.install
            )),
            Err(::kube::Error::Api(status)) if status.code == 403 => missing.push(format!(
                "the controller may not list {} {scope} (give its service account the chart's or \
                 deploy/controller.yaml's RBAC): {}",
                kind.resource.plural, status.message
            )),
            Err(problem) => missing.push(format!("cannot list {} {scope}: {problem}", kind.resource.plural)),
        }
    }
    if missing.is_empty() { Ok(()) } else { Err(missing) }
}

/// The label selector of the Canaries this controller runs: those of its instance, or, without
/// one, those that name none.
fn mine(context: &Context) -> String {
    let label = serin_crds::CONTROLLER_INSTANCE_LABEL;
    match &context.instance {
        Some(instance) => format!("{label}={instance}"),
        None => format!("!{label}"),
    }
}

/// One replica of several: keeps a store of the Canaries for the API (gate checks, operator
/// requests) whether or not it leads, and reconciles them while it holds the lease. Without the
/// store a replica that does not lead would answer every gate check and request with "no such
/// Canary", while the Service sends it its share of them. The leader's controller keeps its own
/// store (a second copy of the Canaries, the price of that answer).
pub async fn run_replica(context: Arc<Context>, lease: &leader::LeaseConfig) -> Result<(), KubeError> {
    let (store, writer) = ::kube::runtime::reflector::store();
    let mirror = watcher(context.api::<Canary>(), watcher::Config::default().labels(&mine(&context)))
        .default_backoff()
        .modify(|canary| canary.managed_fields_mut().clear())
        .reflect(writer)
        .for_each(|_| async {});
    let _ = context.canaries.set(store);
    let client = context.client.clone();
    tokio::select! {
        led = leader::lead(&client, lease, run(context)) => led,
        () = mirror => Ok(()),
    }
}

/// Reconciles every Canary in the cluster (or the context's namespace) until the process ends.
pub async fn run(context: Arc<Context>) {
    let (store, writer) = ::kube::runtime::reflector::store();
    let canaries = watcher(context.api::<Canary>(), watcher::Config::default().labels(&mine(&context)))
        .default_backoff()
        // The store holds every Canary for the life of the process; managedFields are about half
        // of each and nothing here reads them.
        .modify(|canary| canary.managed_fields_mut().clear())
        .reflect(writer)
        .applied_objects()
        // Only a change by someone else wakes a Canary: its spec, an annotation (an operator
        // request), its labels, or its deletion. Without this, the controller's own status write
        // at every tick would wake the Canary once more, doubling the work.
        .predicate_filter(
            predicates::generation
                .combine(predicates::annotations)
                .combine(predicates::labels)
                .combine(|canary: &Canary| canary.metadata.deletion_timestamp.as_ref().map(|_| 1)),
            Default::default(),
        );
    let controller = Controller::for_stream(canaries, store.clone())
        .with_config(::kube::runtime::controller::Config::default().concurrency(context.workers));
    // The API reads this store, unless a replica's own (run_replica) was set first.
    let _ = context.canaries.set(store.clone());
    let (deployment_store, daemon_set_store) = (store.clone(), store.clone());
    let config_store = store.clone();
    let secret_store = store.clone();
    controller
        .owns(context.api::<Deployment>(), watcher::Config::default())
        .owns(context.api::<DaemonSet>(), watcher::Config::default())
        // A change to a target workload wakes the Canaries that name it.
        // Metadata is all a trigger needs: listing and watching whole Deployments, ConfigMaps and
        // Secrets would cost the controller their bodies (and a Secret's data) for nothing.
        .watches(context.api::<PartialObjectMeta<Deployment>>(), watcher::Config::default(), move |deployment| {
            canaries_targeting(&deployment_store, "Deployment", &deployment)
        })
        .watches(context.api::<PartialObjectMeta<DaemonSet>>(), watcher::Config::default(), move |daemon_set| {
            canaries_targeting(&daemon_set_store, "DaemonSet", &daemon_set)
        })
        // A change to a ConfigMap or Secret may be a new revision of a target in its namespace.
        .watches(context.api::<PartialObjectMeta<ConfigMap>>(), watcher::Config::default(), move |config| {
            canaries_in(&config_store, config.namespace())
        })
        .watches(context.api::<PartialObjectMeta<Secret>>(), watcher::Config::default(), move |secret| {
            canaries_in(&secret_store, secret.namespace())
        })
        .run(reconcile_canary, error_policy, context.clone())
        .for_each(|result| {
            match result {
                // A deleted Canary (its owned objects going, or its requeue, wake it once more).
                Err(::kube::runtime::controller::Error::ObjectNotFound(gone)) => {
                    let key = (gone.namespace.clone().unwrap_or_default(), gone.name.clone());
                    context.telemetry.forget(&key.0, &key.1);
                    context.due.lock().expect("schedule lock").remove(&key);
                }
                Err(problem) => tracing::debug!(%problem, "reconcile did not complete"),
                Ok(_) => {}
            }
            std::future::ready(())
        })
        .await;
}

fn canaries_targeting(store: &Store<Canary>, kind: &str, workload: &impl ResourceExt) -> Vec<ObjectRef<Canary>> {
    let (namespace, name) = (workload.namespace(), workload.name_any());
    store
        .state()
        .into_iter()
        .filter(|c| c.namespace() == namespace && c.spec.target_ref.name == name)
        .filter(|c| c.spec.target_ref.kind.as_deref().unwrap_or("Deployment") == kind)
        .map(|c| ObjectRef::from_obj(&*c))
        .collect()
}

fn canaries_in(store: &Store<Canary>, namespace: Option<String>) -> Vec<ObjectRef<Canary>> {
    store.state().into_iter().filter(|c| c.namespace() == namespace).map(|c| ObjectRef::from_obj(&*c)).collect()
}

async fn reconcile_canary(canary: Arc<Canary>, context: Arc<Context>) -> Result<Requeue, KubeError> {
    let namespace = canary.namespace().unwrap_or_default();
    let name = canary.name_any();
    let reference = CanaryRef {
        namespace: &namespace,
        name: &name,
        spec: &canary.spec,
        generation: canary.metadata.generation.unwrap_or(1),
    };
    let started = std::time::Instant::now();
    let key = (namespace.clone(), name.clone());
    note_started(&context, &key);
    let mut platform = KubePlatform { context: &context, canary: canary.clone() };
    platform.ensure_finalizer(reference).await?;
    let reconciled = match reconcile(&mut platform, reference).await {
        Ok(reconciled) => reconciled,
        Err(KubeError::TargetNotFound { .. }) if canary.metadata.deletion_timestamp.is_some() => {
            // Nothing left to restore.
            platform.remove_finalizer(reference).await?;
            return Ok(Requeue::await_change());
        }
        Err(problem @ (KubeError::TargetNotFound { .. } | KubeError::UnsupportedTarget { .. })) => {
            // Nothing can run until the user fixes it: say so in the status, once, and wait for the
            // target to appear (its creation wakes this Canary).
            let reason = match problem {
                KubeError::TargetNotFound { .. } => "TargetNotFound",
                _ => "UnsupportedTarget",
            };
            let status = crate::engine::conditions::blocked(
                canary.status.as_ref(),
                reference.generation,
                jiff::Timestamp::now(),
                reason,
                &problem.to_string(),
            );
            if canary.status.as_ref() != Some(&status) {
                platform.patch_status(reference, &status).await?;
                platform.warn(reason, &problem.to_string()).await;
            }
            tracing::warn!(canary = %reference.key(), %problem, label = problem.label(), "cannot run");
            note_next(&context, key, Duration::from_secs(60));
            return Ok(Requeue::requeue(Duration::from_secs(60)));
        }
        Err(problem) => return Err(problem),
    };
    let status = &reconciled.decision.status;
    let before = canary.status.as_ref();
    context.telemetry.observe(&namespace, &name, &canary.spec, before, status, started.elapsed().as_secs_f64());
    reconciled.log(&reference.key(), canary.status.as_ref());
    note_next(&context, key, reconciled.decision.requeue_after);
    Ok(Requeue::requeue(reconciled.decision.requeue_after))
}

/// Records how late this tick runs against the time it was due, if it was scheduled (a tick woken
/// early by a change is not late).
fn note_started(context: &Context, key: &(String, String)) {
    let now = std::time::Instant::now();
    let was_due = context.due.lock().expect("schedule lock").remove(key);
    if let Some(was_due) = was_due.filter(|d| *d <= now) {
        context.telemetry.observe_lateness(now.duration_since(was_due).as_secs_f64());
    }
}

/// Records when the next tick is due.
fn note_next(context: &Context, key: (String, String), after: Duration) {
    context.due.lock().expect("schedule lock").insert(key, std::time::Instant::now() + after);
}

fn error_policy(canary: Arc<Canary>, problem: &KubeError, _context: Arc<Context>) -> Requeue {
    tracing::warn!(canary = %format!("{}/{}", canary.namespace().unwrap_or_default(), canary.name_any()), %problem, label = problem.label(), "reconcile failed; retrying");
    Requeue::requeue(Duration::from_secs(5))
}
